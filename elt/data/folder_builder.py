"""tfds builder for an image folder (`root/<class>/<image>`): what `prepare_data` builds into
`data.data_dir` when `data.dataset` is a folder path, and what every later stage then reads.

* Classes are the sorted sub-folder names (ClassLabel names; labels are their positions), images
  are read in `FolderImageDataset`'s order (round robin over the classes, each class's files
  sorted), center-cropped and resized to `image_size` with `center_crop_resize` (the same pixels
  `FolderImageDataset` reads), stored as PNG (lossless).
* The example order is that listing (tfds shuffling disabled), so example i of the prepared data
  is file i of the listing, and any slice (`train[:90%]`, `train[90%:]`) holds every class.
* The config name is `<image_size>px-<listing digest>` (`32px-1f0c...`): a folder whose listing
  changed (files or classes added, removed, renamed) is a different data set, never a stale one.
  Only the listing is hashed (cheap, also for gs:// folders); images replaced in place under the
  same names are picked up by preparing again (`dvc repro -f prepare_data`).
* Deterministic bytes: the same folder gives byte-identical files on every build. tfds serializes
  each tf.train.Example with the protobuf map of features in hash order, which varies between
  processes; the example writer here re-serializes them deterministically (sorted keys).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import writer as tfds_writer

from elt.data.datasets import FolderImageDataset

BUILDER_NAME = "elt_image_folder"
READ_CHUNK = 256  # images decoded per FolderImageDataset.read call while generating


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
    image_size: int = 32
    digest: str = ""


def config_name(image_size: int, digest: str) -> str:
    return f"{image_size}px-{digest}"


class DeterministicExampleWriter(tfds_writer.ExampleWriter):
    """tfds' example writer, with each serialized tf.train.Example re-encoded with sorted map
    keys (`deterministic=True`): same examples, same bytes, same length."""

    def write(self, path, examples):
        def canonical():
            for key, serialized in examples:
                example = tf.train.Example.FromString(serialized)
                yield key, example.SerializeToString(deterministic=True)

        return super().write(path, canonical())


class EltImageFolder(tfds.core.GeneratorBasedBuilder):
    """An image folder (one sub-folder per class) as an image classification data set."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Sorted listing, center crop + bilinear resize, uint8 RGB PNG.",
        "1.1.0": "Classes in turn (round robin), so that every slice holds every class.",
    }

    def __init__(self, *, source: FolderImageDataset, **kwargs):
        self._source = source
        config = FolderConfig(
            name=config_name(source.image_size, source.digest),
            image_size=source.image_size,
            digest=source.digest,
            description=(
                f"image folder of {source.num_examples} images in {source.num_classes} classes "
                f"(listing sha256 {source.digest}), center-cropped and resized to "
                f"{source.image_size}x{source.image_size}x3"
            ),
        )
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(s, s, 3)),
                    "label": tfds.features.ClassLabel(names=self._source.classes),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # example i = file i of the listing (classes in turn)
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the images are in the folder; nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        n = self._source.num_examples
        for start in range(0, n, READ_CHUNK):
            images, labels = self._source.read(start, min(start + READ_CHUNK, n))
            for i, (image, label) in enumerate(zip(images, labels)):
                yield start + i, {"image": image, "label": int(label)}

    def _example_writer(self) -> tfds_writer.ExampleWriter:
        return DeterministicExampleWriter(file_format=self.info.file_format)


def listing(root: str, image_size: int) -> FolderImageDataset:
    """The folder's listing (reads no image); FileNotFoundError if it does not exist."""
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} does not exist")
    return FolderImageDataset(root, image_size)


def builder(
    root: str, image_size: int, data_dir: str, source: FolderImageDataset | None = None
) -> EltImageFolder:
    """The builder of the folder `root` at `image_size`, rooted at `data_dir` (`source`: the
    folder's listing, if already made)."""
    if source is None:
        source = listing(root, image_size)
    return EltImageFolder(source=source, data_dir=data_dir)


def prepare_folder(root: str, image_size: int, data_dir: str) -> EltImageFolder:
    """Build the folder into `data_dir`, replacing an earlier build of the same listing (its
    images may have changed in place)."""
    source = listing(root, image_size)
    b = builder(root, image_size, data_dir, source)
    if tf.io.gfile.exists(str(b.data_path)):
        # Delete, then build with a fresh builder: one that saw the old build (or tfds' own
        # overwrite mode) writes an extra metadata.json, so the bytes would differ from a build
        # into an empty data_dir (what `dvc repro` does).
        tf.io.gfile.rmtree(str(b.data_path))
        b = builder(root, image_size, data_dir, source)
    b.download_and_prepare()
    return b


def prepared_builder(root: str, image_size: int, data_dir: str) -> EltImageFolder:
    """The builder of the folder's prepared data in `data_dir`; a one-line FileNotFoundError if
    `prepare_data` has not built it (for the folder's current listing and this image size)."""
    b = builder(root, image_size, data_dir)
    if b.is_prepared():
        return b
    others = []
    base = f"{str(data_dir).rstrip('/')}/{BUILDER_NAME}"
    if tf.io.gfile.isdir(base):
        others = sorted(c.rstrip("/") for c in tf.io.gfile.listdir(base) if c[0] != ".")
    hint = (
        f" (data_dir holds {', '.join(others)}: the folder or data.image_size changed since "
        "prepare_data ran)"
        if others
        else ""
    )
    raise FileNotFoundError(
        f"image folder {root!r} is not prepared in data_dir={data_dir!r} at {image_size}px "
        f"(listing {b.builder_config.digest}){hint}; run `dvc repro prepare_data` "
        f"(`dvc repro -f prepare_data` after changing the images) or "
        f"`python stages/prepare_data.py --params params.yaml`"
    )
