"""Masked-video family (elt/families/magvit): the paper's parameter counts (Table 4), the token
layout on a (t, h, w) grid, the sampler, a short train through elt/core, and sample GFLOPs against
the paper and XLA."""

import dataclasses
import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt import families
from elt.config import ConfigError, TrainConfig
from elt.core.flops import layer_macs
from elt.core.looped import TransformerLayer
from elt.core.train_step import create_train_state, make_eval_loss, make_train_step
from elt.data.spec import LatentSpec
from elt.families.magvit import config as magvit_config
from elt.families.magvit.model import MagvitConfig, MaskedVideoELT, model_from_config
from elt.families.maskgit import config as maskgit_config
from elt.families.maskgit.model import MaskGITConfig
from test_flops import _dot_flops  # exact matmul count of a traced forward

LOSSES = families.module("magvit", "losses")
SAMPLER = families.module("magvit", "sampler")
FLOPS = families.module("magvit", "flops")

K, C, GRID = 16, 4, (2, 4, 4)  # codebook, classes, (t, h, w): 32 video tokens
S = math.prod(GRID)
TINY = dict(codebook_size=K, num_classes=C, grid=GRID, d_model=32, num_heads=4, mlp_dim=64, N=2)
# Paper Table 6, scale L (the video models' width): d_model, MLP, heads.
L_WIDTH = dict(d_model=1024, mlp_dim=4096, num_heads=16)
UCF = dict(codebook_size=1024, num_classes=101, grid=(4, 16, 16))  # 16x128x128 clips -> 4x16x16


def per_layer_params(d, mlp):
    # q, k, v, out with bias; MLP d->mlp->d with bias; two LayerNorms (scale + bias).
    return 4 * (d * d + d) + (d * mlp + mlp) + (mlp * d + d) + 2 * 2 * d


@pytest.fixture(scope="module")
def tiny():
    model = MaskedVideoELT(MagvitConfig(**TINY))
    return model, jax.jit(model.init)(jax.random.key(0))


# ---- parameter counts (Table 4) ----------------------------------------------------------------
@pytest.mark.parametrize("row, N, block_m, total_m", [
    ("ELT 6N (video)", 6, 76, None),  # 6 x 12.6M
    ("MAGVIT-L, 24 layers", 24, 302, 306),  # the paper's 306M is the whole model
])
def test_paper_param_counts(row, N, block_m, total_m):
    model = model_from_config(dict(UCF, N=N, **L_WIDTH))
    shapes = jax.eval_shape(model.init, jax.random.key(0))  # never materialise 300M params
    block = model.num_params(shapes, block_only=True)
    assert block == N * per_layer_params(1024, 4096) == N * 12_596_224
    assert abs(block / 1e6 - block_m) / block_m < 0.01, (row, block)
    total = model.num_params(shapes)
    d = 1024
    # Outside the block: token table (1024 codes + mask + 101 classes + null class), a learned
    # position table over 1 + 4*16*16 positions, the head's LayerNorm and Dense(d -> 1024 codes).
    assert total - block == (1024 + 101 + 2) * d + 1025 * d + 2 * d + d * 1024 + 1024
    if total_m is not None:
        assert abs(total / 1e6 - total_m) / total_m < 0.01, (row, total)  # 305.5M


# ---- config, contract, conventions ----------------------------------------------------------
def test_family_constants_and_defaults():
    assert "magvit" in families.known()
    cfg = families.config_module("magvit")
    assert (cfg.QUALITY_METRIC, cfg.MODALITY, cfg.TOKENIZER_KIND, cfg.GUIDANCE) == ("fvd", "video", "vq3d", False)
    assert not cfg.GUIDANCE  # so Params.train_hyper trains it with no label drop (paper Table 5, UCF-101)
    sc = cfg.SampleConfig()
    # Paper: 12 steps, STemp = 0.5 + 0.8 (1 - (k+1)/K); MaskGIT's choice temperature.
    assert (sc.steps, sc.temperature_bias, sc.temperature_scale) == (12, 0.5, 0.8)
    assert sc.choice_temperature == maskgit_config.SampleConfig().choice_temperature == 4.5
    assert cfg.TrainConfig().label_smoothing == 1e-4  # MAGVIT's UCF-101 config
    with pytest.raises(ConfigError, match=r"^families\.magvit\.sample\.steps: "):
        cfg.SampleConfig(steps=0).check("families.magvit.sample")
    with pytest.raises(ConfigError, match=r"^families\.magvit\.train\.label_smoothing: "):
        cfg.TrainConfig(label_smoothing=1.0).check("families.magvit.train")


def test_config_grid_is_three_axes_and_maskgit_stays_two():
    with pytest.raises(ValueError, match=r"MagvitConfig\.grid must be 3 ints >= 1 \(t, h, w\)"):
        MagvitConfig(**dict(TINY, grid=(4, 4)))
    with pytest.raises(ValueError, match=r"MagvitConfig\.N must be an int >= 1"):
        MagvitConfig(**dict(TINY, N=0))
    with pytest.raises(ValueError, match=r"MaskGITConfig\.grid must be 2 ints >= 1 \(h, w\)"):
        MaskGITConfig(**dict(TINY, grid=GRID))
    with pytest.raises(TypeError, match="MagvitConfig"):
        MaskedVideoELT(MaskGITConfig(**dict(TINY, grid=(4, 4))))
    cfg = MagvitConfig(**dict(TINY, grid=[np.int64(2), 4, 4]))
    assert cfg.grid == GRID and cfg.seq_len == 32 and cfg.vocab_size == K + C + 2
    assert cfg != MaskGITConfig(**dict(TINY, grid=(8, 4)))  # same fields, another family


def test_build_model_and_model_json_round_trip():
    spec = LatentSpec(GRID, "int32", K)
    scale = SimpleNamespace(d_model=32, num_heads=4, mlp_dim=64)
    model = families.module("magvit", "model").build_model(spec, C, scale, N=2)
    assert model.cfg == MagvitConfig(**TINY)
    recorded = dataclasses.asdict(model.cfg)  # what stages/train.py writes to model.json
    assert model_from_config(recorded).cfg == model.cfg
    assert (model.mask_id, model.uncond_label, model.seq_len) == (K, C, S)
    LOSSES.check_latents(spec)
    for bad in (LatentSpec((4, 4), "int32", K), LatentSpec((2, 4, 4), "float32", None)):
        with pytest.raises(ValueError, match="3-D"):
            LOSSES.check_latents(bad)


def test_embed_and_head_shapes(tiny):
    model, params = tiny
    B = 3
    tokens = jax.random.randint(jax.random.key(1), (B, S), 0, K + 1)  # includes mask_id = K
    h, cond = model.embed(params, tokens, jnp.array([0, 3, C], jnp.int32))
    assert cond is None and h.shape == (B, 1 + S, 32)
    assert params["embed"]["pos_embedding"].shape == (1 + S, 32)  # one learned table
    logits = model.head(params, h, cond)
    assert logits.shape == (B, S, K) and logits.dtype == jnp.float32  # class position dropped
    assert model.apply(params, tokens, jnp.zeros((B,), jnp.int32), 2).shape == (B, S, K)
    with pytest.raises(ValueError, match=r"\[B, 32\]"):
        model.apply(params, tokens.reshape(B, *GRID), jnp.zeros((B,), jnp.int32), 1)


def test_class_prefix_never_masked_and_logits_only_codebook(tiny):
    model, params = tiny
    B = 64
    latents = jax.random.randint(jax.random.key(2), (B, *GRID), 0, K)
    labels = jnp.arange(B, dtype=jnp.int32) % C
    corrupt = jax.jit(lambda batch, rng: LOSSES.training_inputs(model, batch, rng, magvit_config.TrainConfig()))
    (inputs, labels_in), (targets, mask) = corrupt({"latents": latents, "labels": labels}, jax.random.key(3))
    # Masking sees the t*h*w video tokens only (flattened t, h, w order); the class is not among them.
    assert inputs.shape == mask.shape == targets.shape == (B, S)
    np.testing.assert_array_equal(targets, latents.reshape(B, S))
    np.testing.assert_array_equal(np.where(mask, K, targets), inputs)
    assert mask.sum(1).min() >= 1 and mask.sum(1).max() <= S  # the cosine schedule: >= 1 per row
    # The class enters as position 0 after masking: K + 1 + label, whatever the video tokens are.
    embed = jax.jit(lambda p, t, l: model.embed(p, t, l)[0])
    h = embed(params, inputs, labels_in)
    table, pos = params["embed"]["tok"]["embedding"], params["embed"]["pos_embedding"]
    np.testing.assert_allclose(h[:, 0], table[K + 1 + labels] + pos[0], atol=1e-6)
    h_all_masked = embed(params, jnp.full((B, S), K), labels_in)
    np.testing.assert_allclose(h_all_masked[:, 0], h[:, 0], atol=1e-6)
    # The head predicts the K codes only: no mask or class id can ever be sampled or targeted.
    assert params["head"]["out"]["kernel"].shape == (32, K)
    assert jax.eval_shape(model.apply, params, inputs, labels_in, 1).shape[-1] == K


# ---- sampler ----------------------------------------------------------------------------------
class _Counting:
    """The model seen by the sampler, counting how often its forward is traced."""

    def __init__(self, model):
        self._model, self.traces = model, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def apply(self, *args):
        self.traces += 1  # python side effect: runs at trace time only
        return self._model.apply(*args)


def test_sampler_valid_filled_deterministic_and_one_compile(tiny):
    model, params = tiny
    counting = _Counting(model)
    sc = magvit_config.SampleConfig(steps=6)
    sample = SAMPLER.make_sampler(counting, sc, 1.0, with_history=True)
    labels = jnp.arange(5, dtype=jnp.int32) % C
    outs = {}
    for L in (1, 2, 3, 6):  # 6 > any L_max: extrapolation runs too
        tokens, history = sample(params, labels, L, jax.random.key(7))
        tokens = np.asarray(tokens)
        assert tokens.shape == (5, *GRID) and tokens.dtype == np.int32  # [B, t, h, w]
        assert tokens.min() >= 0 and tokens.max() < K  # codes only, never mask_id or a class id
        assert (np.asarray(history)[:, -1] == 0).all()  # every position unmasked at the end
        assert (np.diff(np.asarray(history), axis=1) < 0).all()  # >= 1 token revealed per step
        outs[L] = tokens
    assert counting.traces == 1 and sample._cache_size() == 1  # one compilation for every L
    again, _ = sample(params, labels, 2, jax.random.key(7))
    np.testing.assert_array_equal(again, outs[2])
    other, _ = sample(params, labels, 2, jax.random.key(8))
    assert not np.array_equal(other, outs[2])
    assert len({o.tobytes() for o in outs.values()}) > 1  # L changes the network, hence samples
    # The contract's form (no history), at the paper's default step count.
    plain = SAMPLER.make_sampler(model, magvit_config.SampleConfig())(params, labels, 2, jax.random.key(0))
    assert plain.shape == (5, *GRID)


def test_sampler_refuses_guidance_and_decode_checks_clips(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="without classifier-free guidance"):
        SAMPLER.make_sampler(model, magvit_config.SampleConfig(), 2.0)

    class _Tokenizer:
        def __init__(self, shape):
            self.shape, self.seen = shape, None

        def decode(self, latents):
            self.seen = latents
            return np.zeros((len(latents), *self.shape), np.uint8)

    latents = np.zeros((2, *GRID), np.int32)
    tok = _Tokenizer((8, 16, 16, 3))  # 4x temporal, 4x spatial
    clips = SAMPLER.decode(tok, latents)
    assert clips.shape == (2, 8, 16, 16, 3) and clips.dtype == np.uint8 and tok.seen is latents
    with pytest.raises(ValueError, match=r"expected uint8 clips \[B, T, H, W, 3\]"):
        SAMPLER.decode(_Tokenizer((16, 16, 3)), latents)  # an image tokenizer


# ---- training through elt/core ------------------------------------------------------------------
def test_core_train_step_reduces_loss_on_a_fixed_batch(tiny):
    model, _ = tiny
    hyper = TrainConfig(batch_size=16, steps=30, lr=3e-3, warmup_steps=3, label_drop=0.0)
    hyper.check("train")
    family_cfg = magvit_config.TrainConfig()
    # One fixed random clip per class: a masked token follows from the class and its (t, h, w) position.
    labels = jnp.arange(16, dtype=jnp.int32) % C
    latents = jax.random.randint(jax.random.key(5), (C, *GRID), 0, K)[labels]
    batch = {"latents": latents, "labels": labels}

    state = create_train_state(model, hyper, jax.random.key(0))
    step = make_train_step(LOSSES, model, hyper, 2, True, family_cfg)
    eval_loss = make_eval_loss(LOSSES, model, family_cfg)
    before = [float(eval_loss(state.params, batch, jax.random.key(99), L)) for L in (1, 2)]
    for s in range(30):
        state, metrics = step(state, batch, jax.random.key(s))
    assert {"loss", "gt_teacher", "gt_student", "distill", "accuracy"} <= set(metrics)
    after = [float(eval_loss(state.params, batch, jax.random.key(99), L)) for L in (1, 2)]
    assert np.isfinite(after).all()
    # Measured: 3.10 -> 2.50 (L=1) and 3.14 -> 2.59 (L=2); chance is log 16 = 2.77.
    assert after[0] < before[0] - 0.3 and after[1] < before[1] - 0.3, (before, after)


# ---- GFLOPs ----------------------------------------------------------------------------------------
def test_sample_gflops_by_hand():
    cfg = MagvitConfig(**TINY)
    sc = magvit_config.SampleConfig(steps=5)
    T = S + 1  # class token + t*h*w
    per_forward = 2 * 3 * layer_macs(32, 64, T) + S * 32 * K  # N=2 x L=3 layers, head on 32 positions
    assert FLOPS.sample_gflops(cfg, 3, sc, 1.0) == pytest.approx(5 * per_forward / 1e9)
    assert FLOPS.forward_flops(cfg, 3) == 2 * per_forward  # hardware FLOPs: 2 per multiply-add


@pytest.mark.parametrize("row, N, L, steps, paper", [
    # Table 4, UCF-101, scale L, no guidance: 4x16x16 = 1024 tokens + the class token.
    ("ELT 6Nx4L, 12 steps", 6, 4, 12, 4.3e3),
    ("ELT 6Nx6L, 24 steps", 6, 6, 24, 13e3),
    ("MAGVIT-L (24 layers), 12 steps", 24, 1, 12, 4.3e3),
])
def test_reproduces_paper_table4_gflops(row, N, L, steps, paper):
    cfg = MagvitConfig(N=N, **UCF, **L_WIDTH)
    ours = FLOPS.sample_gflops(cfg, L, magvit_config.SampleConfig(steps=steps), 1.0)
    # Ours 4.35k, 13.03k and 4.35k: 1.01x, 1.00x, 1.01x (multiply-adds, the paper's convention).
    assert 0.9 * paper <= ours <= 1.1 * paper, (row, ours, paper)


def test_formula_matches_xla_cost_analysis_of_unrolled_forward():
    cfg = MagvitConfig(codebook_size=64, num_classes=4, grid=(2, 4, 4), d_model=128, num_heads=4,
                       mlp_dim=512, N=2)
    model, L = MaskedVideoELT(cfg), 2
    params = jax.eval_shape(model.init, jax.random.key(0))
    layer = TransformerLayer(cfg.d_model, cfg.num_heads, cfg.mlp_dim)

    def unrolled(params, tokens, labels):
        # Python loops, no scan: XLA counts a loop body once, so it must see every layer.
        h, cond = model.embed(params, tokens, labels)
        for _ in range(L):
            for n in range(cfg.N):
                h = layer.apply({"params": jax.tree.map(lambda x: x[n], params["block"]["layers"]["layer"])}, h, cond)
        return model.head(params, h, cond)

    tokens = jax.ShapeDtypeStruct((1, cfg.seq_len), jnp.int32)
    labels = jax.ShapeDtypeStruct((1,), jnp.int32)
    formula = FLOPS.forward_flops(cfg, L)
    assert _dot_flops(jax.make_jaxpr(unrolled)(params, tokens, labels).jaxpr) == formula  # exact
    cost = jax.jit(unrolled).lower(params, tokens, labels).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    # XLA adds the elementwise ops the formula leaves out (LN, softmax, GELU): a few percent.
    assert formula <= cost["flops"] <= 1.10 * formula
