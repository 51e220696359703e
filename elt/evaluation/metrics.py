"""Quality metrics by name (a family's QUALITY_METRIC). A metric knows the reference statistics it
needs of the real data and how to score a set of samples against them.

    metric = get("fid")(weights="data/weights/fid_inception.pt", batch_size=50, jackknife_groups=100,
                        kid_subsets=100, seed=0)
    info = metric.reference(real_images, "data/ref_stats/fid", max_images=None)   # ref_stats stage
    result = metric.score(images, "data/ref_stats/fid")   # evaluate stage:
    # {"fid", "fid_std", "fid_lo", "fid_hi", "kid", "kid_std", "is", "is_std", "n"}
    # (+ "<key>_unavailable" reasons); result[metric.spread_key] is the +- of result[metric.name].

Reference statistics live in one folder per metric (data/ref_stats/<name>/), so a grid that mixes
families computes each metric's statistics once. FVD (video, class FVD) scores uint8 clips
[n, T, H, W, 3] with the same interface; its spread is MAGVIT's: repeats of num_per_repeat vs
num_per_repeat clips, reported as fvd (mean), fvd_std and n.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elt.evaluation.modality import MODALITY

STATS_FILE = "stats.npz"


class FID:
    """Frechet Inception Distance (pytorch-fid's Inception weights) with its jackknife spread, KID
    (clean-fid's definition) and the Inception score.

    ``jackknife_groups``: groups of the delete-a-group jackknife over the sample features for
    fid_std/fid_lo/fid_hi (min(n, this); 0: none, the three are None; spread.py);
    ``kid_subsets``: KID subsets (0: no KID); ``seed``: seeds the reference subset (reference()),
    the jackknife's groups and the KID subsets (score()).
    """

    name = "fid"
    modality = MODALITY["fid"]
    weights_key, weights_stage = "eval.weights", "fetch_fid_weights"  # where its weights come from
    spread_key = "fid_std"  # score()[spread_key] is the +- of score()[name]
    # eigh: the same trace-sqrt as scipy's sqrtm (tested equal) in seconds instead of a minute
    method = "eigh"

    @classmethod
    def from_eval(cls, ev) -> "FID":
        """The metric with params.yaml's `eval` settings (elt.config.EvalConfig)."""
        return cls(ev.weights, batch_size=ev.batch_size, jackknife_groups=ev.jackknife_groups,
                   kid_subsets=ev.kid_subsets, seed=ev.ref_seed)

    def __init__(self, weights, batch_size: int = 50, jackknife_groups: int = 100, kid_subsets: int = 100,
                 seed: int = 0):
        for key, value in (("jackknife_groups", jackknife_groups), ("kid_subsets", kid_subsets), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"FID metric: {key} must be an integer >= 0, got {value!r}")
        if jackknife_groups == 1:
            raise ValueError(f"FID metric: jackknife_groups must be 0 or >= 2 groups, got {jackknife_groups}")
        self.weights, self.batch_size = weights, batch_size
        self.jackknife_groups, self.kid_subsets, self.seed = int(jackknife_groups), int(kid_subsets), int(seed)
        self._evaluator = None  # the Inception network is built on first use only
        self._ref = None  # (path, mtime_ns, size) -> loaded reference and S_r^{1/2}, reused across score()s

    @property
    def settings(self) -> dict:
        """What besides the inputs determines score()'s numbers (for result caches)."""
        return {"method": self.method, "jackknife_groups": self.jackknife_groups, "kid_subsets": self.kid_subsets,
                "seed": self.seed}

    def reference(self, images, out_dir, max_images: int | None = None, split_size: int | None = None) -> dict:
        """Stream real uint8 images (or (image, label) pairs) -> out_dir/stats.npz. ``max_images``
        None: every image; k: a random subset of k images seeded by ``seed`` (reference.py).
        Returns what the statistics are of: {"n", "split_size", "selection", "seed",
        "indices_sha256", "features_stored"}."""
        from elt.evaluation.reference import build_reference  # pylint: disable=import-outside-toplevel

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        info = build_reference(images, self.weights, Path(out_dir) / STATS_FILE, batch_size=self.batch_size,
                               num_images=max_images, seed=self.seed, split_size=split_size)
        return {k: v for k, v in info.items() if k not in ("mu", "sigma")}

    def _reference(self, ref_dir):
        from elt.evaluation.fid import load_reference  # pylint: disable=import-outside-toplevel
        from elt.evaluation.spread import psd_sqrt  # pylint: disable=import-outside-toplevel

        path = Path(ref_dir) / STATS_FILE
        st = path.stat() if path.is_file() else None
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size) if st else None
        if key is None or self._ref is None or self._ref[0] != key:
            ref = load_reference(path)  # raises FileNotFoundError naming the path when missing
            root = psd_sqrt(ref["sigma"]) if self.jackknife_groups else None  # once per reference
            self._ref = (key, ref, root)
        return self._ref[1], self._ref[2]

    def score(self, images: np.ndarray, ref_dir) -> dict:
        """Score uint8 images against ref_dir's statistics -> {"fid", "fid_std", "fid_lo", "fid_hi",
        "kid", "kid_std", "is", "is_std", "n"}.

        "fid" is the full-sample FID (unchanged by the spread); fid_std: the grouped-jackknife
        std over the samples, reference fixed; fid_lo/hi: fid -/+ 1.96 fid_std (spread.py); kid/kid_std:
        kid.py. A number that cannot be had is None and a "<key>_unavailable" reason is added
        ("fid_spread_unavailable", "kid_unavailable", "is_unavailable"): never a made-up number.
        """
        from elt.evaluation.fid import FIDEvaluator  # pylint: disable=import-outside-toplevel
        from elt.evaluation.kid import kernel_distance  # pylint: disable=import-outside-toplevel
        from elt.evaluation.spread import jackknife_fid, jackknife_unavailable  # pylint: disable=import-outside-toplevel

        ref, root = self._reference(ref_dir)
        if self._evaluator is None:
            self._evaluator = FIDEvaluator(self.weights, batch_size=self.batch_size)
        feats = self._evaluator.features(images)
        base = self._evaluator.evaluate_features(feats, ref["mu"], ref["sigma"], method=self.method)
        result = {"fid": float(base["fid"]), "fid_std": None, "fid_lo": None, "fid_hi": None,
                  "kid": None, "kid_std": None, "is": base["is"], "is_std": base["is_std"], "n": int(base["n"])}
        why_not = "eval.jackknife_groups is 0" if not self.jackknife_groups else jackknife_unavailable(
            result["n"], self.jackknife_groups)
        if why_not is None:
            result.update(jackknife_fid(feats, ref["mu"], ref["sigma"], result["fid"], self.jackknife_groups,
                                        seed=self.seed, ref_sqrt=root))
        else:
            result["fid_spread_unavailable"] = why_not
        if not self.kid_subsets:
            result["kid_unavailable"] = "eval.kid_subsets is 0"
        elif ref["features"] is None:
            result["kid_unavailable"] = (f"{Path(ref_dir) / STATS_FILE} holds no reference features (an older or "
                                         "mu/sigma-only statistics file): rerun ref_stats for KID")
        else:
            kid = kernel_distance(feats, ref["features"], num_subsets=self.kid_subsets, seed=self.seed)
            result.update(kid=kid["kid"], kid_std=kid["kid_std"])
        if result["is"] is None:
            result["is_unavailable"] = base.get("is_unavailable")
        return result

    @staticmethod
    def describe(result: dict) -> str:
        """One line for logs: FID +- its jackknife std [95% interval], KID +- std, n."""
        def num(v, fmt):
            return "n/a" if v is None else format(v, fmt)

        text = f"FID={result['fid']:.2f}"
        if result.get("fid_std") is not None:
            text += f"+-{result['fid_std']:.2f} [{result['fid_lo']:.2f}, {result['fid_hi']:.2f}]"
        text += f" KID={num(result.get('kid'), '.5f')}"
        if result.get("kid_std") is not None:
            text += f"+-{result['kid_std']:.5f}"
        return text + f" (n={result.get('n')})"


class FVD:
    """Frechet Video Distance (Kinetics-400 I3D, the google-research frechet_video_distance
    protocol; fvd.py) with MAGVIT's spread: the mean and std of the FVD over ``repeats`` repeats,
    each of ``num_per_repeat`` generated clips against ``num_per_repeat`` real clips (MAGVIT: 4
    repeats of 10k vs 10k).

    The generated side of the repeats is a seeded split of the samples into ``repeats`` disjoint
    sets of ``num_per_repeat``; the real side is a seeded subset of ``num_per_repeat`` of the
    reference features stored by reference() (disjoint across repeats when the file stores
    ``repeats * num_per_repeat`` or more, else drawn independently per repeat), or the full
    reference statistics in every repeat when the file stores fewer than ``num_per_repeat``
    (recorded in "fvd_reference"). fvd_std is the sample std (ddof=1) of the repeats.
    With fewer than ``repeats * num_per_repeat`` samples there are no repeats: "fvd" is the
    full-sample FVD against the full reference, fvd_std is None and "fvd_spread_unavailable" says
    why, never a made-up number.

    ``weights``: the I3D checkpoint (path or loaded tree; None: data/weights/fvd_i3d.ckpt).
    ``jackknife_groups`` and ``kid_subsets`` are FID's settings, accepted (the stages pass the same
    eval settings to every metric) and unused.
    """

    name = "fvd"
    modality = MODALITY["fvd"]
    weights_key, weights_stage = "eval.fvd_weights", "fetch_fvd_weights"
    spread_key = "fvd_std"  # score()[spread_key] is the +- of score()[name]
    # eigh: the same trace-sqrt as scipy's sqrtm (tested equal), exact where n < 400 leaves the
    # covariances singular (sqrtm's error there is of order sqrt(eps)); as FID's metric
    method = "eigh"

    @classmethod
    def from_eval(cls, ev) -> "FVD":
        """The metric with params.yaml's `eval` settings (its fvd_* keys, ref_seed)."""
        return cls(ev.fvd_weights, batch_size=ev.fvd_batch_size, num_per_repeat=ev.fvd_clips_per_repeat,
                   repeats=ev.fvd_repeats, seed=ev.ref_seed)

    def __init__(self, weights=None, batch_size: int = 8, num_per_repeat: int = 10_000, repeats: int = 4,
                 seed: int = 0, jackknife_groups=None, kid_subsets=None):  # pylint: disable=unused-argument
        for key, value, least in (("num_per_repeat", num_per_repeat, 2), ("repeats", repeats, 1), ("seed", seed, 0),
                                  ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"FVD metric: {key} must be an integer >= {least}, got {value!r}")
        self.weights, self.batch_size = weights, int(batch_size)
        self.num_per_repeat, self.repeats, self.seed = int(num_per_repeat), int(repeats), int(seed)
        self._extractor = None  # the I3D is built on first use only

    @property
    def settings(self) -> dict:
        """What besides the inputs determines score()'s numbers (for result caches)."""
        return {"method": self.method, "num_per_repeat": self.num_per_repeat, "repeats": self.repeats,
                "seed": self.seed}

    def _features(self):
        if self._extractor is None:
            from elt.evaluation.fvd import _extractor  # pylint: disable=import-outside-toplevel

            self._extractor = _extractor(self.weights, self.batch_size)
        return self._extractor

    def reference(self, clips, out_dir, max_images: int | None = None, split_size: int | None = None) -> dict:
        """Stream real uint8 clips [T, H, W, 3] (or (clip, label) pairs) -> out_dir/stats.npz (mu, sigma,
        n and the features the repeats draw from). ``max_images`` (the eval setting's name, here a
        number of clips) None: every clip; k: a seeded random subset. Returns what the statistics
        are of, as FID.reference."""
        from elt.evaluation.fvd import build_video_reference  # pylint: disable=import-outside-toplevel

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        info = build_video_reference(clips, self.weights, Path(out_dir) / STATS_FILE, batch_size=self.batch_size,
                                     num_clips=max_images, seed=self.seed, split_size=split_size,
                                     extractor=self._features())
        return {k: v for k, v in info.items() if k not in ("mu", "sigma")}

    def score(self, clips: np.ndarray, ref_dir) -> dict:
        """Score uint8 clips [n, T, H, W, 3] against ref_dir's statistics -> {"fvd", "fvd_std", "n",
        "fvd_repeats", "repeats", "num_per_repeat", "fvd_reference"} (+ "fvd_spread_unavailable")."""
        from elt.evaluation.fvd import check_clips, fvd_with_repeats, load_fvd_stats  # pylint: disable=import-outside-toplevel

        path = Path(ref_dir) / STATS_FILE
        ref_mu, ref_sigma, ref_n = load_fvd_stats(path)  # names the path when missing or not FVD's
        with np.load(path) as data:
            ref_feats = data["features"].astype(np.float64) if "features" in data.files else None
        feats = self._features()(check_clips(clips, "samples"), progress=True, desc="fvd samples")
        return fvd_with_repeats(feats, ref_mu, ref_sigma, ref_n, ref_feats, self.num_per_repeat, self.repeats,
                                seed=self.seed, method=self.method)

    @staticmethod
    def describe(result: dict) -> str:
        """One line for logs: FVD (mean over repeats) +- std, repeats x clips, n."""
        text = f"FVD={result['fvd']:.2f}"
        if result.get("fvd_std") is not None:
            text += f"+-{result['fvd_std']:.2f} ({result['repeats']}x{result['num_per_repeat']})"
        return text + f" (n={result.get('n')})"


METRICS = {FID.name: FID, FVD.name: FVD}


def get(name: str):
    if name not in METRICS:
        raise ValueError(f"unknown quality metric {name!r} (known: {', '.join(sorted(METRICS))})")
    return METRICS[name]


def check_weights(metric) -> None:
    """A metric's network weights must be on disk (their DVC stage fetched them): a one-line error
    naming the params key and the stage otherwise, before any compute."""
    if metric.weights is None or not Path(metric.weights).is_file():
        raise FileNotFoundError(f"{metric.weights_key}: {metric.weights} missing (run `dvc repro {metric.weights_stage}`)")


def from_eval(name: str, ev):
    """Metric `name` built from params.yaml's `eval` section: the one place the stages (ref_stats,
    floor, evaluate) turn settings into a metric, its weights file among them (`.weights`)."""
    return get(name).from_eval(ev)
