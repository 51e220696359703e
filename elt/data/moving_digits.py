"""tfds builder `moving_digits`: labelled clips made from scikit-learn's bundled digits (the offline
default video data set; Moving-MNIST style, built without any download).

Example i is made from scan i of sklearn.datasets.load_digits (1,797 real 8x8 digits, 10 classes):

* the scan is upscaled to a `image_size // 2` square digit with `elt.data.digits.upscale` (the
  bilinear upscale of the image data set, uint8 0..255, grey repeated over 3 channels);
* it moves over a black `image_size` x `image_size` canvas for `num_frames` frames: start position
  uniform in the free range [0, L]^2 (L = image_size - digit size), a random direction, speed
  SPEED * L per frame (tfds' `image_as_moving_sequence` convention: the "normalised velocity"), and
  it bounces off the borders (the position is reflected back into [0, L]); positions are rounded to
  whole pixels;
* the random numbers come from numpy's PCG64 seeded with (SEED, i), so every example is a fixed
  function of its index: rebuilding gives the same clips, on any machine;
* label = the digit.

Features: `video` uint8 [T, S, S, 3] (frames stored as PNG, lossless) and `label` (ClassLabel, 10).
One split, "train", in scan order (tfds shuffling disabled: example i is scan i), so slices such as
`train[:1497]` / `train[1497:]` partition it like the image data set's. The config name is
`<num_frames>x<image_size>` (`moving_digits/16x32`, the default); any other size works through
`make_config`. Building 16x32 takes ~20 s on one CPU core.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

# (num_frames, image_size) registered by name (`moving_digits/16x32`); others via make_config.
PREDEFINED = ((16, 32), (16, 64), (16, 128))
NUM_CLASSES = 10
SPEED = 0.1  # per frame, as a fraction of the free range L (tfds moving_sequence's default)
SEED = 20_251_127  # with the example index: the seed of that example's start and direction


@dataclasses.dataclass
class MovingDigitsConfig(tfds.core.BuilderConfig):
    num_frames: int = 16
    image_size: int = 32


def config_name(num_frames: int, image_size: int) -> str:
    return f"{num_frames}x{image_size}"


def make_config(num_frames: int, image_size: int) -> MovingDigitsConfig:
    for what, v, lo in (("num_frames", num_frames, 1), ("image_size", image_size, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"moving_digits: {what} must be an int >= {lo}, got {v!r}")
    return MovingDigitsConfig(
        name=config_name(num_frames, image_size),
        num_frames=num_frames,
        image_size=image_size,
        description=(
            f"sklearn digits ({image_size // 2}px) bouncing on a {image_size}x{image_size} canvas, "
            f"{num_frames} frames, uint8 RGB"
        ),
    )


def bounce(p: np.ndarray, free: float) -> np.ndarray:
    """Positions on an unbounded line folded into [0, free] (reflection at both ends)."""
    if free <= 0:
        return np.zeros_like(p)
    q = np.mod(p, 2.0 * free)
    return np.where(q > free, 2.0 * free - q, q)


def trajectory(index: int, num_frames: int, free: int) -> np.ndarray:
    """int [T, 2] top-left (row, col) of the digit in each frame of example `index`."""
    rng = np.random.default_rng([SEED, int(index)])
    start = rng.uniform(0.0, free, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    velocity = SPEED * free * np.array([np.sin(angle), np.cos(angle)])
    t = np.arange(num_frames, dtype=np.float64)[:, None]
    return np.rint(bounce(start + t * velocity, free)).astype(np.int64)


def make_clips(scans: np.ndarray, indices, num_frames: int, image_size: int) -> np.ndarray:
    """[n, 8, 8] float 0..16 scans with their example indices -> uint8 [n, T, S, S, 3] clips."""
    from elt.data.digits import upscale  # pylint: disable=import-outside-toplevel

    d = image_size // 2
    sprites = upscale(scans, d)  # [n, d, d, 3]
    free = image_size - d
    clips = np.zeros((len(scans), num_frames, image_size, image_size, 3), np.uint8)
    for k, (sprite, index) in enumerate(zip(sprites, indices)):
        for f, (r, c) in enumerate(trajectory(index, num_frames, free)):
            clips[k, f, r : r + d, c : c + d] = sprite
    return clips


class MovingDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 1,797 digits, each bouncing over a black canvas, as a video classification set."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn load_digits sprites, bouncing, seeded by example index."}
    BUILDER_CONFIGS = [make_config(t, s) for t, s in PREDEFINED]
    DEFAULT_CONFIG_NAME = config_name(*PREDEFINED[0])

    def _info(self) -> tfds.core.DatasetInfo:
        t, s = self.builder_config.num_frames, self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(shape=(t, s, s, 3)),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("video", "label"),
            disable_shuffling=True,  # example i = scan i
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ships with scikit-learn; nothing to download
        return {"train": self._generate_examples()}

    def _example_writer(self):
        # Sorted-key re-serialisation: a rebuild is byte-identical (see folder_builder).
        from elt.data.folder_builder import DeterministicExampleWriter  # pylint: disable=import-outside-toplevel

        return DeterministicExampleWriter(file_format=self.info.file_format)

    def _generate_examples(self):
        from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

        bunch = load_digits()
        t, s = self.builder_config.num_frames, self.builder_config.image_size
        chunk = 128  # clips made at once (16x128 clips are 768 kB each)
        for start in range(0, len(bunch.images), chunk):
            stop = min(start + chunk, len(bunch.images))
            clips = make_clips(bunch.images[start:stop], range(start, stop), t, s)
            for i, clip in enumerate(clips):
                yield start + i, {"video": clip, "label": int(bunch.target[start + i])}


def builder(num_frames: int, image_size: int, data_dir: str | None) -> MovingDigits:
    """The moving_digits builder of `num_frames` x `image_size` (predefined or ad-hoc config)."""
    if (num_frames, image_size) in PREDEFINED:
        return tfds.builder(f"moving_digits/{config_name(num_frames, image_size)}", data_dir=data_dir)
    return MovingDigits(config=make_config(num_frames, image_size), data_dir=data_dir)
