"""Pareto front of FID vs. inference GFLOPs and the power-law fit of the paper's Fig. 4.

Both objectives are minimised: a configuration is worth serving only if no other one is at least
as cheap and at least as good. The paper fits FID = a * G^-b + c over the front points
(a = 1922.5, b = 0.95, c = 1.48 on ImageNet); c is the FID floor that more compute cannot beat.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from scipy import optimize

T = TypeVar("T")


def _default_key(point: Any) -> tuple[float, float]:
    """(gflops, fid) of a pair, a mapping with those keys, or an object with those attributes."""
    if isinstance(point, dict):
        return point["gflops"], point["fid"]
    if hasattr(point, "gflops") and hasattr(point, "fid"):
        return point.gflops, point.fid
    gflops, fid = point
    return gflops, fid


def pareto_front(
    points: Sequence[T], key: Callable[[T], tuple[float, float]] | None = None
) -> list[T]:
    """Non-dominated points (minimise GFLOPs and FID), sorted by GFLOPs ascending.

    A point is dominated when another one has GFLOPs <= and FID <= with at least one strict.
    Ties: of points with equal GFLOPs only the lowest FID survives; of points with equal FID only
    the cheapest survives; exact duplicates (equal in both) dominate nothing, so all copies are
    kept, in input order, because each is an equally good operating point.

    `key` maps a point to (gflops, fid); by default a pair, a dict or an object with `.gflops` and
    `.fid` is read.
    """
    key = key or _default_key
    coords = []
    for index, point in enumerate(points):
        gflops, fid = (float(v) for v in key(point))
        if not (math.isfinite(gflops) and math.isfinite(fid)):
            raise ValueError(
                f"pareto_front: point {index} has non-finite coordinates gflops={gflops}, fid={fid}"
            )
        coords.append((gflops, fid, index))
    # Sorting by (gflops, fid) puts, within one GFLOPs value, the best FID first; a sweep then
    # keeps a point iff it beats the best FID seen so far at lower or equal cost.
    coords.sort()
    front: list[int] = []
    best_fid = math.inf
    last = None
    for gflops, fid, index in coords:
        if fid < best_fid:
            front.append(index)
            best_fid = fid
            last = (gflops, fid)
        elif (gflops, fid) == last:
            front.append(index)  # exact duplicate of the last front point
    return [points[i] for i in front]


def power_law(gflops: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray | float:
    """FID = a * G^-b + c (Fig. 4)."""
    return a * np.power(gflops, -b) + c


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """Result of `fit_power_law`: `coeffs` = (a, b, c), or None with the reason in `reason`."""

    coeffs: tuple[float, float, float] | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.coeffs is not None

    def as_dict(self) -> dict[str, Any]:
        if self.coeffs is None:
            return {"a": None, "b": None, "c": None, "reason": self.reason}
        a, b, c = self.coeffs
        return {"a": a, "b": b, "c": c, "reason": self.reason}


def _initial_guess(g: np.ndarray, f: np.ndarray) -> tuple[float, float, float]:
    """p0 from a log-log line through (G, FID - c0) with the floor c0 just below the best FID.

    A poor p0 (e.g. all ones) leaves a at a scale of 1 while the data need ~1e3, and the bounded
    solver then stalls at b = 0; the log-linear estimate starts it in the right basin.
    """
    c0 = 0.5 * float(f.min())
    excess = np.maximum(f - c0, 1e-12)
    slope, intercept = np.polyfit(np.log(g), np.log(excess), 1)
    b0 = min(max(-slope, 1e-3), 10.0)
    a0 = float(np.exp(intercept))
    return a0, b0, c0


def fit_power_law(gflops: Sequence[float], fid: Sequence[float]) -> PowerLawFit:
    """Fit FID = a * G^-b + c with a, b, c >= 0 (scipy curve_fit, trust-region reflective).

    Returns PowerLawFit(None, reason) when there are fewer than 3 points (3 unknowns), fewer than
    3 distinct GFLOPs values, non-positive GFLOPs, or when the solver fails.
    """
    g = np.asarray(gflops, dtype=np.float64)
    f = np.asarray(fid, dtype=np.float64)
    if g.shape != f.shape or g.ndim != 1:
        raise ValueError(f"fit_power_law: gflops {g.shape} and fid {f.shape} must be equal 1-D")
    if len(g) < 3:
        return PowerLawFit(None, f"need at least 3 points for 3 coefficients, got {len(g)}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(f))):
        return PowerLawFit(None, "non-finite GFLOPs or FID values")
    if np.any(g <= 0):
        return PowerLawFit(None, f"GFLOPs must be > 0 for G^-b, got min {g.min()}")
    if len(np.unique(g)) < 3:
        return PowerLawFit(None, f"need at least 3 distinct GFLOPs values, got {len(np.unique(g))}")
    p0 = _initial_guess(g, f)
    try:
        with warnings.catch_warnings():
            # With exactly 3 points there are no residual degrees of freedom, so scipy cannot
            # estimate a covariance and warns; the coefficients are still the fit we want.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            coeffs, _ = optimize.curve_fit(
                power_law,
                g,
                f,
                p0=p0,
                bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                method="trf",
                x_scale="jac",
                max_nfev=20000,
            )
    except (RuntimeError, ValueError) as err:
        return PowerLawFit(None, f"curve_fit failed: {err}")
    if not np.all(np.isfinite(coeffs)):
        return PowerLawFit(None, f"curve_fit returned non-finite coefficients {coeffs.tolist()}")
    a, b, c = (float(v) for v in coeffs)
    return PowerLawFit((a, b, c))
