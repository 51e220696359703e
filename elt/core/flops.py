"""Compute of the looped transformer layer by formula, for every family.

Units (one source of truth): ``layer_macs`` counts **multiply-adds** (MACs). The GFLOPs this
project reports (eval.json ``gflops``, tables, plots) are the paper's convention, which is DiT's:
**1 GFLOP = 10^9 multiply-adds**. Hardware FLOPs (a multiply-add = 2 FLOPs: MFU, XLA's cost
analysis) are ``2 * macs``; ``layer_flops`` gives them.

Counted: every matmul — q/k/v/out projections, attention scores (QK^T) and the attention-weighted
values (AV), the two MLP matmuls. Not counted: embedding look-ups (gathers), LayerNorm, softmax,
GELU, bias adds and residuals (elementwise, O(T*d) against the O(T*d^2) matmuls). XLA's cost
analysis counts a loop body once whatever its trip count, hence a formula; tests check it against
the matmuls of a traced, unrolled forward.
"""

from __future__ import annotations


def layer_macs(d_model: int, mlp_dim: int, T: int) -> int:
    """Multiply-adds of one transformer layer on one sequence of T tokens:
    4 T d^2 (q,k,v,out) + 2 T^2 d (scores + AV) + 2 T d mlp_dim (MLP)."""
    return 4 * T * d_model**2 + 2 * T**2 * d_model + 2 * T * d_model * mlp_dim


def layer_flops(d_model: int, mlp_dim: int, T: int) -> int:
    """Hardware FLOPs of one layer (a multiply-add = 2 FLOPs): 2 * ``layer_macs``. For MFU only;
    reported GFLOPs are multiply-adds."""
    return 2 * layer_macs(d_model, mlp_dim, T)
