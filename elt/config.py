"""params.yaml -> typed, validated configuration.

One source of truth: every stage calls `load_params()` and gets frozen dataclasses. Every check
runs here, before any compute, and every error names the offending key (``grid.S-4x2.N``) so a
user editing params.yaml knows exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

# tokenizer kind -> its typed config (a `families.<f>.tokenizer` section), importable without jax
TOKENIZER_CONFIGS = {"vq": ("elt.tokenizers.vq_config", "VQConfig"), "vae": ("elt.tokenizers.vae_config", "VAEConfig"),
                     "vq3d": ("elt.tokenizers.vq3d_config", "VQ3DConfig")}
DEFAULT_FAMILY = "maskgit"  # a grid point without `family:` (params files older than families)
# Keys that moved into a family's section: an old params file gets told where they went.
MOVED = {
    "train.family": "grid.<run>.family",
    "train.label_smoothing": "families.maskgit.train.label_smoothing",
    "sample.steps": "families.maskgit.sample.steps",
    "sample.temperature_bias": "families.maskgit.sample.temperature_bias",
    "sample.temperature_scale": "families.maskgit.sample.temperature_scale",
    "sample.choice_temperature": "families.maskgit.sample.choice_temperature",
    "sample.cfg_scale": "sample.cfg_scales (a list: every run is sampled at every scale)",
    "tokenizer": "families.<family>.tokenizer (each model family has its own tokenizer: the stages "
                 "train_tokenizer@<family> and tokenize@<family> write data/tokenizer/<family> and data/tokens/<family>)",
    "eval.bootstrap": "eval.jackknife_groups (the jackknife replaced the bootstrap: at n << 2048 the bootstrap "
                      "std of FID is ~2-5x the true spread; elt/evaluation/spread.py)",
}


class ConfigError(ValueError):
    """A bad value in params.yaml; the message starts with the dotted key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"  # a tfds name (imagenet2012, cifar10, ...) or an image-folder path
    image_size: int = 32
    train_split: str = "train"
    data_dir: str = "data/tfds"
    # Examples no stage trains on (neither the tokenizer nor a model): tokenized into
    # data/tokens_heldout, where the train stage measures its per-exit losses. A tfds split or
    # slice ("validation", "train[1497:]"; image folders have one split, "train"); None: none
    # (the per-exit losses are then measured on training examples, and metrics.json says so).
    heldout_split: str | None = None

    def check(self, key: str) -> None:
        if self.heldout_split is None:
            return
        if not self.heldout_split.strip():
            raise ConfigError(f"{key}.heldout_split", "is empty (null: no held-out split)")
        if self.splits_overlap(self.train_split, self.heldout_split):
            raise ConfigError(
                f"{key}.heldout_split",
                f"{self.heldout_split!r} overlaps {key}.train_split {self.train_split!r}: held-out "
                f"examples must not be trained on (e.g. train_split 'train[:90%]', heldout_split 'train[90%:]')",
            )

    @staticmethod
    def splits_overlap(a: str, b: str) -> bool | None:
        """Whether two tfds split strings share examples: True, False, or None where that cannot
        be told without the split's size (`train[:1000]` vs `train[-300:]`, `train[:10%]+test`).
        Disjoint: other splits, or slices of one split with bounds of comparable kinds."""

        begin, end = ("s", 0), ("e", 0)  # positions: ("s", k) k-th from the start,
        # ("e", k) k <= 0 from the end, ("%", p) at p percent (0 < p < 100)

        def pos(text: str | None, default):
            if not text:
                return default
            if text.endswith("%"):
                p = int(text[:-1]) % 100 if text.startswith("-") else int(text[:-1])
                return begin if p == 0 else end if p >= 100 else ("%", p)
            return ("s", int(text)) if int(text) >= 0 else ("e", int(text))

        def parse(s: str):
            m = re.fullmatch(r"\s*([\w-]+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*", s)
            return m and (m.group(1), pos(m.group(2), begin), pos(m.group(3), end))

        def le(p, q):  # the end p of a (non-empty) slice <= the start q of another: True, False,
            if p[0] == q[0]:  # or None (depends on the split's size)
                return p[1] <= q[1]
            if p == end or q == begin:  # a start is before the end, an end after the start
                return False
            return None

        if a.strip() == b.strip():
            return True
        pa, pb = parse(a), parse(b)
        if pa is None or pb is None:
            return None
        if pa[0] != pb[0]:
            return False
        apart = (le(pa[2], pb[1]), le(pb[2], pa[1]))
        if True in apart:
            return False
        return True if apart == (False, False) else None


@dataclass(frozen=True)
class VideoDataConfig(DataConfig):
    """`video_data`: a video data set, cut into clips by the clip rule of elt/data/video.py. The
    clips are a property of the data: the video tokenizer, the reference statistics and the floor
    all read the same clips (the tokenizer takes num_frames and frame_stride from here)."""

    num_frames: int = 16  # T: frames per clip
    frame_stride: int = 1  # taken source frames are this many apart

    def check(self, key: str) -> None:
        super().check(key)
        for name in ("num_frames", "frame_stride"):
            _positive(f"{key}.{name}", getattr(self, name))


@dataclass(frozen=True)
class TokenizeConfig:
    batch_size: int = 128
    num_shards: int = 4
    runner: str = "DirectRunner"
    direct_num_workers: int = 2
    direct_running_mode: str = "multi_threading"  # measured ~9x faster than multi_processing here
    read_size: int = 1024  # examples per Beam work item
    pipeline_options: tuple[str, ...] = ()  # passed through to Beam (Dataflow/Flink/Spark flags)


@dataclass(frozen=True)
class Scale:
    """A model width (paper Table 6). ``overrides`` adjusts training hyper-parameters for this
    scale only (the paper multiplies weight decay by 5 for scales >= H)."""

    d_model: int
    mlp_dim: int
    num_heads: int
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def check(self, key: str) -> None:
        for f in ("d_model", "mlp_dim", "num_heads"):
            _positive(f"{key}.{f}", getattr(self, f))
        if self.d_model % self.num_heads:
            raise ConfigError(f"{key}.num_heads", f"{self.num_heads} heads do not divide d_model {self.d_model}")
        bad = sorted(set(self.overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
        if bad:
            raise ConfigError(f"{key}.overrides.{bad[0]}", "not a train hyper-parameter")


@dataclass(frozen=True)
class MeshConfig:
    """`mesh`: how training spreads over devices (elt/core/mesh.py). It changes speed and memory,
    not results, so no DVC stage depends on it and a checkpoint resumes under any mesh."""

    data: int = -1  # data-parallel axis size; -1: the devices fsdp leaves
    fsdp: int = 1  # parameter/optimizer-state sharding axis size; -1: the devices data leaves
    fsdp_min_size: int = 16384  # leaves with fewer elements stay replicated (not worth a gather)
    # (regex over the state leaf's path, "fsdp" | "replicate"), first match wins; no match: replicate
    rules: tuple = ((".*", "fsdp"),)

    def check(self, key: str) -> None:
        for name in ("data", "fsdp"):
            v = getattr(self, name)
            if v != -1 and v < 1:
                raise ConfigError(f"{key}.{name}", f"must be >= 1 or -1 (the remaining devices), got {v}")
        if self.data == -1 and self.fsdp == -1:
            raise ConfigError(f"{key}.data", "only one of mesh.data and mesh.fsdp may be -1")
        _positive(f"{key}.fsdp_min_size", self.fsdp_min_size, allow_zero=True)
        for i, rule in enumerate(self.rules):
            where = f"{key}.rules[{i}]"
            if not (isinstance(rule, (list, tuple)) and len(rule) == 2 and all(isinstance(r, str) for r in rule)):
                raise ConfigError(where, f"expected [regex, strategy], got {rule!r}")
            if rule[1] not in ("fsdp", "replicate"):
                raise ConfigError(where, f"strategy must be 'fsdp' or 'replicate', got {rule[1]!r}")
            try:
                re.compile(rule[0])
            except re.error as e:
                raise ConfigError(where, f"bad regex {rule[0]!r}: {e}") from None


@dataclass(frozen=True)
class TrainConfig:
    """`train`: what every family trains with (its own loss settings: families.<f>.train)."""

    batch_size: int = 64
    steps: int = 1000
    lr: float = 1e-4
    b1: float = 0.9
    b2: float = 0.96
    weight_decay: float = 0.045
    warmup_steps: int = 100
    decay: str = "cosine"  # after warmup: "cosine" to 0 or "constant"
    label_drop: float = 0.1  # CFG training: labels dropped to the unconditional class (families with guidance only)
    L_min: int = 1  # smallest student exit of ILSD
    remat: bool = False
    checkpoint_every: int = 200
    log_every: int = 25
    seed: int = 0
    # Exponential moving average of the parameters (DiT practice: 0.9999): the published
    # checkpoint, the held-out exit losses and sampling use it. null: no EMA (the raw parameters).
    ema_decay: float | None = None

    def check(self, key: str) -> None:
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"{key}.ema_decay", f"must be in (0, 1) or null, got {self.ema_decay}")
        for name in ("batch_size", "steps", "checkpoint_every", "log_every"):
            _positive(f"{key}.{name}", getattr(self, name))
        _positive(f"{key}.lr", self.lr)
        _positive(f"{key}.warmup_steps", self.warmup_steps, allow_zero=True)
        _positive(f"{key}.weight_decay", self.weight_decay, allow_zero=True)
        for name in ("b1", "b2", "label_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", f"must be in [0, 1), got {getattr(self, name)}")
        if self.decay not in ("cosine", "constant"):
            raise ConfigError(f"{key}.decay", f"must be 'cosine' or 'constant', got {self.decay!r}")
        if self.L_min < 1:
            raise ConfigError(f"{key}.L_min", f"must be >= 1, got {self.L_min}")


@dataclass(frozen=True)
class GridPoint:
    """One training run: ``scale`` with N unique layers looped up to L_max times.

    kind: "elt" (ILSD), "vanilla" (looped, trained on the L_max exit only) or "unique"
    (L_max = 1: N distinct layers, the paper's baseline)."""

    name: str
    scale: str
    N: int
    L_max: int
    ilsd: bool
    family: str = DEFAULT_FAMILY

    @property
    def kind(self) -> str:
        if self.L_max == 1:
            return "unique"
        return "elt" if self.ilsd else "vanilla"


@dataclass(frozen=True)
class SampleConfig:
    """`sample`: what every family samples with (its sampler settings: families.<f>.sample)."""

    loops: tuple[int, ...] = (1, 2, 3, 4)  # loop counts L to sample at (may exceed L_max)
    num_samples: int = 100
    batch_size: int = 50
    # Classifier-free guidance scales, u + s*(c - u), each sampled and evaluated; per (run, L) the
    # evaluation reports the best, as the paper does. 1 = no guidance (one network pass per step).
    # Families without guidance (config.GUIDANCE = False) sample at 1 only.
    cfg_scales: tuple[float, ...] = (1.0,)
    seed: int = 0

    def check(self, key: str) -> None:
        if not self.loops:
            raise ConfigError(f"{key}.loops", "must list at least one loop count")
        for i, L in enumerate(self.loops):
            if isinstance(L, bool) or not isinstance(L, int) or L < 1:
                raise ConfigError(f"{key}.loops[{i}]", f"loop counts must be integers >= 1, got {L!r}")
        if len(set(self.loops)) != len(self.loops):
            raise ConfigError(f"{key}.loops", f"duplicate loop counts in {list(self.loops)}")
        for name in ("num_samples", "batch_size"):
            _positive(f"{key}.{name}", getattr(self, name))
        if not self.cfg_scales:
            raise ConfigError(f"{key}.cfg_scales", "must list at least one scale (1.0: no guidance)")
        for i, s in enumerate(self.cfg_scales):
            if isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0:
                raise ConfigError(f"{key}.cfg_scales[{i}]", f"guidance scales must be numbers >= 0, got {s!r}")
        if len({float(s) for s in self.cfg_scales}) != len(self.cfg_scales):
            raise ConfigError(f"{key}.cfg_scales", f"duplicate scales in {list(self.cfg_scales)}")


@dataclass(frozen=True)
class FamilyConfig:
    """`families.<name>`: one family's typed settings (classes from elt/families/<name>/config.py)."""

    name: str
    train: Any
    sample: Any
    quality_metric: str
    modality: str
    tokenizer_kind: str
    guidance: bool  # samples with classifier-free guidance (the CFG sweep applies)
    # `families.<name>.tokenizer`, typed by its kind (elt/tokenizers/<kind>_config.py): trained by
    # train_tokenizer@<name> into data/tokenizer/<name>; its tokens are data/tokens/<name>
    tokenizer: Any = None


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 50
    ref_split: str = "train"
    ref_num_images: int | None = None  # None: the whole split; k: a random subset of k (ref_seed)
    weights: str = "data/weights/fid_inception.pt"
    # Seeds the reference subset, the FID jackknife's groups and the KID subsets.
    ref_seed: int = 0
    # Groups of the delete-a-group jackknife for the FID spread (fid_std, fid_lo/hi): min(n, this);
    # at n <= this, leave-one-out. 0: no spread. (Not a bootstrap: its std is ~2-5x too wide at n << D.)
    jackknife_groups: int = 100
    kid_subsets: int = 100  # KID subsets (clean-fid); 0: no KID
    # FVD (video families): the Kinetics-400 I3D (stage fetch_fvd_weights), clips per I3D call,
    # MAGVIT's spread (the mean and std of `fvd_repeats` FVDs, each of `fvd_clips_per_repeat`
    # samples against as many real clips; fewer samples than repeats x clips: one FVD, no spread,
    # and eval.json says why), and the clips of video_data.train_split in the reference (null: all;
    # k: a seeded subset, ref_seed).
    fvd_weights: str = "data/weights/fvd_i3d.ckpt"
    fvd_batch_size: int = 8
    fvd_repeats: int = 4
    fvd_clips_per_repeat: int = 10_000
    fvd_ref_clips: int | None = None

    def check(self, key: str) -> None:
        for name in ("ref_seed", "jackknife_groups", "kid_subsets"):
            _positive(f"{key}.{name}", getattr(self, name), allow_zero=True)
        for name in ("fvd_batch_size", "fvd_repeats"):
            _positive(f"{key}.{name}", getattr(self, name))
        for name in ("fvd_clips_per_repeat", "fvd_ref_clips"):
            if getattr(self, name) is not None and getattr(self, name) < 2:
                raise ConfigError(f"{key}.{name}", f"FVD needs >= 2 clips, got {getattr(self, name)}")
        if self.jackknife_groups == 1:
            raise ConfigError(f"{key}.jackknife_groups", "must be 0 (no spread) or >= 2 groups, got 1")


@dataclass(frozen=True)
class Params:
    seed: int
    data: DataConfig
    tokenize: TokenizeConfig
    scales: Mapping[str, Scale]
    train: TrainConfig
    grid: Mapping[str, GridPoint]
    sample: SampleConfig
    eval: EvalConfig
    families: Mapping[str, FamilyConfig]
    # `video_data`: the data of the video families (magvit): clips of a video data set, its
    # image_size the frame size. None (`video_data: null`) when the grid has no video family.
    video_data: VideoDataConfig | None = None
    mesh: MeshConfig = MeshConfig()

    def data_for(self, family: str) -> DataConfig:
        """The data a family trains its tokenizer and models on: `video_data` for a video family,
        `data` for an image one (parse_params made sure the video family has it)."""
        return self.video_data if self.families[family].modality == "video" else self.data

    def data_key(self, family: str) -> str:
        """The params section data_for(family) is: "video_data" or "data" (for messages)."""
        return _DATA_KEY[self.families[family].modality]

    def point(self, run: str) -> GridPoint:
        """The grid point a stage was asked to work on (``--run``), or an error naming it."""
        if run not in self.grid:
            raise ConfigError("--run", f"{run!r} is not a key of `grid` (known: {', '.join(self.grid)})")
        return self.grid[run]

    def grid_family(self, name: str | None, key: str = "--family") -> FamilyConfig:
        """The family a per-family stage (train_tokenizer@F, tokenize@F) was asked for, or an error
        naming it; None: the grid's only family."""
        used = sorted({p.family for p in self.grid.values()})
        if name is None and len(used) == 1:
            name = used[0]
        if name not in used:
            raise ConfigError(key, f"{name!r} is not a family of the grid (its families: {', '.join(used)})")
        return self.families[name]

    def family(self, run: str) -> FamilyConfig:
        """The settings of the family a grid point belongs to."""
        return self.families[self.grid[run].family]

    def quality_metrics(self) -> list[str]:
        """The metrics the grid's families are scored by (each needs reference statistics)."""
        return sorted({self.families[p.family].quality_metric for p in self.grid.values()})

    def train_hyper(self, run: str) -> TrainConfig:
        """Training hyper-parameters of one run, with its scale's overrides applied. A family
        without guidance trains with no label drop: labels are dropped only to learn the null
        class that classifier-free guidance samples with (the paper's video models: none)."""
        point = self.grid[run]
        hyper = dataclasses.replace(self.train, **dict(self.scales[point.scale].overrides))
        return hyper if self.family(run).guidance else dataclasses.replace(hyper, label_drop=0.0)

    def loops_for(self, run: str) -> tuple[int, ...]:
        """Loop counts to sample a run at: a unique-depth baseline has no loop to vary."""
        return (1,) if self.grid[run].kind == "unique" else self.sample.loops

    def sample_points(self, run: str) -> list[tuple[int, float]]:
        """(L, cfg_scale) pairs a run is sampled and evaluated at: every loop count at every
        guidance scale, or at scale 1 only for a family without guidance."""
        scales = tuple(float(s) for s in self.sample.cfg_scales) if self.family(run).guidance else (1.0,)
        return [(L, s) for L in self.loops_for(run) for s in scales]

    def run_config(self, run: str) -> dict:
        """The fully resolved configuration of one grid point (for tracking and hashing)."""
        point = self.grid[run]
        return {
            "run": run,
            "grid": dataclasses.asdict(point),
            "kind": point.kind,
            "scale": _plain(dataclasses.asdict(self.scales[point.scale])),
            "train": dataclasses.asdict(self.train_hyper(run)),
            "family": dataclasses.asdict(self.family(run).train),
            "data": dataclasses.asdict(self.data_for(point.family)),
            "tokenizer": dataclasses.asdict(self.family(run).tokenizer),
        }


def family_paths(family: str) -> dict[str, str]:
    """Where a family's tokenizer and tokens live (the stages' defaults; dvc.yaml names the same)."""
    return {"tokenizer": f"data/tokenizer/{family}", "tokenizer_metrics": f"data/tokenizer_metrics/{family}.json",
            "tokens": f"data/tokens/{family}", "tokens_heldout": f"data/tokens_heldout/{family}"}


def config_hash(obj: Any) -> str:
    """Stable short hash of a JSON-able config (checkpoints are resumed only on a match)."""
    blob = json.dumps(_plain(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- parsing


def parse_section(cls, raw: Any, key: str, required: tuple[str, ...] = ()):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types, then run
    its ``check(key)``: every section (a family's too) is validated here, once, before compute."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in raw:
        if f"{key}.{name}" in MOVED:
            raise ConfigError(f"{key}.{name}", f"moved to {MOVED[f'{key}.{name}']}")
    unknown = sorted(set(raw) - set(fields) - {"name"})
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(fields))})")
    for name in required:
        if name not in raw:
            raise ConfigError(f"{key}.{name}", "missing required key")
    values = {}
    for name, value in raw.items():
        if name not in fields:
            continue
        values[name] = _coerce(fields[name], value, f"{key}.{name}")
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check(key)
    return obj


def _coerce(f: dataclasses.Field, value: Any, key: str) -> Any:
    typ = str(f.type)
    if value is None:
        if "None" in typ:
            return None
        raise ConfigError(key, "must not be empty")
    if typ.startswith("tuple"):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        return tuple(value)
    if typ.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true/false, got {value!r}")
        return value
    if typ.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if typ.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 1e-4 (no dot) as a string; accept it if it parses as a number.
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        return float(value)
    if typ.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    return value


def point_name(L: int, cfg_scale: float) -> str:
    """The name of one sampling point in runs/RUN/samples/: `L3` (no guidance), `L3-cfg1.5`."""
    return f"L{L}" if float(cfg_scale) == 1.0 else f"L{L}-cfg{float(cfg_scale):g}"


def _positive(key: str, value: int | float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def parse_params(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "top level must be a mapping")
    known = {"seed", "data", "video_data", "tokenize", "scales", "train", "grid", "sample", "eval", "families", "mesh"}
    for key in raw:
        if key in MOVED:
            raise ConfigError(key, f"moved to {MOVED[key]}")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(unknown[0], f"unknown top-level key (known: {', '.join(sorted(known))})")

    data = parse_section(DataConfig, raw.get("data"), "data")
    _positive("data.image_size", data.image_size)
    video_data = None
    if raw.get("video_data") is not None:  # null / absent: no video data (no video family may be in the grid)
        video_data = parse_section(VideoDataConfig, raw["video_data"], "video_data", required=("dataset",))
        _positive("video_data.image_size", video_data.image_size)
    tokenize = parse_section(TokenizeConfig, raw.get("tokenize"), "tokenize")
    for name in ("batch_size", "num_shards", "direct_num_workers", "read_size"):
        _positive(f"tokenize.{name}", getattr(tokenize, name))

    scales_raw = raw.get("scales")
    if not isinstance(scales_raw, Mapping) or not scales_raw:
        raise ConfigError("scales", "must be a non-empty mapping of scale name -> {d_model, mlp_dim, num_heads}")
    train = parse_section(TrainConfig, raw.get("train"), "train")
    scales = {
        str(name): parse_section(Scale, s, f"scales.{name}", required=("d_model", "mlp_dim", "num_heads"))
        for name, s in scales_raw.items()
    }
    families = _parse_families(raw.get("families"), {"image": data, "video": video_data})

    grid_raw = raw.get("grid")
    if not isinstance(grid_raw, Mapping) or not grid_raw:
        raise ConfigError("grid", "must be a non-empty mapping of run name -> {family, scale, N, L_max, ilsd}")
    grid = {}
    for name, g in grid_raw.items():
        key = f"grid.{name}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", str(name)):
            # run names become DVC stage names (train@NAME) and param keys (grid.NAME)
            raise ConfigError(key, "run names may use letters, digits, '-' and '_' only")
        if not isinstance(g, Mapping):
            raise ConfigError(key, "expected a mapping {family, scale, N, L_max, ilsd}")
        point = parse_section(GridPoint, {**g, "name": str(name)}, key, required=("scale", "N", "L_max", "ilsd"))
        point = dataclasses.replace(point, name=str(name))
        if point.family not in families:
            from elt import families as family_registry  # pylint: disable=import-outside-toplevel

            raise ConfigError(f"{key}.family", f"unknown model family {point.family!r} (known: {', '.join(family_registry.known())})")
        if point.scale not in scales:
            raise ConfigError(f"{key}.scale", f"unknown scale {point.scale!r} (known: {', '.join(scales)})")
        if point.N < 1:
            raise ConfigError(f"{key}.N", f"must be >= 1, got {point.N}")
        if point.L_max < 1:
            raise ConfigError(f"{key}.L_max", f"must be >= 1, got {point.L_max}")
        L_min = dict(scales[point.scale].overrides).get("L_min", train.L_min)
        if point.ilsd and L_min >= point.L_max:
            raise ConfigError(f"{key}.L_max", f"ILSD needs L_min < L_max, got L_min={L_min}, L_max={point.L_max}")
        if point.family not in (raw.get("families") or {}):
            # dvc.yaml makes one tokenizer stage per section of `families`: a grid point's family needs one
            raise ConfigError(f"{key}.family", f"family {point.family!r} has no section families.{point.family} "
                              f"(at least its tokenizer: families.{point.family}.tokenizer.kind: "
                              f"{families[point.family].tokenizer_kind})")
        grid[str(name)] = point
    if video_data is not None and any(families[p.family].quality_metric == "fvd" for p in grid.values()):
        if video_data.num_frames < FVD_MIN_FRAMES:  # found here, not after the models are trained
            raise ConfigError("video_data.num_frames", f"FVD's I3D needs clips of at least {FVD_MIN_FRAMES} "
                              f"frames, got {video_data.num_frames}")
    if video_data is not None and not any(families[p.family].modality == "video" for p in grid.values()):
        # one source of truth: an unused section would still rerun prepare_data and the tokenizer stages
        raise ConfigError("video_data", "no grid point uses a video family (magvit): set it to null")
    for name in raw.get("families") or {}:
        if not any(p.family == name for p in grid.values()):
            raise ConfigError(f"families.{name}", "no grid point uses this family: remove (or comment out) the "
                              "section, or DVC trains its tokenizer (train_tokenizer@%s) for nothing" % name)

    sample = parse_section(SampleConfig, raw.get("sample"), "sample")
    evalc = parse_section(EvalConfig, raw.get("eval"), "eval")
    _positive("eval.batch_size", evalc.batch_size)
    if evalc.ref_num_images is not None and evalc.ref_num_images < 2:
        raise ConfigError("eval.ref_num_images", f"FID needs >= 2 images, got {evalc.ref_num_images}")

    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed", f"expected an integer, got {seed!r}")
    mesh = parse_section(MeshConfig, raw.get("mesh"), "mesh")
    mesh = dataclasses.replace(mesh, rules=tuple(tuple(r) for r in mesh.rules))
    return Params(seed, data, tokenize, scales, train, grid, sample, evalc, families, video_data, mesh)


def _parse_tokenizer(raw: Any, data: DataConfig, key: str, family_kind: str, data_key: str = "data"):
    """`families.<f>.tokenizer`: parsed by its kind's own typed config, at the image size of the
    family's data (`data_key`: data, or video_data for a video family).
    Its kind must be the one the family models (``family_kind``, the default)."""
    import importlib  # pylint: disable=import-outside-toplevel

    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(key, f"expected a mapping, got {type(raw).__name__}")
    kind = raw.get("kind", family_kind)
    if kind not in TOKENIZER_CONFIGS:
        raise ConfigError(f"{key}.kind", f"unknown tokenizer kind {kind!r} (known: {', '.join(TOKENIZER_CONFIGS)})")
    if kind != family_kind:
        raise ConfigError(f"{key}.kind", f"this family models {family_kind!r} latents, got kind {kind!r}")
    cls = getattr(importlib.import_module(TOKENIZER_CONFIGS[kind][0]), TOKENIZER_CONFIGS[kind][1])
    # the data's settings the tokenizer works at (its image size; a video tokenizer's clip rule too)
    given = {"image_size": data.image_size}
    for name in ("num_frames", "frame_stride"):
        if hasattr(data, name) and name in {f.name for f in dataclasses.fields(cls)}:
            given[name] = getattr(data, name)
    for name in given:
        if name in raw:
            raise ConfigError(f"{key}.{name}", f"not a tokenizer setting: the tokenizer works at {data_key}.{name}")
    return parse_section(cls, {**raw, **given}, key)


def _parse_families(raw: Any, data: Mapping[str, DataConfig | None]) -> dict[str, FamilyConfig]:
    """`families`: one section per family, each parsed by that family's own typed configs, and its
    tokenizer by the kind's. Every installed family gets its defaults here (parse_params then
    requires a section for each family the grid uses: DVC makes its tokenizer stages from them)."""
    from elt import families as family_registry  # pylint: disable=import-outside-toplevel

    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("families", f"expected a mapping of family name -> settings, got {type(raw).__name__}")
    installed = family_registry.known()
    for name in raw:
        if name not in installed:
            raise ConfigError(f"families.{name}", f"unknown model family (known: {', '.join(installed)})")
    out = {}
    for name in installed:
        key, section = f"families.{name}", raw.get(name) or {}
        if not isinstance(section, Mapping):
            raise ConfigError(key, f"expected a mapping {{tokenizer, train, sample}}, got {type(section).__name__}")
        extra = sorted(set(section) - {"tokenizer", "train", "sample"})
        if extra:
            raise ConfigError(f"{key}.{extra[0]}", "unknown key (known: sample, tokenizer, train)")
        for part in ("train", "sample"):
            if name in raw and part not in section:
                # dvc.yaml tracks families.<f>.train / .sample for the family's grid stages, and DVC
                # refuses to run a stage whose param is missing from params.yaml
                raise ConfigError(f"{key}.{part}", f"missing: DVC tracks this section for the family's grid stages; "
                                  f"write `{part}: {{}}` to keep the family's defaults")
        mod = family_registry.config_module(name)
        train = parse_section(mod.TrainConfig, section.get("train"), f"{key}.train")
        sample = parse_section(mod.SampleConfig, section.get("sample"), f"{key}.sample")
        if hasattr(mod, "check_family"):  # rules across its train and sample sections
            mod.check_family(train, sample, key)
        out[name] = FamilyConfig(
            name=name,
            train=train,
            sample=sample,
            quality_metric=mod.QUALITY_METRIC,
            modality=mod.MODALITY,
            tokenizer_kind=mod.TOKENIZER_KIND,
            guidance=mod.GUIDANCE,
            # only the listed families have tokenizers (and tokenizer stages)
            tokenizer=(_parse_tokenizer(section.get("tokenizer"), _family_data(data, mod.MODALITY, name),
                                        f"{key}.tokenizer", mod.TOKENIZER_KIND, _DATA_KEY[mod.MODALITY])
                       if name in raw else None),
        )
    return out


_DATA_KEY = {"image": "data", "video": "video_data"}
# = elt.evaluation.i3d.MIN_FRAMES (tests/test_video_params.py checks it), written out here because
# importing the I3D module would make every stage depend on elt/evaluation (tests/test_dvc_deps.py)
FVD_MIN_FRAMES = 9  # the params section of each modality's data


def _family_data(data: Mapping[str, DataConfig | None], modality: str, family: str) -> DataConfig:
    if data[modality] is None:
        raise ConfigError(_DATA_KEY[modality], f"families.{family} models {modality}: set {_DATA_KEY[modality]} "
                          "(dataset: moving_digits, a tfds video name or a folder of video files)")
    return data[modality]


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (run from the repository root or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(str(path), f"not valid YAML: {e}") from None
    params = parse_params(raw or {}, source=str(path))
    check_dataset(params.data)
    if params.video_data is not None:
        check_dataset(params.video_data, "video_data")
    return params


def check_dataset(data: DataConfig, key: str = "data") -> None:
    """Fail early on a dataset that no stage could read: an image-folder path that is not a folder,
    or a name that tensorflow-datasets does not know (`imagenet2012/2012` is a name with a config)."""
    name = data.dataset
    if "://" in name or name.startswith(("/", ".", "~")) or Path(name).is_dir():
        if not Path(name).expanduser().is_dir() and "://" not in name:
            raise ConfigError(f"{key}.dataset", f"{name!r} looks like a folder path but is not a folder")
        return
    if name in ("digits", "moving_digits"):
        return  # the bundled builders: no need to import tensorflow (seconds) to know it
    import tensorflow_datasets as tfds  # slow import: only when a name must be checked

    base = name.split("/")[0].split(":")[0]
    if base not in tfds.list_builders(with_community_datasets=False):
        raise ConfigError(
            f"{key}.dataset",
            f"unknown dataset {name!r}: not a tensorflow-datasets name (see `tfds.list_builders()`) "
            "nor a folder path",
        )
