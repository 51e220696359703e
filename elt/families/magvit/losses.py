"""Training side of the masked-video family: maskgit's (elt/families/_masked/losses.py), reused.

The video tokens [B, t, h, w] are flattened to [B, t*h*w] (t, h, w order) and masked by MaskGIT's
cosine schedule over all t*h*w positions (MAGVIT's full-generation task does the same); the class
token is never masked (the model prepends it after masking). GT = label-smoothed cross-entropy on
the masked positions, D = soft-target cross-entropy towards the teacher over the same positions.
Only the latent check differs: the shards must hold a 3-D grid.
"""

from __future__ import annotations

from elt.families._masked.losses import distill_loss, eval_loss, exit_metrics, gt_loss, training_inputs

__all__ = ["check_latents", "training_inputs", "gt_loss", "distill_loss", "eval_loss", "exit_metrics"]


def check_latents(spec) -> None:
    """The shards must hold integer tokens of a codebook on a 3-D (t, h, w) grid."""
    if spec.vocab_size is None or spec.dtype != "int32" or len(spec.shape) != 3:
        raise ValueError(
            f"family magvit needs integer tokens on a 3-D (t, h, w) grid with a codebook (a vq3d "
            f"tokenizer), got latents {spec}"
        )
