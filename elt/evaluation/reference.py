"""Reference statistics of the real data: computed once per dataset/resolution, cached as .npz."""
from __future__ import annotations

from itertools import islice
from typing import Iterable

import numpy as np
from tqdm import tqdm

from elt.evaluation.fid import save_stats, stats_from_features


def compute_reference_stats(images_uint8: Iterable, weights_path, out_path, batch_size: int = 50,
                            max_images: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Stream uint8 HxWx3 images (or (image, label) pairs) through the FID Inception -> stats.npz.

    Images are consumed in batches so a large split never sits in memory; only the features do.
    """
    from elt.evaluation.inception import InceptionFeatures

    extractor = InceptionFeatures(weights_path, batch_size=batch_size)
    stream = iter(images_uint8) if max_images is None else islice(images_uint8, max_images)
    feats, batch, first_shape, count = [], [], None, 0
    with tqdm(desc="reference stats", unit="img") as bar:
        for item in stream:
            image = np.asarray(item[0] if isinstance(item, tuple) else item)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
                raise ValueError(f"reference image {count}: expected uint8 HxWx3, got {image.dtype} {image.shape}")
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            if first_shape is None:
                first_shape = image.shape
            elif image.shape != first_shape:
                raise ValueError(f"reference image {count}: shape {image.shape} differs from the first {first_shape}")
            batch.append(image)
            count += 1
            if len(batch) == batch_size:
                feats.append(extractor(np.stack(batch)))
                bar.update(len(batch))
                batch = []
        if batch:
            feats.append(extractor(np.stack(batch)))
            bar.update(len(batch))
    if count < 2:
        raise ValueError(f"reference data yielded {count} image(s); FID needs at least 2")
    mu, sigma, n = stats_from_features(np.concatenate(feats))
    save_stats(out_path, mu, sigma, n)
    return mu, sigma, n
