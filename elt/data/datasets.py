"""Image classification data sets by name or path: the bundled digits, any tfds name, image folders.

`load_image_dataset` returns an `ImageDataset`: iterable of (uint8 [S, S, 3], int label), with
`num_classes`, `num_examples`, an `identity` string, and `read(start, stop)` for index ranges so a
Beam worker can read its own slice. Example `i` is the i-th example of the split in the order tfds
(or the sorted folder listing) gives it; that order is deterministic, which makes the token shards
reproducible.
"""

from __future__ import annotations

import hashlib
import io
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow as tf  # tf.data for tfds, tf.io.gfile for local and gs:// folders
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")


def center_crop_resize(image: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 [H, W, C] (C in 1, 3, 4) -> uint8 [S, S, 3]: central square crop, then bilinear resize.

    PIL's bilinear filter widens its support when shrinking, i.e. it antialiases like
    tf.image.resize(antialias=True); that is what keeps downscaled ImageNet photos from aliasing.
    """
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    h, w = image.shape[:2]
    if (h, w) == (image_size, image_size):
        return np.ascontiguousarray(image, dtype=np.uint8)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(np.asarray(image[top : top + side, left : left + side], dtype=np.uint8))
    return np.asarray(crop.resize((image_size, image_size), Image.BILINEAR), dtype=np.uint8)


class ImageDataset:
    """Interface shared by the tfds and image-folder sources."""

    num_classes: int
    num_examples: int
    image_size: int
    identity: str

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Examples [start, stop) as (uint8 [n, S, S, 3], int32 [n])."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.num_examples

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        chunk = 256
        for start in range(0, self.num_examples, chunk):
            images, labels = self.read(start, min(start + chunk, self.num_examples))
            for image, label in zip(images, labels):
                yield image, int(label)


# --------------------------------------------------------------------------------------------
# tfds
# --------------------------------------------------------------------------------------------
class TfdsImageDataset(ImageDataset):
    """Any tfds data set with `image` and `label` (ClassLabel) features, read without downloading."""

    def __init__(
        self, name: str, split: str, data_dir: str | None, image_size: int, builder=None
    ):
        """`builder`: an already made tfds builder to read (an image folder's prepared data,
        `elt.data.folder_builder`) instead of looking `name` up."""
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
        from elt.data import digits  # pylint: disable=import-outside-toplevel  (registers `digits`)

        self.name, self.split, self.data_dir, self.image_size = name, split, data_dir, image_size
        base = name.split("/")[0].split(":")[0]
        if builder is not None:
            self._builder = builder
        elif base == "digits":
            # The bundled data set: build it on demand at the requested size (offline, ~3 s).
            if name != "digits":
                raise ValueError(
                    f"dataset {name!r}: use plain 'digits'; the size comes from image_size"
                )
            self._builder = digits.builder(image_size, data_dir)
            self._builder.download_and_prepare()
        else:
            try:
                self._builder = tfds.builder(name, data_dir=data_dir)
            except tfds.core.registered.DatasetNotFoundError as e:
                raise ValueError(
                    f"unknown dataset {name!r}: not a tfds data set name (see `tfds.list_builders()` or "
                    f"https://www.tensorflow.org/datasets/catalog) and not an existing image folder "
                    f"(one sub-folder per class)"
                ) from e
        features = self._builder.info.features
        for key in ("image", "label"):
            if key not in features:
                raise ValueError(
                    f"dataset {name!r} has no {key!r} feature (features: {list(features)}); "
                    "an image classification data set with `image` and `label` is required"
                )
        if not isinstance(features["label"], tfds.features.ClassLabel):
            raise ValueError(f"dataset {name!r}: feature 'label' is not a ClassLabel")
        self.num_classes = int(features["label"].num_classes)
        splits = self._builder.info.splits
        if splits and split.split("[")[0] not in splits:
            raise ValueError(f"dataset {name!r} has no split {split!r} (splits: {list(splits)})")
        try:
            whole = self._as_dataset(split)
        except AssertionError as e:  # tfds' way of saying "no data in data_dir"
            raise FileNotFoundError(
                f"dataset {name!r} has no prepared data in data_dir={data_dir!r}; prepare it first "
                f"(`tfds build {name} --data_dir {data_dir}`, with --manual_dir for manual downloads) "
                f"or point data_dir at an existing tfds data dir"
            ) from e
        except ValueError as e:  # tfds' words: a bad slice, or one past the split's end
            raise ValueError(f"dataset {name!r} split {split!r}: {e}") from None
        # With known split sizes a range reads as an absolute tfds slice (`train[1497:]`: example
        # i is train[1497 + i]), so a worker reads only the files holding it; other splits
        # (`train[:5]+test`, mocked data without metadata) skip/take through the stream.
        ranges = _absolute_ranges(split, splits) if splits else []
        self._offset = ranges[0][:2] if len(ranges) == 1 else None  # (split name, first example)
        if splits:
            self.num_examples = int(splits[split].num_examples)
        else:
            # No split metadata (e.g. tfds.testing.mock_data): count what the reader yields.
            n = int(whole.cardinality())
            self.num_examples = n if n >= 0 else int(whole.reduce(0, lambda c, _: c + 1))
        self.identity = (
            f"tfds:{self._builder.info.full_name}:{split}:{self.num_examples}:{image_size}"
        )

    def _as_dataset(self, split: str):
        size = self.image_size
        ds = self._builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(
            lambda ex: {
                "image": tf_center_crop_resize(ex["image"], size),
                "label": tf.cast(ex["label"], tf.int32),
            },
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= start <= stop <= self.num_examples:
            raise IndexError(
                f"range [{start}, {stop}) outside dataset {self.name!r} "
                f"split {self.split!r} of {self.num_examples} examples"
            )
        if start == stop:
            return _stack([], [], self.image_size)
        if self._offset is not None:
            # tfds reads only the files holding the slice (absolute instruction on the plain split).
            name, first = self._offset
            ds = self._as_dataset(f"{name}[{first + start}:{first + stop}]")
        else:
            ds = self._as_dataset(self.split).skip(start).take(stop - start)
        # One batch for the whole range: a single tensor->numpy hop instead of one per example.
        images, labels = [], []
        for batch in ds.batch(4096).as_numpy_iterator():
            images.append(batch["image"])
            labels.append(batch["label"])
        images, labels = np.concatenate(images), np.concatenate(labels)
        if len(images) != stop - start:
            raise RuntimeError(
                f"dataset {self.name!r} split {self.split!r}: asked for examples "
                f"[{start}, {stop}), got {len(images)}"
            )
        return images.astype(np.uint8), labels.astype(np.int32)


def tf_center_crop_resize(image, image_size: int):
    """TF twin of `center_crop_resize` for tf.data: central square crop, bilinear resize with
    antialiasing (as PIL's filter when shrinking), uint8 RGB. A no-op for images already SxSx3."""
    channels = image.shape[-1]
    if channels == 1:
        image = tf.repeat(image, 3, axis=-1)
    elif channels == 4:
        image = image[..., :3]
    if tuple(image.shape[:2]) == (image_size, image_size):
        return tf.cast(image, tf.uint8)
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


# --------------------------------------------------------------------------------------------
# image folders (one sub-folder per class, like tfds ImageFolder / torchvision ImageFolder)
# --------------------------------------------------------------------------------------------
class FolderImageDataset(ImageDataset):
    """`root/<class>/<image>`; classes are the sorted sub-folder names, labels their positions.
    Its one split, "train", takes the classes in turn (round robin over the classes, each class's
    files in sorted order): class 0 file 0, class 1 file 0, ..., class 0 file 1, ... So a slice
    of it (`train[:90%]`, `train[-10%:]`, what the prepared data's tfds slices take too) holds
    every class in proportion, and a held-out slice is never one class that training never saw."""

    def __init__(self, root: str, image_size: int, split: str = "train"):
        self.root, self.image_size, self.split = root.rstrip("/"), image_size, split
        classes = sorted(
            c.rstrip("/")
            for c in tf.io.gfile.listdir(self.root)
            if tf.io.gfile.isdir(f"{self.root}/{c.rstrip('/')}")
        )
        if not classes:
            raise ValueError(
                f"image folder {root!r} has no class sub-folders (expected "
                f"{root}/<class_name>/<image files>)"
            )
        per_class: list[list[tuple[str, int]]] = []
        for label, cls in enumerate(classes):
            names = sorted(
                n
                for n in tf.io.gfile.listdir(f"{self.root}/{cls}")
                if n.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not names:
                raise ValueError(
                    f"image folder class {self.root}/{cls} holds no image files "
                    f"({', '.join(IMAGE_EXTENSIONS)})"
                )
            per_class.append([(f"{cls}/{n}", label) for n in names])
        files = [f for j in range(max(map(len, per_class))) for c in per_class if j < len(c) for f in [c[j]]]
        self.classes = classes
        self.files = files
        self.num_classes = len(classes)
        self.num_examples = len(files)
        # Digest of the listing in that order (class/file names and labels, not the root): the prepared
        # tfds data of the folder is keyed by it (elt.data.folder_builder).
        digest = hashlib.sha256("\n".join(f"{p}\t{l}" for p, l in files).encode()).hexdigest()[:16]
        self.digest = digest
        if split != "train":
            whole = {"train": _SplitSize(len(files), [len(files)])}
            self.files = files = [f for _, a, b in _absolute_ranges(split, whole) for f in files[a:b]]
            self.num_examples = len(files)
        where = self.root if split == "train" else f"{self.root}:{split}"
        self.identity = f"folder:{where}:{self.num_examples}:{digest}:{image_size}"

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= start <= stop <= self.num_examples:
            raise IndexError(
                f"range [{start}, {stop}) outside image folder {self.root!r} "
                f"of {self.num_examples} images"
            )
        images, labels = [], []
        for rel, label in self.files[start:stop]:
            path = f"{self.root}/{rel}"
            try:
                with tf.io.gfile.GFile(path, "rb") as f:
                    image = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))
            except Exception as e:  # PIL raises several types for corrupt files
                raise ValueError(f"unreadable image file {path}: {e}") from e
            images.append(center_crop_resize(image, self.image_size))
            labels.append(label)
        return _stack(images, labels, self.image_size)


class _SplitSize(NamedTuple):  # what tfds' slicing reads of a split (tfds.core.SplitInfo)
    num_examples: int
    shard_lengths: list


def _absolute_ranges(split: str, split_infos) -> list[tuple[str, int, int]]:
    """[(split name, start, stop)] that the tfds split string `split` reads (tfds' own rules:
    `train[1497:]`, `train[:90%]`, `train[-300:]`, `a+b`), given {split name: sizes}."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    out = []
    for a in tfds.core.ReadInstruction.from_spec(split).to_absolute(split_infos):
        n = int(split_infos[a.splitname].num_examples)
        out.append((a.splitname, a.from_ or 0, n if a.to is None else a.to))
    return out


def _stack(images: Sequence[np.ndarray], labels: Sequence[int], size: int):
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.int32)
    return np.stack(images).astype(np.uint8), np.asarray(labels, np.int32)


def is_folder_path(name_or_path: str) -> bool:
    """A path (local or gs://) rather than a tfds name like `cifar10` or `imagenet2012/2012`."""
    if "://" in name_or_path or name_or_path.startswith(("/", ".", "~")):
        return True
    return tf.io.gfile.isdir(name_or_path)


def load_image_dataset(
    name_or_path: str, split: str = "train", data_dir: str | None = None, image_size: int = 32
) -> ImageDataset:
    """A tfds name (`digits`, `cifar10`, `imagenet2012`, ...) or an image folder path.

    An image folder with a `data_dir` (as every stage passes `data.data_dir`) reads the tfds data
    that `prepare_data` built from it there (FileNotFoundError if it has not); with
    `data_dir=None` the folder's files are read directly (`FolderImageDataset`)."""
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not name_or_path:
        raise ValueError("dataset name or path is empty")
    if is_folder_path(name_or_path):
        if not tf.io.gfile.isdir(name_or_path):
            raise FileNotFoundError(f"image folder {name_or_path!r} does not exist")
        if data_dir is None:
            return FolderImageDataset(name_or_path, image_size, split)
        from elt.data import folder_builder  # pylint: disable=import-outside-toplevel

        builder = folder_builder.prepared_builder(name_or_path, image_size, data_dir)
        return TfdsImageDataset(name_or_path, split, data_dir, image_size, builder=builder)
    return TfdsImageDataset(name_or_path, split, data_dir, image_size)
