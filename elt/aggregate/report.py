"""Build the aggregate of a grid (as data) and write it to a results folder atomically.

`build_report` returns everything as Python objects so other consumers (the MLflow summary run)
can reuse it without parsing files; `write_report` renders the files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from elt.aggregate import plots, tables
from elt.aggregate.collect import Point, RunEval, load_runs
from elt.aggregate.compare import (IlsdVanillaPair, LoopedVsUnique, ilsd_vanilla_pairs,
                                   looped_vs_unique)
from elt.aggregate.pareto import PowerLawFit, fit_power_law, pareto_front

FIGURES = ("fid_vs_gflops.png", "fid_vs_params.png", "fid_vs_loops.png")


@dataclasses.dataclass(frozen=True)
class Report:
    runs: tuple[RunEval, ...]
    points: tuple[Point, ...]  # grid order, then L
    front: tuple[Point, ...]  # by GFLOPs
    fit: PowerLawFit  # over the front points, as in Fig. 4
    pairs: tuple[IlsdVanillaPair, ...]
    vs_unique: tuple[LoopedVsUnique, ...]

    def metrics(self) -> dict[str, Any]:
        """Headline numbers for `dvc metrics show` and MLflow (flat, JSON-safe)."""
        best = min(self.points, key=lambda p: (p.fid, p.gflops))
        gaps = [g for g in (p.mean_gap_below_L_max for p in self.pairs) if g is not None]
        diffs = [c.fid_diff for c in self.vs_unique]
        fit = self.fit.as_dict()
        return {
            "n_runs": len(self.runs),
            "n_points": len(self.points),
            "n_front_points": len(self.front),
            "best_fid": best.fid,
            "best_fid_run": best.run,
            "best_fid_L": best.L,
            "best_fid_gflops": best.gflops,
            "fit_a": fit["a"],
            "fit_b": fit["b"],
            "fit_c": fit["c"],
            "n_ilsd_vanilla_pairs": len(self.pairs),
            # Mean over pairs of each pair's mean FID(vanilla) - FID(ILSD) over L < L_max.
            "ilsd_vanilla_mean_gap": sum(gaps) / len(gaps) if gaps else None,
            "n_looped_unique_pairs": len(self.vs_unique),
            "looped_minus_unique_mean_fid": sum(diffs) / len(diffs) if diffs else None,
        }

    def pareto_json(self) -> dict[str, Any]:
        return {
            "objectives": "minimise gflops and fid",
            "front": [{"run": p.run, "L": p.L, "label": p.label, "kind": p.kind,
                       "scale": p.scale, "gflops": p.gflops, "fid": p.fid} for p in self.front],
            "fit": {"formula": "fid = a * gflops**-b + c", "fitted_on": "front",
                    **self.fit.as_dict()},
        }


def build_report(grid: Mapping[str, Any], runs_dir: str | Path,
                 steps: int | None = None) -> Report:
    """Read the grid's eval.json files and compute the front, fit and comparisons."""
    runs = load_runs(grid, runs_dir, steps=steps)
    points = tuple(p for r in runs for p in r.points)
    front = tuple(pareto_front(points))
    fit = fit_power_law([p.gflops for p in front], [p.fid for p in front])
    return Report(runs=tuple(runs), points=points, front=front, fit=fit,
                  pairs=tuple(ilsd_vanilla_pairs(runs)), vs_unique=tuple(looped_vs_unique(runs)))


def _write_files(report: Report, out: Path) -> None:
    (out / "plots").mkdir(parents=True)
    (out / "points.csv").write_text(tables.points_csv(report.points, report.front))
    (out / "table.md").write_text(tables.table_markdown(report.points, report.front))
    (out / "summary.md").write_text(
        tables.summary_markdown(report.pairs, report.vs_unique, report.front, report.fit))
    (out / "pareto.json").write_text(json.dumps(report.pareto_json(), indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(report.metrics(), indent=2) + "\n")
    for name, text in plots.plot_data(report.runs, report.front, report.pairs).items():
        (out / "plots" / name).write_text(text)
    plots.fid_vs_gflops_figure(report.runs, report.front, report.fit, out / FIGURES[0])
    plots.fid_vs_params_figure(report.runs, out / FIGURES[1])
    plots.fid_vs_loops_figure(report.runs, report.pairs, out / FIGURES[2])


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Report, out_dir: str | Path,
                 metrics_path: str | Path | None = None) -> Path:
    """Write all result files into `out_dir`, replacing it only once everything is written.

    Files go to a temporary sibling folder that is renamed into place at the end, so a failure
    leaves either the previous results or none, never a complete-looking partial folder.
    `metrics_path`, when given, receives a copy of metrics.json outside `out_dir` (DVC cannot
    track a metrics file inside a directory output), written after the folder is in place.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_files(report, tmp / "new")
        old = tmp / "old"
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp / "new", out)
        except OSError:
            if old.exists():
                os.replace(old, out)  # put the previous results back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if metrics_path is not None:
        _write_text_atomic(Path(metrics_path), (out / "metrics.json").read_text())
    return out
