"""Aggregate stage: every grid run's eval.json -> results/ (table, Pareto front, fit, figures).

    python stages/aggregate.py --params params.yaml --runs runs --out results

Reads exactly the keys of params.yaml's `grid` (folders of removed runs are ignored) and writes
results/ atomically, plus a copy of results/metrics.json at results_metrics.json for
`dvc metrics`. Runs are aggregated per quality metric (eval.json "metric": FID, FVD, ...); FID
outputs keep their names (results/fid_vs_gflops.png), another metric's carry its own
(results/fvd_vs_gflops.png, results/fvd_points.csv). The sampling-step count shown in
table.md comes from each eval.json's "sampling_steps" (or "steps") key, which the evaluate stage
writes; params.yaml is read for the grid only (steps now live per family there).

`--floor` (default data/floor/floor.json) is the real-data floor the floor stage writes: the
metric of held-out real images and of their tokenizer reconstructions at the runs' sample
count. A missing file is stated in summary.md ("no floor computed"); a malformed one stops the
stage with one line naming the file and key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout without `pip install -e`

from elt.aggregate import EvalFileError, build_report, write_report  # noqa: E402
from elt.aggregate.collect import metric_label  # noqa: E402
from elt.config import parse_params  # noqa: E402


def _grid_entry(point) -> dict:
    """The grid entry's keys that eval.json must agree with.

    Only these attributes are read so that the rest of elt.config can change freely; a grid
    point without a family is a MaskGIT run.
    """
    return {"scale": point.scale, "N": point.N, "L_max": point.L_max, "ilsd": point.ilsd,
            "kind": point.kind, "family": getattr(point, "family", "maskgit")}


def _read_grid(path: Path) -> dict[str, dict]:
    """The grid's entries, validated by elt.config (errors name the key).

    parse_params rather than load_params: the latter also checks the dataset name against
    tensorflow-datasets, a slow import that aggregation does not need.
    """
    if not path.is_file():
        raise SystemExit(f"aggregate: params file {path} not found")
    params = parse_params(yaml.safe_load(path.read_text()) or {}, source=str(path))
    return {name: _grid_entry(point) for name, point in params.grid.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--metrics", type=Path, default=None,
                        help="copy of metrics.json for `dvc metrics` (default: <out>_metrics.json "
                             "beside the out folder; DVC cannot track a metrics file inside it)")
    parser.add_argument("--floor", type=Path, default=Path("data/floor/floor.json"),
                        help="real-data floor JSON (missing file: no floor, said in summary.md)")
    args = parser.parse_args(argv)
    metrics = args.metrics or args.out.with_name(f"{args.out.name}_metrics.json")
    grid = _read_grid(args.params)
    try:
        report = build_report(grid, args.runs, floor=args.floor)
    except (EvalFileError, ValueError) as err:
        # A bad input is the user's to fix: one line naming the file and key, no traceback.
        raise SystemExit(f"aggregate: {err}") from None
    out = write_report(report, args.out, metrics_path=metrics)
    print(f"aggregate: {len(report.points)} points from {len(report.runs)} runs -> {out}")
    for g in report.groups:
        std = "?" if g.best.quality_std is None else f"{g.best.quality_std:.3f}"
        print(f"aggregate: {g.label}: {len(g.points)} points, {len(g.front)} on the front, "
              f"best {metric_label(g.metric)} {g.best.quality:.3f} ± {std} "
              f"({g.best.run} L={g.best.L})")
        if not g.fit.ok:
            print(f"aggregate: {g.label}: no power-law fit: {g.fit.reason}")
    _log_summary_run(report, Path(out))
    return 0


def _log_summary_run(report, out: Path) -> None:
    """The MLflow summary run: headline metrics, the Pareto table and the figures (best effort)."""
    from elt.tracking import RunTracker

    tracker = RunTracker.for_aggregate(stage="aggregate")
    tracker.log_metrics({k: v for k, v in report.metrics().items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for g in report.groups:
        tracker.log_dict(g.pareto_json(), g.name("pareto.json"))
    for f in sorted(out.glob("*.md")) + sorted(out.glob("*.png")) + sorted(out.glob("*.csv")):
        tracker.log_artifact(str(f))
    tracker.end()


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
