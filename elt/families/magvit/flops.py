"""Compute of the masked-video ELT by formula: maskgit's (elt/families/_masked/flops.py), reused.

The formula reads the sequence length from the config (``cfg.seq_len`` = t*h*w), so the video
model's count is the image model's at T = t*h*w + 1 tokens: N*L layers of ``layer_macs`` plus the
head on the t*h*w code positions. ``sample_gflops`` is in the paper's convention (10^9
multiply-adds per sample, one network evaluation per step; this family samples without guidance,
so at cfg_scale 1 it is one pass). Paper, Table 4 (4x16x16 tokens, scale L): ELT 6Nx4L at 12 steps
~4.3k, 6Nx6L at 24 steps ~13k, MAGVIT-L (24 layers) at 12 steps ~4.3k; ours 4.35k, 13.03k, 4.35k
(tests/test_magvit_model.py).
"""

from __future__ import annotations

from elt.families._masked.flops import (
    flops_per_train_step, forward_flops, forward_macs, head_macs, sample_gflops, sample_gmacs,
)

__all__ = ["flops_per_train_step", "forward_flops", "forward_macs", "head_macs", "sample_gflops", "sample_gmacs"]
