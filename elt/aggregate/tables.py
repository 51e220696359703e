"""Text renderings of the aggregate: points.csv, table.md (paper Tables 1-2 layout), summary.md.

Each function renders the points of one quality metric; headers name it ("fid" column, "FID").
Every quality number is shown with its spread ("57.90 ± 1.30"; "± ?" when eval.json has none:
unknown, never 0), and summary.md claims a difference only where compare.Difference.verdict
(|diff| > Z * spread) does.
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

from elt.aggregate.collect import LEGACY_METRIC, Point, metric_label
from elt.aggregate.compare import (ELT_BETTER, FRONT_KINDS, ILSD_BETTER, SPREAD_UNKNOWN,
                                   UNIQUE_BETTER, VANILLA_BETTER, WITHIN_NOISE, Z, Difference,
                                   Estimate, IlsdVanillaPair, LoopedVsUnique, combine,
                                   estimate, mean_gap_over_pairs, mean_looped_minus_unique)
from elt.aggregate.floor import Floor
from elt.aggregate.pareto import PowerLawFit
from elt.evaluation.modality import samples_word

# Said wherever the front is shown: which runs it is over and why vanilla is not.
FRONT_NOTE = ("The front and its power-law fit are over ELT runs and unique-layer baselines only "
              f"(kinds {', '.join(FRONT_KINDS)}); vanilla looping (kind vanilla) is an ablation, "
              "shown in the points table and the ILSD-vs-vanilla comparison but never on the "
              "front, in the fit or in the looped-vs-unique comparison.")


RULE_NOTE = (f"A difference is called real only when |diff| > {Z:g} x its spread, spread = "
             "sqrt(sa^2 + sb^2) of the two values' stds (~95% for independent Gaussian "
             "estimates; a mean of k independent differences: sqrt(sum of variances) / k); "
             "otherwise it is \"within noise\", and \"spread unknown\" when an "
             "eval.json has no std for it: no difference is claimed then.")
SPREAD_NOTE = ("± = jackknife std of the metric over the samples (delete-a-group; elt/evaluation/spread.py) (KID: over subsets, "
               "IS: over splits); ± ? = spread unknown (eval.json without it), not zero.")
# FVD's spread is MAGVIT's: the std of the FVD over repeats of n samples vs n real clips
FVD_SPREAD_NOTE = ("± = std of the FVD over its repeats (MAGVIT's protocol: each repeat n samples vs n real clips; "
                   "elt/evaluation/metrics.py FVD); ± ? = spread unknown (eval.json without it), not zero.")


def spread_note(metric: str) -> str:
    """What ± means for `metric`'s values."""
    return FVD_SPREAD_NOTE if metric == "fvd" else SPREAD_NOTE


def point_columns(metric: str) -> tuple[str, ...]:
    """points.csv header; the quality columns are named after the metric (new ones at the end)."""
    return ("run", "family", "scale", "kind", "N", "L", "L_max", "ilsd", "params",
            "params_total", "steps", "gflops", metric, "is", "samples_per_second", "on_front",
            "front_eligible", f"{metric}_std", f"{metric}_lo", f"{metric}_hi", "kid", "kid_std",
            "is_std", "cfg_scale", "num_samples")


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


def pm(value: float | None, std: float | None, spec: str = ".2f") -> str:
    """"57.90 ± 1.30"; "57.90 ± ?" when the spread is unknown; "-" without a value."""
    if value is None:
        return "-"
    spread = "?" if std is None else format(std, spec.lstrip("+"))
    return f"{format(value, spec)} ± {spread}"


def pm_diff(d: Difference, spec: str = "+.2f") -> str:
    return pm(d.value, d.spread, spec)


def _csv_num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _key(p: Point) -> tuple[str, int]:
    return (p.run, p.L)


def points_csv(points: Sequence[Point], front: Sequence[Point], metric: str) -> str:
    """Every (run, L) point of `metric`, one row each, full precision; empty cell = unknown."""
    on_front = {_key(p) for p in front}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(point_columns(metric))
    for p in points:
        writer.writerow([p.run, p.family, p.scale, p.kind, p.N, p.L, p.L_max, p.ilsd, p.params,
                         _csv_num(p.params_total), _csv_num(p.steps), repr(p.gflops),
                         repr(p.quality), _csv_num(p.inception_score),
                         _csv_num(p.samples_per_second), _key(p) in on_front,
                         p.kind in FRONT_KINDS]
                        + [_csv_num(v) for v in (p.quality_std, p.quality_lo, p.quality_hi, p.kid,
                                                 p.kid_std, p.is_std, p.cfg_scale,
                                                 p.num_samples)])
    return buf.getvalue()


def _kid_x1000(p: Point) -> str:
    return pm(None if p.kid is None else 1e3 * p.kid,
              None if p.kid_std is None else 1e3 * p.kid_std)


def table_markdown(points: Sequence[Point], front: Sequence[Point], metric: str) -> str:
    """Markdown table like the paper's Tables 1-2; Pareto-front rows are marked with *."""
    on_front = {_key(p) for p in front}
    name = metric_label(metric)
    lines = [
        f"| Model | kind | N x L | # params | # steps | CFG | GFLOPs (multiply-adds) | {name} "
        "| KID x 10^3 | IS | samples/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        model = f"{p.run}{' *' if _key(p) in on_front else ''}"
        kind = p.kind if p.kind in FRONT_KINDS else f"{p.kind} (ablation)"
        lines.append(
            f"| {model} | {kind} | {p.N}N x {p.L}L | {human_count(p.params)} | "
            f"{'-' if p.steps is None else p.steps} | {_fmt(p.cfg_scale, 'g')} | "
            f"{p.gflops:.4g} | {pm(p.quality, p.quality_std)} | {_kid_x1000(p)} | "
            f"{pm(p.inception_score, p.is_std, '.1f')} | {_fmt(p.samples_per_second, '.3g')} |")
    lines += ["", f"`*` = on the {name}-GFLOPs Pareto front (computed on the point estimates). "
              f"{FRONT_NOTE} {spread_note(metric)} KID is shown x 1000 (points.csv: raw). "
              "CFG = classifier-free guidance scale of the result shown (the best of the scales "
              "sampled at that L). # params = unique transformer layers "
              "(embeddings and head excluded). L = inference loop count per sampling step; "
              "# steps = sampling steps (network runs per sample, x2 passes with CFG). "
              "GFLOPs = 10^9 multiply-adds per sample (the paper's convention, as DiT's)."]
    return "\n".join(lines) + "\n"


def _versus(d: Difference, what: str) -> str:
    """"2.10 ± 0.80 above <what>", "within noise of <what> (...)": the rule, in words."""
    verdict = d.verdict("above", "below")
    if verdict == WITHIN_NOISE:
        return f"within noise of {what} (diff {pm_diff(d)})"
    if verdict == SPREAD_UNKNOWN:
        return f"{d.value:+.2f} from {what} (spread unknown: no difference claimed)"
    return f"{pm(abs(d.value), d.spread)} {verdict} {what}"


FLOOR_KINDS = ("real", "reconstruction")


def floor_kind_words(kind: str, samples: str = "images") -> tuple[str, str]:
    """(list entry, name in the sentence) of a floor kind, "reconstruction:<family>" included;
    ``samples``: what the metric scores ("images", "clips")."""
    if kind == "real":
        return (f"real held-out {samples} (the best any model can expect at this n)",
                f"the real-{samples[:-1]} floor")
    if kind == "reconstruction":
        return (f"the same {samples} through the tokenizer (the best a model on these tokens can expect)",
                "the reconstruction floor")
    family = kind.split(":", 1)[1]
    return (f"the same {samples} through the {family} family's tokenizer (the best a {family} model "
            "can expect)", f"the {family} reconstruction floor")


def floor_markdown(floor: Floor | None, floor_path: str | None, metric: str,
                   best: Point | None) -> list[str]:
    """The "Real-data floor" section: the floor values with spreads and where the best point is."""
    name, samples = metric_label(metric), samples_word(metric)
    out = ["## Real-data floor", ""]
    if floor is None:
        where = f" ({floor_path} does not exist)" if floor_path else ""
        return out + [f"No real-data floor computed{where}: the {name} values below cannot be "
                      f"put against what real {samples} score at the same sample count.", ""]
    values = {k: floor.get(metric, k) for k in (floor.kinds(metric) or FLOOR_KINDS)}
    if floor.reason and not floor.metrics:
        return out + [f"No real-data floor: {floor.reason} ({floor.path}).", ""]
    if not any(values.values()):
        return out + [f"{floor.path} has no {name} floor (it has: "
                      f"{', '.join(floor.metrics)}).", ""]
    src = ", ".join(x for x in floor.source(metric) if x)
    out += [f"{name} at n = {floor.num_samples} samples against the runs' reference statistics"
            f" ({src + '; ' if src else ''}{floor.path}):", ""]
    for kind, v in values.items():
        if v is None:
            out.append(f"- {floor_kind_words(kind, samples)[0]}: not in the file")
            continue
        draws = ", ".join(f"{x:.2f}" for x in v.values)
        out.append(f"- {floor_kind_words(kind, samples)[0]}: {name} {pm(v.mean, v.spread)} ({v.spread_kind}"
                   + (f"; draws {draws}" if draws else "") + ")")
    if best is not None:
        where = " and ".join(
            _versus(combine([(1.0, estimate(best)), (-1.0, Estimate(("floor", k), v.mean,
                                                                    v.spread))]),
                    floor_kind_words(k, samples)[1])
            for k, v in reversed(values.items()) if v is not None)
        out += ["", f"The best point ({best.run} at {best.label}, {name} "
                f"{pm(best.quality, best.quality_std)}) is {where}."]
        if best.num_samples is not None and best.num_samples != floor.num_samples:
            out.append(f"Caution: it was measured on {best.num_samples} samples, the floor on "
                       f"{floor.num_samples}; {name} depends on n, so the two do not compare "
                       "directly.")
    return out + [""]


def _tally(verdicts: Sequence[str], order: Sequence[str]) -> str:
    """"3 ILSD better, 1 within noise": the verdicts that occur, in `order`."""
    return ", ".join(f"{verdicts.count(v)} {v}" for v in order if v in verdicts)


def _mean_line(head: str, d: Difference, if_positive: str, if_negative: str,
               metric: str) -> str:
    """"<head>: +2.500 ± 0.700: ILSD better (|mean| > 2 x spread)." or the no-claim wording."""
    verdict = d.verdict(if_positive, if_negative)
    if verdict == SPREAD_UNKNOWN:
        why = f"spread unknown (an eval.json without {metric}_std), no difference is claimed"
    elif verdict == WITHIN_NOISE:
        why = f"within noise (|mean| <= {Z:g} x spread), no difference is claimed"
    else:
        why = f"{verdict} (|mean| > {Z:g} x spread)"
    return f"{head}: {pm_diff(d, '+.3f')}: {why}."


def summary_markdown(pairs: Sequence[IlsdVanillaPair], vs_unique: Sequence[LoopedVsUnique],
                     front: Sequence[Point], fit: PowerLawFit, metric: str,
                     modality: str, best: Point | None = None, floor: Floor | None = None,
                     floor_path: str | None = None) -> str:
    """Floor, front and fit, then the ILSD-vs-vanilla and looped-vs-unique comparisons, each
    difference with its spread and verdict."""
    name = metric_label(metric)
    out = [f"# Aggregate summary: {name} ({modality})", "", spread_note(metric), RULE_NOTE, ""]
    out += floor_markdown(floor, floor_path, metric, best)
    out += [f"## Pareto front ({name} vs. GFLOPs)", ""]
    out += ["GFLOPs = 10^9 multiply-adds per sample (the paper's convention).", FRONT_NOTE,
            "The front and the fit are computed on the point estimates: a point within noise "
            "of a neighbour may be on (or off) the front by chance.", ""]
    out += [f"- {p.run} at {p.label}: {p.gflops:.4g} GFLOPs, {name} "
            f"{pm(p.quality, p.quality_std)}" for p in front]
    if fit.ok:
        a, b, c = fit.coeffs
        out += ["", f"Fit over the front: {name} = {a:.4g} * G^-{b:.3g} + {c:.3g} "
                "(point estimates; no spread propagated)"]
    else:
        out += ["", f"No power-law fit: {fit.reason}"]

    order = (ILSD_BETTER, VANILLA_BETTER, WITHIN_NOISE, SPREAD_UNKNOWN)
    out += ["", "## ILSD vs. vanilla looping (Fig. 8)", "",
            f"gap = {name}(vanilla) - {name}(ILSD); positive means ILSD is better.", ""]
    if not pairs:
        out.append("No ILSD run has a vanilla twin (same family, scale, N, L_max) in the grid.")
    for pair in pairs:
        mean = pair.mean_gap
        out += [f"### {pair.ilsd_run} vs. {pair.vanilla_run} "
                f"(scale {pair.scale}, N={pair.N}, L_max={pair.L_max})", "",
                f"| L | {name} ILSD | {name} vanilla | gap | verdict |",
                "|---:|---:|---:|---:|---|"]
        verdicts = [g.difference.verdict(ILSD_BETTER, VANILLA_BETTER) for g in pair.loops]
        out += [f"| {g.L} | {pm(g.ilsd.value, g.ilsd.std)} | {pm(g.vanilla.value, g.vanilla.std)}"
                f" | {pm_diff(g.difference)} | {v} |" for g, v in zip(pair.loops, verdicts)]
        out += ["", f"Per L: {_tally(verdicts, order)}.", ""]
        if mean is None:
            out += ["Mean gap over L < L_max: n/a (no common L below L_max)", ""]
            continue
        out += [_mean_line("Mean gap over L < L_max", mean, ILSD_BETTER, VANILLA_BETTER,
                           metric), ""]
    overall = mean_gap_over_pairs(pairs)
    if len(pairs) > 1 and overall is not None:
        key = "ilsd_vanilla_mean_gap"
        key = key if metric == LEGACY_METRIC else f"{metric}_{key}"
        out += [_mean_line(f"Mean over pairs of the mean gaps (metrics.json {key})", overall,
                           ILSD_BETTER, VANILLA_BETTER, metric), ""]

    out += ["## Looped vs. unique depth at iso-compute (Table 1)", "",
            "Each ELT run at each inference loop count L against the unique-layer run of depth "
            "N * L (same family, scale, metric and modality), whatever L_max the ELT run was "
            "trained with: an N x L configuration costs what a depth N * L model costs. "
            "Vanilla looping (an ablation) is not paired.", ""]
    if not vs_unique:
        out.append("No ELT run at any L has a unique-layer baseline of depth N * L in the grid.")
        return "\n".join(out) + "\n"
    out += [f"| scale | ELT (N x L) | L_max | unique (depth) | {name} ELT | {name} unique "
            f"| {name} diff | verdict | # params ELT | # params unique | params ratio "
            "| GFLOPs ELT | GFLOPs unique |",
            "|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    verdicts = [c.difference.verdict(UNIQUE_BETTER, ELT_BETTER) for c in vs_unique]
    out += [f"| {c.scale} | {c.looped_run} ({c.N}N x {c.L}L) | {c.L_max} | "
            f"{c.unique_run} ({c.depth}) | {pm(c.quality_looped, c.std_looped)} | "
            f"{pm(c.quality_unique, c.std_unique)} | {pm_diff(c.difference)} | {v} | "
            f"{human_count(c.params_looped)} | {human_count(c.params_unique)} | "
            f"{c.params_ratio:.2f}x | {c.gflops_looped:.4g} | {c.gflops_unique:.4g} |"
            for c, v in zip(vs_unique, verdicts)]
    mean = mean_looped_minus_unique(vs_unique)
    out += ["", f"{name} diff = {name}(ELT) - {name}(unique), positive means the ELT model "
            "is worse; params ratio = unique / ELT unique-layer parameters; GFLOPs = 10^9 "
            "multiply-adds per sample.",
            "", f"Per pair: {_tally(verdicts, (ELT_BETTER, UNIQUE_BETTER) + order[2:])}.",
            "", _mean_line(f"Mean {name} diff over all {len(vs_unique)} iso-compute pairs "
                           "(every ELT run at every L with a depth-N*L unique run; metrics.json "
                           f"looped_minus_unique_mean_{metric})", mean, UNIQUE_BETTER,
                           ELT_BETTER, metric),
            "", "A unique baseline shared by several pairs counts once in the mean's spread "
            "(its noise is common to those pairs, not independent)."]
    return "\n".join(out) + "\n"
