"""FID spread (grouped jackknife, spread.py), the metric's score() keys, the seeded reference subset
and the new reference-stats file, and the eval config keys: no Inception network here (a fake
feature extractor stands in)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from elt.config import ConfigError, parse_params
from elt.evaluation import fid, metrics, reference, spread
from elt.evaluation.kid import kernel_distance

ROOT = Path(__file__).resolve().parents[1]


def exact_fid(a, b):
    """FID of two feature sets with no matrix square root (as in test_fid.py): Tr sqrt(S1 S2) is
    the nuclear norm of A B^T / sqrt((n1-1)(n2-1)) for the centred data A, B."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ac, bc = a - a.mean(0), b - b.mean(0)
    n1, n2 = len(a), len(b)
    tr_covmean = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (ac**2).sum() / (n1 - 1) + (bc**2).sum() / (n2 - 1) - 2 * tr_covmean)


def _sets(seed, n, d=64, n_ref=1000):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    ref = rng.normal(size=(n_ref, d)) @ mix
    feats = rng.normal(0.2, 1.2, size=(n, d)) @ mix + rng.normal(size=d) * 0.1
    return feats, ref


def _assert_explicit_routes_agree(fast, subset, ref, distinct, sqrtm=False):
    """``fast`` (a SubsetFID value) equals the FID of ``subset`` [m, D] (``distinct`` distinct
    rows) against ``ref`` by the explicit covariance routes."""
    mu_r, s_r, _ = fid.stats_from_features(ref)
    mu_b, s_b, _ = fid.stats_from_features(subset)
    # the explicit covariance of the subset, through the pipeline's eigh route
    assert fast == pytest.approx(fid.frechet_distance(mu_b, s_b, mu_r, s_r, method="eigh"), rel=1e-8)
    # and through the square-root-free exact route. Eigen-routes (eigh's and this one) take an
    # eigenvalue of sqrt(S_r) S_b sqrt(S_r) below the numerical-rank floor d*eps*max as 0. Beyond
    # the d - rank exact zeros, a genuine eigenvalue that small (65 distinct rows in 64-d: a barely
    # full-rank S_b, as some n=100 resamples give) moves the trace by at most 2 sqrt(floor): only
    # such eigenvalues get slack.
    root = spread.psd_sqrt(s_r)
    w = np.linalg.eigvalsh(root @ s_b @ root)
    floor = w.max() * len(w) * np.finfo(np.float64).eps
    zeros = len(w) - min(distinct - 1, len(w))
    slack = 2 * np.sqrt(floor) * max(int((w <= floor).sum()) - zeros, 0)
    assert abs(fast - exact_fid(subset, ref)) <= 1e-8 * abs(fast) + slack
    if sqrtm:  # S_b full rank, where scipy's sqrtm is accurate
        assert fast == pytest.approx(fid.frechet_distance(mu_b, s_b, mu_r, s_r, method="sqrtm"), rel=1e-8)


# --------------------------------------------------------------------------- the fast subset FID
@pytest.mark.parametrize("n, groups", [(30, 100), (30, 7), (100, 100), (100, 9), (400, 100)])
def test_delete_group_fid_equals_explicit_covariance_routes(n, groups):
    # D = 64: n = 30 takes the Gram form (a gather of K), n = 100 and 400 the D x D downdate of M
    feats, ref = _sets(n + groups, n)
    mu_r, s_r, _ = fid.stats_from_features(ref)
    sub = spread.SubsetFID(feats, mu_r, s_r)
    assert sub.gram == (n <= 64)
    parts = spread.jackknife_groups(n, groups, seed=3)
    sizes = [len(g) for g in parts]
    assert len(parts) == min(n, groups) and max(sizes) - min(sizes) <= 1
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))  # a partition
    for g in parts[:2] + parts[-1:]:
        kept = np.setdiff1d(np.arange(n), g)
        fast = sub.fid_without(g)
        _assert_explicit_routes_agree(fast, feats[kept], ref, len(kept), sqrtm=len(kept) > 64)
        counts = np.ones(n, int)
        counts[g] = 0
        # the general route; the D x D downdate (M minus the deleted rows' part) cancels digits:
        # measured 1.3e-10 relative at n = 400 with 2 BLAS threads, far below the spread (~1e-2)
        assert fast == pytest.approx(sub.fid_of_counts(counts), rel=1e-8)
    np.testing.assert_allclose(sub.jackknife(groups, seed=3), [sub.fid_without(g) for g in parts], rtol=0)
    with pytest.raises(ValueError, match="distinct row indices"):
        sub.fid_without(np.arange(n - 1))


@pytest.mark.parametrize("n", [30, 100, 400])
def test_resample_fid_equals_explicit_covariance_routes(n):
    # rows with multiplicities (the bootstrap draws the simulation test below compares against)
    feats, ref = _sets(n, n)
    mu_r, s_r, _ = fid.stats_from_features(ref)
    sub = spread.SubsetFID(feats, mu_r, s_r)
    rng = np.random.default_rng(7)
    for _ in range(3):
        idx = rng.integers(0, n, size=n)  # with replacement: duplicates, a rank-deficient S_b
        fast = sub.fid_of_counts(np.bincount(idx, minlength=n))
        # n = 400: ~250 distinct rows > D = 64, S_b full rank
        _assert_explicit_routes_agree(fast, feats[idx], ref, len(np.unique(idx)), sqrtm=n == 400)
    # every row once = the full-sample FID
    full = fid.frechet_distance(*fid.stats_from_features(feats)[:2], mu_r, s_r, method="eigh")
    assert sub.fid_of_counts(np.ones(n, int)) == pytest.approx(full, rel=1e-9)


def test_psd_sqrt_of_a_singular_covariance():
    rng = np.random.default_rng(3)
    _, s, _ = fid.stats_from_features(rng.normal(size=(10, 32)))  # rank 9
    root = spread.psd_sqrt(s)
    np.testing.assert_allclose(root, root.T, atol=0)
    np.testing.assert_allclose(root @ root, s, atol=1e-12 * np.abs(s).max())
    assert np.linalg.eigvalsh(root).min() > -1e-12


def test_gram_and_covariance_forms_agree_across_n_equal_d():
    # n <= D uses the m x m Gram form, n > D the D x D form: the same numbers either side.
    feats, ref = _sets(5, 64, d=64)
    mu_r, s_r, _ = fid.stats_from_features(ref)
    idx = np.random.default_rng(0).integers(0, 64, size=64)
    gram = spread.SubsetFID(feats, mu_r, s_r)
    assert gram.gram
    cov = spread.SubsetFID(feats, mu_r, s_r)
    cov.gram = False
    counts = np.bincount(idx, minlength=64)
    assert gram.fid_of_counts(counts) == pytest.approx(cov.fid_of_counts(counts), rel=1e-10)
    for g in spread.jackknife_groups(64, 8, seed=1)[:3]:
        assert gram.fid_without(g) == pytest.approx(cov.fid_without(g), rel=1e-10)


# --------------------------------------------------------------------------- the spread
def test_jackknife_is_seeded_positive_and_shrinks_with_n():
    rng = np.random.default_rng(4)
    d = 16
    ref = rng.normal(size=(5000, d))
    mu_r, s_r, _ = fid.stats_from_features(ref)

    def spread_of(n, groups=100, seed=0):
        feats = rng.normal(0.1, 1.1, size=(n, d))
        point = fid.frechet_distance(*fid.stats_from_features(feats)[:2], mu_r, s_r, method="eigh")
        return feats, point, spread.jackknife_fid(feats, mu_r, s_r, point, groups=groups, seed=seed)

    feats, point, small = spread_of(50)
    # n = 50 <= 100 groups: leave-one-out, which no seed changes
    assert small == spread.jackknife_fid(feats, mu_r, s_r, point, groups=100, seed=1)
    loo = [spread.SubsetFID(feats, mu_r, s_r).fid_without([i]) for i in range(50)]
    assert small == spread.fid_spread(point, loo)
    assert small["fid_std"] > 0 and small["fid_lo"] < point < small["fid_hi"]
    # fewer groups than rows: seeded groups
    grouped = spread.jackknife_fid(feats, mu_r, s_r, point, groups=10, seed=0)
    assert grouped == spread.jackknife_fid(feats, mu_r, s_r, point, groups=10, seed=0)
    assert grouped["fid_std"] != spread.jackknife_fid(feats, mu_r, s_r, point, groups=10, seed=1)["fid_std"]
    assert 0.5 < grouped["fid_std"] / small["fid_std"] < 2
    _, _, large = spread_of(800)  # 100 groups of 8
    assert large["fid_std"] < 0.5 * small["fid_std"]  # ~1/4 ideally


def test_spread_is_the_grouped_jackknife_std_and_the_normal_interval():
    jack = 30.0 + 0.1 * np.exp(np.linspace(0.0, 3.0, 40))
    g = len(jack)
    std = np.sqrt((g - 1) / g * ((jack - jack.mean()) ** 2).sum())  # not the std of the FIDs
    out = spread.fid_spread(25.0, jack)
    assert out["fid_std"] == pytest.approx(std, rel=1e-12)
    assert out["fid_std"] == pytest.approx(np.std(jack, ddof=1) * (g - 1) / np.sqrt(g), rel=1e-12)
    assert out["fid_lo"] == pytest.approx(25.0 - 1.959964 * std)
    assert out["fid_hi"] == pytest.approx(25.0 + 1.959964 * std)
    assert spread.fid_spread(0.1, jack)["fid_lo"] == 0.0  # an FID is never negative
    with pytest.raises(ValueError, match=">= 2"):
        spread.fid_spread(1.0, [3.0])


def test_jackknife_needs_two_rows_left_in_every_delete_group_set():
    assert spread.jackknife_unavailable(3, 100) is None  # leave-one-out of 3: 2 rows left
    assert spread.jackknife_unavailable(4, 2) is None  # two groups of 2
    assert "< 2 rows" in spread.jackknife_unavailable(3, 2)  # a group of 2 of 3 rows
    assert "< 2 rows" in spread.jackknife_unavailable(2, 100)
    with pytest.raises(ValueError, match="< 2 rows"):
        spread.jackknife_groups(2, 100)


def test_jackknife_cost_at_pipeline_size_is_small():
    """G = 100 (leave-one-out) at n = 100, D = 2048 (the reference's square root is computed once
    per reference and is not part of it). Measured ~0.1 s on 1 core, ~2 s on 2 busy cores; the
    bound only catches an accidental return to per-group D x D work (~100x slower)."""
    import time

    rng = np.random.default_rng(5)
    d, n = 2048, 100
    r = rng.normal(size=(d, 64)) / 8
    s_r = r @ r.T + np.eye(d) * 1e-3
    root = r @ r.T + np.eye(d) * 0.03  # a stand-in PSD root: only the jackknife is timed here
    feats = rng.normal(size=(n, d))
    t0 = time.perf_counter()
    jack = spread.SubsetFID(feats, np.zeros(d), s_r, ref_sqrt=root).jackknife(100, seed=0)
    assert time.perf_counter() - t0 < 15
    assert jack.shape == (100,) and np.isfinite(jack).all()


# --------------------------------------------------------------------------- why not the bootstrap
def _spread_ratios(seed, d, shift, n=100, n_ref=3000, draws=150, estimates=10, resamples=100):
    """(median jackknife std, median bootstrap std) / the true spread of the FID of n samples.

    A Gaussian world: reference N(0, A A^T) with a 1/sqrt(k) spectrum (n_ref rows, fixed
    statistics, as in the pipeline), samples N(offset, 1.1^2 A A^T), offset ~ shift * N(0, I). The
    true spread is the std of the full-sample FID over ``draws`` independent sets of n; each
    estimator is applied to ``estimates`` single sets and its median taken."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mix = q * np.arange(1, d + 1) ** -0.25
    mu_r, s_r, _ = fid.stats_from_features(rng.normal(size=(n_ref, d)) @ mix.T)
    root = spread.psd_sqrt(s_r)
    offset = rng.normal(size=d) * shift

    def subset_fid():
        return spread.SubsetFID(1.1 * rng.normal(size=(n, d)) @ mix.T + offset, mu_r, s_r, ref_sqrt=root)

    true = np.std([subset_fid().fid_of_counts(np.ones(n, int)) for _ in range(draws)], ddof=1)
    jack, boot = [], []
    for i in range(estimates):
        sub = subset_fid()
        jack.append(spread.fid_spread(0.0, sub.jackknife(100, seed=i))["fid_std"])
        # the bootstrap this module used before: n rows drawn with replacement, std over resamples
        boot.append(np.std([sub.fid_of_counts(np.bincount(rng.integers(0, n, size=n), minlength=n))
                            for _ in range(resamples)], ddof=1))
    return float(np.median(jack) / true), float(np.median(boot) / true)


@pytest.mark.parametrize("d, shift", [(256, 0.05), (128, 0.3)])
def test_jackknife_spread_matches_the_true_spread_and_the_bootstrap_does_not(d, shift):
    """n = 100 samples in D = 256 near the reference (FID ~25, mostly its finite-n bias) and in
    D = 128 farther away (FID ~20, a real mean gap). Measured over 20 seeds: jackknife/true
    0.98-1.17 and bootstrap/true 4.3-5.4 (D=256); 0.94-1.25 and 1.96-2.45 (D=128). A spread estimator
    off by more than ~1.4x fails here; the bootstrap is that estimator (its resamples' duplicated
    rows inflate the FID's variance at n << D), which is why spread.py uses the jackknife."""
    jack, boot = _spread_ratios(seed=0, d=d, shift=shift)
    assert 0.7 <= jack <= 1.4, f"jackknife std / true spread = {jack:.2f}"
    assert boot > 1.5, f"bootstrap std / true spread = {boot:.2f}: no longer wider than the jackknife's band"


# --------------------------------------------------------------------------- the metric, end to end
class _NoHead:
    has_classifier = False


class _FakeExtractor:
    """Features = the pixels of a 4x4x3 image (48-d), for tests without the Inception network."""

    weights = _NoHead()

    def __call__(self, images, progress=False):
        images = np.asarray(images)
        return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _metric(**kwargs):
    m = metrics.get("fid")("unused-weights.pt", batch_size=8, **kwargs)
    evaluator = fid.FIDEvaluator.__new__(fid.FIDEvaluator)
    evaluator.extractor = _FakeExtractor()
    m._evaluator = evaluator
    return m


def _images(seed, n, shift=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(110 + shift, 40, size=(n, 4, 4, 3)), 0, 255).astype(np.uint8)


KEYS = {"fid", "fid_std", "fid_lo", "fid_hi", "kid", "kid_std", "is", "is_std", "n"}


def test_score_keys_point_fid_unchanged_and_reference_file(tmp_path):
    real = _images(0, 300)
    ref_dir = tmp_path / "fid"
    ref_dir.mkdir()
    info = reference.build_reference(list(real), None, ref_dir / metrics.STATS_FILE, batch_size=32,
                                     num_images=200, seed=5, extractor=_FakeExtractor())
    chosen = reference.choose_subset(300, 200, 5)
    assert info["n"] == 200 and info["split_size"] == 300 and info["selection"] == "seeded random subset"
    assert info["seed"] == 5 and info["indices_sha256"] == reference.indices_sha256(chosen)
    ref = fid.load_reference(ref_dir / metrics.STATS_FILE)
    want_feats = _FakeExtractor()(real[chosen])
    np.testing.assert_allclose(ref["mu"], want_feats.astype(np.float64).mean(0), rtol=1e-12)
    assert ref["features"].dtype == np.float32 and ref["features"].shape == (200, 48)
    np.testing.assert_array_equal(ref["features"], want_feats)  # under the cap: all of them
    assert {k: ref[k] for k in fid.STATS_META} == {k: info[k] for k in fid.STATS_META}

    metric = _metric(jackknife_groups=20, kid_subsets=10, seed=1)
    assert metric.spread_key == "fid_std"
    samples = _images(1, 60, shift=10)
    result = metric.score(samples, ref_dir)
    assert KEYS <= set(result) and set(result) - KEYS == {"is_unavailable"}
    feats = _FakeExtractor()(samples)
    mu, sigma, n = fid.stats_from_features(feats)
    # the point FID is exactly the pre-existing computation
    assert result["fid"] == fid.frechet_distance(mu, sigma, ref["mu"], ref["sigma"], method=metric.method)
    assert result["n"] == n == 60
    assert result["fid_std"] > 0 and result["fid_lo"] < result["fid"] < result["fid_hi"]
    assert result["kid"] > 0 and result["kid_std"] >= 0
    # the settings reach the computations: G and the seed of the jackknife, subsets and seed of KID
    jack = spread.jackknife_fid(feats, ref["mu"], ref["sigma"], result["fid"], groups=20, seed=1)
    assert {k: result[k] for k in jack} == pytest.approx(jack, rel=1e-9)
    assert jack != spread.jackknife_fid(feats, ref["mu"], ref["sigma"], result["fid"], groups=20, seed=2)
    assert result["fid_lo"] == pytest.approx(result["fid"] - 1.959964 * result["fid_std"])
    assert result["kid"] == kernel_distance(feats, ref["features"], num_subsets=10, seed=1)["kid"]
    assert result["is"] is None and "classifier" in result["is_unavailable"]
    assert metric.score(samples, ref_dir) == result  # seeded: the same numbers again
    assert "+-" in metric.describe(result)

    # A mu/sigma-only file (older, or pytorch-fid's): FID as before, KID None with a reason.
    old_dir = tmp_path / "old"
    fid.save_stats(old_dir / metrics.STATS_FILE, ref["mu"], ref["sigma"], ref["n"])
    old = _metric(jackknife_groups=20, kid_subsets=10, seed=1).score(samples, old_dir)
    assert old["fid"] == result["fid"] and old["fid_std"] == result["fid_std"]
    assert old["kid"] is None and old["kid_std"] is None and "no reference features" in old["kid_unavailable"]

    off = _metric(jackknife_groups=0, kid_subsets=0).score(samples, ref_dir)
    assert off["fid"] == result["fid"] and off["fid_std"] is None and off["fid_lo"] is None
    assert off["kid"] is None and off["fid_spread_unavailable"] == "eval.jackknife_groups is 0"
    # too few samples for any delete-group set to keep a covariance: None with a reason, FID as ever
    two = _metric(jackknife_groups=100, kid_subsets=0).score(samples[:2], ref_dir)
    assert two["fid_std"] is None and "< 2 rows" in two["fid_spread_unavailable"]


def test_metric_rejects_bad_settings():
    with pytest.raises(ValueError, match="jackknife_groups"):
        metrics.get("fid")("w.pt", jackknife_groups=-1)
    with pytest.raises(ValueError, match="jackknife_groups"):
        metrics.get("fid")("w.pt", jackknife_groups=1)
    assert metrics.get("fid")("w.pt").settings["jackknife_groups"] == 100
    with pytest.raises(ValueError, match="kid_subsets"):
        metrics.get("fid")("w.pt", kid_subsets=1.5)


# --------------------------------------------------------------------------- the seeded subset
def test_choose_subset_is_seeded_sorted_distinct_and_not_the_first_k():
    a = reference.choose_subset(1797, 1000, seed=0)
    assert a.dtype == np.int64 and len(a) == 1000 and len(np.unique(a)) == 1000
    assert (np.diff(a) > 0).all() and a.min() >= 0 and a.max() < 1797
    np.testing.assert_array_equal(a, reference.choose_subset(1797, 1000, seed=0))
    b = reference.choose_subset(1797, 1000, seed=1)
    assert not np.array_equal(a, b) and reference.indices_sha256(a) != reference.indices_sha256(b)
    assert not np.array_equal(a, np.arange(1000))
    assert a.max() > 1500  # drawn from the whole split, not its start
    np.testing.assert_array_equal(reference.choose_subset(50, None), np.arange(50))
    np.testing.assert_array_equal(reference.choose_subset(50, 50, seed=3), np.arange(50))
    with pytest.raises(ConfigError) as e:
        reference.choose_subset(1797, 1798)
    assert e.value.key == "eval.ref_num_images" and str(e.value).startswith("eval.ref_num_images: 1798")
    assert "\n" not in str(e.value)


class _ChunkedSplit:
    """An elt.data ImageDataset stand-in: read(start, stop) and num_examples; records reads."""

    def __init__(self, images):
        self.images, self.num_examples, self.reads = images, len(images), []

    def __len__(self):
        return self.num_examples

    def read(self, start, stop):
        self.reads.append((start, stop))
        return self.images[start:stop], np.zeros(stop - start, np.int32)

    def __iter__(self):
        raise AssertionError("a chosen subset of a dataset with read() is read by chunks")


def test_reference_streams_only_the_chosen_images(tmp_path):
    images = _images(2, 1000)
    split = _ChunkedSplit(images)
    info = reference.build_reference(split, None, tmp_path / "a.npz", batch_size=7, num_images=3, seed=0,
                                     extractor=_FakeExtractor())
    chosen = reference.choose_subset(1000, 3, 0)
    assert info["n"] == 3 and len(split.reads) <= 3  # only the chunks holding a chosen index
    mu, _, _ = fid.stats_from_features(_FakeExtractor()(images[chosen]))
    np.testing.assert_array_equal(fid.load_reference(tmp_path / "a.npz")["mu"], mu)
    # the same subset from a plain iterable (enumerated stream) gives the same statistics
    info2 = reference.build_reference(list(images), None, tmp_path / "b.npz", batch_size=2, num_images=3,
                                      seed=0, extractor=_FakeExtractor())
    assert info2["indices_sha256"] == info["indices_sha256"]
    np.testing.assert_array_equal(fid.load_reference(tmp_path / "b.npz")["mu"], mu)
    whole = reference.build_reference(iter(images[:40]), None, tmp_path / "c.npz", batch_size=16,
                                      extractor=_FakeExtractor())
    assert whole["selection"] == "whole split" and whole["split_size"] == whole["n"] == 40
    with pytest.raises(ConfigError, match="eval.ref_num_images"):
        reference.build_reference(split, None, tmp_path / "d.npz", num_images=1001, extractor=_FakeExtractor())


def test_stored_reference_features_are_capped_by_a_seeded_subset(tmp_path, monkeypatch):
    rows = reference.stored_feature_rows(50, seed=0, cap=10)
    assert len(rows) == 10 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, reference.stored_feature_rows(50, seed=0, cap=10))
    assert not np.array_equal(rows, np.arange(10))
    np.testing.assert_array_equal(reference.stored_feature_rows(8, seed=0, cap=10), np.arange(8))
    monkeypatch.setattr(reference, "REF_FEATURES_CAP", 10)
    images = _images(3, 50)
    info = reference.build_reference(list(images), None, tmp_path / "s.npz", num_images=None, seed=0,
                                     extractor=_FakeExtractor())
    ref = fid.load_reference(tmp_path / "s.npz")
    assert info["features_stored"] == 10 and ref["n"] == 50
    np.testing.assert_array_equal(ref["features"], _FakeExtractor()(images[rows]))  # mu/sigma: all 50
    np.testing.assert_allclose(ref["mu"], _FakeExtractor()(images).astype(np.float64).mean(0), rtol=1e-12)


# --------------------------------------------------------------------------- config
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def _eval_with(**values):
    raw = copy.deepcopy(DEFAULT)
    raw["eval"].update(values)
    return raw


@pytest.mark.parametrize("key, value", [
    ("jackknife_groups", 1), ("jackknife_groups", -1), ("jackknife_groups", 1.5), ("kid_subsets", -1),
    ("kid_subsets", "many"),
    ("ref_seed", -2), ("ref_seed", "zero"),
])
def test_eval_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        parse_params(_eval_with(**{key: value}))
    assert e.value.key == f"eval.{key}" and str(e.value).startswith(f"eval.{key}:")


def test_eval_config_defaults_and_zero():
    p = parse_params(_eval_with(jackknife_groups=0, kid_subsets=0))
    assert (p.eval.jackknife_groups, p.eval.kid_subsets) == (0, 0)
    assert parse_params(_eval_with(jackknife_groups=2)).eval.jackknife_groups == 2
    p = parse_params(DEFAULT)
    assert (p.eval.ref_seed, p.eval.jackknife_groups, p.eval.kid_subsets) == (0, 100, 100)


def test_old_bootstrap_key_points_to_the_jackknife():
    raw = copy.deepcopy(DEFAULT)
    del raw["eval"]["jackknife_groups"]
    raw["eval"]["bootstrap"] = 200
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert e.value.key == "eval.bootstrap" and "eval.jackknife_groups" in str(e.value)
    assert "\n" not in str(e.value)
