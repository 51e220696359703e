"""Model: paper parameter counts, exit equivalences, unrolled reference, dynamic L, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt.models import SCALES, MaskGITConfig, MaskedImageELT, build_model, get_scale
from elt.models.transformer import TransformerLayer

TINY = dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2)


def per_layer_params(d, mlp):
    # q, k, v, out with bias; MLP d->mlp->d with bias; two LayerNorms (scale + bias).
    return 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d) + 2 * 2 * d


@pytest.fixture(scope="module")
def tiny():
    model = build_model("maskgit", **TINY)
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
    s = get_scale(scale)
    model = build_model(
        "maskgit", codebook_size=1024, num_classes=1000, grid=(16, 16),
        d_model=s.d_model, num_heads=s.num_heads, mlp_dim=s.mlp_dim, N=N,
    )
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
    looped = build_model("maskgit", **TINY)
    unique = build_model("maskgit", **dict(TINY, N=2 * 3))
    p_looped = jax.eval_shape(looped.init, jax.random.key(0))
    p_unique = jax.eval_shape(unique.init, jax.random.key(0))
    assert 3 * looped.num_params(p_looped, True) == unique.num_params(p_unique, True)
    # The same params run at any L (structure fixed at init, no L argument anywhere).
    params = jax.jit(looped.init)(jax.random.key(0))
    t, l = jnp.zeros((1, 16), jnp.int32), jnp.zeros((1,), jnp.int32)
    f = jax.jit(looped.apply)
    outs = [f(params, t, l, L) for L in (1, 2, 7)]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])


def _unrolled(model, params, tokens, labels, L):
    """Independent reference: python loops over L and the N layers, weights sliced by hand."""
    cfg = model.cfg
    layer = TransformerLayer(cfg.d_model, cfg.num_heads, cfg.mlp_dim)
    h = model.embed(params, tokens, labels)
    for _ in range(L):
        for n in range(cfg.N):
            p_n = jax.tree.map(lambda x: x[n], params["block"]["layers"]["layer"])
            h = layer.apply({"params": p_n}, h)
    return model.head(params, h)


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
    h = model.embed(params, jnp.zeros((1, 16), jnp.int32), jnp.array([2]))
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


def test_registry_and_scales():
    with pytest.raises(ValueError, match="maskgit"):
        build_model("nope", **TINY)
    with pytest.raises(ValueError, match="known scales"):
        get_scale("Z")
    assert (SCALES["L"].d_model, SCALES["L"].mlp_dim, SCALES["L"].num_heads, SCALES["L"].baseline_layers) == (1024, 4096, 16, 24)
    assert (SCALES["G"].d_model, SCALES["G"].mlp_dim) == (1664, 8192)
    for s in SCALES.values():
        assert s.d_model % s.num_heads == 0


def test_bfloat16_compute_keeps_float32_params_and_logits(tiny):
    model, params, tokens, labels = tiny
    bf16 = build_model("maskgit", **dict(TINY, dtype="bfloat16"))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(jax.eval_shape(bf16.init, jax.random.key(0))))
    low = jax.jit(bf16.apply, static_argnums=3)(params, tokens, labels, 2)
    high = jax.jit(model.apply, static_argnums=3)(params, tokens, labels, 2)
    assert low.dtype == jnp.float32
    np.testing.assert_allclose(low, high, atol=0.1)  # bf16 has ~3 significant digits (measured max 0.037)
