"""FLOPs formula: hand numbers, the matmuls of a traced forward, XLA's cost analysis, and the
paper's reported GFLOPs (multiply-adds, Tables 1 and 4)."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
import yaml

from elt.core.flops import layer_flops, layer_macs
from elt.core.looped import TransformerLayer
from elt.families.maskgit.config import SampleConfig
from elt.families.maskgit.flops import (flops_per_train_step, forward_flops, forward_macs, sample_gflops,
                                        sample_gmacs)
from elt.families.maskgit.model import MaskedImageELT, MaskGITConfig


def test_layer_macs_by_hand():
    # d=4, mlp=8, T=3: q,k,v,out 4*(3*4*4)=192; scores+AV 2*(3*3*4)=72; MLP 2*(3*4*8)=192.
    assert layer_macs(4, 8, 3) == 192 + 72 + 192
    assert layer_flops(4, 8, 3) == 2 * 456  # hardware FLOPs: a multiply-add = 2 FLOPs


def test_forward_and_sample_flops_by_hand():
    cfg = MaskGITConfig(codebook_size=10, num_classes=2, grid=(2, 1), d_model=4, num_heads=2, mlp_dim=8, N=2)
    # T = 3 tokens (class + 2): per layer 456 MACs (above); head 2 * 4 * 10 = 80 MACs.
    assert forward_macs(cfg, 3) == 2 * 3 * 456 + 80
    assert forward_flops(cfg, 3) == 2 * (2 * 3 * 456 + 80)
    # Reported GFLOPs are multiply-adds (the paper's convention), one evaluation per step, x2 with CFG.
    assert sample_gflops(cfg, 3, SampleConfig(steps=4)) == pytest.approx(4 * (6 * 456 + 80) / 1e9)
    assert sample_gflops(cfg, 3, SampleConfig(steps=4), cfg_scale=2.0) == pytest.approx(8 * (6 * 456 + 80) / 1e9)
    assert sample_gmacs(cfg, 3, SampleConfig(steps=4), cfg_scale=2.0) == sample_gflops(cfg, 3, SampleConfig(steps=4), 2.0)
    # MFU needs hardware FLOPs: 3x forward, 2 FLOPs per multiply-add.
    assert flops_per_train_step(cfg, 3, batch_size=5, ilsd=True) == 3 * 5 * 2 * (6 * 456 + 2 * 80)
    assert flops_per_train_step(cfg, 3, batch_size=5, ilsd=False) == 3 * 5 * 2 * (6 * 456 + 80)
    with pytest.raises(ValueError, match="L=0"):
        forward_flops(cfg, 0)
    with pytest.raises(ValueError, match="steps=0"):
        sample_gflops(cfg, 3, SampleConfig(steps=0))


def test_formula_matches_xla_cost_analysis_of_unrolled_forward():
    model = MaskedImageELT(MaskGITConfig(codebook_size=64, num_classes=4, grid=(4, 4), d_model=128,
                                         num_heads=4, mlp_dim=512, N=2))
    cfg, L = model.cfg, 3
    params = jax.eval_shape(model.init, jax.random.key(0))
    layer = TransformerLayer(cfg.d_model, cfg.num_heads, cfg.mlp_dim)

    def unrolled(params, tokens, labels):
        # Python loops, no scan: XLA counts a loop body once, so it must see every layer.
        h, cond = model.embed(params, tokens, labels)
        assert cond is None
        for _ in range(L):
            for n in range(cfg.N):
                h = layer.apply({"params": jax.tree.map(lambda x: x[n], params["block"]["layers"]["layer"])}, h, cond)
        return model.head(params, h, cond)

    tokens = jax.ShapeDtypeStruct((1, cfg.seq_len), jnp.int32)
    labels = jax.ShapeDtypeStruct((1,), jnp.int32)
    formula = forward_flops(cfg, L)
    assert formula == 2 * forward_macs(cfg, L)
    # Exact, and independent of XLA: 2 * K * |out| summed over every matmul of the traced forward
    # (hardware FLOPs = 2 x our multiply-adds).
    assert _dot_flops(jax.make_jaxpr(unrolled)(params, tokens, labels).jaxpr) == formula
    cost = jax.jit(unrolled).lower(params, tokens, labels).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    # XLA counts the matmuls as 2MNK plus the elementwise ops the formula leaves out (LN, softmax,
    # GELU, residuals): ~2% here with jax 0.10, but their count follows XLA's decompositions, which
    # change between versions. Per layer and token the matmuls are 2(4d^2 + 2 d mlp) + 4Td ~ 4e5
    # flops against ~6d + mlp + heads*T ~ 1.4e3 elementwise values: < 10% even at 25 flops each.
    assert formula <= cost["flops"] <= 1.10 * formula


def _dot_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contracting, _), _ = eqn.params["dimension_numbers"]
            k = math.prod(eqn.invars[0].aval.shape[d] for d in contracting)
            total += 2 * k * math.prod(eqn.outvars[0].aval.shape)
        for value in eqn.params.values():  # nested jit / custom_jvp bodies
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    total += _dot_flops(getattr(sub, "jaxpr", sub))
    return total


# The paper's reported GFLOPs (multiply-adds, DiT's convention; docs/DESIGN.md "Conventions").
_PARAMS = Path(__file__).resolve().parents[1] / "params-imagenet256.yaml"


def _scale(name):
    scales = yaml.safe_load(_PARAMS.read_text())["scales"]
    return {k: scales[name][k] for k in ("d_model", "mlp_dim", "num_heads")}


@pytest.mark.parametrize("row, N, L, paper", [
    # Table 1, ImageNet 256: 16x16 tokens, 1024 codes, 1000 classes, 24 steps, CFG (2 passes).
    ("ELT-L 8Nx3L", 8, 3, 3.7e3),
    ("ELT-L 12Nx2L", 12, 2, 3.7e3),
    ("MaskGIT-L (24 layers)", 24, 1, 3.7e3),
])
def test_reproduces_paper_table1_gflops(row, N, L, paper):
    cfg = MaskGITConfig(codebook_size=1024, num_classes=1000, grid=(16, 16), N=N, **_scale("L"))
    ours = sample_gflops(cfg, L, SampleConfig(steps=24), cfg_scale=2.0)
    # Ours 3.89k, 1.05x the paper's 3.7k for all three rows. The paper's ELT-XL 7Nx4L and
    # MaskGIT-XL rows (3.9k) contradict these (XL is ~1.47x L by any count) and are not fitted:
    # see docs/DESIGN.md.
    assert 0.9 * paper <= ours <= 1.1 * paper, (row, ours, paper)


# Table 4 (video) is reproduced by the video family itself: tests/test_magvit_model.py.
