"""The VQ tokenizer's one typed config: params.yaml's `tokenizer` section (kind: vq), validated
once when params are parsed, and the architecture saved in a trained tokenizer's tokenizer.json.

No jax import: the params parser reads it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class VQConfig:
    kind: str = "vq"
    checkpoint: str | None = None  # a pretrained tokenizer by path instead of training one
    image_size: int = 32  # data.image_size (filled in by the parser, not a key of the section)
    downsample: int = 4  # one stride-2 conv per factor of 2
    codebook_size: int = 128  # K
    embed_dim: int = 32
    channels: int = 64
    num_res_blocks: int = 1  # residual blocks at the token grid (encoder and decoder)
    commitment: float = 0.25  # beta
    # training (tokenizers/train.py)
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0

    def check(self, key: str = "tokenizer") -> None:
        from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

        if self.downsample not in (2, 4, 8, 16):
            raise ConfigError(f"{key}.downsample", f"must be 2, 4, 8 or 16, got {self.downsample}")
        if self.image_size % self.downsample:
            raise ConfigError(f"{key}.downsample", f"{self.downsample} does not divide the image size {self.image_size}")
        for name in ("codebook_size", "embed_dim", "channels"):
            if getattr(self, name) < 2:  # one code cannot tokenize anything
                raise ConfigError(f"{key}.{name}", f"must be >= 2, got {getattr(self, name)}")
        for name in ("num_res_blocks", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", f"must be >= 1, got {getattr(self, name)}")
        if self.commitment < 0:
            raise ConfigError(f"{key}.commitment", f"must be >= 0, got {self.commitment}")
        if not self.lr > 0:
            raise ConfigError(f"{key}.lr", f"must be > 0, got {self.lr}")

    def validate(self) -> "VQConfig":
        """Check a config read back from a tokenizer.json (raises ConfigError, a ValueError)."""
        self.check()
        return self

    @property
    def grid(self) -> tuple[int, int]:
        g = self.image_size // self.downsample
        return g, g
