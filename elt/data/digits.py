"""tfds builder for scikit-learn's bundled handwritten digits (the offline default data set).

sklearn.datasets.load_digits ships 1,797 real 8x8 scans (UCI optdigits test set), values 0..16,
10 classes. They are upscaled bilinearly to `image_size` (a BuilderConfig, e.g. `digits/32`),
scaled to uint8 0..255 and repeated over 3 channels so the RGB code paths (tokenizer, FID) run on
them unchanged. Building needs no network: the data is inside the scikit-learn wheel.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

# Sizes registered by name (`digits/32`); any other size works through `DigitsConfig(image_size=S)`.
PREDEFINED_SIZES = (8, 16, 32, 64, 128)
NUM_CLASSES = 10


@dataclasses.dataclass
class DigitsConfig(tfds.core.BuilderConfig):
    image_size: int = 32


def make_config(image_size: int) -> DigitsConfig:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(
            f"digits: image_size must be an int >= 8 (the scans are 8x8), got {image_size!r}"
        )
    return DigitsConfig(
        name=str(image_size),
        image_size=image_size,
        description=f"sklearn digits upscaled bilinearly to {image_size}x{image_size}x3",
    )


def upscale(images: np.ndarray, image_size: int) -> np.ndarray:
    """[B, 8, 8] float 0..16 -> [B, S, S, 3] uint8 0..255 (bilinear, half-pixel centres)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    x = tf.convert_to_tensor(images[..., None].astype(np.float32) * (255.0 / 16.0))
    x = tf.image.resize(x, (image_size, image_size), method="bilinear").numpy()
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1)


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 1,797 handwritten digits as an image classification data set."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn load_digits, bilinear upscale, uint8 RGB."}
    BUILDER_CONFIGS = [make_config(s) for s in PREDEFINED_SIZES]
    DEFAULT_CONFIG_NAME = "32"

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(s, s, 3)),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ships with scikit-learn; nothing to download
        return {"train": self._generate_examples()}

    def _example_writer(self):
        # tfds serialises each example's features in an order that varies between processes: the
        # canonical writer makes a rebuild byte-identical, so DVC sees an unchanged data/tfds.
        from elt.data.folder_builder import DeterministicExampleWriter  # pylint: disable=import-outside-toplevel

        return DeterministicExampleWriter(file_format=self.info.file_format)

    def _generate_examples(self):
        from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

        bunch = load_digits()
        images = upscale(bunch.images, self.builder_config.image_size)
        for i, (image, label) in enumerate(zip(images, bunch.target)):
            yield i, {"image": image, "label": int(label)}


def builder(image_size: int, data_dir: str) -> Digits:
    """The digits builder at `image_size` (predefined or ad-hoc config) rooted at `data_dir`."""
    if image_size in PREDEFINED_SIZES:
        return tfds.builder(f"digits/{image_size}", data_dir=data_dir)
    return Digits(config=make_config(image_size), data_dir=data_dir)
