"""Train state, the ILSD train step (jitted, optionally sharded on a data mesh) and the per-exit
held-out loss, for any family.

Per step (Alg. 1): drop labels to the unconditional class with prob ``label_drop`` (CFG
training), let the family corrupt the batch (masking, noising), draw ONE L_int ~ U{L_min ..
L_max-1} for the whole batch, run one forward of L_max loops keeping the L_int exit, and combine
the family's per-exit losses with ILSD. ``ilsd=False`` trains the L_max exit only (vanilla
looping); the unique-depth baseline is a model with N*L layers, L_max=1.

``hyper`` is the `train` section of params.yaml (elt.config.TrainConfig) with the scale's
overrides applied; ``family`` is the family's losses module (elt/families/<f>/losses.py) and
``family_cfg`` its own `train` settings.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from elt.core.ilsd import ilsd_loss, lam_schedule
from elt.core.looped import apply, apply_with_exit, check_L
from elt.core.mesh import batch_sharding, check_batch_divisible, replicated, state_sharding
from elt.core.optim import make_optimizer


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any = None  # EMA of params (hyper.ema_decay), checkpointed with the state; None: off

    def eval_params(self):
        """What is published, evaluated and sampled: the EMA if there is one."""
        return self.params if self.ema_params is None else self.ema_params


def ema_decay_at(step, decay: float) -> jax.Array:
    """The EMA decay at optimizer step ``step`` (0-based): min(decay, (1 + step) / (10 + step)).

    The ramp (TF's ExponentialMovingAverage with num_updates) keeps early, random parameters from
    dominating the average of a short run: at 0.9999 a constant decay would still weigh the
    initialisation by e^-0.24 = 0.79 after 2,400 steps."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(ema, params, step, decay: float):
    d = ema_decay_at(step, decay)
    return jax.tree_util.tree_map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def make_tx(hyper) -> optax.GradientTransformation:
    return make_optimizer(
        lr=hyper.lr, b1=hyper.b1, b2=hyper.b2, weight_decay=hyper.weight_decay,
        warmup_steps=hyper.warmup_steps, total_steps=hyper.steps, decay=hyper.decay,
    )


def _init_fn(model, hyper):
    tx = make_tx(hyper)

    def init(rng):
        params = model.init(rng)
        ema = jax.tree_util.tree_map(jnp.copy, params) if getattr(hyper, "ema_decay", None) else None
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), ema_params=ema)

    return init


def train_state_sharding(model, hyper, mesh, mesh_cfg=None):
    """The sharding of every TrainState leaf on ``mesh`` (params, EMA and optimizer state by the
    `mesh` rules; see elt/core/mesh.py), from shapes only: nothing is allocated."""
    abstract = jax.eval_shape(_init_fn(model, hyper), jax.random.key(0))
    return state_sharding(mesh, abstract, mesh_cfg)


def create_train_state(model, hyper, rng: jax.Array, mesh=None, mesh_cfg=None) -> TrainState:
    init = _init_fn(model, hyper)
    if mesh is None:
        return jax.jit(init)(rng)
    # Created directly with its sharding: no host or single-device copy of the whole state.
    return jax.jit(init, out_shardings=train_state_sharding(model, hyper, mesh, mesh_cfg))(rng)


def drop_labels(rng: jax.Array, labels: jax.Array, label_drop: float, uncond_label: int) -> jax.Array:
    """Replace each label by the unconditional class with probability ``label_drop`` (CFG training)."""
    drop = jax.random.uniform(rng, labels.shape) < label_drop
    return jnp.where(drop, jnp.asarray(uncond_label, labels.dtype), labels)


def loss_and_metrics(family, model, hyper, L_max: int, ilsd: bool, family_cfg, params, batch, rng, step):
    """The ILSD loss of one batch and its logged parts."""
    r_inputs, r_drop, r_L = jax.random.split(rng, 3)
    batch = dict(batch, labels=drop_labels(r_drop, batch["labels"], hyper.label_drop, model.uncond_label))
    inputs, targets = family.training_inputs(model, batch, r_inputs, family_cfg)
    lam = lam_schedule(step, hyper.steps)
    if ilsd:
        # One scalar L_int per step, as Alg. 1 (maxval exclusive -> L_min .. L_max-1).
        L_int = jax.random.randint(r_L, (), hyper.L_min, L_max, dtype=jnp.int32)
        out_max, out_int = apply_with_exit(model, params, inputs, L_max, L_int)
    else:
        L_int = jnp.asarray(L_max, jnp.int32)
        out_max, out_int = apply(model, params, inputs, L_max), None
    loss, metrics = ilsd_loss(
        lambda out: family.gt_loss(out, targets, family_cfg),
        lambda student, teacher: family.distill_loss(student, teacher, targets),
        out_max, out_int, lam,
    )
    metrics = dict(metrics, lam=lam, L_int=L_int, **family.exit_metrics(out_max, targets))
    return loss, metrics


def make_train_step(family, model, hyper, L_max: int, ilsd: bool, family_cfg, mesh=None, mesh_cfg=None):
    """Jitted ``(state, {"latents": [B, ...], "labels": [B] int32}, rng) -> (state, metrics)``.

    The input state is donated (updated in place on devices that support it).
    """
    if ilsd and hyper.L_min >= L_max:
        raise ValueError(f"ILSD needs L_min < L_max, got L_min={hyper.L_min}, L_max={L_max}")
    tx = make_tx(hyper)
    loss_fn = functools.partial(loss_and_metrics, family, model, hyper, L_max, ilsd, family_cfg)

    def train_step(state: TrainState, batch: dict, rng: jax.Array):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng, state.step)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = update_ema(ema, params, state.step, hyper.ema_decay)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema), metrics

    if mesh is None:
        return jax.jit(train_step, donate_argnums=0)
    check_batch_divisible(hyper.batch_size, mesh)
    repl, data = replicated(mesh), batch_sharding(mesh)
    states = train_state_sharding(model, hyper, mesh, mesh_cfg)
    return jax.jit(
        train_step,
        in_shardings=(states, data, repl),
        out_shardings=(states, repl),
        donate_argnums=0,
    )


def make_eval_loss(family, model, family_cfg=None):
    """Jitted ``(params, batch, rng, L) -> the family's held-out loss after L loops``.

    No label drop; L is traced, so one compilation serves every loop count. The same rng gives
    the same corruption, so losses at different L (or of different models) compare like for like.
    """

    @jax.jit
    def _eval_loss(params, batch, rng, L):
        inputs, targets = family.training_inputs(model, batch, rng, family_cfg)
        return family.eval_loss(apply(model, params, inputs, L), targets)

    def eval_loss(params, batch, rng, L):
        check_L("L", L)  # a python int is checked here: once traced, L=0 would run silently
        return _eval_loss(params, batch, rng, jnp.asarray(L, jnp.int32))

    return eval_loss
