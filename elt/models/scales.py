"""Model scales: the paper's Table 6 (masked models) plus small CPU scales for tests and demos.

``baseline_layers`` is the depth of the paper's unique-layer baseline at that scale; an ELT grid
point N x L usually has N * L == baseline_layers.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Scale:
    d_model: int
    mlp_dim: int
    num_heads: int
    baseline_layers: int


SCALES: dict[str, Scale] = {
    # Paper, Table 6 (MLP = 4 d except g and G).
    "S": Scale(384, 1536, 6, 12),
    "B": Scale(768, 3072, 12, 12),
    "L": Scale(1024, 4096, 16, 24),
    "XL": Scale(1152, 4608, 16, 28),
    "H": Scale(1280, 5120, 16, 32),
    "g": Scale(1408, 6144, 16, 40),
    "G": Scale(1664, 8192, 16, 48),
    # CPU scales (not in the paper): small enough to train in minutes on 2 cores.
    "tiny": Scale(64, 256, 4, 4),
    "small": Scale(128, 512, 4, 8),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; known scales: {sorted(SCALES)}") from None
