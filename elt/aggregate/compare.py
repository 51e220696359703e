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
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from elt.aggregate.collect import RunEval

# Run kinds that make the headline Pareto front, its power-law fit and the looped-vs-unique
# numbers: ELT (ILSD) runs and unique-layer baselines. Vanilla looping is an ablation; its points
# stay in the points table and in the ILSD-vs-vanilla comparison only.
FRONT_KINDS = ("elt", "unique")


@dataclasses.dataclass(frozen=True)
class LoopGap:
    L: int
    quality_ilsd: float
    quality_vanilla: float

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
    def mean_gap_below_L_max(self) -> float | None:
        """Mean Q(vanilla) - Q(ILSD) over common L < L_max; None when there is none."""
        gaps = [g.gap for g in self.loops if g.L < self.L_max]
        return sum(gaps) / len(gaps) if gaps else None


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

    @property
    def params_ratio(self) -> float:
        """How many times fewer unique-layer parameters the looped model has."""
        return self.params_unique / self.params_looped

    @property
    def quality_diff(self) -> float:
        """Q(looped) - Q(unique): positive means the looped model is worse."""
        return self.quality_looped - self.quality_unique


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
        loops = tuple(LoopGap(L, run.quality_at(L), twin.quality_at(L)) for L in common)
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
                params_looped=run.params, params_unique=unique.params))
    return out
