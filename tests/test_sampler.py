"""MaskGIT sampler: valid ids, all filled, masked counts per step, determinism, dynamic L, CFG, and each
decoding step against a numpy computation (temperature, untempered confidence, annealed noise)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt import families
from elt.config import ConfigError
from elt.families.maskgit.config import SampleConfig
from elt.families.maskgit.model import MaskedImageELT, MaskGITConfig
from elt.families.maskgit.sampler import _guided_logits, make_sampler, masked_count_schedule

TINY = dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2)


@pytest.fixture(scope="module")
def setup():
    model = MaskedImageELT(MaskGITConfig(**TINY))
    params = jax.jit(model.init)(jax.random.key(0))
    return model, params


def expected_masked_after_each_step(S, K):
    """Hand version of the rule: max(1, min(unknown-1, floor(S cos(pi/2 (k+1)/K)))), 0 at the end."""
    out, unknown = [], S
    for k in range(K):
        n = math.floor(S * math.cos(math.pi / 2 * (k + 1) / K))
        n = 0 if k == K - 1 else max(1, min(unknown - 1, n))
        out.append(n)
        unknown = n
    return out


def test_schedule_by_hand():
    # S=16, K=4: floor(16 cos(pi/8)) = 14, floor(16 cos(pi/4)) = 11, floor(16 cos(3pi/8)) = 6, then 0.
    assert masked_count_schedule(16, 4) == [14, 11, 6, 0]
    assert expected_masked_after_each_step(16, 4) == [14, 11, 6, 0]
    # K = 24 on 16 tokens: the clamp (at least one more token per step) must kick in.
    exp = expected_masked_after_each_step(16, 24)
    assert exp == list(range(15, 0, -1)) + [1] * 8 + [0]


@pytest.mark.parametrize("K,cfg_scale", [(4, 1.0), (24, 3.0)])
def test_sample_valid_filled_and_follows_schedule(setup, K, cfg_scale):
    model, params = setup
    sample = make_sampler(model, SampleConfig(steps=K), cfg_scale, with_history=True)
    labels = jnp.array([0, 1, 2, 3, 4], jnp.int32)  # 4 = unconditional
    tokens, history = sample(params, labels, 2, jax.random.key(3))
    tokens = np.asarray(tokens)
    assert tokens.dtype == np.int32 and tokens.shape == (5, 4, 4)  # [B, h, w]
    assert tokens.min() >= 0 and tokens.max() < 16  # never mask_id or class ids
    # Exact on any machine: positions are ranked, not thresholded. The one floor on an exact integer
    # (K=24, step 16: 16 cos(pi/3) = 8, 7 in float32 and 8 in float64) is overridden by the clamp.
    np.testing.assert_array_equal(history, np.tile(expected_masked_after_each_step(16, K), (5, 1)))


def test_deterministic_given_rng_and_depends_on_it(setup):
    model, params = setup
    sample = make_sampler(model, SampleConfig(steps=6))
    labels = jnp.arange(4, dtype=jnp.int32)
    a = sample(params, labels, 2, jax.random.key(11))
    b = sample(params, labels, 2, jax.random.key(11))
    c = sample(params, labels, 2, jax.random.key(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_L_is_dynamic_one_compile(setup):
    model, params = setup
    sample = make_sampler(model, SampleConfig(steps=4))
    labels = jnp.arange(4, dtype=jnp.int32)
    outs = [np.asarray(sample(params, labels, L, jax.random.key(0))) for L in (1, 2, 3, 6)]
    assert sample._cache_size() == 1  # no recompilation per L, L=6 beyond any L_max
    assert len({o.tobytes() for o in outs}) > 1  # L changes the network, hence the samples


def test_peaked_model_is_decoded_exactly(setup):
    """With logits that put all mass on a known token per position, the sampler must return it."""
    model, params = setup
    # Head kernel 0 and bias = a huge one-hot of token 7: every position's distribution is a point mass.
    p = dict(params)
    p["head"] = dict(p["head"], out={"kernel": jnp.zeros_like(params["head"]["out"]["kernel"]),
                                     "bias": 1e4 * jax.nn.one_hot(7, 16)})
    tokens = make_sampler(model, SampleConfig(steps=5), cfg_scale=2.0)(p, jnp.arange(3, dtype=jnp.int32), 3, jax.random.key(0))
    np.testing.assert_array_equal(tokens, np.full((3, 4, 4), 7))


def test_cfg_combines_conditional_and_unconditional(setup):
    model, params = setup
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 17)
    labels = jnp.array([1, 2], jnp.int32)
    c = model.apply(params, tokens, labels, 2)
    u = model.apply(params, tokens, jnp.full((2,), 4, jnp.int32), 2)
    np.testing.assert_allclose(_guided_logits(model, params, tokens, labels, 2, 3.0), u + 3.0 * (c - u), atol=1e-4)
    np.testing.assert_allclose(_guided_logits(model, params, tokens, labels, 2, 1.0), c, atol=1e-6)


@pytest.mark.parametrize(
    "override,key",
    [({"steps": 0}, "steps"), ({"temperature_bias": 0.0}, "temperature_bias"),
     ({"temperature_scale": -1.0}, "temperature_scale"), ({"choice_temperature": -0.5}, "choice_temperature")],
)
def test_sample_config_validation(override, key):
    with pytest.raises(ConfigError, match=rf"^families\.maskgit\.sample\.{key}: ") as err:
        SampleConfig(**override).check("families.maskgit.sample")
    assert err.value.key == f"families.maskgit.sample.{key}"
    SampleConfig().check("families.maskgit.sample")


def test_family_module_is_this_sampler():
    assert families.module("maskgit", "sampler").make_sampler is make_sampler


# ---- one decoding step against numpy --------------------------------------------------------
class _FixedLogitsModel:
    """Stub with the sampler's model interface: the same fixed logits [B, S, V] at every call.

    Each call records the tokens it is given (the state entering that decoding step)."""

    def __init__(self, logits, grid):
        self.logits = jnp.asarray(logits, jnp.float32)
        B, self.seq_len, V = logits.shape
        self.mask_id, self.uncond_label = V, V + 1
        self.cfg = type("Cfg", (), {"grid": grid})()
        self.seen = []

    def apply(self, params, tokens, labels, L):
        jax.debug.callback(lambda t: self.seen.append(np.asarray(t).copy()), tokens)
        return self.logits


def numpy_decode_step(logits, tokens, k, K, sc, rng, mask_id):
    """One MaskGIT step k of K in numpy; only the random draws come from jax (same keys)."""
    B, S, V = logits.shape
    ratio = (k + 1) / K
    r_tok, r_choice = jax.random.split(jax.random.fold_in(rng, k))
    g_tok = np.asarray(jax.random.gumbel(r_tok, (B, S, V)), np.float64)
    g_choice = np.asarray(jax.random.gumbel(r_choice, (B, S)), np.float64)
    temp = sc.temperature_bias + sc.temperature_scale * (1.0 - ratio)
    # Tempered categorical draw, Gumbel-max form: argmax(logits / T + Gumbel).
    sampled = np.argmax(logits / temp + g_tok, axis=-1)
    unknown = tokens == mask_id
    sampled = np.where(unknown, sampled, tokens)
    # Confidence: UNtempered log-probability of the drawn token + annealed Gumbel noise.
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    conf = np.take_along_axis(logp, sampled[..., None], -1)[..., 0]
    conf = conf + sc.choice_temperature * (1.0 - ratio) * g_choice
    conf = np.where(unknown, conf, np.inf)
    out = sampled.copy()
    for b in range(B):
        n = math.floor(S * math.cos(math.pi / 2 * ratio))
        n = 0 if k == K - 1 else max(1, min(int(unknown[b].sum()) - 1, n))
        out[b, np.argsort(conf[b], kind="stable")[:n]] = mask_id  # the n LEAST confident stay masked
    return out


def test_decoding_steps_match_numpy():
    """Every step of the sampler (fixed logits) equals the numpy step: a sampler that re-masks the
    most confident tokens, ignores the token temperature or does not anneal the choice noise fails."""
    B, S, V, K = 4, 16, 16, 4
    logits = 1.5 * np.asarray(jax.random.normal(jax.random.key(7), (B, S, V)), np.float64)
    # Temperatures 1.8, 1.3, 0.8, 0.3 and choice noise 3, 2, 1, 0: far from the no-op values.
    sc = SampleConfig(steps=K, temperature_bias=0.3, temperature_scale=2.0, choice_temperature=4.0)
    model = _FixedLogitsModel(logits.astype(np.float32), (4, 4))
    rng = jax.random.key(21)
    tokens, history = make_sampler(model, sc, 1.0, with_history=True)(None, jnp.arange(B), 2, rng)
    jax.effects_barrier()
    assert len(model.seen) == K
    # The state entering each step, ordered by its number of masks (14, 11, 6 after steps 0..2).
    seen = sorted(model.seen, key=lambda t: -(t == V).sum())
    np.testing.assert_array_equal(seen[0], np.full((B, S), V))
    state = seen[0]
    for k in range(K):
        state = numpy_decode_step(logits.astype(np.float32).astype(np.float64), state, k, K, sc, rng, V)
        np.testing.assert_array_equal((state == V).sum(1), np.asarray(history)[:, k])
        if k < K - 1:
            np.testing.assert_array_equal(seen[k + 1], state, err_msg=f"state after step {k}")
    np.testing.assert_array_equal(np.asarray(tokens).reshape(B, S), state)


_SHARDED_SAMPLING = """
import json, jax, jax.numpy as jnp, numpy as np
from elt import families
from elt.core.mesh import split_over_local_devices
from elt.families.maskgit.config import SampleConfig
model = families.module("maskgit", "model").model_from_config(
    dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2))
params = model.init(jax.random.key(3))
sampler = families.module("maskgit", "sampler").make_sampler(model, SampleConfig(steps=4), 2.0)
labels = np.arange(16, dtype=np.int32) % 4
one = np.asarray(sampler(params, jnp.asarray(labels), jnp.int32(2), jax.random.PRNGKey(5)))
p8, l8 = split_over_local_devices(params, labels)
eight = sampler(p8, l8, jnp.int32(2), jax.random.PRNGKey(5))
print(json.dumps({"devices": len(eight.sharding.device_set), "one": one.tolist(), "eight": np.asarray(eight).tolist()}))
"""


def test_sampling_split_over_eight_devices_gives_the_same_tokens():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", _SHARDED_SAMPLING], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 8  # the batch really ran on all eight
    np.testing.assert_array_equal(np.asarray(r["eight"]), np.asarray(r["one"]))
