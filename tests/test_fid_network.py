"""FID with the real network on real images (scikit-learn digits, upscaled): identical sets give ~0,
two random halves are close, added noise raises FID monotonically; reference statistics streamed
from an iterable equal the in-memory ones."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from elt.evaluation import fid
from elt.evaluation.inception import InceptionFeatures
from elt.evaluation.reference import compute_reference_stats
from elt.evaluation.weights import cached_fid_weights, load_fid_weights

N_HALF = 32  # per half: the Flax Inception runs ~10 img/s on 2 CPU cores


@pytest.fixture(scope="module")
def weights():
    return load_fid_weights(cached_fid_weights())


@pytest.fixture(scope="module")
def extractor(weights):
    return InceptionFeatures(weights, batch_size=16)


@pytest.fixture(scope="module")
def digits_uint8():
    images = load_digits().images  # 8x8, values 0..16
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(images))[: 2 * N_HALF]
    x = np.kron(images[idx], np.ones((4, 4)))  # 32x32, nearest upscaling
    x = np.round(x * (255.0 / 16.0)).astype(np.uint8)
    return np.repeat(x[..., None], 3, axis=-1)


def test_fid_halves_small_noise_monotonic(extractor, digits_uint8):
    a, b = digits_uint8[:N_HALF], digits_uint8[N_HALF:]
    rng = np.random.default_rng(1)
    noisy = [np.clip(b + rng.normal(0, sigma, b.shape), 0, 255).astype(np.uint8) for sigma in (24, 64, 128)]
    feats = extractor(np.concatenate([a, b, *noisy]))
    fa, fb = feats[:N_HALF], feats[N_HALF : 2 * N_HALF]
    fnoisy = [feats[(2 + i) * N_HALF : (3 + i) * N_HALF] for i in range(3)]

    # "eigh" gives the same value as "sqrtm" (test_fid.py) without sqrtm's 20-50 s per 2048-d pair.
    halves = fid.fid_from_features(fa, fb, method="eigh")
    with_noise = [fid.fid_from_features(fa, f, method="eigh") for f in fnoisy]
    assert all(x < y for x, y in zip([halves, *with_noise], with_noise)), (halves, with_noise)
    assert halves < 0.5 * with_noise[-1], (halves, with_noise)


def test_reference_stats_streamed_equal_in_memory(tmp_path, weights, digits_uint8):
    images = digits_uint8[:5]
    pairs = ((img, label) for label, img in enumerate(images))  # the dataset's (image, label) items
    out = tmp_path / "ref" / "stats.npz"
    mu, sigma, n = compute_reference_stats(pairs, weights, out, batch_size=2)  # 2 + 2 + 1
    assert n == 5
    # The in-memory reference uses the same batch size, hence the same compiled program on the same
    # padded chunks: bit-identical features on any machine. Another batch size is another program,
    # which XLA may sum in another order (bit-identical here, not guaranteed): float32 features up
    # to 8 can then move by ~1e-5 (torch vs XLA differ by 8e-6) and this 5-sample covariance by
    # ~2 * 8 * 1e-5, far above atol 1e-6. Padding not leaking is test_inception.py's uint8 test.
    mu2, sigma2, n2 = fid.stats_from_features(InceptionFeatures(weights, batch_size=2)(images))
    np.testing.assert_allclose(mu, mu2, atol=1e-5)
    np.testing.assert_allclose(sigma, sigma2, atol=1e-6)
    saved = fid.load_stats(out)
    np.testing.assert_array_equal(saved[0], mu)
    np.savez(tmp_path / "five.npz", images=images)
    mu3, sigma3, n3 = fid.compute_stats(tmp_path / "five.npz", weights=weights, batch_size=2, progress=False)
    assert n3 == 5
    np.testing.assert_allclose(mu3, mu, atol=1e-6)
    np.testing.assert_allclose(sigma3, sigma, atol=1e-7)
    with pytest.raises(ValueError, match="reference image 1: shape"):
        compute_reference_stats([images[0], images[1][:16]], weights, tmp_path / "x.npz")


def test_evaluator_reports_fid_and_unavailable_is(weights, extractor, digits_uint8):
    evaluator = fid.FIDEvaluator.__new__(fid.FIDEvaluator)
    evaluator.extractor = extractor  # reuse the compiled network
    ref_mu, ref_sigma, _ = fid.stats_from_features(extractor(digits_uint8[:N_HALF]))
    result = evaluator.evaluate(digits_uint8[:N_HALF], ref_mu, ref_sigma, progress=False, method="eigh")
    assert abs(result["fid"]) < 1e-8 * np.trace(ref_sigma) and result["n"] == N_HALF  # FID(X, X) ~ 0
    assert result["is"] is None and "classifier" in result["is_unavailable"]
