"""Kernel Inception Distance, clean-fid's definition (cleanfid.fid.kernel_distance).

Polynomial kernel k(x, y) = (x . y / d + 1)^3 on the d = 2048 pool features. For each of
``num_subsets`` subsets, m = min(n_samples, n_ref, max_subset_size) rows are drawn WITHOUT
replacement from each set (reference first, then samples, as clean-fid does; here from a seeded
generator instead of numpy's global state) and the unbiased MMD^2 estimate is taken:

    MMD^2 = [sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)] / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

KID is the mean over subsets (clean-fid's number; unscaled, multiply by 1e3 for the usual tables).

``kid_std`` is the standard deviation (ddof=0) of the per-subset values, torch-fidelity's
kernel_distance_std convention. It measures how much one subset's estimate varies between
subsets: with m = n_samples (fewer samples than the subset size, as in this pipeline) every
subset holds ALL the samples, so it reflects only which reference rows were drawn. It is not the
standard error of the mean over subsets (subsets overlap), and it does not capture the sampling
noise of the generated set itself; for that see the FID jackknife spread (spread.py).
"""
from __future__ import annotations

import numpy as np

NUM_SUBSETS = 100
MAX_SUBSET_SIZE = 1000


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_distance(features, ref_features, num_subsets: int = NUM_SUBSETS,
                    max_subset_size: int = MAX_SUBSET_SIZE, seed: int = 0) -> dict:
    """{"kid", "kid_std", "kid_subset_size"} of sample features [n, d] against reference features
    [n_ref, d] (float64 arithmetic)."""
    y_all = np.asarray(features, np.float64)
    x_all = np.asarray(ref_features, np.float64)
    if y_all.ndim != 2 or x_all.ndim != 2 or y_all.shape[1] != x_all.shape[1]:
        raise ValueError(f"KID: feature shapes {y_all.shape} and {x_all.shape} do not fit")
    if num_subsets < 1:
        raise ValueError(f"KID: num_subsets must be >= 1, got {num_subsets}")
    m = min(len(y_all), len(x_all), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs >= 2 rows on each side, got {len(y_all)} samples and {len(x_all)} reference")
    # Kernel blocks: computed whole once when that is cheaper than per subset (always the case for
    # the sample side when every subset holds all samples), else per subset. Same numbers either way.
    budget = num_subsets * m * m
    kxx, kyy, kxy = (_Block(a, b, budget) for a, b in ((x_all, x_all), (y_all, y_all), (x_all, y_all)))
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        ix = rng.choice(len(x_all), m, replace=False)
        iy = rng.choice(len(y_all), m, replace=False)
        a, b, c = kxx(ix, ix), kyy(iy, iy), kxy(ix, iy)
        within = a.sum() - np.trace(a) + b.sum() - np.trace(b)
        values[s] = within / (m * (m - 1)) - 2.0 * c.sum() / (m * m)
    return {"kid": float(values.mean()), "kid_std": float(values.std()), "kid_subset_size": m}


class _Block:
    """k(a[i], b[j]) for index sets i, j: from the whole kernel matrix when it has at most
    ``budget`` entries (and fits in ~200 MB), else computed for the rows asked."""

    def __init__(self, a: np.ndarray, b: np.ndarray, budget: int):
        self.a, self.b = a, b
        small = len(a) * len(b) <= min(budget, 25_000_000)
        self.whole = polynomial_kernel(a, b) if small else None

    def __call__(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        if self.whole is not None:
            return self.whole[np.ix_(i, j)]
        return polynomial_kernel(self.a[i], self.b[j])
