"""Keep credentials out of MLflow params, tags and warnings: runs are shared (a team server,
screenshots), while configs and values from the environment can carry tokens, ``user:pass@`` in
a URL or a signed GCS URL. Only the secret parts become ``***``, so the run stays informative."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"
_SECRET_PARTS = ("secret", "passw", "credential", "signature", "apikey", "api_key", "privatekey", "private_key",
                 "accesskey", "access_key", "accesstoken", "authtoken", "apitoken", "refreshtoken")
# Short words only as whole words: "access_token" and an Azure SAS "sig" are secret, "tokenizer",
# "num_tokens", "monkey", "signal" and "author" are not.
_SECRET_WORD = re.compile(r"(^|[^a-z])(token|key|sig|auth|authorization|pwd)($|[^a-z])")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/\-]{8,}=*")


def is_sensitive_key(key: str) -> bool:
    if key in ("elt.run_key", "run_key"):  # our grid key, not a secret
        return False
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(key)).lower()  # "apiKey" -> "api_key"
    return any(part in snake for part in _SECRET_PARTS) or bool(_SECRET_WORD.search(snake))


def scrub_value(value: object) -> object:
    """Strings with URL userinfo, secret query parameters and bearer tokens redacted."""
    if not isinstance(value, str):
        return value
    text = _URL.sub(lambda m: _scrub_url(m.group(0)), value)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def scrub_mapping(mapping: Mapping[str, object]) -> dict[str, object]:
    return {k: REDACTED if is_sensitive_key(k) else scrub_value(v) for k, v in mapping.items()}


def _scrub_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (a bad IPv6 literal): drop it rather than risk a leak
        return REDACTED
    netloc = REDACTED + "@" + parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    pairs, query = parse_qsl(parts.query, keep_blank_values=True), parts.query
    if any(is_sensitive_key(k) for k, _ in pairs):
        query = urlencode([(k, REDACTED if is_sensitive_key(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))
