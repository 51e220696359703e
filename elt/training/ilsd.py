"""Intra-Loop Self Distillation (ILSD) loss for masked models (paper Sec. 4, Alg. 1).

loss = GT(teacher) + lam * GT(student) + (1 - lam) * D(student, stop_grad(teacher))
  GT = label-smoothed cross-entropy on masked positions (mean over masked positions of the batch),
  D  = soft-target cross-entropy -sum_v P_T(v) log P_S(v), averaged over the same positions.
The teacher is the L_max exit, the student the L_int exit of the same forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def lam_schedule(step, total_steps: int) -> jax.Array:
    """Curriculum weight lam: linear 1 -> 0 over ``total_steps`` (clipped to [0, 1])."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got total_steps={total_steps}")
    frac = jnp.asarray(step, jnp.float32) / float(total_steps)
    return jnp.clip(1.0 - frac, 0.0, 1.0)


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
    """-sum_v P_T(v) log P_S(v) averaged over masked positions; the teacher is stop-gradiented."""
    p_teacher = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32), axis=-1)
    return _masked_mean(optax.softmax_cross_entropy(student_logits.astype(jnp.float32), p_teacher), mask)


def masked_accuracy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    return _masked_mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32), mask)


def ilsd_loss(logits_max, logits_int, targets, mask, lam, label_smoothing: float = 0.0):
    """ILSD total loss and its parts. ``logits_int=None`` gives vanilla looping (GT teacher only)."""
    gt_teacher = masked_ce(logits_max, targets, mask, label_smoothing)
    if logits_int is None:
        zero = jnp.zeros((), jnp.float32)
        return gt_teacher, {"loss": gt_teacher, "gt_teacher": gt_teacher, "gt_student": zero, "distill": zero}
    gt_student = masked_ce(logits_int, targets, mask, label_smoothing)
    distill = soft_ce(logits_int, logits_max, mask)
    loss = gt_teacher + lam * gt_student + (1.0 - lam) * distill
    return loss, {"loss": loss, "gt_teacher": gt_teacher, "gt_student": gt_student, "distill": distill}
