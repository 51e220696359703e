"""Model: paper parameter counts, exit equivalences, unrolled reference, dynamic L, validation,
conditioning through the looped block."""

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt import families
from elt.config import load_params
from elt.core import looped
from elt.core.looped import LoopedBlock, TransformerLayer
from elt.families.maskgit.model import MaskedImageELT, MaskGITConfig

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2)


def per_layer_params(d, mlp):
    # q, k, v, out with bias; MLP d->mlp->d with bias; two LayerNorms (scale + bias).
    return 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d) + 2 * 2 * d


@pytest.fixture(scope="module")
def tiny():
    model = MaskedImageELT(MaskGITConfig(**TINY))
    params = jax.jit(model.init)(jax.random.key(0))
    rng = jax.random.key(1)
    tokens = jax.random.randint(rng, (3, 16), 0, 17)  # includes mask_id = 16
    labels = jnp.array([0, 3, 4], jnp.int32)  # 4 = unconditional
    return model, params, tokens, labels


@pytest.mark.parametrize(
    "scale,N,expected_m",
    [("L", 8, 101), ("L", 12, 152), ("XL", 7, 111)],
)
def test_paper_block_param_counts(scale, N, expected_m):
    s = load_params(ROOT / "params.yaml").scales[scale]
    model = families.module("maskgit", "model").model_from_config(dict(
        codebook_size=1024, num_classes=1000, grid=(16, 16),
        d_model=s.d_model, num_heads=s.num_heads, mlp_dim=s.mlp_dim, N=N,
    ))
    shapes = jax.eval_shape(model.init, jax.random.key(0))  # never materialise 100M params
    count = model.num_params(shapes, block_only=True)
    assert count == N * per_layer_params(s.d_model, s.mlp_dim)
    assert abs(count / 1e6 - expected_m) / expected_m < 0.02


def test_param_count_tiny_by_hand(tiny):
    model, params, _, _ = tiny
    d, mlp, K, C, S = 32, 64, 16, 4, 16
    block = 2 * per_layer_params(d, mlp)
    embed = (K + C + 2) * d + (S + 1) * d
    head = 2 * d + d * K + K
    assert model.num_params(params, block_only=True) == block
    assert model.num_params(params) == block + embed + head


def test_params_do_not_depend_on_L_and_loop_is_N_not_NL():
    model = MaskedImageELT(MaskGITConfig(**TINY))
    unique = MaskedImageELT(MaskGITConfig(**dict(TINY, N=2 * 3)))
    p_looped = jax.eval_shape(model.init, jax.random.key(0))
    p_unique = jax.eval_shape(unique.init, jax.random.key(0))
    assert 3 * model.num_params(p_looped, True) == unique.num_params(p_unique, True)
    assert looped.num_params(p_looped, block_only=True) == model.num_params(p_looped, True)
    # The same params run at any L (structure fixed at init, no L argument anywhere).
    params = jax.jit(model.init)(jax.random.key(0))
    t, l = jnp.zeros((1, 16), jnp.int32), jnp.zeros((1,), jnp.int32)
    f = jax.jit(model.apply)
    outs = [f(params, t, l, L) for L in (1, 2, 7)]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])


def _unrolled(model, params, tokens, labels, L):
    """Independent reference: python loops over L and the N layers, weights sliced by hand."""
    cfg = model.cfg
    layer = TransformerLayer(cfg.d_model, cfg.num_heads, cfg.mlp_dim)
    h, cond = model.embed(params, tokens, labels)
    for _ in range(L):
        for n in range(cfg.N):
            p_n = jax.tree.map(lambda x: x[n], params["block"]["layers"]["layer"])
            h = layer.apply({"params": p_n}, h, cond)
    return model.head(params, h, cond)


@pytest.mark.parametrize("L", [1, 3])
def test_apply_matches_unrolled_reference(tiny, L):
    model, params, tokens, labels = tiny
    ours = jax.jit(model.apply, static_argnums=3)(params, tokens, labels, L)
    np.testing.assert_allclose(ours, jax.jit(_unrolled, static_argnums=(0, 4))(model, params, tokens, labels, L), atol=2e-5)


def test_apply_with_exit_equals_fresh_forwards(tiny):
    model, params, tokens, labels = tiny
    L_max = 4
    f = jax.jit(lambda p, t, l, L_int: model.apply_with_exit(p, t, l, L_max, L_int))
    fresh = jax.jit(model.apply)
    full = fresh(params, tokens, labels, L_max)
    for L_int in (1, 2, 3):
        logits_max, logits_int = f(params, tokens, labels, jnp.int32(L_int))
        np.testing.assert_allclose(logits_max, full, atol=1e-5)
        np.testing.assert_allclose(logits_int, fresh(params, tokens, labels, L_int), atol=1e-5)
    assert f._cache_size() == 1  # traced L_int: one compilation


def test_dynamic_L_one_compile_and_extrapolation(tiny):
    model, params, tokens, labels = tiny
    f = jax.jit(model.apply)
    for L in (1, 2, 6):  # 6 > any L_max used in training: still runs
        ref = jax.jit(_unrolled, static_argnums=(0, 4))(model, params, tokens, labels, L)
        np.testing.assert_allclose(f(params, tokens, labels, L), ref, atol=3e-5)
    assert f._cache_size() == 1


def test_conventions(tiny):
    model, params, _, _ = tiny
    assert (model.mask_id, model.uncond_label, model.seq_len) == (16, 4, 16)
    assert model.cfg.vocab_size == 16 + 4 + 2
    # Class token of label c is K + 1 + c: row (K+1+c) of the table is what position 0 sees.
    h, cond = model.embed(params, jnp.zeros((1, 16), jnp.int32), jnp.array([2]))
    assert cond is None  # the class enters as a token, not as a conditioning input
    table = params["embed"]["tok"]["embedding"]
    np.testing.assert_allclose(h[0, 0], table[16 + 1 + 2] + params["embed"]["pos_embedding"][0], atol=1e-6)


@pytest.mark.parametrize("variant", [{"remat": True}, {"unroll": False}])
def test_remat_and_unroll_same_values_and_grads(tiny, variant):
    model, params, tokens, labels = tiny
    remat = MaskedImageELT(MaskGITConfig(**dict(TINY, **variant)))

    def loss(m, p):
        a, b = m.apply_with_exit(p, tokens, labels, 3, jnp.int32(2))
        return jnp.mean(a**2) + jnp.mean(jnp.sin(b))

    v1, g1 = jax.jit(jax.value_and_grad(lambda p: loss(model, p)))(params)
    v2, g2 = jax.jit(jax.value_and_grad(lambda p: loss(remat, p)))(params)
    # Different programs (remat barriers, a scan): logits may differ by ~1e-6 (as the exit test's);
    # |dv| <= (2 max|a| + 1) * 1e-6 ~ 6e-6 for |a| <= 2.5, i.e. ~6e-6 of v ~ 0.95: rtol 1e-5.
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for x, y in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"N": 0}, "N=0"),
        ({"d_model": 30}, "d_model=30"),
        ({"num_heads": 0}, "num_heads=0"),
        ({"grid": (4, 0)}, "grid"),
        ({"dtype": "float64"}, "float64"),
    ],
)
def test_config_validation(override, needle):
    with pytest.raises(ValueError, match=needle):
        MaskGITConfig(**dict(TINY, **override))


def test_config_normalises_yaml_and_numpy_values():
    cfg = MaskGITConfig(**dict(TINY, grid=[np.int64(4), 4], codebook_size=np.int32(16)))
    assert cfg.grid == (4, 4) and type(cfg.codebook_size) is int
    assert cfg == MaskGITConfig(**TINY)


def test_L_below_one_rejected(tiny):
    model, params, tokens, labels = tiny
    with pytest.raises(ValueError, match="L=0"):
        model.apply(params, tokens, labels, 0)
    with pytest.raises(ValueError, match="L_int=0"):
        model.apply_with_exit(params, tokens, labels, 3, 0)
    with pytest.raises(ValueError, match=r"\[B, 16\]"):
        model.apply(params, tokens[:, :5], labels, 1)


# Paper, Table 6 (masked models): d_model, MLP, heads (MLP = 4 d except g and G).
PAPER_SCALES = {
    "S": (384, 1536, 6), "B": (768, 3072, 12), "L": (1024, 4096, 16), "XL": (1152, 4608, 16),
    "H": (1280, 5120, 16), "g": (1408, 6144, 16), "G": (1664, 8192, 16),
}


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model family 'nope' \(known: .*maskgit"):
        families.module("nope", "model")
    assert families.module("maskgit", "model").model_from_config(TINY).cfg == MaskGITConfig(**TINY)


def test_params_yaml_scales_are_the_papers():
    scales = load_params(ROOT / "params.yaml").scales
    for name, (d, mlp, heads) in PAPER_SCALES.items():
        s = scales[name]
        assert (s.d_model, s.mlp_dim, s.num_heads) == (d, mlp, heads), name
        # The paper multiplies weight decay by 5 (0.045 -> 0.225) for scales >= H.
        expected = {"weight_decay": 0.225} if name in ("H", "g", "G") else {}
        assert dict(s.overrides) == expected, name
    for s in scales.values():
        assert s.d_model % s.num_heads == 0


class _AddCondLayer(nn.Module):
    """A minimal conditioned layer: x W + b + cond (the layer_cls signature adaLN layers use)."""

    d_model: int
    num_heads: int
    mlp_dim: int
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x, cond=None):
        return nn.Dense(self.d_model, dtype=self.dtype, name="dense")(x) + cond


class _CondModel:
    """A family-shaped model whose embed returns a conditioning input the block must receive."""

    def __init__(self, N, d, **block_kw):
        self.N, self.d, self.unroll = N, d, block_kw.get("unroll", False)
        self._block = LoopedBlock(N, d, 1, d, layer_cls=_AddCondLayer, **block_kw)

    def init(self, rng):
        x = jnp.zeros((1, 3, self.d))
        return {"block": self._block.init(rng, x, jnp.zeros((1, 1, self.d)))["params"]}

    def embed(self, params, x, c):
        return x, c[:, None, :]

    def block_fn(self, params, cond=None):
        return lambda h: self._block.apply({"params": params["block"]}, h, cond)

    def head(self, params, h, cond=None):
        return h - cond


@pytest.mark.parametrize("block_kw", [{}, {"unroll": True}, {"remat": True}])
def test_looped_block_passes_cond_to_custom_layer(block_kw):
    N, d, B = 2, 8, 3
    model = _CondModel(N, d, **block_kw)
    params = model.init(jax.random.key(0))
    kernel = params["block"]["layers"]["layer"]["dense"]["kernel"]  # stacked [N, d, d]
    params["block"]["layers"]["layer"]["dense"]["bias"] = 0.1 * jax.random.normal(jax.random.key(3), (N, d))
    bias = params["block"]["layers"]["layer"]["dense"]["bias"]
    assert kernel.shape == (N, d, d)
    x = jax.random.normal(jax.random.key(1), (B, 3, d))
    c = jax.random.normal(jax.random.key(2), (B, d))

    def direct(L):
        h = np.asarray(x, np.float64)
        for _ in range(L):
            for n in range(N):
                h = h @ np.asarray(kernel[n], np.float64) + np.asarray(bias[n], np.float64) + np.asarray(c)[:, None, :]
        return h - np.asarray(c)[:, None, :]

    f = jax.jit(lambda p, x, c, L: looped.apply(model, p, (x, c), L))
    for L in (1, 3):
        np.testing.assert_allclose(f(params, x, c, L), direct(L), rtol=1e-4, atol=1e-5)
    out_max, out_int = looped.apply_with_exit(model, params, (x, c), 3, jnp.int32(1))
    np.testing.assert_allclose(out_max, direct(3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out_int, direct(1), rtol=1e-4, atol=1e-5)
    # The cond really matters: another cond gives another output.
    assert not np.allclose(f(params, x, 2 * c, 1), direct(1), atol=1e-3)


def test_bfloat16_compute_keeps_float32_params_and_logits(tiny):
    model, params, tokens, labels = tiny
    bf16 = MaskedImageELT(MaskGITConfig(**dict(TINY, dtype="bfloat16")))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(jax.eval_shape(bf16.init, jax.random.key(0))))
    low = jax.jit(bf16.apply, static_argnums=3)(params, tokens, labels, 2)
    high = jax.jit(model.apply, static_argnums=3)(params, tokens, labels, 2)
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, high, atol=0.1)  # bf16 has ~3 significant digits (measured max 0.037)
