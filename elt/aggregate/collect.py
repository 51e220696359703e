"""Read the evaluate stage's `runs/<RUN>/eval.json` of exactly the grid's runs into flat points.

Only the grid's keys are read: folders of runs removed from the grid stay on disk (DVC does not
delete them) and must not leak into the figures. Every file is checked before anything is
computed, and each error names the file and the key.

Each eval.json names its quality metric ("metric": "fid", "fvd", ...; lower is better) and its
"modality" ("image", "video"); each per_loop entry holds the value under the metric's own name.
Files written before those keys existed are FID on images.

Spreads are optional (files written before them lack them): per_loop[L] may carry
"<metric>_std" (jackknife std over the samples), "<metric>_lo"/"<metric>_hi" (95%
normal interval), "kid"/"kid_std", "is_std", "cfg_scale" (the guidance scale of this, the best,
result) and "num_samples". A missing one is None in Point: unknown, never 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

KINDS = ("elt", "vanilla", "unique")
# Keys that both the grid entry and eval.json may carry; a mismatch means a stale eval.json.
_SHARED_KEYS = ("scale", "N", "L_max", "ilsd", "kind", "family")
# A grid entry without a family is a MaskGIT run, as in elt.config (the only family at first).
DEFAULT_FAMILY = "maskgit"
# What an eval.json without "metric" (written before the key existed) measured.
LEGACY_METRIC, LEGACY_MODALITY = "fid", "image"
# Metric and modality names end up in file names and MLflow metric keys: keep them plain.
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class Point:
    """One (run, L) operating point: a row of points.csv and table.md."""

    run: str
    family: str
    scale: str
    kind: str  # "elt" (ILSD), "vanilla" (looped, no ILSD), "unique" (N*L distinct layers)
    N: int
    L: int  # inference loop count
    L_max: int  # loop count of training
    ilsd: bool
    params: int  # unique-layer parameters (paper's "# params")
    params_total: int | None
    gflops: float
    metric: str  # name of the quality metric, e.g. "fid" or "fvd" (lower is better)
    modality: str  # "image" or "video"
    quality: float  # the metric's value at this L
    inception_score: float | None
    samples_per_second: float | None
    steps: int | None  # sampling steps (network runs per sample, the paper's "# steps")
    # Spreads and the rest of eval.json's optional numbers; None = not in eval.json (unknown).
    quality_std: float | None = None  # jackknife std of `quality` over the samples
    quality_lo: float | None = None  # 95% interval of `quality` (fid -/+ 1.96 std)
    quality_hi: float | None = None
    kid: float | None = None  # Kernel Inception Distance (clean-fid definition), raw
    kid_std: float | None = None  # over subsets
    is_std: float | None = None  # Inception Score std over splits
    cfg_scale: float | None = None  # classifier-free guidance scale of this (best) result
    num_samples: int | None = None

    @property
    def label(self) -> str:
        """The paper's "N x L" point label."""
        return f"{self.N}x{self.L}"

    @property
    def looped(self) -> bool:
        return self.kind != "unique"


@dataclasses.dataclass(frozen=True)
class RunEval:
    """All points of one grid run, sorted by L."""

    run: str
    family: str
    scale: str
    kind: str
    N: int
    L_max: int
    ilsd: bool
    params: int
    params_total: int | None
    metric: str
    modality: str
    points: tuple[Point, ...]

    def quality_at(self, L: int) -> float | None:
        for p in self.points:
            if p.L == L:
                return p.quality
        return None

    @property
    def best(self) -> Point:
        """Best-quality point; ties go to the cheaper one (Fig. 5 plots each run's best one)."""
        return min(self.points, key=lambda p: (p.quality, p.gflops, p.L))


def metric_label(metric: str) -> str:
    """How tables and figures write a metric's name: "fid" -> "FID"."""
    return metric.upper()


class EvalFileError(ValueError):
    """An eval.json is missing, malformed or disagrees with the grid."""


def kind_of(L_max: int, ilsd: bool) -> str:
    """"unique" for L_max = 1 (N distinct layers), else "elt" with ILSD or "vanilla" without."""
    if L_max == 1:
        return "unique"
    return "elt" if ilsd else "vanilla"


def _entry_dict(run: str, entry: Any) -> dict[str, Any]:
    """A grid entry as a dict: a raw params.yaml mapping or an elt.config.GridPoint."""
    if isinstance(entry, Mapping):
        return {"family": DEFAULT_FAMILY, **entry}
    if all(hasattr(entry, k) for k in ("scale", "N", "L_max", "ilsd")):
        return {"family": DEFAULT_FAMILY,
                **{k: getattr(entry, k) for k in _SHARED_KEYS if hasattr(entry, k)}}
    raise ValueError(f"grid.{run} must be a mapping with scale, N, L_max, ilsd; got {entry!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _require(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise EvalFileError(f"{path}: {msg}")


def _optional_number(path: Path, where: str, value: Any,
                     minimum: float | None = None) -> float | None:
    if value is None:
        return None
    bound = "" if minimum is None else f" >= {minimum:g}"
    _require(_is_number(value) and (minimum is None or value >= minimum), path,
             f"{where} must be a finite number{bound} or null, got {value!r}")
    return float(value)


def _spreads(path: Path, where: str, metrics: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """Point's optional spread fields from one per_loop entry (absent keys -> None)."""
    def number(key: str, minimum: float | None = None) -> float | None:
        return _optional_number(path, f"{where}[{key!r}]", metrics.get(key), minimum)

    out = dict(quality_std=number(f"{metric}_std", 0), quality_lo=number(f"{metric}_lo"),
               quality_hi=number(f"{metric}_hi"), kid=number("kid"),
               kid_std=number("kid_std", 0), is_std=number("is_std", 0),
               cfg_scale=number("cfg_scale"))
    lo, hi = out["quality_lo"], out["quality_hi"]
    _require(lo is None or hi is None or lo <= hi, path,
             f"{where}: {metric}_lo {lo!r} is above {metric}_hi {hi!r}")
    n = metrics.get("num_samples")
    _require(n is None or (_is_int(n) and n >= 1), path,
             f"{where}['num_samples'] must be an integer >= 1 or null, got {n!r}")
    return dict(out, num_samples=n)


def _metric_and_modality(data: Mapping[str, Any], path: Path) -> tuple[str, str]:
    """("fid", "image") for files older than the keys; both keys or neither, since a metric
    without its modality would silently land on the image side."""
    if "metric" not in data and "modality" not in data:
        return LEGACY_METRIC, LEGACY_MODALITY
    for key in ("metric", "modality"):
        _require(key in data, path, f"missing key {key!r} (eval.json names both metric and "
                 "modality, or neither for an FID image run)")
        _require(isinstance(data[key], str) and _NAME_RE.fullmatch(data[key]) is not None, path,
                 f"key {key!r} must be a lowercase name like 'fid' or 'image', got {data[key]!r}")
    return data["metric"], data["modality"]


def parse_eval(data: Mapping[str, Any], run: str, grid_entry: Mapping[str, Any],
               path: Path, steps: int | None = None) -> RunEval:
    """Validate one eval.json's content against its grid entry and return its points.

    `steps` is the sampling-step count to report when eval.json carries neither
    "sampling_steps" nor "steps".
    """
    _require(isinstance(data, dict), path,
             f"top level must be an object, got {type(data).__name__}")
    for key in ("run", "family", "scale", "N", "L_max", "ilsd", "kind", "params", "per_loop"):
        _require(key in data, path, f"missing key {key!r}")
    _require(data["run"] == run, path,
             f"key 'run' is {data['run']!r} but the file belongs to grid run {run!r}")
    _require(data["kind"] in KINDS, path,
             f"key 'kind' must be one of {KINDS}, got {data['kind']!r}")
    for key in ("N", "L_max"):
        _require(_is_int(data[key]) and data[key] >= 1, path,
                 f"key {key!r} must be an integer >= 1, got {data[key]!r}")
    _require(isinstance(data["ilsd"], bool), path,
             f"key 'ilsd' must be a boolean, got {data['ilsd']!r}")
    _require(_is_int(data["params"]) and data["params"] > 0, path,
             f"key 'params' must be a positive integer, got {data['params']!r}")
    params_total = data.get("params_total")
    _require(params_total is None or (_is_int(params_total) and params_total > 0), path,
             f"key 'params_total' must be a positive integer or null, got {params_total!r}")
    kind = data["kind"]
    # The kind names the comparison a run takes part in; contradicting flags would put it in the
    # wrong one silently. Same rule as elt.config.GridPoint.kind.
    expected = kind_of(data["L_max"], data["ilsd"])
    _require(kind == expected, path,
             f"key 'kind' is {kind!r} but L_max={data['L_max']}, ilsd={data['ilsd']} "
             f"make it {expected!r}")
    for key in _SHARED_KEYS:
        if key in grid_entry:
            _require(grid_entry[key] == data[key], path,
                     f"key {key!r} is {data[key]!r} but grid run {run!r} has {grid_entry[key]!r} "
                     "(stale eval.json? rerun the evaluate stage)")
    # The evaluate stage writes "sampling_steps"; "steps" is accepted as well.
    steps_key = next((k for k in ("sampling_steps", "steps") if data.get(k) is not None), None)
    file_steps = data[steps_key] if steps_key else steps
    _require(file_steps is None or (_is_int(file_steps) and file_steps >= 1), path,
             f"key {steps_key or 'steps'!r} must be an integer >= 1 or null, got {file_steps!r}")

    metric, modality = _metric_and_modality(data, path)
    per_loop = data["per_loop"]
    _require(isinstance(per_loop, dict) and per_loop, path,
             "key 'per_loop' must be a non-empty object")
    points = []
    for loop_key, metrics in per_loop.items():
        where = f"per_loop[{loop_key!r}]"
        # Canonical spelling only: "01" next to "1" would silently give two L = 1 points.
        _require(isinstance(loop_key, str) and loop_key.isdigit() and int(loop_key) >= 1
                 and str(int(loop_key)) == loop_key, path,
                 f"{where}: loop count must be an integer >= 1 written without leading zeros")
        _require(isinstance(metrics, dict), path, f"{where} must be an object")
        for key in (metric, "gflops"):
            _require(key in metrics, path, f"{where} is missing key {key!r}")
        _require(_is_number(metrics[metric]) and metrics[metric] >= 0, path,
                 f"{where}[{metric!r}] must be a finite number >= 0, got {metrics[metric]!r}")
        _require(_is_number(metrics["gflops"]) and metrics["gflops"] > 0, path,
                 f"{where}['gflops'] must be a finite number > 0, got {metrics['gflops']!r}")
        points.append(Point(
            run=run, family=str(data["family"]), scale=str(data["scale"]), kind=kind,
            N=data["N"], L=int(loop_key), L_max=data["L_max"], ilsd=data["ilsd"],
            params=data["params"], params_total=params_total,
            gflops=float(metrics["gflops"]), metric=metric, modality=modality,
            quality=float(metrics[metric]),
            inception_score=_optional_number(path, f"{where}['is']", metrics.get("is")),
            samples_per_second=_optional_number(
                path, f"{where}['samples_per_second']", metrics.get("samples_per_second")),
            steps=file_steps,
            **_spreads(path, where, metrics, metric),
        ))
    points.sort(key=lambda p: p.L)
    return RunEval(run=run, family=str(data["family"]), scale=str(data["scale"]), kind=kind,
                   N=data["N"], L_max=data["L_max"], ilsd=data["ilsd"], params=data["params"],
                   params_total=params_total, metric=metric, modality=modality,
                   points=tuple(points))


def load_runs(grid: Mapping[str, Any], runs_dir: str | Path,
              steps: int | None = None) -> list[RunEval]:
    """Read `runs_dir/<key>/eval.json` for every key of `grid`, in grid order.

    Raises EvalFileError naming every missing file at once (one rerun fixes them all), or the
    first malformed one.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid must be a non-empty mapping of run name -> settings, got {grid!r}")
    runs_dir = Path(runs_dir)
    paths = {run: runs_dir / str(run) / "eval.json" for run in grid}
    entries = {run: _entry_dict(str(run), grid[run]) for run in grid}  # bad grid: fail first
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise EvalFileError("missing eval.json for grid runs: " + ", ".join(missing))
    runs = []
    for run, path in paths.items():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise EvalFileError(f"{path}: not valid JSON ({err})") from err
        runs.append(parse_eval(data, str(run), entries[run], path, steps=steps))
    return runs
