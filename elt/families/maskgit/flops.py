"""FLOPs of the masked-image ELT by formula (a multiply-add = 2 FLOPs; see elt/core/flops.py).

Per sequence of T = h*w + 1 tokens (class token first): N*L layers of ``layer_flops`` and the
head, 2 (h*w) d K (the class position is dropped before the head, embeddings are gathers).
"""

from __future__ import annotations

from elt.core.flops import layer_flops


def head_flops(cfg) -> int:
    return 2 * cfg.seq_len * cfg.d_model * cfg.codebook_size


def forward_flops(cfg, L: int) -> int:
    """FLOPs of one forward of one sequence at L loops (N*L layer applications + head)."""
    if L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    T = cfg.seq_len + 1
    return cfg.N * L * layer_flops(cfg.d_model, cfg.mlp_dim, T) + head_flops(cfg)


def sample_gflops(cfg, L: int, sample_cfg, cfg_scale: float = 1.0) -> float:
    """GFLOPs to generate one sample: K = ``sample_cfg.steps`` forwards, doubled when CFG is on
    (cfg_scale != 1)."""
    if sample_cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got steps={sample_cfg.steps}")
    passes = 1 if cfg_scale == 1.0 else 2
    return sample_cfg.steps * passes * forward_flops(cfg, L) / 1e9


def flops_per_train_step(cfg, L_max: int, batch_size: int, ilsd: bool = True) -> int:
    """Model FLOPs of one train step (for MFU): 3x forward (backward = 2x forward).

    One forward of L_max loops; the head runs on both exits under ILSD. Remat recomputation is
    not counted (model FLOPs, not hardware FLOPs).
    """
    T = cfg.seq_len + 1
    forward = cfg.N * L_max * layer_flops(cfg.d_model, cfg.mlp_dim, T)
    forward += head_flops(cfg) * (2 if ilsd else 1)
    return 3 * batch_size * forward
