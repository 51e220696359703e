"""What every tokenizer kind does the same way: its identity hash and its batched, padded calls."""

from __future__ import annotations

import hashlib
import json

import jax
import numpy as np


def weights_identity(kind: str, header: dict, params) -> str:
    """``kind-sha256`` of the JSON ``header`` (config and any other settings) and every weight's
    float32 bytes, in sorted key-path order: equal weights give equal identities on any host."""
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(params), key=lambda kv: jax.tree_util.keystr(kv[0])):
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return f"{kind}-{h.hexdigest()}"


def bucketed(fn, params, x: np.ndarray, max_batch: int) -> np.ndarray:
    """``fn(params, chunk)`` over chunks of ``x``, each padded to a power of two (<= max_batch) so a
    data set costs a few compiles, not one per distinct last-batch size."""
    out = []
    for start in range(0, len(x), max_batch):
        chunk = x[start : start + max_batch]
        n = len(chunk)
        size = min(max_batch, 1 << max(0, (n - 1).bit_length()))
        if size != n:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
        out.append(np.asarray(fn(params, chunk))[:n])
    return np.concatenate(out)
