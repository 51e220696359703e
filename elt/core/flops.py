"""FLOPs of the looped transformer layer by formula (a multiply-add = 2 FLOPs), for every family.

Counted: every matmul — q/k/v/out projections, attention scores (QK^T) and the attention-weighted
values (AV), the two MLP matmuls. Not counted: embedding look-ups (gathers), LayerNorm, softmax,
GELU, bias adds and residuals (elementwise, O(T*d) against the O(T*d^2) matmuls). XLA's cost
analysis counts a loop body once whatever its trip count, hence a formula; tests check it against
the matmuls of a traced, unrolled forward.
"""

from __future__ import annotations


def layer_flops(d_model: int, mlp_dim: int, T: int) -> int:
    """FLOPs of one transformer layer on one sequence of T tokens:
    8 T d^2 (q,k,v,out) + 4 T^2 d (scores + AV) + 4 T d mlp_dim (MLP)."""
    return 8 * T * d_model**2 + 4 * T**2 * d_model + 4 * T * d_model * mlp_dim
