"""The paper's two controlled comparisons, as data.

"Quality" is the runs' metric (FID, FVD, ...; lower is better). elt.aggregate.report calls these
with the runs of one metric at a time; twins must also share the metric and modality anyway, so
no comparison ever subtracts an FVD from an FID.

- ILSD vs. vanilla looping (Fig. 8): an ILSD run and its twin trained on the L_max exit only, same
  family, scale, N and L_max. The gap is Q(vanilla) - Q(ILSD), so positive means ILSD helps;
  its mean is taken over L < L_max, the intermediate exits that ILSD trains and vanilla does not.
- Looped vs. unique depth at iso-compute (Table 1): each ELT run at each inference loop count L
  it was sampled at, against the unique-layer run of the same family and scale whose depth is
  N * L, whatever L_max the ELT run was trained with (an N x L configuration costs what a depth
  N * L model costs). Vanilla looping is an ablation (Fig. 8 only): it is never paired here.

FRONT_KINDS names the run kinds eligible for the headline Pareto front and its power-law fit.

Every difference comes with its spread and is judged by one rule (`Difference.verdict`, with the
spread from `combine`): it is called real only when |difference| > Z * spread.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

from elt.aggregate.collect import Point, RunEval

# Run kinds that make the headline Pareto front, its power-law fit and the looped-vs-unique
# numbers: ELT (ILSD) runs and unique-layer baselines. Vanilla looping is an ablation; its points
# stay in the points table and in the ILSD-vs-vanilla comparison only.
FRONT_KINDS = ("elt", "unique")

# ------------------------------------------------------------------ the one noise rule
# A difference is real when it exceeds Z of its standard deviations. For two independent,
# roughly Gaussian estimates, |d| > 2 * sqrt(sa^2 + sb^2) happens by chance in only ~5% of cases
# when the true difference is 0 (two-sided 95%; 1.96 rounded up).
Z = 2.0
WITHIN_NOISE = "within noise"
SPREAD_UNKNOWN = "spread unknown"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A quality value with its std (None: unknown, e.g. an eval.json written before spreads).

    `key` names the samples it was measured on, e.g. (run, L): two estimates of one key are one
    measurement, whose noise must not be counted as independent twice.
    """

    key: tuple
    value: float
    std: float | None


def estimate(p: Point) -> Estimate:
    return Estimate((p.run, p.L), p.quality, p.quality_std)


Terms = tuple[tuple[float, Estimate], ...]  # sum(coefficient * estimate)


@dataclasses.dataclass(frozen=True)
class Difference:
    """A difference of quality estimates, `value`, and its std, `spread` (None when unknown)."""

    value: float
    spread: float | None

    @property
    def real(self) -> bool | None:
        """|value| > Z * spread; None when the spread is unknown (then nothing is claimed)."""
        return None if self.spread is None else abs(self.value) > Z * self.spread

    def verdict(self, if_positive: str, if_negative: str) -> str:
        """`if_positive` / `if_negative` (who wins by the sign) for a real difference, else
        "within noise", or "spread unknown" when a std is missing."""
        if self.real is None:
            return SPREAD_UNKNOWN
        if not self.real:
            return WITHIN_NOISE
        return if_positive if self.value > 0 else if_negative


def combine(terms: Iterable[tuple[float, Estimate]]) -> Difference:
    """sum(c * e.value) and its std, estimates of different keys being independent (separate
    samples): std = sqrt(sum((c * e.std)^2)). For a - b that is sqrt(sa^2 + sb^2); for the mean
    of k differences sharing no estimate, sqrt(sum of their variances) / k.

    An estimate in several terms (one unique baseline against several ELT runs, one vanilla twin
    of two ILSD runs) has its coefficients summed first: its noise counts once, fully correlated,
    not as independent draws. Any unknown std (with a non-zero coefficient) makes the spread
    unknown.
    """
    coeffs: dict[tuple, list] = {}
    value = 0.0
    for c, e in terms:
        value += c * e.value
        coeffs.setdefault(e.key, [0.0, e])[0] += c
    stds = [(c, e.std) for c, e in coeffs.values() if c != 0]
    if any(s is None for _, s in stds):
        return Difference(value, None)
    return Difference(value, math.sqrt(sum((c * s) ** 2 for c, s in stds)))


def mean_terms(groups: Sequence[Terms]) -> Terms:
    """Terms of the mean of the groups' sums (each group's coefficients divided by their count)."""
    return tuple((c / len(groups), e) for terms in groups for c, e in terms)


# ------------------------------------------------------------------ the paired comparisons
@dataclasses.dataclass(frozen=True)
class LoopGap:
    L: int
    ilsd: Estimate
    vanilla: Estimate

    @property
    def quality_ilsd(self) -> float:
        return self.ilsd.value

    @property
    def quality_vanilla(self) -> float:
        return self.vanilla.value

    @property
    def terms(self) -> Terms:
        return ((1.0, self.vanilla), (-1.0, self.ilsd))

    @property
    def difference(self) -> Difference:
        """gap with its spread; verdict(ILSD_BETTER, VANILLA_BETTER)."""
        return combine(self.terms)

    @property
    def gap(self) -> float:
        return self.quality_vanilla - self.quality_ilsd


@dataclasses.dataclass(frozen=True)
class IlsdVanillaPair:
    ilsd_run: str
    vanilla_run: str
    scale: str
    N: int
    L_max: int
    loops: tuple[LoopGap, ...]  # loop counts evaluated for both runs, ascending

    @property
    def mean_gap_terms(self) -> Terms:
        """Terms of the mean gap over common L < L_max (empty when there is none)."""
        below = [g.terms for g in self.loops if g.L < self.L_max]
        return mean_terms(below) if below else ()

    @property
    def mean_gap(self) -> Difference | None:
        """Mean Q(vanilla) - Q(ILSD) over common L < L_max with its spread; None when none."""
        return combine(self.mean_gap_terms) if self.mean_gap_terms else None

    @property
    def mean_gap_below_L_max(self) -> float | None:
        """Mean Q(vanilla) - Q(ILSD) over common L < L_max; None when there is none."""
        return None if self.mean_gap is None else self.mean_gap.value


@dataclasses.dataclass(frozen=True)
class LoopedVsUnique:
    """One iso-compute pair: an ELT run at inference loop count L vs. the unique run of depth N*L."""

    looped_run: str
    unique_run: str
    kind: str  # of the looped run: always "elt" (vanilla runs are not paired)
    scale: str
    N: int
    L_max: int  # loop count the looped run was trained with
    L: int  # inference loop count of the looped run in this pair
    depth: int  # N * L = the unique run's layer count
    quality_looped: float  # at L
    quality_unique: float
    gflops_looped: float  # at L
    gflops_unique: float
    params_looped: int  # unique-layer parameters (the paper's "# params")
    params_unique: int
    std_looped: float | None = None  # spreads of quality_looped and quality_unique
    std_unique: float | None = None

    @property
    def params_ratio(self) -> float:
        """How many times fewer unique-layer parameters the looped model has."""
        return self.params_unique / self.params_looped

    @property
    def quality_diff(self) -> float:
        """Q(looped) - Q(unique): positive means the looped model is worse."""
        return self.quality_looped - self.quality_unique

    @property
    def terms(self) -> Terms:
        return ((1.0, Estimate((self.looped_run, self.L), self.quality_looped, self.std_looped)),
                (-1.0, Estimate((self.unique_run, 1), self.quality_unique, self.std_unique)))

    @property
    def difference(self) -> Difference:
        """quality_diff with its spread; verdict(UNIQUE_BETTER, ELT_BETTER)."""
        return combine(self.terms)


# Verdict names: who wins when the difference is positive / negative.
ILSD_BETTER, VANILLA_BETTER = "ILSD better", "vanilla better"  # of gap = Q(vanilla) - Q(ILSD)
UNIQUE_BETTER, ELT_BETTER = "unique better", "ELT better"  # of Q(ELT) - Q(unique)


def mean_gap_over_pairs(pairs: Sequence[IlsdVanillaPair]) -> Difference | None:
    """Mean over pairs of each pair's mean gap over L < L_max (pairs without one left out)."""
    groups = [p.mean_gap_terms for p in pairs if p.mean_gap_terms]
    return combine(mean_terms(groups)) if groups else None


def mean_looped_minus_unique(vs_unique: Sequence[LoopedVsUnique]) -> Difference | None:
    """Mean Q(ELT) - Q(unique) over the iso-compute pairs, with its spread; None when none."""
    return combine(mean_terms([c.terms for c in vs_unique])) if vs_unique else None


def _setting(run: RunEval) -> tuple:
    """What two compared runs must share besides their architecture."""
    return (run.metric, run.modality, run.family, run.scale)


def _config(run: RunEval) -> tuple:
    return (*_setting(run), run.N, run.L_max)


def ilsd_vanilla_pairs(runs: Sequence[RunEval]) -> list[IlsdVanillaPair]:
    """Pair each ILSD run with its vanilla twin, in grid order; runs without one are left out.

    Two candidate twins for one ILSD run make the comparison ambiguous: ValueError naming them.
    """
    pairs = []
    for run in runs:
        if run.kind != "elt":
            continue
        twins = [v for v in runs if v.kind == "vanilla" and _config(v) == _config(run)]
        if len(twins) > 1:
            raise ValueError(
                f"ILSD run {run.run!r} has several vanilla twins "
                f"{[t.run for t in twins]} (same family, scale, N, L_max); keep one in the grid")
        if not twins:
            continue
        twin = twins[0]
        common = sorted({p.L for p in run.points} & {p.L for p in twin.points})
        at = {(r.run, p.L): estimate(p) for r in (run, twin) for p in r.points}
        loops = tuple(LoopGap(L, at[run.run, L], at[twin.run, L]) for L in common)
        pairs.append(IlsdVanillaPair(run.run, twin.run, run.scale, run.N, run.L_max, loops))
    return pairs


def looped_vs_unique(runs: Sequence[RunEval]) -> list[LoopedVsUnique]:
    """Iso-compute pairs: each ELT run at every evaluated L against the unique run of depth N*L.

    Pairs come in grid order of the ELT runs, then by L; an (ELT run, L) without a unique run of
    depth N * L (same metric, modality, family, scale) is left out, as are vanilla runs. Two
    unique runs of one depth make the pairing ambiguous: ValueError naming them.
    """
    out = []
    for run in runs:
        if run.kind != "elt":
            continue
        for point in run.points:
            depth = run.N * point.L
            matches = [u for u in runs if u.kind == "unique" and u.N == depth
                       and _setting(u) == _setting(run)]
            if len(matches) > 1:
                raise ValueError(
                    f"looped run {run.run!r} at L={point.L} has several unique-depth baselines "
                    f"{[m.run for m in matches]} of depth {depth}; keep one in the grid")
            if not matches:
                continue
            unique = matches[0]
            # A unique model has L_max = 1; its only meaningful exit is L = 1.
            u_point = next((p for p in unique.points if p.L == 1), None)
            if u_point is None:
                continue
            out.append(LoopedVsUnique(
                looped_run=run.run, unique_run=unique.run, kind=run.kind, scale=run.scale,
                N=run.N, L_max=run.L_max, L=point.L, depth=depth,
                quality_looped=point.quality, quality_unique=u_point.quality,
                gflops_looped=point.gflops, gflops_unique=u_point.gflops,
                params_looped=run.params, params_unique=unique.params,
                std_looped=point.quality_std, std_unique=u_point.quality_std))
    return out
