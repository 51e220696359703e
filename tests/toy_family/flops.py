"""GFLOPs of a toy sample in the paper's convention: GFLOPs = 10^9 multiply-adds (elt/core/flops.py)."""
from elt.core.flops import layer_macs


def sample_gflops(cfg, L, sc, cfg_scale=1.0):
    # One network evaluation per step: the toy sampler has no CFG (it ignores cfg_scale).
    S = cfg.grid[0] * cfg.grid[1]
    io = 2 * S * cfg.channels * cfg.d_model  # input and output projections (multiply-adds)
    return sc.steps * (cfg.N * L * layer_macs(cfg.d_model, cfg.mlp_dim, S) + io) / 1e9
