"""FID maths, statistics files, image loading and Inception Score: numbers against hand
computation or an independent route (no network here)."""
import time

import numpy as np
import pytest
from PIL import Image

from elt.evaluation import fid
from elt.evaluation.throughput import measure_samples_per_second


def exact_fid(a, b):
    """FID of two feature sets with no matrix square root at all, so it is exact to round-off.

    With centred data A [n1, D] and B [n2, D], S1 = A^T A / (n1-1) and S2 = B^T B / (n2-1). The
    non-zero eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T / ((n1-1)(n2-1)), so
    Tr sqrt(S1 S2) = ||A B^T||_* / sqrt((n1-1)(n2-1)): the singular values of a small n1 x n2 matrix,
    which are perfectly conditioned whatever the rank of S1 and S2.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ac, bc = a - a.mean(0), b - b.mean(0)
    n1, n2 = len(a), len(b)
    tr_covmean = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    diff = a.mean(0) - b.mean(0)
    tr1, tr2 = (ac**2).sum() / (n1 - 1), (bc**2).sum() / (n2 - 1)
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


def test_one_dimensional_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 for 1-D Gaussians with std s: (1 - 4)^2 + (2 - 3)^2 = 10.
    assert fid.frechet_distance([1.0], [[4.0]], [4.0], [[9.0]]) == pytest.approx(10.0, abs=1e-10)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    want = 1 + 0 + 4 + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # = 5 + 1 + 0 + 4
    assert fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, abs=1e-10)
    assert want == 10.0


def test_matches_exact_value_full_rank():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.5, size=(400, 16)) @ rng.normal(size=(16, 16))
    mu1, s1, n1 = fid.stats_from_features(a)
    mu2, s2, n2 = fid.stats_from_features(b)
    assert (n1, n2) == (500, 400)
    np.testing.assert_allclose(s1, np.cov(a.T), rtol=1e-12)  # unbiased covariance, as the references
    # Full rank and well conditioned: both routes are backward stable, so agree to ~cond * eps.
    for method in fid.FID_METHODS:
        assert fid.frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(exact_fid(a, b), rel=1e-9)


def test_same_set_is_zero_and_singular_covariances_are_handled():
    """N < D (10 samples in 64-d): S1 and S2 have rank 9, as in small test sets.

    The matrix square root is infinitely ill-conditioned at a singular matrix: scipy's sqrtm of
    S1 S2 (or of S1) turns round-off in the 55 zero eigenvalues into errors of order sqrt(eps)
    each, whose size depends on the BLAS and the CPU (a reference built on sqrtm(S1) differed
    by 1.7e-4 relative on one machine). The right value is the exact one (`exact_fid`); the eigh
    route works on the rank-9 range of S1 and matches it to round-off; pytorch-fid's sqrtm route is
    held only to a bound derived from sqrt(eps), not to a tolerance tuned on one machine.
    """
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(10, 64))
    other = rng.normal(size=(10, 64)) + 0.5
    mu, s, _ = fid.stats_from_features(feats)
    mu2, s2, _ = fid.stats_from_features(other)
    d, eps = s.shape[0], np.finfo(np.float64).eps
    exact = exact_fid(feats, other)
    assert exact == pytest.approx(116.0801845059, rel=1e-10)  # the same formula on this seed
    assert fid.frechet_distance(mu, s, mu2, s2, method="eigh") == pytest.approx(exact, rel=1e-10)
    assert abs(fid.frechet_distance(mu, s, mu, s, method="eigh")) < 1e-9 * np.trace(s)
    # sqrtm: each of the D eigenvalues of the product may carry a round-off error up to
    # ~D*eps*||S||^2, whose square root enters the trace: |error| <= 2 * D * sqrt(D*eps) * ||S||.
    bound = 2 * d * np.sqrt(d * eps) * max(np.linalg.norm(s, 2), np.linalg.norm(s2, 2))
    value = fid.frechet_distance(mu, s, mu2, s2, method="sqrtm")
    assert np.isfinite(value) and abs(value - exact) < bound
    assert abs(fid.frechet_distance(mu, s, mu, s, method="sqrtm")) < bound
    zero = np.zeros((64, 64))
    assert fid.frechet_distance(mu, zero, mu, s, method="eigh") == pytest.approx(np.trace(s))


def test_eigh_method_equals_sqrtm():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 24)), rng.normal(0.2, 1.3, size=(30, 24))
    mu1, s1, _ = fid.stats_from_features(a)
    mu2, s2, _ = fid.stats_from_features(b)
    assert fid.frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(
        fid.frechet_distance(mu1, s1, mu2, s2, method="sqrtm"), rel=1e-8)
    with pytest.raises(ValueError, match="FID method must be one of"):
        fid.frechet_distance(mu1, s1, mu2, s2, method="svd")


def test_mismatched_stats_raise():
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_stats_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    mu, s, n = fid.stats_from_features(rng.normal(size=(5, 3)))
    path = fid.save_stats(tmp_path / "sub" / "stats.npz", mu, s, n)
    mu2, s2, n2 = fid.load_stats(path)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(s, s2)
    assert n2 == 5 and s2.dtype == np.float64
    assert fid.is_stats_file(path)
    np.savez(tmp_path / "bad.npz", mu=mu)
    with pytest.raises(ValueError, match=r"bad.npz: statistics file lacks \['n', 'sigma'\]"):
        fid.load_stats(tmp_path / "bad.npz")


def test_stats_file_with_features_and_record(tmp_path):
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(6, 3))
    mu, s, n = fid.stats_from_features(feats)
    meta = {"split_size": 60, "selection": "seeded random subset", "seed": 3, "indices_sha256": "ab" * 32}
    path = fid.save_stats(tmp_path / "stats.npz", mu, s, n, features=feats, meta=meta)
    ref = fid.load_reference(path)
    assert ref["features"].dtype == np.float32 and ref["features"].shape == (6, 3)
    np.testing.assert_array_equal(ref["features"], feats.astype(np.float32))
    assert {k: ref[k] for k in meta} == meta and ref["n"] == 6
    with np.load(path) as data:  # plain arrays: readable without pickle
        assert data["selection"].dtype.kind == "U" and int(data["seed"]) == 3
    mu2, s2, n2 = fid.load_stats(path)  # the old reader's view is unchanged
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(s2, s)
    assert n2 == n
    # a mu/sigma/n-only file (older, or pytorch-fid's): no features, no record
    old = fid.load_reference(fid.save_stats(tmp_path / "old.npz", mu, s, n))
    assert old["features"] is None and all(old[k] is None for k in fid.STATS_META)
    with pytest.raises(ValueError, match="unknown statistics metadata 'colour'"):
        fid.save_stats(tmp_path / "x.npz", mu, s, n, meta={"colour": "red"})
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=s, n=n, features=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"features \(2, 4\) do not fit mu \(3,\)"):
        fid.load_reference(tmp_path / "bad.npz")


def _write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")


def test_load_images_folder_and_npz(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(3, 10, 12, 3)).astype(np.uint8)
    _write_pngs(tmp_path / "imgs", images)
    np.testing.assert_array_equal(fid.load_images(tmp_path / "imgs"), images)  # PNG is lossless
    np.savez(tmp_path / "imgs.npz", images=images)
    np.testing.assert_array_equal(fid.load_images(tmp_path / "imgs.npz"), images)
    np.savez(tmp_path / "gray.npz", arr_0=images[..., 0])  # grayscale -> RGB by repetition
    np.testing.assert_array_equal(fid.load_images(tmp_path / "gray.npz"), np.repeat(images[..., :1], 3, -1))


def test_load_images_bad_inputs_name_the_file(tmp_path):
    rng = np.random.default_rng(4)
    _write_pngs(tmp_path / "mixed", [rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8),
                                     rng.integers(0, 256, size=(9, 8, 3)).astype(np.uint8)])
    with pytest.raises(ValueError, match=r"001.png: size \(9, 8\) differs"):
        fid.load_images(tmp_path / "mixed")
    _write_pngs(tmp_path / "junk", [rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)] * 2)
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an image file.*notes.txt"):
        fid.load_images(tmp_path / "junk")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "a.png").write_text("not a png")
    with pytest.raises(ValueError, match="a.png: cannot be read as an image"):
        fid.load_images(tmp_path / "fake")
    _write_pngs(tmp_path / "one", [rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)])
    with pytest.raises(ValueError, match="one: 1 image.*at least 2"):
        fid.load_images(tmp_path / "one")
    np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"float.npz\[images\]: images must be uint8"):
        fid.load_images(tmp_path / "float.npz")
    with pytest.raises(FileNotFoundError, match="missing"):
        fid.load_images(tmp_path / "missing")


def test_inception_score_hand_values():
    # Uniform p(y|x) for every x: KL = 0, IS = 1. Confident and all classes distinct: IS = K.
    assert fid.inception_score(np.zeros((20, 7)), splits=2) == pytest.approx((1.0, 0.0))
    k = 8
    logits = np.full((k, k), -1e4)
    logits[np.arange(k), np.arange(k)] = 0.0
    mean, std = fid.inception_score(logits, splits=1)
    assert mean == pytest.approx(k, rel=1e-6) and std == 0.0


def test_inception_score_is_unavailable_without_the_classifier():
    class NoHead:
        has_classifier = False

    report = fid.inception_score_report(np.zeros((4, 2048)), NoHead())
    assert set(report) == {"is_unavailable"} and "classifier" in report["is_unavailable"]


def test_throughput_blocks_and_counts_samples():
    import jax.numpy as jnp

    def slow(x):
        time.sleep(0.05)
        return jnp.asarray(x) * 2

    out = measure_samples_per_second(slow, np.zeros((10, 3)), warmup=1, repeats=3)
    assert out["samples_per_call"] == 10 and len(out["times"]) == 3
    assert 10 / 0.08 < out["samples_per_second"] <= 10 / 0.05  # 0.05 s sleep per 10 samples
    with pytest.raises(ValueError, match="repeats"):
        measure_samples_per_second(slow, np.zeros(3), repeats=0)
