"""Any-time sampler of the masked-video family: MaskGIT's decoder (elt/families/_masked/sampler.py)
on the flattened t*h*w tokens, reshaped to [B, t, h, w] at the end.

MAGVIT's full-generation decoding is MaskGIT's (videogvt/train_lib/parallel_decode.py: cosine
schedule, log-probability of the sampled token plus Gumbel noise annealed by (1 - (k+1)/K), choice
temperature 4.5, 12 steps on UCF-101, at least one token revealed per step). The token temperature
follows the paper, 0.5 + 0.8 (1 - (k+1)/K) at step k (MAGVIT's code keeps one constant temperature).
Defaults: config.SampleConfig. No classifier-free guidance (paper: none for video): a scale other
than 1 is refused rather than run against a null class the model was not trained for.
"""

from __future__ import annotations

import numpy as np

from elt.families._masked import sampler as _masked


def make_sampler(model, sc, cfg_scale: float = 1.0, with_history: bool = False):
    """Jitted ``sample(params, labels[B], L, rng) -> tokens[B, t, h, w]`` int32 in [0, K); L is a
    traced argument (one compilation serves every loop count). See maskgit's ``make_sampler``."""
    if cfg_scale != 1.0:
        raise ValueError(
            f"family magvit samples without classifier-free guidance (config.GUIDANCE = False), "
            f"got cfg_scale={cfg_scale}"
        )
    return _masked.make_sampler(model, sc, 1.0, with_history)


def decode(tokenizer, latents):
    """uint8 clips [B, T, H, W, C] of sampled tokens [B, t, h, w] (the vq3d tokenizer's decode)."""
    clips = np.asarray(tokenizer.decode(latents))
    if clips.ndim != 5 or clips.dtype != np.uint8 or clips.shape[-1] not in (1, 3):
        raise ValueError(
            f"family magvit: the tokenizer decoded {clips.dtype} {list(clips.shape)}, expected uint8 "
            f"clips [B, T, H, W, 3] (a vq3d tokenizer)"
        )
    return clips
