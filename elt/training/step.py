"""Train state, ILSD train step (jitted, optionally sharded on a data mesh) and eval loss.

Per step (Alg. 1): mask tokens with the cosine schedule, drop labels to the unconditional class
with prob ``label_drop``, draw ONE L_int ~ U{L_min .. L_max-1} for the whole batch, run one
forward of L_max loops keeping the L_int exit, and take the ILSD loss. ``ilsd=False`` trains the
L_max exit only (vanilla looping); the unique-depth baseline is a model with N*L layers, L_max=1.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from elt.training.ilsd import ilsd_loss, lam_schedule, masked_accuracy, masked_ce
from elt.training.masking import cosine_mask
from elt.training.mesh import batch_sharding, check_batch_divisible, replicated
from elt.training.optim import make_optimizer


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int
    total_steps: int
    L_max: int
    lr: float = 1e-4
    b1: float = 0.9
    b2: float = 0.96
    weight_decay: float = 0.045
    warmup_steps: int = 15_000
    decay: str = "cosine"
    label_drop: float = 0.1
    label_smoothing: float = 0.1
    L_min: int = 1
    ilsd: bool = True
    seed: int = 0

    def __post_init__(self):
        for name in ("batch_size", "total_steps", "L_max", "L_min"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {name}={value!r}")
        if self.ilsd and self.L_min >= self.L_max:
            raise ValueError(
                f"ILSD needs L_min < L_max (student exit before the teacher), got "
                f"L_min={self.L_min}, L_max={self.L_max}; set ilsd=False for L_max=1"
            )
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got lr={self.lr!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"TrainConfig.warmup_steps must be >= 0, got warmup_steps={self.warmup_steps!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got weight_decay={self.weight_decay!r}")
        for name in ("label_drop", "label_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {name}={value!r}")
        for name in ("b1", "b2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {name}={value!r}")


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    opt_state: Any


def make_tx(tc: TrainConfig) -> optax.GradientTransformation:
    return make_optimizer(
        lr=tc.lr, b1=tc.b1, b2=tc.b2, weight_decay=tc.weight_decay,
        warmup_steps=tc.warmup_steps, total_steps=tc.total_steps, decay=tc.decay,
    )


def create_train_state(model, tc: TrainConfig, rng: jax.Array, mesh=None) -> TrainState:
    tx = make_tx(tc)

    def init(rng):
        params = model.init(rng)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    if mesh is None:
        return jax.jit(init)(rng)
    # Created directly with its (replicated) sharding: no host copy of the params.
    return jax.jit(init, out_shardings=replicated(mesh))(rng)


def drop_labels(rng: jax.Array, labels: jax.Array, label_drop: float, uncond_label: int) -> jax.Array:
    """Replace each label by the unconditional class with probability ``label_drop`` (CFG training)."""
    drop = jax.random.uniform(rng, labels.shape) < label_drop
    return jnp.where(drop, jnp.asarray(uncond_label, labels.dtype), labels)


def _loss_and_metrics(model, tc: TrainConfig, params, batch, rng, step):
    r_mask, r_drop, r_L = jax.random.split(rng, 3)
    tokens, labels = batch["tokens"], batch["labels"]
    inputs, mask = cosine_mask(r_mask, tokens, model.mask_id)
    labels = drop_labels(r_drop, labels, tc.label_drop, model.uncond_label)
    lam = lam_schedule(step, tc.total_steps)
    if tc.ilsd:
        # One scalar L_int per step, as Alg. 1 (maxval exclusive -> L_min .. L_max-1).
        L_int = jax.random.randint(r_L, (), tc.L_min, tc.L_max, dtype=jnp.int32)
        logits_max, logits_int = model.apply_with_exit(params, inputs, labels, tc.L_max, L_int)
    else:
        L_int = jnp.asarray(tc.L_max, jnp.int32)
        logits_max, logits_int = model.apply(params, inputs, labels, tc.L_max), None
    loss, metrics = ilsd_loss(logits_max, logits_int, tokens, mask, lam, tc.label_smoothing)
    metrics = dict(metrics, lam=lam, L_int=L_int, accuracy=masked_accuracy(logits_max, tokens, mask))
    return loss, metrics


def make_train_step(model, tc: TrainConfig, mesh=None):
    """Jitted ``(state, {"tokens": [B,S] int32, "labels": [B] int32}, rng) -> (state, metrics)``.

    The input state is donated (updated in place on devices that support it).
    """
    tx = make_tx(tc)

    def train_step(state: TrainState, batch: dict, rng: jax.Array):
        grad_fn = jax.value_and_grad(
            functools.partial(_loss_and_metrics, model, tc), has_aux=True
        )
        (_, metrics), grads = grad_fn(state.params, batch, rng, state.step)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    if mesh is None:
        return jax.jit(train_step, donate_argnums=0)
    check_batch_divisible(tc.batch_size, mesh)
    repl, data = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        train_step,
        in_shardings=(repl, data, repl),
        out_shardings=(repl, repl),
        donate_argnums=0,
    )


@functools.partial(jax.jit, static_argnums=0)
def _eval_loss(model, params, batch, rng, L):
    inputs, mask = cosine_mask(rng, batch["tokens"], model.mask_id)
    logits = model.apply(params, inputs, batch["labels"], L)
    return masked_ce(logits, batch["tokens"], mask), masked_accuracy(logits, batch["tokens"], mask)


def eval_loss(model, params, batch: dict, rng: jax.Array, L) -> jax.Array:
    """Masked-token cross-entropy (no label smoothing, no label drop) after L loops.

    L is traced: one compilation serves every loop count. Same rng -> same masks, so losses at
    different L (or of different models) are compared on identical inputs.
    """
    if isinstance(L, int) and L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    return _eval_loss(model, params, batch, rng, jnp.asarray(L, jnp.int32))[0]


def eval_metrics(model, params, batch: dict, rng: jax.Array, L) -> dict:
    """{"loss", "accuracy"} of the masked tokens after L loops (see ``eval_loss``)."""
    if isinstance(L, int) and L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    loss, acc = _eval_loss(model, params, batch, rng, jnp.asarray(L, jnp.int32))
    return {"loss": loss, "accuracy": acc}
