"""Aggregate stage: every grid run's eval.json -> results/ (table, Pareto front, fit, figures).

    python stages/aggregate.py --params params.yaml --runs runs --out results

Reads exactly the keys of params.yaml's `grid` (folders of removed runs are ignored) and writes
results/ atomically. The sampling-step count shown in table.md comes from each eval.json's
"steps" key, else from params.yaml `sample.steps` when present.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from elt.aggregate import build_report, write_report


def _read_params(path: Path) -> tuple[dict, int | None]:
    if not path.is_file():
        raise SystemExit(f"aggregate: params file {path} not found")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise SystemExit(f"aggregate: {path} must hold a mapping at top level")
    grid = params.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise SystemExit(f"aggregate: {path}: key 'grid' must be a non-empty mapping of "
                         f"run name -> settings, got {grid!r}")
    sample = params.get("sample")
    steps = sample.get("steps") if isinstance(sample, dict) else None
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise SystemExit(f"aggregate: {path}: key 'sample.steps' must be an integer >= 1, "
                         f"got {steps!r}")
    return grid, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    grid, steps = _read_params(args.params)
    report = build_report(grid, args.runs, steps=steps)
    out = write_report(report, args.out)
    m = report.metrics()
    print(f"aggregate: {m['n_points']} points from {m['n_runs']} runs, "
          f"{m['n_front_points']} on the front, best FID {m['best_fid']:.3f} "
          f"({m['best_fid_run']} L={m['best_fid_L']}) -> {out}")
    if not report.fit.ok:
        print(f"aggregate: no power-law fit: {report.fit.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
