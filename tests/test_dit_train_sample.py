"""Diffusion family training and sampling: the ILSD loss against a direct numpy computation, a
few real train steps, and the sampler (seeds, one compile for every L, CFG, labels, decode)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt import families
from elt.config import TrainConfig as Hyper
from elt.core.ilsd import ilsd_loss
from elt.core.train_step import TrainState, make_eval_loss, make_train_step, make_tx
from elt.families.dit import losses
from elt.families.dit.config import SampleConfig, TrainConfig
from elt.families.dit.model import DiffusionELT, DiTConfig
from elt.families.dit.sampler import decode, guided_v, make_sampler

TINY = dict(latent_shape=(4, 4, 4), num_classes=3, d_model=32, num_heads=4, mlp_dim=64, N=2)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def random_params(model, seed=0, scale=0.3):
    """Random values for every parameter (from shapes: no init compilation), gates included."""
    r = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(scale * r.normal(size=s.shape), jnp.float32), shapes)


@pytest.fixture(scope="module")
def tiny():
    model = DiffusionELT(DiTConfig(**TINY))
    return model, random_params(model)


# ---------------------------------------------------------------- losses


@functools.partial(jax.jit, static_argnums=(0, 3))
def _noised(model, batch, rng, cfg):
    return losses.training_inputs(model, batch, rng, cfg)


@functools.partial(jax.jit, static_argnums=0)
def _exits(model, params, z, labels, lam):
    """(L_max = 3 exit, L_int = 1 exit) of one forward: compiled once for every loss setting."""
    return model.apply_with_exit(params, z, labels, lam, 3, jnp.int32(1))


@pytest.mark.parametrize("cfg", [TrainConfig(), TrainConfig(elbo_weight=False, sigmoid_bias=1.0, shift=0.5,
                                                            lambda_min=-10.0, lambda_max=12.0)])
def test_ilsd_loss_equals_direct_numpy(tiny, cfg):
    model, params = tiny
    r = np.random.default_rng(3)
    B = 4
    x = (0.7 * r.normal(size=(B, 4, 4, 4)) + 0.2).astype(np.float32)
    batch = {"latents": jnp.asarray(x), "labels": jnp.array([0, 1, 2, 3], jnp.int32)}
    rng, lam_ilsd = jax.random.key(5), 0.3

    inputs, targets = _noised(model, batch, rng, cfg)
    v_T, v_S = _exits(model, params, *inputs)
    loss, parts = jax.jit(lambda v_T, v_S, targets: ilsd_loss(
        lambda o: losses.gt_loss(o, targets, cfg), lambda s, t: losses.distill_loss(s, t, targets),
        v_T, v_S, lam_ilsd))(v_T, v_S, targets)
    z, lam = inputs[0], inputs[2]

    # The same draws (same key splits), everything else in float64 from the closed forms.
    r_t, r_eps = jax.random.split(rng)
    t = np.asarray(jax.random.uniform(r_t, (B,)), np.float64)
    eps = np.asarray(jax.random.normal(r_eps, x.shape), np.float64)
    b0 = math.atan(math.exp(-cfg.lambda_max / 2))
    a = math.atan(math.exp(-cfg.lambda_min / 2)) - b0
    lam_ref = -2 * np.log(np.tan(a * t + b0)) + cfg.shift
    np.testing.assert_allclose(lam, lam_ref, rtol=1e-5, atol=1e-4)
    alpha, sigma = np.sqrt(np_sigmoid(lam_ref))[:, None, None, None], np.sqrt(np_sigmoid(-lam_ref))[:, None, None, None]
    z_ref = alpha * x + sigma * eps
    np.testing.assert_allclose(z, z_ref, rtol=1e-5, atol=1e-5)
    w = np.exp(cfg.sigmoid_bias) * np_sigmoid(lam_ref - cfg.sigmoid_bias)  # = e^lam sigmoid(b - lam)
    if cfg.elbo_weight:
        w = w * 2 * a / np.sin(2 * (a * t + b0))  # -1/2 dlam/dt
    x_T = alpha * z_ref - sigma * np.asarray(v_T, np.float64)
    x_S = alpha * z_ref - sigma * np.asarray(v_S, np.float64)
    mse = lambda p, q: np.mean((p - q) ** 2, axis=(1, 2, 3))  # noqa: E731
    gt_T, gt_S, dist = np.mean(w * mse(x_T, x)), np.mean(w * mse(x_S, x)), np.mean(w * mse(x_T, x_S))
    ours = [parts["gt_teacher"], parts["gt_student"], parts["distill"]]
    np.testing.assert_allclose(ours, [gt_T, gt_S, dist], rtol=2e-4)
    np.testing.assert_allclose(loss, gt_T + lam_ilsd * gt_S + (1 - lam_ilsd) * dist, rtol=2e-4)
    assert dist > 0 and gt_T != gt_S  # two different exits


def test_eval_loss_and_exit_metrics(tiny):
    model, params = tiny
    x = jnp.asarray(np.random.default_rng(4).normal(size=(4, 4, 4, 4)), jnp.float32)
    # Same shapes and settings as the ILSD test's first case: the compiled noising is reused.
    inputs, targets = _noised(model, {"latents": x, "labels": jnp.array([0, 1, 2, 3], jnp.int32)}, jax.random.key(0),
                              TrainConfig())
    v_hat = jnp.asarray(np.random.default_rng(5).normal(size=x.shape), jnp.float32)
    gt = float(losses.gt_loss(v_hat, targets, TrainConfig()))
    assert float(losses.eval_loss(v_hat, targets)) == pytest.approx(gt)
    lam = np.asarray(targets["lam"], np.float64)
    alpha, sigma = np.sqrt(np_sigmoid(lam))[:, None, None, None], np.sqrt(np_sigmoid(-lam))[:, None, None, None]
    eps = (np.asarray(inputs[0], np.float64) - alpha * np.asarray(x)) / sigma
    v = alpha * eps - sigma * np.asarray(x)
    m = losses.exit_metrics(v_hat, targets)
    np.testing.assert_allclose(m["mse_v"], np.mean((np.asarray(v_hat) - v) ** 2), rtol=1e-4)
    np.testing.assert_allclose(m["mse_x"], np.mean(sigma**2 * (np.asarray(v_hat) - v) ** 2), rtol=1e-4)


def test_a_few_train_steps_decrease_the_loss():
    model = DiffusionELT(DiTConfig(**dict(TINY, N=1, d_model=16, num_heads=2, mlp_dim=32)))
    r = np.random.default_rng(0)
    patterns = r.normal(size=(3, 4, 4, 4))
    labels = np.arange(16) % 3
    batch = {"latents": jnp.asarray(patterns[labels] + 0.05 * r.normal(size=(16, 4, 4, 4)), jnp.float32),
             "labels": jnp.asarray(labels, jnp.int32)}
    hyper = Hyper(batch_size=16, steps=30, lr=1e-2, b2=0.99, weight_decay=0.01, warmup_steps=2, decay="constant")
    family = families.module("dit", "losses")
    # Random params instead of create_train_state's init: the same step, without compiling an init.
    params = random_params(model, seed=1, scale=0.1)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=make_tx(hyper).init(params))
    step = make_train_step(family, model, hyper, 2, True, TrainConfig())
    eval_loss = make_eval_loss(family, model, TrainConfig())

    def held_out(params):  # fixed noise draws, averaged: the same corruption before and after
        return np.mean([float(eval_loss(params, batch, jax.random.key(100 + i), 2)) for i in range(4)])

    before = held_out(state.params)
    for i in range(30):
        state, metrics = step(state, batch, jax.random.key(i))
    after = held_out(state.params)
    assert np.isfinite(float(metrics["loss"])) and {"mse_x", "mse_v", "distill"} <= set(metrics)
    # Measured 0.070 -> 0.055 (0.78x). adaLN-Zero starts as the identity with a zero output, and
    # the steep part comes later (~0.2x after 300 steps at lr 3e-3): this is a smoke test.
    assert after < 0.85 * before, (before, after)


# ---------------------------------------------------------------- sampler


@pytest.fixture(scope="module")
def sampler(tiny):
    model, _ = tiny
    return make_sampler(model, SampleConfig(steps=4), 1.0)


def test_sampler_seeded_and_one_compile_for_every_L(tiny, sampler):
    model, params = tiny
    labels = jnp.array([0, 1, 2, 0], jnp.int32)
    outs = {L: np.asarray(sampler(params, labels, jnp.int32(L), jax.random.key(7))) for L in (1, 2, 5)}
    assert outs[1].shape == (4, 4, 4, 4) and outs[1].dtype == np.float32
    np.testing.assert_array_equal(sampler(params, labels, jnp.int32(2), jax.random.key(7)), outs[2])
    assert not np.allclose(sampler(params, labels, jnp.int32(2), jax.random.key(8)), outs[2], atol=1e-3)
    assert not np.allclose(outs[1], outs[2], atol=1e-3) and not np.allclose(outs[2], outs[5], atol=1e-3)
    assert sampler._cache_size() == 1  # L traced: L = 5 > any L_max runs in the same program


def test_sampler_respects_each_rows_label(tiny, sampler):
    model, params = tiny
    key, L = jax.random.key(9), jnp.int32(2)
    mixed = np.asarray(sampler(params, jnp.array([0, 1, 2, 0], jnp.int32), L, key))
    for row, label in enumerate([0, 1, 2]):  # class-balanced batches: row i is sampled for label i
        same = np.asarray(sampler(params, jnp.full((4,), label, jnp.int32), L, key))
        np.testing.assert_allclose(mixed[row], same[row], atol=1e-5)
    other = np.asarray(sampler(params, jnp.full((4,), 1, jnp.int32), L, key))
    assert not np.allclose(mixed[0], other[0], atol=1e-3)


def test_guidance_convention_on_all_channels(tiny):
    model, params = tiny
    z = jnp.asarray(np.random.default_rng(6).normal(size=(2, 4, 4, 4)), jnp.float32)
    labels, lam = jnp.array([0, 2], jnp.int32), jnp.array([-1.0, 3.0])

    @jax.jit
    def all_at_once(params):
        null = jnp.full((2,), model.uncond_label, jnp.int32)
        c, u = model.apply(params, z, labels, lam, 2), model.apply(params, z, null, lam, 2)
        return c, u, [guided_v(model, params, z, labels, lam, jnp.int32(2), s) for s in (1.0, 0.0, 3.0)]

    c, u, (g1, g0, guided) = jax.tree.map(np.asarray, all_at_once(params))
    np.testing.assert_allclose(g1, c, atol=1e-6)
    np.testing.assert_allclose(g0, u, atol=2e-5)
    np.testing.assert_allclose(guided, u + 3.0 * (c - u), atol=5e-5)
    for ch in range(4):  # every latent channel is guided (DiT's sampler guides 3 of 4)
        assert not np.allclose(guided[..., ch], c[..., ch], atol=1e-3), ch


def test_sampler_scale_zero_is_the_unconditional_model(tiny, sampler):
    model, params = tiny
    key, L = jax.random.key(11), jnp.int32(2)
    uncond = make_sampler(model, SampleConfig(steps=4), 0.0)
    null = jnp.full((4,), model.uncond_label, jnp.int32)
    np.testing.assert_allclose(uncond(params, jnp.array([0, 1, 2, 0], jnp.int32), L, key),
                               sampler(params, null, L, key), atol=2e-4)


def test_decode_passes_latents_unscaled():
    class Tok:
        def decode(self, latents):
            self.seen = latents
            return np.zeros((len(latents), 8, 8, 3), np.uint8)

    tok, latents = Tok(), np.random.default_rng(0).normal(size=(2, 4, 4, 4)).astype(np.float32)
    assert decode(tok, latents).dtype == np.uint8
    assert tok.seen is latents
