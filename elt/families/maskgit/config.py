"""Typed settings of the masked-token image family (params.yaml `families.maskgit`).

Imported when params.yaml is parsed, so it imports nothing heavy: no jax, no flax.
"""

from __future__ import annotations

import dataclasses

from elt.families._masked.config import MaskedSampleConfig, MaskedTrainConfig

QUALITY_METRIC = "fid"  # elt.evaluation.metrics: the metric its samples are scored by
MODALITY = "image"
TOKENIZER_KIND = "vq"  # integer tokens on a 2-D grid with a codebook
GUIDANCE = True  # class-conditional with a null label: sample.cfg_scales is swept


@dataclasses.dataclass(frozen=True)
class TrainConfig(MaskedTrainConfig):
    """`families.maskgit.train`: the per-exit loss (elt/families/_masked/config.py)."""


@dataclasses.dataclass(frozen=True)
class SampleConfig(MaskedSampleConfig):
    """`families.maskgit.sample`: the MaskGIT decoder (google-research/maskgit, paper Table 5)."""
