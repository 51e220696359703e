"""Build the aggregate of a grid (as data) and write it to a results folder atomically.

`build_report` returns everything as Python objects so other consumers (the MLflow summary run)
can reuse it without parsing files; `write_report` renders the files.

Runs are grouped by (modality, metric): each group gets its own front, fit, comparisons, tables
and figures, named by `output_name` (FID keeps the names it had before other metrics existed).
metrics.json holds every group's headline numbers under keys named the same way.

The headline front, its power-law fit and the looped-vs-unique numbers use ELT runs and unique
baselines only (compare.FRONT_KINDS); vanilla looping is an ablation that stays in the points
table and the ILSD-vs-vanilla comparison (Fig. 8).

Headline numbers carry their spreads (metrics.json "<key>_std", None when unknown), and the
real-data floor (elt.aggregate.floor) is shown beside them when its file exists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from elt.aggregate import plots, tables
from elt.aggregate.collect import LEGACY_METRIC, Point, RunEval, load_runs, metric_label
from elt.aggregate.compare import (FRONT_KINDS, IlsdVanillaPair, LoopedVsUnique,
                                   ilsd_vanilla_pairs, looped_vs_unique, mean_gap_over_pairs,
                                   mean_looped_minus_unique)
from elt.aggregate.floor import Floor, load_floor
from elt.aggregate.pareto import PowerLawFit, fit_power_law, pareto_front

# Output names are templates: "{m}" stands for the metric (see output_name).
FIGURE_TEMPLATES = ("{m}_vs_gflops.png", "{m}_vs_params.png", "{m}_vs_loops.png")
TEXT_TEMPLATES = ("points.csv", "table.md", "summary.md", "pareto.json")


def output_name(metric: str, template: str) -> str:
    """A file name (or metrics.json key) of one metric's output.

    "{m}" in the template becomes the metric: fid_vs_gflops.png, fvd_vs_gflops.png. A template
    that names no metric is FID's name from before there were other metrics (points.csv, fit_a):
    FID keeps it, so existing outputs and MLflow keys keep their names, and any other metric
    gets its own prefix (fvd_points.csv, fvd_fit_a).
    """
    if "{m}" in template:
        return template.format(m=metric)
    return template if metric == LEGACY_METRIC else f"{metric}_{template}"


@dataclasses.dataclass(frozen=True)
class MetricReport:
    """The aggregate of the runs of one (modality, metric): its own front, fit and comparisons.

    FID and FVD values are on unrelated scales, so nothing here ever mixes two metrics.
    """

    metric: str
    modality: str
    runs: tuple[RunEval, ...]  # grid order
    points: tuple[Point, ...]  # grid order, then L
    front: tuple[Point, ...]  # by GFLOPs, of the FRONT_KINDS points only (no vanilla ablation)
    fit: PowerLawFit  # over the front points, as in Fig. 4
    pairs: tuple[IlsdVanillaPair, ...]
    vs_unique: tuple[LoopedVsUnique, ...]  # iso-compute: every (ELT run, L) vs. depth N * L
    floor: Floor | None = None  # the real-data floor file's content (all metrics), if any
    floor_path: str | None = None  # where it was looked for (named when it is missing)

    @property
    def label(self) -> str:
        return f"{metric_label(self.metric)} ({self.modality})"

    @property
    def best(self) -> Point:
        """The headline's best point: ELT and unique runs only, like the front (the lowest metric
        on the front is the lowest of every eligible point); vanilla is an ablation."""
        return min(self.front or self.points, key=lambda p: (p.quality, p.gflops))

    def name(self, template: str) -> str:
        return output_name(self.metric, template)

    def files(self) -> list[str]:
        """Paths this metric's outputs take under the results folder."""
        csvs = plots.plot_data(self.runs, self.front, self.pairs, self.metric)
        return ([self.name(t) for t in TEXT_TEMPLATES + FIGURE_TEMPLATES]
                + [f"plots/{self.name(t)}" for t in csvs])

    def metrics(self) -> dict[str, Any]:
        """Headline numbers of this metric, keys named by output_name (FID: today's keys)."""
        best = self.best
        # Mean over pairs of each pair's mean Q(vanilla) - Q(ILSD) over L < L_max, and over the
        # iso-compute pairs (ELT run at L vs. unique run of depth N * L) of Q(ELT) - Q(unique);
        # vanilla runs take no part in the latter. Spreads: compare.combine.
        gap = mean_gap_over_pairs(self.pairs)
        diff = mean_looped_minus_unique(self.vs_unique)
        fit = self.fit.as_dict()
        n = self.name
        floor = {kind: None if self.floor is None else self.floor.get(self.metric, kind)
                 for kind in ("real", "reconstruction")}

        def attr(obj: Any, name: str) -> Any:
            return None if obj is None else getattr(obj, name)
        return {
            n("n_front_points"): len(self.front),
            n("best_{m}"): best.quality,
            n("best_{m}_std"): best.quality_std,
            n("best_{m}_run"): best.run,
            n("best_{m}_L"): best.L,
            n("best_{m}_gflops"): best.gflops,
            n("fit_a"): fit["a"],
            n("fit_b"): fit["b"],
            n("fit_c"): fit["c"],
            n("n_ilsd_vanilla_pairs"): len(self.pairs),
            n("ilsd_vanilla_mean_gap"): attr(gap, "value"),
            n("ilsd_vanilla_mean_gap_std"): attr(gap, "spread"),
            n("n_looped_unique_pairs"): len(self.vs_unique),
            n("looped_minus_unique_mean_{m}"): attr(diff, "value"),
            n("looped_minus_unique_mean_{m}_std"): attr(diff, "spread"),
            # The real-data floor (None when not computed): mean and spread of each kind.
            n("floor_real_{m}"): attr(floor["real"], "mean"),
            n("floor_real_{m}_std"): attr(floor["real"], "spread"),
            n("floor_reconstruction_{m}"): attr(floor["reconstruction"], "mean"),
            n("floor_reconstruction_{m}_std"): attr(floor["reconstruction"], "spread"),
        }

    def pareto_json(self) -> dict[str, Any]:
        m = self.metric
        return {
            "metric": m,
            "modality": self.modality,
            "objectives": f"minimise gflops and {m}",
            "front_kinds": list(FRONT_KINDS),  # vanilla looping (an ablation) is left out
            "front": [{"run": p.run, "L": p.L, "label": p.label, "kind": p.kind,
                       "scale": p.scale, "gflops": p.gflops, m: p.quality,
                       f"{m}_std": p.quality_std} for p in self.front],
            "note": "front computed on the point estimates; a point within noise of a "
                    "neighbour may be on or off it by chance",
            "fit": {"formula": f"{m} = a * gflops**-b + c", "fitted_on": "front",
                    **self.fit.as_dict()},
        }


@dataclasses.dataclass(frozen=True)
class Report:
    runs: tuple[RunEval, ...]  # grid order, all metrics
    points: tuple[Point, ...]  # grid order, then L
    groups: tuple[MetricReport, ...]  # one per (modality, metric), by first run in the grid

    def group(self, metric: str) -> MetricReport:
        """The part of the report for `metric` (KeyError when the grid has none)."""
        for g in self.groups:
            if g.metric == metric:
                return g
        raise KeyError(f"no run of the grid is measured with {metric!r} "
                       f"(metrics: {[g.metric for g in self.groups]})")

    def files(self) -> list[str]:
        """Every path written under the results folder, relative to it."""
        return ["metrics.json"] + [f for g in self.groups for f in g.files()]

    def metrics(self) -> dict[str, Any]:
        """Headline numbers for `dvc metrics show` and MLflow (flat, JSON-safe)."""
        out: dict[str, Any] = {"n_runs": len(self.runs), "n_points": len(self.points)}
        for g in self.groups:
            out.update(g.metrics())
        return out


def _metric_report(metric: str, modality: str, runs: Sequence[RunEval],
                   floor: Floor | None = None, floor_path: str | None = None) -> MetricReport:
    points = tuple(p for r in runs for p in r.points)
    front = tuple(pareto_front([p for p in points if p.kind in FRONT_KINDS]))
    fit = fit_power_law([p.gflops for p in front], [p.quality for p in front])
    return MetricReport(metric=metric, modality=modality, runs=tuple(runs), points=points,
                        front=front, fit=fit, pairs=tuple(ilsd_vanilla_pairs(runs)),
                        vs_unique=tuple(looped_vs_unique(runs)), floor=floor,
                        floor_path=floor_path)


def _group_runs(runs: Sequence[RunEval]) -> dict[tuple[str, str], list[RunEval]]:
    """Runs by (modality, metric), groups in order of their first run.

    Output names carry the metric only, so one metric on two modalities (FID of images and FID
    of video frames) would write both into one file: refused, naming a run of each.
    """
    groups: dict[tuple[str, str], list[RunEval]] = {}
    for run in runs:
        groups.setdefault((run.modality, run.metric), []).append(run)
    first: dict[str, RunEval] = {}
    for (modality, metric), members in groups.items():
        other = first.setdefault(metric, members[0])
        if other.modality != modality:
            raise ValueError(
                f"metric {metric!r} is used for two modalities: {other.modality!r} "
                f"(run {other.run!r}) and {modality!r} (run {members[0].run!r}); their outputs "
                "would share file names")
    return groups


def build_report(grid: Mapping[str, Any], runs_dir: str | Path, steps: int | None = None,
                 floor: str | Path | None = None) -> Report:
    """Read the grid's eval.json files and compute, per metric, the front, fit and comparisons.

    `floor` is the real-data floor file (elt.aggregate.floor); a missing file means no floor was
    computed (said in summary.md), a malformed one raises FloorFileError (a ValueError).
    """
    floor_data = load_floor(floor)  # before the runs: a bad floor file fails fast as well
    runs = load_runs(grid, runs_dir, steps=steps)
    floor_path = None if floor is None else str(floor)
    groups = tuple(_metric_report(metric, modality, members, floor_data, floor_path)
                   for (modality, metric), members in _group_runs(runs).items())
    return Report(runs=tuple(runs), points=tuple(p for r in runs for p in r.points),
                  groups=groups)


def _write_metric_files(g: MetricReport, out: Path) -> None:
    n = g.name
    (out / n("points.csv")).write_text(tables.points_csv(g.points, g.front, g.metric))
    (out / n("table.md")).write_text(tables.table_markdown(g.points, g.front, g.metric))
    (out / n("summary.md")).write_text(tables.summary_markdown(
        g.pairs, g.vs_unique, g.front, g.fit, g.metric, g.modality, best=g.best, floor=g.floor,
        floor_path=g.floor_path))
    (out / n("pareto.json")).write_text(json.dumps(g.pareto_json(), indent=2) + "\n")
    for template, text in plots.plot_data(g.runs, g.front, g.pairs, g.metric).items():
        (out / "plots" / n(template)).write_text(text)
    gflops, params, loops = (out / n(t) for t in FIGURE_TEMPLATES)
    floor = plots.floor_lines(g.floor, g.metric)
    plots.vs_gflops_figure(g.runs, g.front, g.fit, gflops, g.metric, floor)
    plots.vs_params_figure(g.runs, params, g.metric, floor)
    plots.vs_loops_figure(g.runs, g.pairs, loops, g.metric, floor)


def _write_files(report: Report, out: Path) -> None:
    (out / "plots").mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(report.metrics(), indent=2) + "\n")
    for g in report.groups:
        _write_metric_files(g, out)


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
