"""Compute of the diffusion ELT by formula (units: see elt/core/flops.py).

Per sequence of T = (h/p)(w/p) tokens: N*L layers of ``layer_macs`` (attention as every family,
plus the third matrix of the gated MLP: T d mlp_dim), the patch embedding T (p^2 c) d and the
output layer T d (p^2 c). Not counted (elementwise, O(T d) or O(d)): the adaLN modulation, the
fixed embeddings, LayerNorms, softmax, SiLU, residuals, the sampler's update.

``sample_gflops`` (what evaluate writes as ``gflops``) is in the paper's convention:
GFLOPs = 10^9 **multiply-adds**, one network evaluation per sampling step, x2 with CFG.
``flops_per_train_step`` is in hardware FLOPs (a multiply-add = 2 FLOPs) for MFU.
"""

from __future__ import annotations

from elt.core.flops import layer_macs as _attention_mlp_macs


def layer_macs(cfg) -> int:
    """One DiTLayer on one sequence: 4 T d^2 + 2 T^2 d + 3 T d mlp (gated MLP: 3 matrices)."""
    T = cfg.seq_len
    return _attention_mlp_macs(cfg.d_model, cfg.mlp_dim, T) + T * cfg.d_model * cfg.mlp_dim


def embed_macs(cfg) -> int:
    return cfg.seq_len * cfg.patch_dim * cfg.d_model


def head_macs(cfg) -> int:
    return cfg.seq_len * cfg.d_model * cfg.patch_dim


def forward_macs(cfg, L: int) -> int:
    """Multiply-adds of one forward of one latent at L loops."""
    if L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    return embed_macs(cfg) + cfg.N * L * layer_macs(cfg) + head_macs(cfg)


def forward_flops(cfg, L: int) -> int:
    """Hardware FLOPs of one forward (a multiply-add = 2 FLOPs): 2 * ``forward_macs``."""
    return 2 * forward_macs(cfg, L)


def sample_gflops(cfg, L: int, sample_cfg, cfg_scale: float = 1.0) -> float:
    """GFLOPs of one sample in the paper's convention: 10^9 multiply-adds, K = ``sample_cfg.steps``
    network evaluations, doubled when CFG is on (cfg_scale != 1)."""
    if sample_cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got steps={sample_cfg.steps}")
    passes = 1 if cfg_scale == 1.0 else 2
    return sample_cfg.steps * passes * forward_macs(cfg, L) / 1e9


def flops_per_train_step(cfg, L_max: int, batch_size: int, ilsd: bool = True) -> int:
    """Model FLOPs of one train step for MFU, in hardware FLOPs: 3x forward (backward = 2x),
    one forward of L_max loops, the head on both exits under ILSD; remat not counted."""
    forward_mac = embed_macs(cfg) + cfg.N * L_max * layer_macs(cfg) + head_macs(cfg) * (2 if ilsd else 1)
    return 3 * batch_size * 2 * forward_mac
