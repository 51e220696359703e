"""FLOPs of the masked-image ELT by formula (a multiply-add = 2 FLOPs).

Counted: every matmul of the network — q/k/v/out projections, attention scores (QK^T) and the
attention-weighted values (AV), the two MLP matmuls, and the head. Not counted: embedding
look-ups (gathers, 0 FLOPs), LayerNorm, softmax, GELU, bias adds and residuals (elementwise,
O(T*d) against the O(T*d^2) matmuls). XLA's cost analysis counts a loop body once whatever its
trip count, hence a formula; tests check it against XLA on an unrolled forward.

Per sequence of T = h*w + 1 tokens (class token first), one layer costs
    8 T d^2 (q,k,v,out) + 4 T^2 d (scores + AV) + 4 T d mlp_dim (MLP),
and the head 2 (h*w) d K (the class position is dropped before the head).
"""

from __future__ import annotations


def layer_flops(d_model: int, mlp_dim: int, T: int) -> int:
    """FLOPs of one transformer layer on one sequence of T tokens."""
    return 8 * T * d_model**2 + 4 * T**2 * d_model + 4 * T * d_model * mlp_dim


def head_flops(cfg) -> int:
    return 2 * cfg.seq_len * cfg.d_model * cfg.codebook_size


def maskgit_forward_flops(cfg, L: int) -> int:
    """FLOPs of one forward of one sequence at L loops (N*L layer applications + head)."""
    if L < 1:
        raise ValueError(f"L must be >= 1, got L={L}")
    T = cfg.seq_len + 1
    return cfg.N * L * layer_flops(cfg.d_model, cfg.mlp_dim, T) + head_flops(cfg)


def maskgit_sample_gflops(cfg, L: int, steps: int, cfg_scale: float = 1.0) -> float:
    """GFLOPs to generate one sample: ``steps`` forwards, doubled when CFG is on (cfg_scale != 1)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got steps={steps}")
    passes = 1 if cfg_scale == 1.0 else 2
    return steps * passes * maskgit_forward_flops(cfg, L) / 1e9


def flops_per_train_step(cfg, L_max: int, batch_size: int, ilsd: bool = True) -> int:
    """Model FLOPs of one train step (for MFU): 3x forward (backward = 2x forward).

    One forward of L_max loops; the head runs on both exits under ILSD. Remat recomputation is
    not counted (model FLOPs, not hardware FLOPs).
    """
    T = cfg.seq_len + 1
    forward = cfg.N * L_max * layer_flops(cfg.d_model, cfg.mlp_dim, T)
    forward += head_flops(cfg) * (2 if ilsd else 1)
    return 3 * batch_size * forward
