"""Masked-video ELT (MAGVIT family): class token + t*h*w video tokens -> codebook logits.

The masked-image model (elt/families/_masked/model.py) on a (t, h, w) token grid, flattened in
t, h, w order (row-major, as the tokens are stored: LatentSpec((t, h, w), "int32", K)):

  vocabulary  codebook ids 0..K-1, ``mask_id = K``, class c -> ``K + 1 + c``, the unconditional
              class -> ``K + 1 + num_classes``: K + num_classes + 2 rows, maskgit's convention. MAGVIT
              (maskgvt_train_lib.py) has the same rows in another order (codes, the num_classes + 1
              class tokens, then the mask); the order matters only to weights trained elsewhere,
              and MAGVIT released none of its transformer, so the two masked families share one.
  class       an unmasked prefix token (position 0): masking acts on the t*h*w video tokens only
              (losses.training_inputs), the class is prepended after it, in ``embed``.
  head        reads every exit after a shared final LayerNorm, drops the class position and
              predicts the K codebook ids only (logits sliced to the codebook by construction).
  positions   one learned table over the 1 + t*h*w positions, not a factorised t/h/w sum: it is
              what MAGVIT does (videogvt/models/simplified_bert.py, BertEmbed: learned position
              embeddings over the flattened sequence), it gives MAGVIT-L's reported total (305.5M
              vs 306M; factorised: 304.5M), and at 1.05M parameters (d 1024) it costs < 1.5% of the
              76M block; it is also maskgit's embedding, reused unchanged.

The unconditional class row exists (the core's label drop maps labels to it, and MAGVIT's vocabulary
has it), but the family trains without label drop and samples without guidance (config.py).

Baselines as for images: vanilla looping = trained on the L_max exit only; unique depth (MAGVIT-L)
= ``MagvitConfig(N=24)`` at L_max = L = 1.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from elt.families._masked.model import MaskedImageELT, MaskGITConfig


@dataclasses.dataclass(frozen=True)
class MagvitConfig(MaskGITConfig):
    """MaskGITConfig with a (t, h, w) token grid; the same fields, so model.json reads alike."""

    GRID_AXES: ClassVar[tuple[str, ...]] = ("t", "h", "w")


class MaskedVideoELT(MaskedImageELT):
    """Functional wrapper: params = {"embed", "block", "head"}, looped by the core
    (elt/core/looped.py). Inputs are flat: tokens [B, t*h*w] (ids, ``mask_id`` where masked) and
    labels [B]; ``apply`` returns logits [B, t*h*w, K]."""

    def __init__(self, cfg: MagvitConfig):
        if not isinstance(cfg, MagvitConfig):
            raise TypeError(f"MaskedVideoELT needs a MagvitConfig, got {type(cfg).__name__}")
        super().__init__(cfg)


# ---------------------------------------------------------------- the family contract (model)


def build_model(spec, num_classes: int, scale, N: int, remat: bool = False) -> MaskedVideoELT:
    """The model for shards of latent ``spec`` (token ids on a (t, h, w) grid) at a params.yaml
    ``scale`` with N unique layers."""
    return MaskedVideoELT(MagvitConfig(
        codebook_size=spec.vocab_size, num_classes=num_classes, grid=tuple(spec.shape),
        d_model=scale.d_model, num_heads=scale.num_heads, mlp_dim=scale.mlp_dim, N=N, remat=remat,
    ))


def model_from_config(config: dict) -> MaskedVideoELT:
    """The model of a checkpoint, from the ``config`` its model.json records."""
    return MaskedVideoELT(MagvitConfig(**config))
