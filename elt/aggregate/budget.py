"""Which (run, L, CFG scale) to deploy under a budget: the best point of the aggregate's
points.csv within GFLOPs, throughput and parameter limits, and the points within noise of it.

    elt budget --gflops 5 [--samples-per-second 20] [--max-params 2e6] [--results results]

Reads every <metric>_points.csv (FID's is points.csv) the aggregate wrote; the quality is lower
is better. "Within noise" is the aggregate's one rule (elt.aggregate.compare): a difference is
real only when it exceeds Z times its spread, so a runner-up within noise is as good a choice.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

from elt.aggregate.compare import Z, Estimate, combine

METRIC_COLUMN = 12  # points.csv: ..., "gflops", <metric>, ... (tables.point_columns)


@dataclasses.dataclass(frozen=True)
class Choice:
    run: str
    L: int
    label: str  # the paper's N x L
    cfg_scale: float | None
    quality: float
    std: float | None
    gflops: float
    samples_per_second: float | None
    params: int

    @property
    def estimate(self) -> Estimate:
        return Estimate((self.run, self.L), self.quality, self.std)


def _num(row: dict, key: str) -> float | None:
    value = row.get(key, "")
    return None if value in ("", None) else float(value)


def read_points(results: str | Path) -> dict[str, list[Choice]]:
    """{metric: its points} from every *points.csv in ``results``."""
    out = {}
    for path in sorted(Path(results).glob("*points.csv")):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or len(header) <= METRIC_COLUMN or header[METRIC_COLUMN - 1] != "gflops":
                raise ValueError(f"{path}: not an aggregate points table (header {header[:14] if header else []})")
            metric = header[METRIC_COLUMN]
            rows = [dict(zip(header, r)) for r in reader]
        out[metric] = [Choice(r["run"], int(r["L"]), f"{r['N']}x{r['L']}", _num(r, "cfg_scale"), float(r[metric]),
                              _num(r, f"{metric}_std"), float(r["gflops"]), _num(r, "samples_per_second"),
                              int(r["params"])) for r in rows]
    if not out:
        raise ValueError(f"{results}: no points.csv (run `dvc repro aggregate` first)")
    return out


def within(points: list[Choice], gflops: float | None = None, samples_per_second: float | None = None,
           max_params: float | None = None) -> list[Choice]:
    """The points that meet every given limit (a point of unknown throughput fails a throughput limit)."""
    return [p for p in points
            if (gflops is None or p.gflops <= gflops)
            and (samples_per_second is None or (p.samples_per_second or 0.0) >= samples_per_second)
            and (max_params is None or p.params <= max_params)]


def best_and_ties(points: list[Choice]) -> tuple[Choice, list[tuple[Choice, float, float | None]]]:
    """The best point (lowest quality; ties: cheaper) and the others within noise of it, each with
    (difference to the best, its spread); a spread that is unknown never counts as a tie."""
    best = min(points, key=lambda p: (p.quality, p.gflops, p.run, p.L))
    ties = []
    for p in points:
        if p is best:
            continue
        d = combine([(1.0, p.estimate), (-1.0, best.estimate)])
        if d.real is False:
            ties.append((p, d.value, d.spread))
    return best, sorted(ties, key=lambda t: (t[0].gflops, t[0].quality))


def describe(p: Choice, metric: str) -> str:
    pm = f"{p.quality:.2f} ± {'?' if p.std is None else f'{p.std:.2f}'}"
    cfg = "" if p.cfg_scale is None else f", CFG {p.cfg_scale:g}"
    sps = "" if p.samples_per_second is None else f", {p.samples_per_second:.3g} samples/s"
    return f"{p.run} at {p.label} (L={p.L}{cfg}): {metric.upper()} {pm}, {p.gflops:.4g} GFLOPs{sps}, {p.params:,} params"


def report(results, gflops=None, samples_per_second=None, max_params=None, metric: str | None = None) -> str:
    limits = [f"{name} {op} {v:g}" for name, op, v in (("GFLOPs", "<=", gflops),
                                                         ("samples/s", ">=", samples_per_second),
                                                         ("params", "<=", max_params)) if v is not None]
    if not limits:
        raise ValueError("give a budget: --gflops, --samples-per-second and/or --max-params")
    for name, v in (("--gflops", gflops), ("--samples-per-second", samples_per_second), ("--max-params", max_params)):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a positive number, got {v:g}")
    tables = read_points(results)
    if metric is not None and metric not in tables:
        raise ValueError(f"{results}: no points of metric {metric!r} (it has: {', '.join(tables)})")
    lines = []
    for m, points in tables.items():
        if metric is not None and m != metric:
            continue
        fits = within(points, gflops, samples_per_second, max_params)
        head = f"{m.upper()}, budget {', '.join(limits)}: {len(fits)} of {len(points)} points fit"
        if not fits:
            cheapest = min(points, key=lambda p: p.gflops)
            lines += [head, f"  none: the cheapest is {describe(cheapest, m)}", ""]
            continue
        best, ties = best_and_ties(fits)
        lines += [head, f"  best: {describe(best, m)}"]
        for p, d, s in ties:
            lines.append(f"  within noise of it (diff {d:+.2f} ± {s:.2f}, |diff| <= {Z:g} x spread): {describe(p, m)}")
        if best.std is None:
            lines.append("  (its spread is unknown: no point is claimed to be worse)")
        lines.append("")
    return "\n".join(lines).rstrip()
