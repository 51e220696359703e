"""MaskGIT cosine masking for training.

Per example: r ~ U[0, 1), n = floor(S * cos(pi * r / 2)) tokens are masked, at least 1. The n
positions are the n smallest of i.i.d. uniform scores (ranked, so exactly n, ties impossible to
miscount). The loss is taken on masked positions only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cosine_mask_count(r: jax.Array, seq_len: int) -> jax.Array:
    """Number of masked tokens for mask-ratio draws ``r`` in [0, 1): floor(S cos(pi r/2)), >= 1."""
    n = jnp.floor(seq_len * jnp.cos(jnp.pi * r / 2.0)).astype(jnp.int32)
    return jnp.clip(n, 1, seq_len)


def mask_from_counts(rng: jax.Array, counts: jax.Array, seq_len: int) -> jax.Array:
    """Boolean mask [B, S] with exactly ``counts[b]`` uniformly chosen positions per row."""
    scores = jax.random.uniform(rng, (counts.shape[0], seq_len))
    ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
    return ranks < counts[:, None]


def cosine_mask(rng: jax.Array, tokens: jax.Array, mask_id: int) -> tuple[jax.Array, jax.Array]:
    """Returns (masked tokens with ``mask_id`` at masked positions, boolean mask [B, S])."""
    r_ratio, r_pos = jax.random.split(rng)
    B, S = tokens.shape
    counts = cosine_mask_count(jax.random.uniform(r_ratio, (B,)), S)
    mask = mask_from_counts(r_pos, counts, S)
    return jnp.where(mask, jnp.asarray(mask_id, tokens.dtype), tokens), mask
