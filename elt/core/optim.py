"""AdamW with linear warmup then cosine (or constant) decay; Table 5 defaults for masked models.

Weight decay applies to matrices only (Dense kernels and embedding tables). LayerNorm scales,
biases and the position embedding are not decayed: decaying LN scales towards 0 fights the
normalisation, and biases carry no capacity worth regularising. The mask is chosen by parameter
name, not by ndim, because the block's stacked (scanned) layers give LN scales and biases a
leading N axis.
"""

from __future__ import annotations

import jax
import optax

_DECAYED = ("kernel", "embedding")


def weight_decay_mask(params):
    def decide(path, _):
        last = path[-1]
        name = getattr(last, "key", getattr(last, "name", str(last)))
        return name in _DECAYED

    return jax.tree_util.tree_map_with_path(decide, params)


def lr_schedule(lr: float, warmup_steps: int, total_steps: int, decay: str = "cosine") -> optax.Schedule:
    if decay not in ("cosine", "constant"):
        raise ValueError(f"decay must be 'cosine' or 'constant', got decay={decay!r}")
    warmup = optax.linear_schedule(0.0, lr, max(warmup_steps, 1))
    if decay == "constant":
        after = optax.constant_schedule(lr)
    else:
        after = optax.cosine_decay_schedule(lr, max(total_steps - warmup_steps, 1))
    return optax.join_schedules([warmup, after], [warmup_steps])


def make_optimizer(
    lr: float = 1e-4,
    b1: float = 0.9,
    b2: float = 0.96,
    weight_decay: float = 0.045,
    warmup_steps: int = 15_000,
    total_steps: int = 1_000_000,
    decay: str = "cosine",
) -> optax.GradientTransformation:
    return optax.adamw(
        lr_schedule(lr, warmup_steps, total_steps, decay),
        b1=b1,
        b2=b2,
        weight_decay=weight_decay,
        mask=weight_decay_mask,
    )
