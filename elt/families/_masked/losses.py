"""Training side of the masked-image family: cosine masking and the per-exit losses (GT and D of
the ILSD combination in elt/core/ilsd.py).

Masking (MaskGIT): per example r ~ U[0, 1), n = floor(S * cos(pi * r / 2)) tokens are masked, at
least 1. The n positions are the n smallest of i.i.d. uniform scores (ranked, so exactly n, ties
impossible to miscount). The loss is taken on masked positions only:
  GT = label-smoothed cross-entropy on masked positions (mean over the masked positions of the batch),
  D  = soft-target cross-entropy -sum_v P_T(v) log P_S(v), averaged over the same positions
       (the teacher's logits arrive stop-gradiented from the core).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _masked_mean(per_token: jax.Array, mask: jax.Array) -> jax.Array:
    mask = mask.astype(per_token.dtype)
    # max(., 1): a batch with no masked token gives 0, not NaN (the masking draws >= 1 per row).
    return jnp.sum(per_token * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_ce(logits: jax.Array, targets: jax.Array, mask: jax.Array, label_smoothing: float = 0.0):
    """Mean cross-entropy over masked positions; targets smoothed as (1-eps)*onehot + eps/K."""
    K = logits.shape[-1]
    onehot = jax.nn.one_hot(targets, K, dtype=jnp.float32)
    soft = optax.smooth_labels(onehot, label_smoothing) if label_smoothing else onehot
    return _masked_mean(optax.softmax_cross_entropy(logits.astype(jnp.float32), soft), mask)


def soft_ce(student_logits: jax.Array, teacher_logits: jax.Array, mask: jax.Array) -> jax.Array:
    """-sum_v P_T(v) log P_S(v) averaged over masked positions (teacher logits are not differentiated)."""
    p_teacher = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32), axis=-1)
    return _masked_mean(optax.softmax_cross_entropy(student_logits.astype(jnp.float32), p_teacher), mask)


def masked_accuracy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    return _masked_mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32), mask)


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


# ---------------------------------------------------------------- the family contract (training)


def check_latents(spec) -> None:
    """The shards must hold integer tokens of a codebook on a 2-D grid."""
    if spec.vocab_size is None or spec.dtype != "int32" or len(spec.shape) != 2:
        raise ValueError(f"family maskgit needs integer tokens on a 2-D grid with a codebook, got latents {spec}")


def training_inputs(model, batch: dict, rng, cfg=None):
    """(model inputs, loss targets): tokens masked by the cosine schedule (Alg. 1)."""
    tokens = batch["latents"].reshape(batch["latents"].shape[0], -1).astype(jnp.int32)
    inputs, mask = cosine_mask(rng, tokens, model.mask_id)
    return (inputs, batch["labels"]), (tokens, mask)


def gt_loss(logits, targets, cfg) -> jax.Array:
    tokens, mask = targets
    return masked_ce(logits, tokens, mask, cfg.label_smoothing)


def distill_loss(student_logits, teacher_logits, targets) -> jax.Array:
    return soft_ce(student_logits, teacher_logits, targets[1])


def eval_loss(logits, targets) -> jax.Array:
    """Held-out loss of one exit: masked cross-entropy without label smoothing."""
    tokens, mask = targets
    return masked_ce(logits, tokens, mask)


def exit_metrics(logits, targets) -> dict:
    tokens, mask = targets
    return {"accuracy": masked_accuracy(logits, tokens, mask)}
