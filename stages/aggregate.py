"""Aggregate stage: every grid run's eval.json -> results/ (table, Pareto front, fit, figures).

    python stages/aggregate.py --params params.yaml --runs runs --out results

Reads exactly the keys of params.yaml's `grid` (folders of removed runs are ignored) and writes
results/ atomically, plus a copy of results/metrics.json at results_metrics.json for
`dvc metrics`. The sampling-step count shown in table.md comes from each eval.json's
"sampling_steps" (or "steps") key, else from params.yaml `sample.steps`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout without `pip install -e`

from elt.aggregate import EvalFileError, build_report, write_report  # noqa: E402
from elt.config import parse_params  # noqa: E402


def _read_params(path: Path):
    """Grid and sampling-step count, validated by elt.config (errors name the key).

    parse_params rather than load_params: the latter also checks the dataset name against
    tensorflow-datasets, a slow import that aggregation does not need.
    """
    if not path.is_file():
        raise SystemExit(f"aggregate: params file {path} not found")
    params = parse_params(yaml.safe_load(path.read_text()) or {}, source=str(path))
    return params.grid, params.sample.steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--metrics", type=Path, default=None,
                        help="copy of metrics.json for `dvc metrics` (default: <out>_metrics.json "
                             "beside the out folder; DVC cannot track a metrics file inside it)")
    args = parser.parse_args(argv)
    metrics = args.metrics or args.out.with_name(f"{args.out.name}_metrics.json")
    grid, steps = _read_params(args.params)
    try:
        report = build_report(grid, args.runs, steps=steps)
    except (EvalFileError, ValueError) as err:
        # A bad input is the user's to fix: one line naming the file and key, no traceback.
        raise SystemExit(f"aggregate: {err}") from None
    out = write_report(report, args.out, metrics_path=metrics)
    m = report.metrics()
    print(f"aggregate: {m['n_points']} points from {m['n_runs']} runs, "
          f"{m['n_front_points']} on the front, best FID {m['best_fid']:.3f} "
          f"({m['best_fid_run']} L={m['best_fid_L']}) -> {out}")
    if not report.fit.ok:
        print(f"aggregate: no power-law fit: {report.fit.reason}")
    _log_summary_run(report, Path(out))
    return 0


def _log_summary_run(report, out: Path) -> None:
    """The MLflow summary run: headline metrics, the Pareto table and the figures (best effort)."""
    from elt.tracking import RunTracker

    tracker = RunTracker.for_aggregate(stage="aggregate")
    tracker.log_metrics({k: v for k, v in report.metrics().items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    tracker.log_dict(report.pareto_json(), "pareto.json")
    for f in sorted(out.glob("*.md")) + sorted(out.glob("*.png")) + sorted(out.glob("*.csv")):
        tracker.log_artifact(str(f))
    tracker.end()


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
