"""Resolved configs as flat MLflow params, and a stable hash of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping


def flatten_params(config: object, prefix: str = "", sep: str = ".") -> dict[str, object]:
    """Nested mappings (and dataclasses) -> ``{"model.d": 64, ...}``.

    Lists and tuples stay one value (``"sample.loops": "[1, 2, 4]"``): a loop-count list reads
    better as one param than as ``loops.0``, ``loops.1``, ... Keys must be strings.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"flatten_params needs a mapping or dataclass, got {type(config).__name__}"
                        + (f" at {prefix!r}" if prefix else ""))
    flat: dict[str, object] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"param keys must be non-empty strings, got {key!r} under {prefix!r}")
        name = f"{prefix}{sep}{key}" if prefix else key
        if isinstance(value, Mapping) or (dataclasses.is_dataclass(value)
                                          and not isinstance(value, type)):
            flat.update(flatten_params(value, name, sep))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(list(value), default=str)
        else:
            flat[name] = value
    return flat


def params_hash(flat_params: Mapping[str, object], length: int = 12) -> str:
    """Hex digest of the params, independent of key order (the run's config identity)."""
    canonical = json.dumps({k: str(v) for k, v in flat_params.items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
