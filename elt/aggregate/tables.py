"""Text renderings of the aggregate: points.csv, table.md (paper Tables 1-2 layout), summary.md.

Each function renders the points of one quality metric; headers name it ("fid" column, "FID").
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

from elt.aggregate.collect import Point, metric_label
from elt.aggregate.compare import IlsdVanillaPair, LoopedVsUnique
from elt.aggregate.pareto import PowerLawFit

def point_columns(metric: str) -> tuple[str, ...]:
    """points.csv header; the quality column is named after the metric."""
    return ("run", "family", "scale", "kind", "N", "L", "L_max", "ilsd", "params",
            "params_total", "steps", "gflops", metric, "is", "samples_per_second", "on_front")


def human_count(n: int | None) -> str:
    """1234567 -> '1.23M', as the paper writes parameter counts."""
    if n is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _key(p: Point) -> tuple[str, int]:
    return (p.run, p.L)


def points_csv(points: Sequence[Point], front: Sequence[Point], metric: str) -> str:
    """Every (run, L) point of `metric`, one row each, full precision."""
    on_front = {_key(p) for p in front}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(point_columns(metric))
    for p in points:
        writer.writerow([p.run, p.family, p.scale, p.kind, p.N, p.L, p.L_max, p.ilsd, p.params,
                         "" if p.params_total is None else p.params_total,
                         "" if p.steps is None else p.steps, repr(p.gflops), repr(p.quality),
                         "" if p.inception_score is None else repr(p.inception_score),
                         "" if p.samples_per_second is None else repr(p.samples_per_second),
                         _key(p) in on_front])
    return buf.getvalue()


def table_markdown(points: Sequence[Point], front: Sequence[Point], metric: str) -> str:
    """Markdown table like the paper's Tables 1-2; Pareto-front rows are marked with *."""
    on_front = {_key(p) for p in front}
    name = metric_label(metric)
    lines = [
        f"| Model | kind | N x L | # params | # steps | GFLOPs (multiply-adds) | {name} | IS | samples/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        model = f"{p.run}{' *' if _key(p) in on_front else ''}"
        lines.append(
            f"| {model} | {p.kind} | {p.N}N x {p.L}L | {human_count(p.params)} | "
            f"{'-' if p.steps is None else p.steps} | {p.gflops:.4g} | {p.quality:.2f} | "
            f"{_fmt(p.inception_score, '.1f')} | {_fmt(p.samples_per_second, '.3g')} |")
    lines += ["", f"`*` = on the {name}-GFLOPs Pareto front. # params = unique transformer layers "
              "(embeddings and head excluded). L = inference loop count per sampling step; "
              "# steps = sampling steps (network runs per sample, x2 passes with CFG). "
              "GFLOPs = 10^9 multiply-adds per sample (the paper's convention, as DiT's)."]
    return "\n".join(lines) + "\n"


def summary_markdown(pairs: Sequence[IlsdVanillaPair], vs_unique: Sequence[LoopedVsUnique],
                     front: Sequence[Point], fit: PowerLawFit, metric: str,
                     modality: str) -> str:
    """ILSD-vs-vanilla and looped-vs-unique comparisons plus the front and its fit."""
    name = metric_label(metric)
    out = [f"# Aggregate summary: {name} ({modality})", ""]
    out += [f"## Pareto front ({name} vs. GFLOPs)", ""]
    out += ["GFLOPs = 10^9 multiply-adds per sample (the paper's convention).", ""]
    out += [f"- {p.run} at {p.label}: {p.gflops:.4g} GFLOPs, {name} {p.quality:.2f}"
            for p in front]
    if fit.ok:
        a, b, c = fit.coeffs
        out += ["", f"Fit over the front: {name} = {a:.4g} * G^-{b:.3g} + {c:.3g}"]
    else:
        out += ["", f"No power-law fit: {fit.reason}"]

    out += ["", "## ILSD vs. vanilla looping (Fig. 8)", "",
            f"gap = {name}(vanilla) - {name}(ILSD); positive means ILSD is better.", ""]
    if not pairs:
        out.append("No ILSD run has a vanilla twin (same family, scale, N, L_max) in the grid.")
    for pair in pairs:
        mean = pair.mean_gap_below_L_max
        out += [f"### {pair.ilsd_run} vs. {pair.vanilla_run} "
                f"(scale {pair.scale}, N={pair.N}, L_max={pair.L_max})", "",
                f"| L | {name} ILSD | {name} vanilla | gap |", "|---:|---:|---:|---:|"]
        out += [f"| {g.L} | {g.quality_ilsd:.2f} | {g.quality_vanilla:.2f} | {g.gap:+.2f} |"
                for g in pair.loops]
        out += ["", "Mean gap over L < L_max: "
                + ("n/a (no common L below L_max)" if mean is None else f"{mean:+.3f}"), ""]

    out += ["## Looped vs. unique depth (Tables 1-2)", "",
            "Looped run at L = L_max against the unique-layer run of depth N * L_max, same scale.",
            ""]
    if not vs_unique:
        out.append("No looped run has a unique-depth baseline of equal depth in the grid.")
    else:
        out += [f"| looped | unique | depth | {name} looped | {name} unique | {name} diff "
                "| GFLOPs looped | GFLOPs unique | # params looped | # params unique "
                "| params ratio |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        out += [f"| {c.looped_run} ({c.N}x{c.L_max}) | {c.unique_run} | {c.depth} | "
                f"{c.quality_looped:.2f} | {c.quality_unique:.2f} | {c.quality_diff:+.2f} | "
                f"{c.gflops_looped:.4g} | {c.gflops_unique:.4g} | {human_count(c.params_looped)} | "
                f"{human_count(c.params_unique)} | {c.params_ratio:.2f}x |" for c in vs_unique]
        out += ["", f"{name} diff = {name}(looped) - {name}(unique); "
                "params ratio = unique / looped; GFLOPs = 10^9 multiply-adds per sample."]
    return "\n".join(out) + "\n"
