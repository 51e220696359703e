"""Quality metrics by name (a family's QUALITY_METRIC). A metric knows the reference statistics it
needs of the real data and how to score a set of samples against them.

    metric = get("fid")(weights="data/weights/fid_inception.pt", batch_size=50)
    info = metric.reference(real_images, "data/ref_stats/fid", max_images=None)   # ref_stats stage
    result = metric.score(images, "data/ref_stats/fid")   # {"fid": ..., "is": ...}  evaluate stage

Reference statistics live in one folder per metric (data/ref_stats/<name>/), so a grid that mixes
families computes each metric's statistics once. FVD (video) plugs in here with the video family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STATS_FILE = "stats.npz"


class FID:
    """Frechet Inception Distance (pytorch-fid's Inception weights), with the Inception score."""

    name = "fid"
    modality = "image"
    # eigh: the same trace-sqrt as scipy's sqrtm (tested equal) in seconds instead of a minute
    method = "eigh"

    def __init__(self, weights, batch_size: int = 50):
        self.weights, self.batch_size = weights, batch_size
        self._evaluator = None  # the Inception network is built on first use only

    def reference(self, images, out_dir, max_images: int | None = None) -> dict:
        """Stream real uint8 images (or (image, label) pairs) -> out_dir/stats.npz; returns {"n"}."""
        from elt.evaluation.reference import compute_reference_stats  # pylint: disable=import-outside-toplevel

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        _, _, n = compute_reference_stats(
            images, self.weights, Path(out_dir) / STATS_FILE, batch_size=self.batch_size, max_images=max_images
        )
        return {"n": n}

    def score(self, images: np.ndarray, ref_dir) -> dict:
        """{"fid", "is" (None when the weights have no classifier head)} of uint8 images."""
        from elt.evaluation.fid import FIDEvaluator, load_stats  # pylint: disable=import-outside-toplevel

        if self._evaluator is None:
            self._evaluator = FIDEvaluator(self.weights, batch_size=self.batch_size)
        ref_mu, ref_sigma, _ = load_stats(Path(ref_dir) / STATS_FILE)
        result = self._evaluator.evaluate(images, ref_mu, ref_sigma, method=self.method)
        return {"fid": float(result["fid"]), "is": result.get("is")}


METRICS = {FID.name: FID}


def get(name: str):
    if name not in METRICS:
        raise ValueError(f"unknown quality metric {name!r} (known: {', '.join(sorted(METRICS))})")
    return METRICS[name]
