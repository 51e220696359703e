"""Typed settings of the masked-token video family (params.yaml `families.magvit`).

Imported when params.yaml is parsed, so it imports nothing heavy: no jax, no flax (the shared
masked-token config it extends, elt/families/_masked/config.py, imports only dataclasses).

Paper (Table 5, UCF-101 column; Sec. 5.3): the same cross-entropy loss and cosine schedules as the
image models, sampling with 12 (and 24) steps at temperature 0.5 + 0.8 (1 - (k+1)/K), no
classifier-free guidance and no label drop.

No label drop: `train.label_drop` applies only to families with guidance (Params.train_hyper),
so this family, which samples without CFG, never spends batches on a null class.
"""

from __future__ import annotations

import dataclasses

from elt.families._masked.config import MaskedSampleConfig, MaskedTrainConfig

QUALITY_METRIC = "fvd"  # elt.evaluation.metrics: the metric its samples are scored by
MODALITY = "video"
TOKENIZER_KIND = "vq3d"  # integer tokens on a 3-D (t, h, w) grid with a codebook
GUIDANCE = False  # paper: no CFG for video; sampled at scale 1 only


@dataclasses.dataclass(frozen=True)
class TrainConfig(MaskedTrainConfig):
    """`families.magvit.train`: the per-exit loss, as maskgit's. The paper's Table 5 says only
    "Xent"; the default smoothing is MAGVIT's own UCF-101 setting (google-research/magvit,
    videogvt/configs/maskgvt_ucf101_config.py: ``label_smoothing = 1e-4``), the framework the paper
    trains its video models with, not MaskGIT's 0.1."""

    label_smoothing: float = 1e-4


@dataclasses.dataclass(frozen=True)
class SampleConfig(MaskedSampleConfig):
    """`families.magvit.sample`: maskgit's decoder settings with the paper's video defaults:
    12 steps (Table 4; its 6Nx6L row uses 24), token temperature 0.5 + 0.8 (1 - (k+1)/K) and
    MaskGIT's choice temperature 4.5 (on the Gumbel noise of the confidences)."""

    steps: int = 12
