"""The KL autoencoder's one typed config: params.yaml's `tokenizer` section (kind: vae), validated
once when params are parsed, and the architecture saved in a trained tokenizer's tokenizer.json.

The architecture is diffusers' AutoencoderKL (the Stable Diffusion VAE), so one config describes
both the small default trained here and an SD v1.x checkpoint:

                   downsample  channels  channel_mult   num_res_blocks  norm_groups  latent_channels
  default (CPU)    4           8         (1, 2, 4)      1               4            4
  SD v1.x          8           128       (1, 2, 4, 4)   2               32           4

No jax import: the params parser reads it.
"""

from __future__ import annotations

import dataclasses
import math

# Default widths per level, finest first; one level per factor 2 of downsampling plus the latent
# level. Narrow at full resolution (where most FLOPs are), as in SD (1, 2, 4, 4).
_DEFAULT_MULT = {2: (1, 2), 4: (1, 2, 4), 8: (1, 2, 4, 4)}


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    kind: str = "vae"
    # A pretrained tokenizer directory (any kind's layout), or an SD v1.x VAE .safetensors file in
    # diffusers' AutoencoderKL layout (converted by elt/tokenizers/sd_vae.py), instead of training.
    checkpoint: str | None = None
    image_size: int = 32  # data.image_size (filled in by the parser, not a key of the section)
    downsample: int = 4  # 32x32x3 -> 8x8x4: 12x fewer numbers, like SD's 256x256x3 -> 32x32x4 (48x)
    latent_channels: int = 4
    # Width of the finest level (SD: 128). 8 -> widths (8, 16, 32): a training step then costs
    # about 1.3x the VQ tokenizer's (16 -> (16, 32, 32): ~3.5x, measured on 2 shared cores).
    channels: int = 8
    channel_mult: tuple[int, ...] | None = None  # per level, finest first; None: _DEFAULT_MULT
    num_res_blocks: int = 1  # SD's layers_per_block: encoder resnets per level (decoder: one more)
    norm_groups: int = 4  # GroupNorm groups (SD: 32); must divide every level's width
    # Weight of KL(q(z|x) || N(0, I)) summed over latent elements, against the squared error summed
    # over pixels (both per image, in [-1, 1] units: LDM's normalisation, where SD's 1e-6 sits next
    # to L1 + LPIPS + GAN terms). With MSE alone, 1e-6 barely constrains a tiny model: it may shrink
    # its posterior std toward 0 and leave an unregularised code. 1e-4 is a mild pull toward
    # N(0, I) (a smoother latent space for the diffusion model; KL ~ 1e3 nats x 1e-4 = 0.1 against a
    # reconstruction term of ~10-40). scale_factor normalises the latents' scale either way.
    kl_weight: float = 1e-4
    # training (tokenizers/vae_train.py)
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        # JSON (tokenizer.json) and YAML give lists: a tuple keeps the config hashable and equal to
        # the one it was saved from.
        if self.channel_mult is not None and not isinstance(self.channel_mult, tuple):
            object.__setattr__(self, "channel_mult", tuple(self.channel_mult))

    @property
    def mult(self) -> tuple[int, ...]:
        if self.channel_mult is not None:
            return self.channel_mult
        return _DEFAULT_MULT.get(self.downsample, (1,) + (2,) * int(math.log2(max(self.downsample, 1))))

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        """diffusers' block_out_channels: the width of each level, finest first."""
        return tuple(self.channels * m for m in self.mult)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.latent_size
        return s, s, self.latent_channels

    def check(self, key: str = "tokenizer") -> None:
        from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

        if self.kind != "vae":
            raise ConfigError(f"{key}.kind", f"must be 'vae' for this config, got {self.kind!r}")
        if self.downsample not in (1, 2, 4, 8, 16):
            raise ConfigError(f"{key}.downsample", f"must be 1, 2, 4, 8 or 16, got {self.downsample}")
        if self.image_size % self.downsample:
            raise ConfigError(f"{key}.downsample", f"{self.downsample} does not divide the image size {self.image_size}")
        levels = int(math.log2(self.downsample)) + 1  # a stride-2 conv between consecutive levels
        if self.channel_mult is not None:
            if len(self.channel_mult) != levels or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in self.channel_mult
            ):
                raise ConfigError(
                    f"{key}.channel_mult",
                    f"must be {levels} ints >= 1 (log2(downsample) + 1 levels), got {list(self.channel_mult)}",
                )
        for name in ("latent_channels", "channels", "num_res_blocks", "norm_groups", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", f"must be >= 1, got {getattr(self, name)}")
        bad = [c for c in self.block_out_channels if c % self.norm_groups]
        if bad:
            raise ConfigError(
                f"{key}.norm_groups",
                f"{self.norm_groups} does not divide the level widths {list(self.block_out_channels)}",
            )
        if not self.kl_weight >= 0:
            raise ConfigError(f"{key}.kl_weight", f"must be >= 0, got {self.kl_weight}")
        if not self.lr > 0:
            raise ConfigError(f"{key}.lr", f"must be > 0, got {self.lr}")

    def validate(self) -> "VAEConfig":
        """Check a config read back from a tokenizer.json (raises ConfigError, a ValueError)."""
        self.check()
        return self
