"""Keep credentials out of MLflow params, tags and warnings.

Runs are shared (a team server, screenshots, exported tables), while resolved configs and
environment-derived tags can carry secrets: a remote URL with ``user:pass@``, a signed GCS URL
(``X-Goog-Signature``), an API token. Values under sensitive keys and the secret parts of URLs are
replaced by ``***``; everything else is kept verbatim so the run stays informative.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# Substrings that mark a key as secret wherever they occur ("db_password", "gcsSecretKey").
_SECRET_SUBSTRINGS = ("secret", "passw", "credential", "signature", "apikey", "api_key",
                      "privatekey", "private_key", "accesskey", "access_key", "accesstoken",
                      "authtoken", "apitoken", "refreshtoken")
# Short words count only as whole words ("access_token", "sas.key", "sig" of an Azure SAS URL),
# not inside "tokenizer", "num_tokens", "monkey", "signal" or "author".
_KEY_WORD = re.compile(r"(^|[^a-z])(token|key|sig|auth|authorization|pwd)($|[^a-z])")
# Our own identifiers that contain the word "key" but are not secrets.
_ALLOWED_KEYS = frozenset({"elt.run_key", "run_key"})

# scheme://userinfo@host... ; userinfo is anything up to '@' without '/', whitespace or quotes.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/\-]{8,}=*")


def is_sensitive_key(key: str) -> bool:
    """True for keys whose values must never be logged (token, secret, password, credential, key)."""
    if key in _ALLOWED_KEYS:
        return False
    k = _camel_to_snake(str(key)).lower()
    return any(s in k for s in _SECRET_SUBSTRINGS) or bool(_KEY_WORD.search(k))


def scrub_value(value: object) -> object:
    """The value with secrets in URLs (userinfo, sensitive query parameters) and bearer tokens
    redacted. Non-strings are returned unchanged."""
    if not isinstance(value, str):
        return value
    text = _URL.sub(lambda m: _scrub_url(m.group(0)), value)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def scrub_mapping(mapping: Mapping[str, object]) -> dict[str, object]:
    """A copy with values under sensitive keys replaced by ``***`` and every value scrubbed."""
    return {k: (REDACTED if is_sensitive_key(k) else scrub_value(v)) for k, v in mapping.items()}


def _scrub_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (e.g. bad IPv6 literal): drop it entirely rather than leak
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_sensitive_key(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_sensitive_key(k) else v) for k, v in pairs],
                              safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _camel_to_snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
