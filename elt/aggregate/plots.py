"""Figures of the paper's Figs. 4, 5 and 8, and the same data as CSV for `dvc plots show`.

Each figure and CSV shows the runs of one quality metric (FID, FVD, ...), named on its axes and
columns; metrics never share an axis because their values are on unrelated scales.

Every point gets an error bar of its std (none where the spread is unknown), and the real-data
floor, when computed, is drawn on every figure as horizontal lines (solid: real held-out images,
dashed: tokenizer reconstructions) with a shaded band of +- its std.

Figures are built on matplotlib.figure.Figure directly (Agg canvas), not pyplot: no global
backend or figure registry is touched, so this is safe inside tests and long-lived processes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from elt.aggregate.collect import Point, RunEval, metric_label
from elt.aggregate.compare import FRONT_KINDS, IlsdVanillaPair
from elt.aggregate.floor import Floor
from elt.aggregate.pareto import PowerLawFit, power_law
from elt.evaluation.modality import samples_word

_MARKERS = {"elt": "o", "vanilla": "s", "unique": "^"}
_DPI = 120


def _colors(names: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    names = list(dict.fromkeys(names))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _plain_log_axis(axis, values: Sequence[float]) -> None:
    """Log scale with plain-number ticks (1, 2, 5, 10, ...) instead of 2x10^0 labels.

    Minor ticks get labels only when the data span at most three decades (all of them within
    one decade, else 2x and 5x a power of ten); wider spans would crowd them.
    """
    import math

    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    lo, hi = min(values), max(values)
    decades = math.log10(hi / lo) if lo > 0 else math.inf
    if decades <= 3:
        shown = range(2, 10) if decades <= 1 else (2, 5)

        def minor(v, _):
            mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
            return f"{v:g}" if mantissa in shown else ""
        axis.set_minor_formatter(FuncFormatter(minor))
    else:
        axis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: Path) -> Figure:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return fig


def _error_bars(ax, xs: Sequence[float], points: Sequence[Point], color, alpha: float = 0.6
                ) -> None:
    """Vertical bars of +- each point's std; points whose spread is unknown get none."""
    known = [(x, p) for x, p in zip(xs, points) if p.quality_std is not None]
    if known:
        ax.errorbar([x for x, _ in known], [p.quality for _, p in known],
                    yerr=[p.quality_std for _, p in known], fmt="none", ecolor=color,
                    alpha=alpha, elinewidth=1.0, capsize=2, zorder=1)


# (label, value, std or None, line style) of each floor line of one metric.
FloorLine = tuple[str, float, "float | None", str]


def floor_lines(floor: Floor | None, metric: str) -> list[FloorLine]:
    """The real-data floor of `metric` as lines to draw; [] when there is none."""
    out, samples = [], samples_word(metric)
    for kind in ([] if floor is None else floor.kinds(metric)):
        style, what = (("-", f"real held-out {samples}") if kind == "real" else
                       ("--", "tokenizer reconstructions" if kind == "reconstruction" else
                        f"{kind.split(':', 1)[1]} tokenizer reconstructions"))
        v = floor.get(metric, kind)
        if v is not None:
            spread = "" if v.spread is None else f" ± {v.spread:.2f}"
            out.append((f"floor: {what}, n={floor.num_samples} ({v.mean:.2f}{spread})",
                        v.mean, v.spread, style))
    return out


def _draw_floor(ax, lines: Sequence[FloorLine]) -> None:
    for label, value, std, style in lines:
        ax.axhline(value, color="dimgray", linestyle=style, linewidth=1.2, label=label, zorder=1)
        if std is not None:
            ax.axhspan(value - std, value + std, color="gray", alpha=0.12, linewidth=0, zorder=0)


def _kind_legend(ax, kinds: Sequence[str]) -> None:
    for kind in kinds:
        label = kind if kind in FRONT_KINDS else f"{kind} (ablation, not on the front)"
        ax.scatter([], [], marker=_MARKERS[kind], color="gray", label=label)


def vs_gflops_figure(runs: Sequence[RunEval], front: Sequence[Point], fit: PowerLawFit,
                     path: Path, metric: str, floor: Sequence[FloorLine] = ()) -> Figure:
    """Fig. 4: all points, faded per-run trends over L, the front, the power-law fit.

    `front` (and `fit`, over it) are of ELT + unique points only; vanilla points are drawn
    fainter and labelled as the ablation they are.
    """
    name = metric_label(metric)
    colors = _colors([r.run for r in runs])
    fig = Figure(figsize=(8.0, 5.4))
    ax = fig.add_subplot()
    for run in runs:
        g = [p.gflops for p in run.points]
        f = [p.quality for p in run.points]
        color = colors[run.run]
        # Faded line: one training run traversed by its inference loop count L. Vanilla looping
        # (an ablation, never on the front or in the fit) is drawn fainter still, dotted.
        eligible = run.kind in FRONT_KINDS
        ax.plot(g, f, color=color, alpha=0.35 if eligible else 0.2, linewidth=1.2,
                linestyle="-" if eligible else ":")
        ax.scatter(g, f, color=color, alpha=0.6 if eligible else 0.3, marker=_MARKERS[run.kind],
                   s=28, zorder=2)
        _error_bars(ax, g, run.points, color, alpha=0.6 if eligible else 0.3)
        for p in run.points:
            ax.annotate(p.label, (p.gflops, p.quality), textcoords="offset points",
                        xytext=(4, 3), fontsize=7, color=color)
    ax.scatter([p.gflops for p in front], [p.quality for p in front], facecolors="none",
               edgecolors="black", s=90, linewidths=1.5, zorder=3, label="Pareto front")
    if fit.ok:
        a, b, c = fit.coeffs
        lo, hi = min(p.gflops for p in front), max(p.gflops for p in front)
        grid = np.geomspace(lo / 1.15, hi * 1.15, 200)
        ax.plot(grid, power_law(grid, a, b, c), color="black", linewidth=1.5,
                label=f"fit: {name} = {a:.4g}$\\cdot G^{{-{b:.2f}}}$ + {c:.2f}")
    _draw_floor(ax, floor)
    # Past ~20 runs a per-run legend outgrows the figure; colours then only group the trends.
    for run in runs if len(runs) <= 20 else ():
        ax.plot([], [], color=colors[run.run], label=f"{run.run} ({run.kind}, {run.scale})")
    _kind_legend(ax, list(dict.fromkeys(r.kind for r in runs)))
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis, [p.gflops for r in runs for p in r.points])
    ax.set_xlabel("inference GFLOPs per sample (multiply-adds, log)")
    ax.set_ylabel(f"{name} (lower is better)")
    ax.set_title(f"{name} vs. inference GFLOPs (points labelled N x L; bars: ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _series(run: RunEval, several_families: bool) -> str:
    """Fig. 5 series of a run: its scale, and its family when the figure holds several (a MaskGIT
    "tiny" and a DiT "tiny" are different models)."""
    return f"{run.family} {run.scale}" if several_families else f"scale {run.scale}"


def vs_params_figure(runs: Sequence[RunEval], path: Path, metric: str,
                     floor: Sequence[FloorLine] = ()) -> Figure:
    """Fig. 5: best quality of each run vs. its unique-layer parameters, one series per scale."""
    name = metric_label(metric)
    several = len({r.family for r in runs}) > 1
    colors = _colors([_series(r, several) for r in runs])
    fig = Figure(figsize=(7.0, 4.8))
    ax = fig.add_subplot()
    for label, color in colors.items():
        series = [r for r in runs if _series(r, several) == label]
        # The line joins the best quality at each parameter count (the scale's envelope); runs
        # of equal size (ILSD and vanilla twins) show as separate markers on one x.
        envelope: dict[int, float] = {}
        for r in series:
            envelope[r.params] = min(envelope.get(r.params, r.best.quality), r.best.quality)
        xs = sorted(envelope)
        ax.plot(xs, [envelope[x] for x in xs], color=color, alpha=0.5, label=label)
        for r in series:
            ax.scatter(r.params, r.best.quality, color=color, marker=_MARKERS[r.kind], s=36,
                       zorder=2)
            _error_bars(ax, [r.params], [r.best], color)
            ax.annotate(r.best.label, (r.params, r.best.quality), textcoords="offset points",
                        xytext=(4, 3), fontsize=7, color=color)
    _draw_floor(ax, floor)
    _kind_legend(ax, list(dict.fromkeys(r.kind for r in runs)))
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis, [r.params for r in runs])
    ax.set_xlabel("# params (unique transformer layers, log)")
    ax.set_ylabel(f"best {name} of the run")
    ax.set_title(f"Best {name} vs. parameters (label: best N x L of each run; bars: ± std)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def vs_loops_figure(runs: Sequence[RunEval], pairs: Sequence[IlsdVanillaPair], path: Path,
                    metric: str, floor: Sequence[FloorLine] = ()) -> Figure:
    """Fig. 8: quality vs. L for each ILSD run and its vanilla twin, dashed line at L_max."""
    by_name = {r.run: r for r in runs}
    n = max(len(pairs), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows))
    if not pairs:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no ILSD run with a vanilla twin\n(same family, scale, N, L_max)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for i, pair in enumerate(pairs):
        ax = fig.add_subplot(rows, cols, i + 1)
        for name, style, label in ((pair.ilsd_run, "o-", "ILSD"),
                                   (pair.vanilla_run, "s--", "w/o ILSD")):
            run = by_name[name]
            (line,) = ax.plot([p.L for p in run.points], [p.quality for p in run.points], style,
                              label=f"{label} ({name})")
            _error_bars(ax, [p.L for p in run.points], run.points, line.get_color(), alpha=0.8)
        _draw_floor(ax, floor)
        ax.axvline(pair.L_max, color="gray", linestyle=":", label=f"L_max = {pair.L_max}")
        ax.set_xlabel("inference loops L")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"scale {pair.scale}, N = {pair.N}", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Impact of ILSD across inference loop counts (bars: ± std)")
    return _save(fig, path)


def _csv(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def plot_data(runs: Sequence[RunEval], front: Sequence[Point],
              pairs: Sequence[IlsdVanillaPair], metric: str) -> dict[str, str]:
    """CSV text per file name under results/plots/, for `dvc plots show` templates.

    Names are templates: "{m}" stands for the metric; elt.aggregate.report.output_name turns
    them into the file names of this metric (the quality column is named after it).
    """
    points = [p for r in runs for p in r.points]
    by_name = {r.run: r for r in runs}
    # A vanilla run can be the twin of several ILSD runs; list each run once.
    paired = dict.fromkeys(name for pair in pairs for name in (pair.ilsd_run, pair.vanilla_run))
    std = f"{metric}_std"  # empty cell: spread unknown
    ilsd_vanilla = [(name, by_name[name].kind, p.L, p.quality, p.quality_std) for name in paired
                    for p in by_name[name].points]
    return {
        "{m}_vs_gflops.csv": _csv(("run", "L", "label", "kind", "scale", "gflops", metric, std),
                                  [(p.run, p.L, p.label, p.kind, p.scale, p.gflops, p.quality,
                                    p.quality_std) for p in points]),
        "pareto_front.csv": _csv(("run", "L", "label", "gflops", metric, std),
                                 [(p.run, p.L, p.label, p.gflops, p.quality, p.quality_std)
                                  for p in front]),
        "{m}_vs_params.csv": _csv(("run", "scale", "kind", "params", "best_L", "label", metric,
                                   std),
                                  [(r.run, r.scale, r.kind, r.params, r.best.L, r.best.label,
                                    r.best.quality, r.best.quality_std) for r in runs]),
        "{m}_vs_loops.csv": _csv(("run", "kind", "L", metric, std), ilsd_vanilla),
    }
