"""Typed settings of the diffusion image family (params.yaml `families.dit`).

Imported when params.yaml is parsed, so it imports nothing heavy: no jax, no flax.

Defaults the paper leaves open (REFERENCE.md "Diffusion family"), each with its source:
  * log-SNR clip [-15, 15]: simple diffusion's `logsnr_schedule_cosine(t, logsnr_min=-15,
    logsnr_max=15)` (Hoogeboom et al. 2023, appendix code).
  * shift 2*log(64/256) = -2.77: simple diffusion's rule "+ 2 log(base/size)" with base 64 and the
    latent taken as the 256x256 image it encodes. Cross-check: DiT's own linear-beta schedule on
    the same latents sits 1.5 to 4.5 below the unshifted cosine (2.46 at t = 0.5).
  * sigmoid bias b = -3: eps-space weight sigmoid(b - lam) of the sigmoid loss (Kingma & Gao 2023,
    "VDM++"; value as recalled from Hoogeboom et al. 2025 "simpler diffusion", not re-checked here).
  * elbo_weight: the "SigmoidELBO" of Table 5 read as the sigmoid-weighted ELBO integrand, i.e.
    the sigmoid weight times -1/2 dlam/dt (Kingma & Gao 2023, eq. for L_w).
  * patch size 2: DiT's /2 models on 32x32x4 latents (256 tokens). It is a family constant,
    PATCH_SIZE below, not a params.yaml key: the family contract gives `build_model` and
    `check_latents` no family settings, so this module is its one source of truth; every model
    records its own value in model.json (DiTConfig.patch_size), which is what sampling reads.
"""

from __future__ import annotations

import dataclasses
import math

QUALITY_METRIC = "fid"  # elt.evaluation.metrics: the metric its samples are scored by
MODALITY = "image"
TOKENIZER_KIND = "vae"  # continuous float32 latents [h, w, c] of a KL autoencoder
GUIDANCE = True  # class-conditional with a null label: sample.cfg_scales is swept

PATCH_SIZE = 2  # latent pixels per token side (see the module docstring)
LAMBDA_MIN = -15.0  # log-SNR clip of the cosine schedule, before the shift
LAMBDA_MAX = 15.0
SHIFT = 2.0 * math.log(64 / 256)  # added to the clipped log-SNR: -2.77 (more noise)
SAMPLERS = ("ddpm", "ddim")


def _fail(key: str, message: str):
    from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

    raise ConfigError(key, message)


def _check_schedule(cfg, key: str) -> None:
    for name in ("lambda_min", "lambda_max", "shift"):
        if not math.isfinite(getattr(cfg, name)):
            _fail(f"{key}.{name}", f"must be a finite number, got {getattr(cfg, name)}")
    if cfg.lambda_min >= cfg.lambda_max:
        _fail(f"{key}.lambda_min",
              f"must be < lambda_max, got lambda_min={cfg.lambda_min} >= lambda_max={cfg.lambda_max}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """`families.dit.train`: the noise schedule of training and the per-exit loss weight.

    lam(t) = -2 log tan(a t + b0) + shift, t ~ U(0, 1), with a, b0 fitted so that lam(0) =
    lambda_max + shift and lam(1) = lambda_min + shift (elt/families/dit/model.py, the noise process).
    """

    lambda_min: float = LAMBDA_MIN
    lambda_max: float = LAMBDA_MAX
    shift: float = SHIFT
    sigmoid_bias: float = -3.0  # b of the eps-space weight sigmoid(b - lam)
    elbo_weight: bool = True  # also multiply by -1/2 dlam/dt (the ELBO's density in t)

    def check(self, key: str) -> None:
        _check_schedule(self, key)
        if not math.isfinite(self.sigmoid_bias):
            _fail(f"{key}.sigmoid_bias", f"must be a finite number, got {self.sigmoid_bias}")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """`families.dit.sample`: the sampler (paper Table 5: 512-step DDPM; CFG in sample.cfg_scales).

    The sampling schedule is its own setting (same defaults as training): the network is
    conditioned on lam itself, so any grid inside the trained lam range is valid. Keep the two
    equal unless you mean to change the discretisation.
    """

    steps: int = 512  # K network evaluations per sample (static: compiled into the loop)
    sampler: str = "ddpm"  # "ddpm" (ancestral) or "ddim" (eta = 0, deterministic)
    lambda_min: float = LAMBDA_MIN
    lambda_max: float = LAMBDA_MAX
    shift: float = SHIFT

    def check(self, key: str) -> None:
        if self.steps < 1:
            _fail(f"{key}.steps", f"must be >= 1, got {self.steps}")
        if self.sampler not in SAMPLERS:
            _fail(f"{key}.sampler", f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        _check_schedule(self, key)


def check_family(train: TrainConfig, sample: SampleConfig, key: str) -> None:
    """The sampler's log-SNR range must lie inside the trained one: the network never saw noise
    levels outside it (parse_params calls this after both sections are parsed)."""
    lo_t, hi_t = train.lambda_min + train.shift, train.lambda_max + train.shift
    lo_s, hi_s = sample.lambda_min + sample.shift, sample.lambda_max + sample.shift
    if lo_s < lo_t - 1e-9 or hi_s > hi_t + 1e-9:
        _fail(f"{key}.sample.lambda_min",
              f"the sampling log-SNR range [{lo_s:g}, {hi_s:g}] (lambda_min/max + shift) leaves the trained "
              f"range [{lo_t:g}, {hi_t:g}] of {key}.train: the model never saw those noise levels")
