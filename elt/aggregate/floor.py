"""The real-data floor: what the metric gives held-out real images at the runs' sample count.

Written by the floor stage (default data/floor/floor.json):

    {"dataset": "digits", "split": "train[1497:]", "num_samples": 100, "draws": 3,
     "metrics": {"fid": {"real": {"mean": 32.9, "std": 1.1, "values": [...], "draw_std": 1.3},
                         "reconstruction": {...}}}}

"real" = held-out real images against the runs' reference statistics (the best any model can
expect at that n); "reconstruction" = the same images through the tokenizer (the best a model on
these tokens can expect); when several families (each with its own tokenizer) share the metric,
one "reconstruction:<family>" per family instead. "std" is over disjoint draws (null with one draw). A missing file is
"no floor computed" (load_floor returns None); a malformed one is a FloorFileError naming the
file and key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

KINDS = ("real", "reconstruction")
FAMILY_KIND = "reconstruction:"  # + family name: one family's reconstructions


def is_kind(key: str) -> bool:
    return key in KINDS or (key.startswith(FAMILY_KIND) and len(key) > len(FAMILY_KIND))


class FloorFileError(ValueError):
    """floor.json is malformed."""


@dataclasses.dataclass(frozen=True)
class FloorValue:
    mean: float
    std: float | None  # over disjoint draws; None with one draw
    draw_std: float | None  # the metric's own spread estimate of one draw (mean over draws)
    values: tuple[float, ...]  # one per draw

    @property
    def spread(self) -> float | None:
        """The std shown and used in comparisons: over draws, else the one-draw estimate."""
        return self.std if self.std is not None else self.draw_std

    @property
    def spread_kind(self) -> str:
        if self.std is not None:
            return f"std over {len(self.values) or 'several'} disjoint draws"
        return "spread estimate of one draw" if self.draw_std is not None else "spread unknown"


@dataclasses.dataclass(frozen=True)
class Floor:
    path: str
    dataset: str | None
    split: str | None
    num_samples: int
    draws: int | None
    metrics: Mapping[str, Mapping[str, FloorValue]]  # metric -> {"real"/"reconstruction": ...}
    reason: str | None = None  # why there is no metric (e.g. no data.heldout_split)
    # metric -> (dataset, split) where the file names them per metric (FVD's clips of video_data
    # are not the images of the top-level dataset/split)
    sources: Mapping[str, tuple[str | None, str | None]] = dataclasses.field(default_factory=dict)

    def source(self, metric: str) -> tuple[str | None, str | None]:
        """(dataset, split) of the held-out real data `metric`'s floor was measured on."""
        return self.sources.get(metric, (self.dataset, self.split))

    def get(self, metric: str, kind: str) -> FloorValue | None:
        return self.metrics.get(metric, {}).get(kind)

    def kinds(self, metric: str) -> list[str]:
        """The kinds the file holds for `metric`: real first, then the reconstructions."""
        return sorted(self.metrics.get(metric, {}), key=lambda k: (k != "real", k))


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def parse_floor(data: Any, path: str | Path) -> Floor:
    def require(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise FloorFileError(f"{path}: key {key!r} {msg}")

    require(isinstance(data, dict), "(top level)", "must be an object")
    for key in ("num_samples", "metrics"):
        require(key in data, key, "is missing")
    require(_int(data["num_samples"]), "num_samples",
            f"must be an integer >= 1, got {data['num_samples']!r}")
    require(data.get("draws") is None or _int(data["draws"]), "draws",
            f"must be an integer >= 1 or null, got {data.get('draws')!r}")
    for key in ("dataset", "split"):
        require(data.get(key) is None or isinstance(data[key], str), key,
                f"must be a string or null, got {data.get(key)!r}")
    # No metric at all is valid when the file says why (no held-out split to measure on).
    require(isinstance(data["metrics"], dict) and (data["metrics"] or isinstance(data.get("reason"), str)),
            "metrics", "must be a non-empty object of metric -> {real, reconstruction}, or empty "
            "with a 'reason'")
    metrics: dict[str, dict[str, FloorValue]] = {}
    for metric, kinds in data["metrics"].items():
        where = f"metrics.{metric}"
        require(isinstance(kinds, dict) and any(is_kind(k) for k in kinds), where,
                f"must be an object with {' and/or '.join(KINDS)} (or {FAMILY_KIND}<family>)")
        metrics[metric] = {}
        for kind in kinds:
            if not is_kind(kind):
                continue
            v, at = kinds[kind], f"{where}.{kind}"
            require(isinstance(v, dict), at, "must be an object")
            require(_number(v.get("mean")), f"{at}.mean",
                    f"must be a finite number, got {v.get('mean')!r}")
            for key in ("std", "draw_std"):
                require(v.get(key) is None or (_number(v[key]) and v[key] >= 0), f"{at}.{key}",
                        f"must be a finite number >= 0 or null, got {v.get(key)!r}")
            values = v.get("values") or []
            require(isinstance(values, list) and all(_number(x) for x in values),
                    f"{at}.values", f"must be a list of finite numbers, got {values!r}")
            std, boot = (None if v.get(k) is None else float(v[k])
                         for k in ("std", "draw_std"))
            metrics[metric][kind] = FloorValue(float(v["mean"]), std, boot,
                                               tuple(float(x) for x in values))
    sources = {m: (k.get("dataset"), k.get("split")) for m, k in data["metrics"].items()
               if isinstance(k.get("dataset"), str) and isinstance(k.get("split"), str)}
    return Floor(str(path), data.get("dataset"), data.get("split"), data["num_samples"],
                 data.get("draws"), metrics, data.get("reason"), sources)


def load_floor(path: str | Path | None) -> Floor | None:
    """The floor in `path`; None when no path is given or the file does not exist."""
    if path is None or not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise FloorFileError(f"{path}: not valid JSON ({err})") from err
    return parse_floor(data, path)
