"""Pareto front and power-law fit against hand computation and a brute-force reference."""

import itertools
import math

import numpy as np
import pytest

from elt.aggregate.pareto import fit_power_law, pareto_front, power_law


def test_front_hand_example_with_ties():
    points = [
        (4.0, 1.0),   # most expensive, best FID: on the front
        (1.0, 5.0),   # cheapest: on the front
        (2.0, 4.0),   # dominated by (2, 3) at equal cost
        (2.0, 3.0),   # on the front
        (3.0, 3.0),   # equal FID to (2, 3) but dearer: dominated
        (1.0, 5.0),   # exact duplicate of a front point: kept as well
        (5.0, 2.0),   # dominated by (4, 1)
        (3.5, 2.5),   # on the front
    ]
    front = pareto_front(points)
    assert front == [(1.0, 5.0), (1.0, 5.0), (2.0, 3.0), (3.5, 2.5), (4.0, 1.0)]


def test_front_reads_dicts_and_custom_key():
    pts = [{"gflops": 2, "fid": 1, "name": "a"}, {"gflops": 1, "fid": 3, "name": "b"},
           {"gflops": 3, "fid": 2, "name": "c"}]
    assert [p["name"] for p in pareto_front(pts)] == ["b", "a"]
    named = [("x", 1.0, 9.0), ("y", 2.0, 1.0), ("z", 2.0, 1.5)]
    assert pareto_front(named, key=lambda p: (p[1], p[2])) == [("x", 1.0, 9.0), ("y", 2.0, 1.0)]


def test_front_matches_brute_force_definition():
    rng = np.random.default_rng(0)
    # Integer coordinates make ties (equal cost, equal FID, duplicates) frequent.
    pts = [tuple(map(float, p)) for p in rng.integers(0, 8, size=(60, 2))]

    def dominated(p):
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)

    expected = sorted((p for p in pts if not dominated(p)))
    assert sorted(pareto_front(pts)) == expected
    front = pareto_front(pts)
    assert [p[0] for p in front] == sorted(p[0] for p in front)
    # Along the front FID strictly falls as GFLOPs rise (duplicates aside).
    distinct = list(dict.fromkeys(front))
    assert all(a[1] > b[1] and a[0] < b[0] for a, b in itertools.pairwise(distinct))


def test_front_rejects_nan():
    with pytest.raises(ValueError, match="point 1"):
        pareto_front([(1.0, 2.0), (2.0, math.nan)])


def test_fit_recovers_paper_fig4_coefficients():
    a, b, c = 1922.5, 0.95, 1.48
    g = np.array([120.0, 350.0, 700.0, 1500.0, 3700.0, 3900.0, 9000.0])
    fit = fit_power_law(g, power_law(g, a, b, c))
    assert fit.ok and fit.reason == ""
    np.testing.assert_allclose(fit.coeffs, (a, b, c), rtol=1e-5)


def test_fit_exactly_three_points_and_small_noise():
    a, b, c = 40.0, 0.5, 2.0
    g = np.array([1.0, 4.0, 16.0])
    f = power_law(g, a, b, c)  # 42, 22, 12
    np.testing.assert_allclose(f, [42.0, 22.0, 12.0])
    fit = fit_power_law(g, f)
    np.testing.assert_allclose(fit.coeffs, (a, b, c), rtol=1e-5)

    g = np.geomspace(1, 1000, 20)
    noise = 1 + 0.01 * np.random.default_rng(1).standard_normal(20)
    fit = fit_power_law(g, power_law(g, a, b, c) * noise)
    np.testing.assert_allclose(fit.coeffs, (a, b, c), rtol=0.1)


def test_fit_respects_bounds():
    # FID rising with compute would want b < 0; the bounds keep b >= 0 and c >= 0.
    fit = fit_power_law([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert fit.ok
    assert min(fit.coeffs) >= 0.0


@pytest.mark.parametrize("g, f, reason", [
    ([1.0, 2.0], [3.0, 2.0], "at least 3 points"),
    ([1.0, 1.0, 2.0], [3.0, 2.5, 2.0], "3 distinct GFLOPs"),
    ([0.0, 1.0, 2.0], [3.0, 2.5, 2.0], "GFLOPs must be > 0"),
    ([1.0, 2.0, 3.0], [3.0, math.inf, 2.0], "non-finite"),
])
def test_fit_returns_none_with_reason(g, f, reason):
    fit = fit_power_law(g, f)
    assert fit.coeffs is None and not fit.ok
    assert reason in fit.reason
    assert fit.as_dict() == {"a": None, "b": None, "c": None, "reason": fit.reason}


def test_fit_is_least_squares_optimal_against_grid_search():
    """Independent reference: for fixed b the model is linear in (a, c), solved exactly with
    non-negative least squares (scipy nnls) on a fine grid of b; curve_fit must do as well."""
    from scipy.optimize import nnls

    g = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    f = np.array([30.0, 20.0, 14.0, 12.0, 11.5])
    best_sse = np.inf
    for b in np.linspace(0.0, 4.0, 4001):
        design = np.stack([g ** -b, np.ones_like(g)], axis=1)
        _, residual_norm = nnls(design, f)
        best_sse = min(best_sse, residual_norm ** 2)
    fit = fit_power_law(g, f)
    sse = float(np.sum((power_law(g, *fit.coeffs) - f) ** 2))
    assert sse <= best_sse * (1 + 1e-6) + 1e-12
    assert sse == pytest.approx(best_sse, rel=1e-3)


def _point(metric, gflops, quality, run="r", L=1):
    from elt.aggregate.collect import Point

    return Point(run=run, family="f", scale="s", kind="elt", N=1, L=L, L_max=2, ilsd=True,
                 params=1, params_total=None, gflops=gflops, metric=metric,
                 modality="image" if metric == "fid" else "video", quality=quality,
                 inception_score=None, samples_per_second=None, steps=None)


def test_front_of_points_reads_quality_and_refuses_mixed_metrics():
    fid = [_point("fid", 1.0, 30.0), _point("fid", 2.0, 40.0), _point("fid", 3.0, 10.0)]
    fvd = [_point("fvd", 0.5, 300.0), _point("fvd", 4.0, 200.0)]
    # By hand: (2, 40) is dominated by (1, 30); both FVD points are on their own front.
    assert [(p.gflops, p.quality) for p in pareto_front(fid)] == [(1.0, 30.0), (3.0, 10.0)]
    assert pareto_front(fvd) == fvd
    # One front over both would rank the FVD (0.5, 300) ahead of the FID points and drop the
    # FVD (4, 200) for an FID value: meaningless, so it is refused.
    with pytest.raises(ValueError, match=r"different metrics \['fid', 'fvd'\]"):
        pareto_front(fid + fvd)
