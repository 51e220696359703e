"""Compute of the masked-image ELT by formula (units: see elt/core/flops.py).

Per sequence of T = h*w + 1 tokens (class token first): N*L layers of ``layer_macs`` and the
head, (h*w) d K multiply-adds (the class position is dropped before the head, embeddings are
gathers).

``sample_gflops`` (what evaluate writes as ``gflops``) is in the paper's convention:
GFLOPs = 10^9 **multiply-adds**. ``flops_per_train_step`` is in hardware FLOPs (a multiply-add =
2 FLOPs), because MFU divides it by a measured FLOP/s peak.
"""

from __future__ import annotations

from elt.core.flops import layer_macs


def head_macs(cfg) -> int:
    return cfg.seq_len * cfg.d_model * cfg.codebook_size


def forward_macs(cfg, L: int) -> int:
    """Multiply-adds of one forward of one sequence at L loops (N*L layer applications + head)."""
    if L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    T = cfg.seq_len + 1
    return cfg.N * L * layer_macs(cfg.d_model, cfg.mlp_dim, T) + head_macs(cfg)


def forward_flops(cfg, L: int) -> int:
    """Hardware FLOPs of one forward (a multiply-add = 2 FLOPs): 2 * ``forward_macs``."""
    return 2 * forward_macs(cfg, L)


def sample_gmacs(cfg, L: int, sample_cfg, cfg_scale: float = 1.0) -> float:
    """10^9 multiply-adds to generate one sample: K = ``sample_cfg.steps`` network evaluations,
    doubled when CFG is on (cfg_scale != 1)."""
    if sample_cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got steps={sample_cfg.steps}")
    passes = 1 if cfg_scale == 1.0 else 2
    return sample_cfg.steps * passes * forward_macs(cfg, L) / 1e9


def sample_gflops(cfg, L: int, sample_cfg, cfg_scale: float = 1.0) -> float:
    """GFLOPs of one sample in the paper's convention (DiT's): GFLOPs = 10^9 multiply-adds, i.e.
    ``sample_gmacs``. This is the figure of the paper's Tables 1 and 4 and of eval.json ``gflops``."""
    return sample_gmacs(cfg, L, sample_cfg, cfg_scale)


def flops_per_train_step(cfg, L_max: int, batch_size: int, ilsd: bool = True) -> int:
    """Model FLOPs of one train step for MFU, in hardware FLOPs (a multiply-add = 2 FLOPs, unlike
    the reported GFLOPs): 3x forward (backward = 2x forward).

    One forward of L_max loops; the head runs on both exits under ILSD. Remat recomputation is
    not counted (model FLOPs, not hardware FLOPs).
    """
    T = cfg.seq_len + 1
    forward_mac = cfg.N * L_max * layer_macs(cfg.d_model, cfg.mlp_dim, T)
    forward_mac += head_macs(cfg) * (2 if ilsd else 1)
    return 3 * batch_size * 2 * forward_mac
