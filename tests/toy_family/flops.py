from elt.core.flops import layer_flops


def sample_gflops(cfg, L, sc, cfg_scale=1.0):
    S = cfg.grid[0] * cfg.grid[1]
    io = 2 * 2 * S * cfg.channels * cfg.d_model  # input and output projections
    return sc.steps * (cfg.N * L * layer_flops(cfg.d_model, cfg.mlp_dim, S) + io) / 1e9
