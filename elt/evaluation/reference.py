"""Reference statistics of the real data: computed once per dataset/resolution, cached as .npz.

What the statistics are of is chosen by index, never by position: ``num_images=None`` takes the
whole split; an integer k takes a seeded random subset of k images of the split, drawn without
replacement (``choose_subset``), not the first k (a split stored in class order would otherwise
give a reference of a few classes). The split is streamed and only the chosen images are kept,
one batch at a time. The stats file records n, the split size, the selection ("whole split" or
"seeded random subset"), the seed and a sha256 of the sorted chosen indices (fid.STATS_META).

For KID the file also keeps reference FEATURES (float32), at most REF_FEATURES_CAP of them: a
seeded random subset of the chosen images (all of them when there are fewer), so an
ImageNet-sized reference stays ~80 MB. mu and sigma are always of all n chosen images.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np
from tqdm import tqdm

from elt.evaluation.fid import save_stats, stats_from_features

REF_FEATURES_CAP = 10_000
WHOLE_SPLIT = "whole split"
SEEDED_SUBSET = "seeded random subset"
SUBSET_KEY = "eval.ref_num_images"


def choose_subset(split_size: int, num_images: int | None, seed: int = 0, key: str = SUBSET_KEY) -> np.ndarray:
    """Sorted int64 indices of the images to use: all of [0, split_size) when ``num_images`` is
    None, else ``num_images`` distinct indices drawn uniformly without replacement (seeded)."""
    from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

    if num_images is None:
        return np.arange(split_size, dtype=np.int64)
    if num_images > split_size:
        raise ConfigError(key, f"{num_images} images asked for, but the split holds only {split_size}: "
                               "use at most that many, or null for the whole split")
    if num_images < 1:
        raise ConfigError(key, f"must be >= 1 (or null for the whole split), got {num_images}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(split_size, size=num_images, replace=False)).astype(np.int64)


def indices_sha256(indices: np.ndarray) -> str:
    """sha256 of the sorted indices as little-endian int64: the identity of a chosen subset."""
    return hashlib.sha256(np.sort(np.asarray(indices)).astype("<i8").tobytes()).hexdigest()


def stored_feature_rows(n: int, seed: int, cap: int) -> np.ndarray:
    """Which of the n chosen images (in index order) keep their features in the stats file: all
    of them when n <= cap, else a seeded random ``cap`` of them (sorted)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=cap, replace=False))


def _indexed(images, chosen: np.ndarray | None, chunk: int = 256):
    """(index, item) over the stream. A dataset with ``read(start, stop)`` (elt.data's ImageDataset)
    and a chosen subset is read only in the chunks that hold a chosen index: a sparse subset of a
    large split then decodes a fraction of it. Items of other chunks are never yielded."""
    if chosen is None or not hasattr(images, "read") or not hasattr(images, "num_examples"):
        yield from enumerate(images)
        return
    total = int(images.num_examples)
    for start in np.unique(chosen // chunk) * chunk:
        start = int(start)
        block, labels = images.read(start, min(start + chunk, total))
        for offset, (image, label) in enumerate(zip(block, labels)):
            yield start + offset, (image, int(label))


def compute_reference_stats(images_uint8: Iterable, weights_path, out_path, batch_size: int = 50,
                            num_images: int | None = None, seed: int = 0, split_size: int | None = None,
                            extractor=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Stream uint8 HxWx3 images (or (image, label) pairs) through the FID Inception -> stats.npz;
    returns (mu, sigma, n). build_reference returns what the file records as well."""
    info = build_reference(images_uint8, weights_path, out_path, batch_size=batch_size, num_images=num_images,
                           seed=seed, split_size=split_size, extractor=extractor)
    return info.pop("mu"), info.pop("sigma"), info["n"]


def build_reference(images_uint8: Iterable, weights_path, out_path, batch_size: int = 50,
                    num_images: int | None = None, seed: int = 0, split_size: int | None = None,
                    extractor=None) -> dict:
    """compute_reference_stats -> {"mu", "sigma", "n", "split_size", "selection", "seed",
    "indices_sha256", "features_stored"}.

    ``num_images`` k: a seeded random subset of k images of the split (``choose_subset``); the split
    size is ``split_size`` or ``len(images_uint8)``. None: every image the stream yields.
    Images are consumed in batches so a large split never sits in memory; only the chosen images'
    features do. ``extractor``: an InceptionFeatures-like callable (built from weights_path if None).
    """
    if num_images is not None:
        if split_size is None:
            try:
                split_size = len(images_uint8)  # type: ignore[arg-type]
            except TypeError:
                raise ValueError("a seeded reference subset needs the split size: pass split_size or a "
                                 "dataset with len()") from None
        chosen = choose_subset(split_size, num_images, seed)
    else:
        chosen = None
    if extractor is None:
        from elt.evaluation.inception import InceptionFeatures  # pylint: disable=import-outside-toplevel

        extractor = InceptionFeatures(weights_path, batch_size=batch_size)

    feats, batch, first_shape, count, seen = [], [], None, 0, 0
    with tqdm(desc="reference stats", unit="img", total=None if chosen is None else len(chosen)) as bar:
        for index, item in _indexed(images_uint8, chosen):
            seen = index + 1
            if chosen is not None and index != chosen[count]:
                continue
            image = np.asarray(item[0] if isinstance(item, tuple) else item)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
                raise ValueError(f"reference image {index}: expected uint8 HxWx3, got {image.dtype} {image.shape}")
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            if first_shape is None:
                first_shape = image.shape
            elif image.shape != first_shape:
                raise ValueError(f"reference image {index}: shape {image.shape} differs from the first {first_shape}")
            batch.append(image)
            count += 1
            if len(batch) == batch_size:
                feats.append(extractor(np.stack(batch)))
                bar.update(len(batch))
                batch = []
            if chosen is not None and count == len(chosen):
                break  # the last chosen image is in: the rest of the split is not read
        if batch:
            feats.append(extractor(np.stack(batch)))
            bar.update(len(batch))
    if chosen is not None and count < len(chosen):
        raise ValueError(f"the reference split ended after {seen} images, before chosen index {chosen[count]} "
                         f"(its stated size is {split_size})")
    if count < 2:
        raise ValueError(f"reference data yielded {count} image(s); FID needs at least 2")
    if chosen is None:
        chosen, split_size = np.arange(count, dtype=np.int64), count
    features = np.concatenate(feats)
    mu, sigma, n = stats_from_features(features)
    keep = stored_feature_rows(n, seed, REF_FEATURES_CAP)
    meta = {
        "split_size": int(split_size),
        "selection": WHOLE_SPLIT if num_images is None else SEEDED_SUBSET,
        "seed": int(seed),
        "indices_sha256": indices_sha256(chosen),
    }
    save_stats(out_path, mu, sigma, n, features=features[keep], meta=meta)
    return {"mu": mu, "sigma": sigma, "n": n, **meta, "features_stored": int(len(keep))}
