"""Model families by name: `elt/families/<name>/` is a package of five modules with agreed names
(big_vision's "module by name"; no base class). Each module is what one stage needs, so a stage
depends only on the modules it imports (dvc.yaml) and a sampler edit never reruns training.

  config.py   (parsed with params.yaml: no jax)
    QUALITY_METRIC  the metric its samples are scored by (elt.evaluation.metrics), e.g. "fid"
    MODALITY        "image" or "video": each modality gets its own Pareto front
    TOKENIZER_KIND  the tokenizer kind whose latents it models
    GUIDANCE        True if its sampler takes classifier-free guidance (sample.cfg_scales is
                    swept for its runs), False if not (sampled at scale 1 only)
    TrainConfig     typed `families.<name>.train` settings, with check(key)
    SampleConfig    typed `families.<name>.sample` settings (`steps`: network evaluations per
                    sample), with check(key)
    check_family    optional: check_family(train, sample, key) for rules across the two sections
  model.py    (train, sample, evaluate)
    build_model(spec, num_classes, scale, N, remat) -> model exposing init, embed(params, *inputs)
                -> (h, cond), block_fn(params, cond), head(params, h, cond), unroll, uncond_label,
                cfg (a dataclass with num_classes), num_params(params, block_only)
    model_from_config(dict) -> model     from the `config` a checkpoint's model.json records
  losses.py   (train)
    check_latents(spec)                  fail early on shards the family cannot model
    training_inputs(model, batch, rng, train_cfg) -> (inputs, targets)   corrupt a batch (mask, noise)
    gt_loss(out, targets, train_cfg), distill_loss(student, teacher, targets)
                                         GT and D of the ILSD combination (elt/core/ilsd.py)
    eval_loss(out, targets), exit_metrics(out, targets) -> dict
  sampler.py  (sample)
    make_sampler(model, sample_cfg, cfg_scale) -> sample(params, labels[B], L, rng) -> latents
    decode(tokenizer, latents) -> uint8 images
  flops.py    (evaluate)
    sample_gflops(model.cfg, L, sample_cfg, cfg_scale) -> 10^9 multiply-adds per sample (the
                paper's GFLOPs: one network evaluation per sampling step, x2 with CFG)

The core (elt/core/) loops the model, combines the losses and trains; the stages look the modules
up by the grid point's `family`. Adding a family = adding a package here (docs/DESIGN.md).
"""

from __future__ import annotations

import importlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent
PARTS = ("config", "model", "losses", "sampler", "flops")


def known() -> list[str]:
    """Names of the installed families: the packages in this folder with a config module."""
    return sorted(p.parent.name for p in _HERE.glob("*/config.py") if not p.parent.name.startswith("_"))


def module(name: str, part: str):
    """One of a family's modules, e.g. ``module("maskgit", "sampler")``."""
    if part not in PARTS:
        raise ValueError(f"a family has no module {part!r} (known: {', '.join(PARTS)})")
    if name not in known():
        raise ValueError(f"unknown model family {name!r} (known: {', '.join(known())})")
    return importlib.import_module(f"elt.families.{name}.{part}")


def config_module(name: str):
    return module(name, "config")


def source_files(name: str, *parts: str) -> list[Path]:
    """The files of a family's modules (what a stage's resume key hashes), and of the same parts
    of the shared code in leading-underscore packages (elt/families/_masked), which dvc.yaml makes
    every grid stage depend on: the key changes whenever DVC would rerun the stage."""
    module(name, "config")  # validates the name
    shared = sorted(p for p in _HERE.glob("_*/") if p.is_dir() and p.name != "__pycache__")
    return [_HERE / name / f"{part}.py" for part in parts] + [
        d / f"{part}.py" for d in shared for part in parts if (d / f"{part}.py").is_file()]
