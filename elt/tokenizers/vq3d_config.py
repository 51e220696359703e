"""The 3-D VQ (video) tokenizer's one typed config: a `tokenizer` section with kind vq3d, validated
once when params are parsed, and the architecture saved in a trained tokenizer's tokenizer.json.

A MAGVIT-style 3-D CNN (google-research/magvit, videogvt/models/enc_dec_3dcnn.py): one level per
entry of `channel_mult` (width channels * mult), `num_res_blocks` residual blocks per level, a
2x spatial downsampling between levels (so 2^(levels-1) in all) and a 2x temporal one where
`temporal_downsample` says so. The token grid is
(num_frames / 2^sum(temporal_downsample), image_size / 2^(levels-1), same).

                    clips       channels  channel_mult  temporal_down      res  embed  codes  grid
  default (CPU)     16x32x32    8         (1, 2, 2)     (True, True)       1    32     256    4x8x8
  paper (MAGVIT-L)  16x128x128  128       (1, 2, 2, 4)  (True, True, False) 2   256    1024   4x16x16

(`PAPER` below: 151M parameters; MAGVIT-B has channels 64.) The CPU default is narrow because the
full-resolution level holds most of the FLOPs. On moving_digits 16x32 (trained on train[:1497],
PSNR on the 300 clips after it; figures from one GPU run): the default's 1,000 steps take PSNR from
6.4 dB (initial network) to 24.5 dB with all 256 codes in use (perplexity 198); 1,500 steps reach
25.3 dB, and 26.9 dB with channels 16, whose steps cost 3-5x more CPU time (PSNR on 128 of those
clips). On 2 shared CPU cores a default step takes ~0.65 s (batch 8): the 1,000 steps take ~11
minutes. Clips come from the data set by the clip rule of elt/data/video.py with this config's
`num_frames` and `frame_stride`, so the tokenizer, its token shards and the reference statistics
all see the same clips.

No jax import: the params parser reads it.
"""

from __future__ import annotations

import dataclasses
import math

# The paper's video tokenizer (MAGVIT-L's 3-D VQ: 16x128x128 -> 4x16x16 ids of 1024 codes).
PAPER = dict(
    image_size=128,
    num_frames=16,
    channels=128,
    channel_mult=(1, 2, 2, 4),
    temporal_downsample=(True, True, False),
    num_res_blocks=2,
    embed_dim=256,
    codebook_size=1024,
    norm_groups=32,
)


@dataclasses.dataclass(frozen=True)
class VQ3DConfig:
    kind: str = "vq3d"
    checkpoint: str | None = None  # a pretrained tokenizer by path instead of training one
    image_size: int = 32  # video_data.image_size, the frame size (filled in by the parser, not a key of the section)
    num_frames: int = 16  # T: frames per clip: video_data.num_frames (filled in by the parser)
    frame_stride: int = 1  # the clip rule's stride between taken source frames: video_data.frame_stride
    channels: int = 8  # width of the finest level
    channel_mult: tuple[int, ...] = (1, 2, 2)  # per level, finest first
    temporal_downsample: tuple[bool, ...] = (True, True)  # per downsampling (len(channel_mult) - 1)
    num_res_blocks: int = 1  # per level, encoder and decoder (plus as many at the token grid)
    norm_groups: int = 8  # GroupNorm groups; must divide every level's width
    codebook_size: int = 256  # K
    embed_dim: int = 32
    commitment: float = 0.25  # beta
    # training (tokenizers/vq3d_train.py)
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        # JSON (tokenizer.json) and YAML give lists: tuples keep the config hashable and equal to
        # the one it was saved from.
        for name in ("channel_mult", "temporal_downsample"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.channels * m for m in self.channel_mult)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(t) for t in self.temporal_downsample)

    @property
    def grid(self) -> tuple[int, int, int]:
        g = self.image_size // self.spatial_factor
        return self.num_frames // self.temporal_factor, g, g

    def check(self, key: str = "tokenizer") -> None:
        from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("image_size", "num_frames", "frame_stride", "channels", "num_res_blocks",
                     "norm_groups", "codebook_size", "embed_dim", "steps", "batch_size"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ConfigError(f"{key}.{name}", f"must be an int >= 1, got {v!r}")
        for name in ("codebook_size", "embed_dim"):
            if getattr(self, name) < 2:  # one code cannot tokenize anything
                raise ConfigError(f"{key}.{name}", f"must be >= 2, got {getattr(self, name)}")
        mult = self.channel_mult
        if not isinstance(mult, tuple) or not mult or not all(is_int(m) and m >= 1 for m in mult):
            raise ConfigError(f"{key}.channel_mult", f"must be a list of ints >= 1, got {mult!r}")
        down = self.temporal_downsample
        if not isinstance(down, tuple) or not all(isinstance(t, bool) for t in down):
            raise ConfigError(f"{key}.temporal_downsample", f"must be a list of true/false, got {down!r}")
        if len(down) != len(mult) - 1:
            raise ConfigError(
                f"{key}.temporal_downsample",
                f"one entry per downsampling, i.e. len(channel_mult) - 1 = {len(mult) - 1}, got {len(down)}",
            )
        if self.image_size % self.spatial_factor:
            raise ConfigError(
                f"{key}.channel_mult",
                f"{len(mult)} levels downsample 2^{len(mult) - 1} = {self.spatial_factor}x, which does "
                f"not divide the image size {self.image_size}",
            )
        if self.num_frames % self.temporal_factor:
            raise ConfigError(
                f"{key}.temporal_downsample",
                f"{self.temporal_factor}x in time does not divide num_frames {self.num_frames}",
            )
        for w in self.widths:
            if w % self.norm_groups:
                raise ConfigError(f"{key}.norm_groups", f"{self.norm_groups} does not divide the width {w}")
        if not (isinstance(self.commitment, (int, float)) and self.commitment >= 0):
            raise ConfigError(f"{key}.commitment", f"must be >= 0, got {self.commitment}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"{key}.lr", f"must be > 0, got {self.lr}")

    def validate(self) -> "VQ3DConfig":
        """Check a config read back from a tokenizer.json (raises ConfigError, a ValueError)."""
        self.check()
        return self
