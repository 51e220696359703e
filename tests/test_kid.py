"""KID (clean-fid's kernel_distance) against a direct computation with explicit loops."""
import numpy as np
import pytest

from elt.evaluation.kid import kernel_distance


def k(x, y):
    """The cubic polynomial kernel, one pair at a time: (x . y / d + 1)^3."""
    return (sum(float(a) * float(b) for a, b in zip(x, y)) / len(x) + 1.0) ** 3


def mmd2_loops(x, y):
    """Unbiased MMD^2: within-set pairs i != j over m(m-1), cross pairs over all i, j over m^2."""
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2.0 * xy / (m * m)


def test_whole_set_subsets_equal_the_direct_unbiased_mmd():
    # Subset size = set size: every subset is the whole set (permuted), so KID is deterministic.
    rng = np.random.default_rng(0)
    samples, ref = rng.normal(size=(7, 5)), rng.normal(0.4, 1.3, size=(7, 5))
    want = mmd2_loops(ref, samples)
    assert want > 0.01  # a non-trivial value, not a cancellation to ~0
    got = kernel_distance(samples, ref, num_subsets=5, max_subset_size=1000, seed=3)
    assert got["kid_subset_size"] == 7
    assert got["kid"] == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert got["kid_std"] < 1e-10 * abs(want)  # the same set every time


def test_subsets_follow_clean_fid_drawing_and_std_is_over_subsets():
    # m = min(n, n_ref, max_subset_size); per subset m reference rows then m sample rows, without
    # replacement, from the seeded generator; kid = mean, kid_std = std (ddof 0) over subsets.
    rng = np.random.default_rng(1)
    samples, ref = rng.normal(size=(9, 4)), rng.normal(0.3, 1.0, size=(12, 4))
    got = kernel_distance(samples, ref, num_subsets=6, max_subset_size=5, seed=11)
    draw = np.random.default_rng(11)
    values = []
    for _ in range(6):
        x = ref[draw.choice(12, 5, replace=False)]
        y = samples[draw.choice(9, 5, replace=False)]
        values.append(mmd2_loops(x, y))
    assert got["kid_subset_size"] == 5
    assert got["kid"] == pytest.approx(np.mean(values), rel=1e-10)
    assert got["kid_std"] == pytest.approx(np.std(values), rel=1e-8)
    assert got["kid_std"] > 0
    again = kernel_distance(samples, ref, num_subsets=6, max_subset_size=5, seed=11)
    assert again == got
    assert kernel_distance(samples, ref, num_subsets=6, max_subset_size=5, seed=12)["kid"] != got["kid"]


def test_same_distribution_is_near_zero_and_a_shift_is_clearly_positive():
    rng = np.random.default_rng(2)
    d = 64
    ref = rng.normal(size=(1000, d))
    same = rng.normal(size=(200, d))
    shifted = rng.normal(size=(200, d)) + 0.5
    a = kernel_distance(same, ref, num_subsets=50, seed=0)
    b = kernel_distance(shifted, ref, num_subsets=50, seed=0)
    # Unbiased: the same distribution averages ~0 (either sign); its noise is ~kid_std.
    assert abs(a["kid"]) < 3 * a["kid_std"] + 1e-3
    assert b["kid"] > 0.05 and b["kid"] > 20 * abs(a["kid"]) and b["kid"] > 10 * b["kid_std"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="do not fit"):
        kernel_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=">= 2 rows"):
        kernel_distance(np.zeros((1, 3)), np.zeros((4, 3)))
