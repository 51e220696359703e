"""Intra-Loop Self Distillation (paper Sec. 4, Alg. 1), written once for every family.

    loss = GT(teacher) + lam * GT(student) + (1 - lam) * D(student, stop_grad(teacher))

The teacher is the L_max exit and the student the L_int exit of the same forward pass. A family
supplies GT (its ground-truth loss of one exit: masked-token cross-entropy, diffusion MSE, ...)
and D (its distillation loss of the student towards the teacher); the combination, the
stop-gradient on the teacher and the lam curriculum live here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def lam_schedule(step, total_steps: int) -> jax.Array:
    """Curriculum weight lam: linear 1 -> 0 over ``total_steps`` (clipped to [0, 1])."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got total_steps={total_steps}")
    frac = jnp.asarray(step, jnp.float32) / float(total_steps)
    return jnp.clip(1.0 - frac, 0.0, 1.0)


def ilsd_loss(gt_loss, distill_loss, out_max, out_int, lam):
    """ILSD total loss and its parts from a family's ``gt_loss(out)`` and
    ``distill_loss(student_out, teacher_out)``. ``out_int=None`` gives vanilla looping (GT of the
    L_max exit only)."""
    gt_teacher = gt_loss(out_max)
    if out_int is None:
        zero = jnp.zeros((), jnp.float32)
        return gt_teacher, {"loss": gt_teacher, "gt_teacher": gt_teacher, "gt_student": zero, "distill": zero}
    gt_student = gt_loss(out_int)
    distill = distill_loss(out_int, jax.lax.stop_gradient(out_max))
    loss = gt_teacher + lam * gt_student + (1.0 - lam) * distill
    return loss, {"loss": loss, "gt_teacher": gt_teacher, "gt_student": gt_student, "distill": distill}
