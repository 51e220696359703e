"""Pareto front of quality vs. inference GFLOPs and the power-law fit of the paper's Fig. 4.

Quality is a lower-is-better metric (FID, FVD); callers pass points of one metric only.
Both objectives are minimised: a configuration is worth serving only if no other one is at least
as cheap and at least as good. The paper fits FID = a * G^-b + c over the front points
(a = 1922.5, b = 0.95, c = 1.48 on ImageNet); c is the floor that more compute cannot beat.
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
    """(gflops, quality) of a pair, a mapping with keys gflops and fid, or an object with
    attributes gflops and quality (elt.aggregate.collect.Point)."""
    if isinstance(point, dict):
        return point["gflops"], point["fid"]
    if hasattr(point, "gflops") and hasattr(point, "quality"):
        return point.gflops, point.quality
    gflops, quality = point
    return gflops, quality


def pareto_front(
    points: Sequence[T], key: Callable[[T], tuple[float, float]] | None = None
) -> list[T]:
    """Non-dominated points (minimise GFLOPs and quality), sorted by GFLOPs ascending.

    A point is dominated when another one has GFLOPs <= and quality <= with at least one strict.
    Ties: of points with equal GFLOPs only the best quality survives; of points with equal quality
    only the cheapest survives; exact duplicates (equal in both) dominate nothing, so all copies
    are kept, in input order, because each is an equally good operating point.

    `key` maps a point to (gflops, quality); by default a pair, a dict with "gflops" and "fid" or
    an object with `.gflops` and `.quality` is read.
    """
    # FID and FVD values are on unrelated scales: one front over both would be meaningless.
    metrics = {p.metric for p in points if hasattr(p, "metric")}
    if len(metrics) > 1:
        raise ValueError(f"pareto_front: points of different metrics {sorted(metrics)} "
                         "cannot share a front; pass one metric's points at a time")
    key = key or _default_key
    coords = []
    for index, point in enumerate(points):
        gflops, quality = (float(v) for v in key(point))
        if not (math.isfinite(gflops) and math.isfinite(quality)):
            raise ValueError(f"pareto_front: point {index} has non-finite coordinates "
                             f"gflops={gflops}, quality={quality}")
        coords.append((gflops, quality, index))
    # Sorting by (gflops, quality) puts, within one GFLOPs value, the best quality first; a sweep
    # then keeps a point iff it beats the best quality seen so far at lower or equal cost.
    coords.sort()
    front: list[int] = []
    best = math.inf
    last = None
    for gflops, quality, index in coords:
        if quality < best:
            front.append(index)
            best = quality
            last = (gflops, quality)
        elif (gflops, quality) == last:
            front.append(index)  # exact duplicate of the last front point
    return [points[i] for i in front]


def power_law(gflops: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray | float:
    """Q = a * G^-b + c (Fig. 4, with Q = FID)."""
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
    """p0 from a log-log line through (G, Q - c0) with the floor c0 below the best quality Q.

    A poor p0 (e.g. all ones) leaves a at a scale of 1 while the data need ~1e3, and the bounded
    solver then stalls at b = 0; the log-linear estimate starts it in the right basin.
    """
    c0 = 0.5 * float(f.min())
    excess = np.maximum(f - c0, 1e-12)
    slope, intercept = np.polyfit(np.log(g), np.log(excess), 1)
    b0 = min(max(-slope, 1e-3), 10.0)
    a0 = float(np.exp(intercept))
    return a0, b0, c0


def fit_power_law(gflops: Sequence[float], quality: Sequence[float]) -> PowerLawFit:
    """Fit Q = a * G^-b + c with a, b, c >= 0 (scipy curve_fit, trust-region reflective).

    Returns PowerLawFit(None, reason) when there are fewer than 3 points (3 unknowns), fewer than
    3 distinct GFLOPs values, non-positive GFLOPs, or when the solver fails.
    """
    g = np.asarray(gflops, dtype=np.float64)
    f = np.asarray(quality, dtype=np.float64)
    if g.shape != f.shape or g.ndim != 1:
        raise ValueError(
            f"fit_power_law: gflops {g.shape} and quality {f.shape} must be equal 1-D")
    if len(g) < 3:
        return PowerLawFit(None, f"need at least 3 points for 3 coefficients, got {len(g)}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(f))):
        return PowerLawFit(None, "non-finite GFLOPs or quality values")
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
