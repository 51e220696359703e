"""Text renderings of the aggregate: points.csv, table.md (paper Tables 1-2 layout), summary.md.

Each function renders the points of one quality metric; headers name it ("fid" column, "FID").
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

from elt.aggregate.collect import Point, metric_label
from elt.aggregate.compare import FRONT_KINDS, IlsdVanillaPair, LoopedVsUnique
from elt.aggregate.pareto import PowerLawFit

# Said wherever the front is shown: which runs it is over and why vanilla is not.
FRONT_NOTE = ("The front and its power-law fit are over ELT runs and unique-layer baselines only "
              f"(kinds {', '.join(FRONT_KINDS)}); vanilla looping (kind vanilla) is an ablation, "
              "shown in the points table and the ILSD-vs-vanilla comparison but never on the "
              "front, in the fit or in the looped-vs-unique comparison.")


def point_columns(metric: str) -> tuple[str, ...]:
    """points.csv header; the quality column is named after the metric."""
    return ("run", "family", "scale", "kind", "N", "L", "L_max", "ilsd", "params",
            "params_total", "steps", "gflops", metric, "is", "samples_per_second", "on_front",
            "front_eligible")


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
                         _key(p) in on_front, p.kind in FRONT_KINDS])
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
        kind = p.kind if p.kind in FRONT_KINDS else f"{p.kind} (ablation)"
        lines.append(
            f"| {model} | {kind} | {p.N}N x {p.L}L | {human_count(p.params)} | "
            f"{'-' if p.steps is None else p.steps} | {p.gflops:.4g} | {p.quality:.2f} | "
            f"{_fmt(p.inception_score, '.1f')} | {_fmt(p.samples_per_second, '.3g')} |")
    lines += ["", f"`*` = on the {name}-GFLOPs Pareto front. {FRONT_NOTE} "
              "# params = unique transformer layers "
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
    out += ["GFLOPs = 10^9 multiply-adds per sample (the paper's convention).", FRONT_NOTE, ""]
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

    out += ["## Looped vs. unique depth at iso-compute (Table 1)", "",
            "Each ELT run at each inference loop count L against the unique-layer run of depth "
            "N * L (same family, scale, metric and modality), whatever L_max the ELT run was "
            "trained with: an N x L configuration costs what a depth N * L model costs. "
            "Vanilla looping (an ablation) is not paired.", ""]
    if not vs_unique:
        out.append("No ELT run at any L has a unique-layer baseline of depth N * L in the grid.")
    else:
        out += [f"| scale | ELT (N x L) | L_max | unique (depth) | {name} ELT | {name} unique "
                f"| {name} diff | # params ELT | # params unique | params ratio | GFLOPs ELT "
                "| GFLOPs unique |",
                "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        out += [f"| {c.scale} | {c.looped_run} ({c.N}N x {c.L}L) | {c.L_max} | "
                f"{c.unique_run} ({c.depth}) | {c.quality_looped:.2f} | {c.quality_unique:.2f} | "
                f"{c.quality_diff:+.2f} | {human_count(c.params_looped)} | "
                f"{human_count(c.params_unique)} | {c.params_ratio:.2f}x | "
                f"{c.gflops_looped:.4g} | {c.gflops_unique:.4g} |" for c in vs_unique]
        diffs = [c.quality_diff for c in vs_unique]
        out += ["", f"{name} diff = {name}(ELT) - {name}(unique), positive means the ELT model "
                "is worse; params ratio = unique / ELT unique-layer parameters; GFLOPs = 10^9 "
                "multiply-adds per sample.",
                "", f"Mean {name} diff over all {len(diffs)} iso-compute pairs (every ELT run at "
                f"every L with a depth-N*L unique run; metrics.json "
                f"looped_minus_unique_mean_{metric}): {sum(diffs) / len(diffs):+.3f}"]
    return "\n".join(out) + "\n"
