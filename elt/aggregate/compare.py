"""The paper's two controlled comparisons, as data.

"Quality" is the runs' metric (FID, FVD, ...; lower is better). elt.aggregate.report calls these
with the runs of one metric at a time; twins must also share the metric and modality anyway, so
no comparison ever subtracts an FVD from an FID.

- ILSD vs. vanilla looping (Fig. 8): an ILSD run and its twin trained on the L_max exit only, same
  family, scale, N and L_max. The gap is Q(vanilla) - Q(ILSD), so positive means ILSD helps;
  its mean is taken over L < L_max, the intermediate exits that ILSD trains and vanilla does not.
- Looped vs. unique depth (Tables 1-2): a looped run at L = L_max against the unique-layer run of
  the same family and scale whose depth equals the looped run's effective depth N * L_max.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from elt.aggregate.collect import RunEval


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
    looped_run: str
    unique_run: str
    kind: str  # of the looped run
    scale: str
    N: int
    L_max: int
    depth: int  # N * L_max = the unique run's layer count
    quality_looped: float  # at L = L_max
    quality_unique: float
    gflops_looped: float
    gflops_unique: float
    params_looped: int
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
    """Each looped run (L_max > 1) evaluated at L_max against its equal-depth unique run."""
    out = []
    for run in runs:
        if run.kind == "unique" or run.L_max < 2 or run.quality_at(run.L_max) is None:
            continue
        depth = run.N * run.L_max
        matches = [u for u in runs if u.kind == "unique" and u.N == depth
                   and _setting(u) == _setting(run)]
        if len(matches) > 1:
            raise ValueError(
                f"looped run {run.run!r} has several unique-depth baselines "
                f"{[m.run for m in matches]} of depth {depth}; keep one in the grid")
        if not matches:
            continue
        unique = matches[0]
        # A unique model has L_max = 1; its only meaningful exit is L = 1.
        u_point = next((p for p in unique.points if p.L == 1), None)
        if u_point is None:
            continue
        l_point = next(p for p in run.points if p.L == run.L_max)
        out.append(LoopedVsUnique(
            looped_run=run.run, unique_run=unique.run, kind=run.kind, scale=run.scale, N=run.N,
            L_max=run.L_max, depth=depth, quality_looped=l_point.quality,
            quality_unique=u_point.quality,
            gflops_looped=l_point.gflops, gflops_unique=u_point.gflops,
            params_looped=run.params, params_unique=unique.params))
    return out
