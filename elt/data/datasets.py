"""Image and video classification data sets by name or path: the bundled digits and moving_digits,
any tfds name, image folders and video folders.

`load_image_dataset` returns an `ImageDataset`: iterable of (uint8 [S, S, 3], int label), with
`num_classes`, `num_examples`, an `identity` string, and `read(start, stop)` for index ranges so a
Beam worker can read its own slice. Example `i` is the i-th example of the split in the order tfds
(or the sorted folder listing) gives it; that order is deterministic, which makes the token shards
reproducible.

`load_video_dataset` returns a `VideoDataset` (elt/data/video.py, where the clip rule that brings
every video to num_frames x image_size x image_size is written down): the same interface with
clips uint8 [T, S, S, 3] for images. `load_dataset` reads either, by the data set's `modality`
("image" or "video", also an attribute of every data set; `dataset_modality` tells it without
reading any example). An image reader pointed at a video data set, or the reverse, raises a
`ModalityError` (a ValueError) saying so, before any example is read.
"""

from __future__ import annotations

import hashlib
import io
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow as tf  # tf.data for tfds, tf.io.gfile for local and gs:// folders
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
# A folder with any of these (but .gif) is a video folder; a folder of .gif files only is read as
# images by the image readers and as animations by the video readers (the caller's modality decides).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
DEFAULT_NUM_FRAMES = 16  # the paper's clips (16 x 128 x 128)
MODALITIES = ("image", "video")


class ModalityError(ValueError):
    """An image reader pointed at a video data set, or a video reader at an image data set."""


def modality_message(name: str, holds: str, wanted: str) -> str:
    """What an image reader says of a video data set and vice versa."""
    if wanted == "image":
        return (
            f"dataset {name!r} holds videos, not images: image families (and their vq / vae "
            "tokenizers) need an image data set (digits, an image tfds name, an image folder); "
            "a video family (vq3d tokenizer) reads video data sets"
        )
    return (
        f"dataset {name!r} holds {holds}s, not videos: a video family (vq3d tokenizer) needs a "
        "video data set (moving_digits, ucf101 or another tfds name with a `video` feature, a "
        f"folder of {'/'.join(e[1:] for e in VIDEO_EXTENSIONS)} files)"
    )


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
    """Interface shared by the tfds and image-folder sources (and, with clips, the video ones)."""

    modality = "image"
    num_classes: int
    num_examples: int
    image_size: int
    identity: str

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return _stack([], [], self.image_size)

    def _geometry(self) -> str:
        """The example geometry part of `identity`."""
        return str(self.image_size)

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
    """Any tfds data set with `image` and `label` (ClassLabel) features, read without downloading.
    (elt.data.video.TfdsVideoDataset reads `video` features through the hooks marked below.)"""

    _feature = "image"  # hook: the feature read
    _read_batch = 4096  # hook: examples per tf.data batch in read()

    def __init__(
        self, name: str, split: str, data_dir: str | None, image_size: int, builder=None
    ):
        """`builder`: an already made tfds builder to read (an image folder's prepared data,
        `elt.data.folder_builder`) instead of looking `name` up."""
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

        self.name, self.split, self.data_dir, self.image_size = name, split, data_dir, image_size
        self._builder = builder if builder is not None else self._named_builder(name, data_dir)
        features = self._builder.info.features
        other = {"image": "video", "video": "image"}[self.modality]
        if self._feature not in features and other in features:
            raise ModalityError(modality_message(name, other, self.modality))
        for key in (self._feature, "label"):
            if key not in features:
                raise ValueError(
                    f"dataset {name!r} has no {key!r} feature (features: {list(features)}); "
                    f"{'an' if self.modality == 'image' else 'a'} {self.modality} classification "
                    f"data set with `{self._feature}` and `label` is required"
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
            f"tfds:{self._builder.info.full_name}:{split}:{self.num_examples}:{self._geometry()}"
        )

    def _named_builder(self, name: str, data_dir: str | None):
        """Hook: the tfds builder of the data set `name` (the bundled ones built on demand)."""
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
        from elt.data import digits  # pylint: disable=import-outside-toplevel  (registers `digits`)

        base = name.split("/")[0].split(":")[0]
        if base == "digits":
            # The bundled data set: build it on demand at the requested size (offline, ~3 s).
            if name != "digits":
                raise ValueError(
                    f"dataset {name!r}: use plain 'digits'; the size comes from image_size"
                )
            builder = digits.builder(self.image_size, data_dir)
            builder.download_and_prepare()
            return builder
        if base == "moving_digits":
            raise ModalityError(modality_message(name, "video", "image"))
        try:
            return tfds.builder(name, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError as e:
            raise ValueError(
                f"unknown dataset {name!r}: not a tfds data set name (see `tfds.list_builders()` or "
                f"https://www.tensorflow.org/datasets/catalog) and not an existing folder "
                f"(one sub-folder per class)"
            ) from e

    def _decoders(self):
        """Hook: tfds decoders for as_dataset (None: tfds decodes every feature)."""
        return None

    def _example(self, ex) -> dict:
        """Hook: a tfds example -> {"x": uint8 example at the requested geometry, "label": int32}."""
        return {
            "x": tf_center_crop_resize(ex["image"], self.image_size),
            "label": tf.cast(ex["label"], tf.int32),
        }

    def _as_dataset(self, split: str):
        ds = self._builder.as_dataset(split=split, shuffle_files=False, decoders=self._decoders())
        return ds.map(self._example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= start <= stop <= self.num_examples:
            raise IndexError(
                f"range [{start}, {stop}) outside dataset {self.name!r} "
                f"split {self.split!r} of {self.num_examples} examples"
            )
        if start == stop:
            return self._empty()
        if self._offset is not None:
            # tfds reads only the files holding the slice (absolute instruction on the plain split).
            name, first = self._offset
            ds = self._as_dataset(f"{name}[{first + start}:{first + stop}]")
        else:
            ds = self._as_dataset(self.split).skip(start).take(stop - start)
        # One batch for the whole range: a single tensor->numpy hop instead of one per example.
        images, labels = [], []
        for batch in ds.batch(self._read_batch).as_numpy_iterator():
            images.append(batch["x"])
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
    antialiasing (as PIL's filter when shrinking), uint8 RGB. A no-op for images already SxSx3.
    Also for a stack of frames [T, H, W, C] (each frame alike: what the video readers use)."""
    channels = image.shape[-1]
    if channels == 1:
        image = tf.repeat(image, 3, axis=-1)
    elif channels == 4:
        image = image[..., :3]
    if tuple(image.shape[-3:-1]) == (image_size, image_size):
        return tf.cast(image, tf.uint8)
    shape = tf.shape(image)
    h, w = shape[-3], shape[-2]
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
        classes, files = _list_folder(self.root, IMAGE_EXTENSIONS, "image")
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


def _list_folder(root: str, extensions: tuple[str, ...], what: str):
    """(sorted class names, [(class/file, label)] with the classes in turn) of a folder of
    `what` ("image" or "video") files; ValueError naming the folder or class that has none, and
    a ModalityError where a class holds files of the other modality instead."""
    root = root.rstrip("/")
    classes = sorted(
        c.rstrip("/") for c in tf.io.gfile.listdir(root) if tf.io.gfile.isdir(f"{root}/{c.rstrip('/')}")
    )
    if not classes:
        raise ValueError(
            f"{what} folder {root!r} has no class sub-folders (expected "
            f"{root}/<class_name>/<{what} files>)"
        )
    per_class: list[list[tuple[str, int]]] = []
    for label, cls in enumerate(classes):
        listed = tf.io.gfile.listdir(f"{root}/{cls}")
        names = sorted(n for n in listed if n.lower().endswith(extensions))
        if not names:
            other, other_ext = ("video", VIDEO_EXTENSIONS) if what == "image" else ("image", IMAGE_EXTENSIONS)
            if any(n.lower().endswith(other_ext) for n in listed):
                raise ModalityError(modality_message(root, other, what))
            raise ValueError(
                f"{what} folder class {root}/{cls} holds no {what} files ({', '.join(extensions)})"
            )
        per_class.append([(f"{cls}/{n}", label) for n in names])
    files = [c[j] for j in range(max(map(len, per_class))) for c in per_class if j < len(c)]
    return classes, files


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


def _is_video_folder(root: str) -> bool:
    """A folder (one sub-folder per class) whose first class with files of either kind holds
    video files other than .gif (so mostly one class folder is listed)."""
    root = root.rstrip("/")
    only_video = tuple(e for e in VIDEO_EXTENSIONS if e not in IMAGE_EXTENSIONS)
    for c in sorted(tf.io.gfile.listdir(root)):
        cls = f"{root}/{c.rstrip('/')}"
        if not tf.io.gfile.isdir(cls):
            continue
        names = [n.lower() for n in tf.io.gfile.listdir(cls)]
        if any(n.endswith(only_video) for n in names):
            return True
        if any(n.endswith(IMAGE_EXTENSIONS) for n in names):
            return False
    return False


def dataset_modality(name_or_path: str, data_dir: str | None = None) -> str:
    """"image" or "video": what the data set holds, read from its name, its tfds features or its
    folder's file names (no example is read). A folder of .gif files only counts as images (a
    video reader still reads its .gifs as animations)."""
    if not name_or_path:
        raise ValueError("dataset name or path is empty")
    if is_folder_path(name_or_path):
        if not tf.io.gfile.isdir(name_or_path):
            raise FileNotFoundError(f"folder {name_or_path!r} does not exist")
        return "video" if _is_video_folder(name_or_path) else "image"
    base = name_or_path.split("/")[0].split(":")[0]
    if base in ("digits", "moving_digits"):
        return "image" if base == "digits" else "video"
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    try:
        features = tfds.builder(name_or_path, data_dir=data_dir).info.features
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(
            f"unknown dataset {name_or_path!r}: not a tfds data set name (see `tfds.list_builders()`) "
            "and not an existing folder (one sub-folder per class)"
        ) from e
    for modality in ("video", "image"):
        if modality in features:
            return modality
    raise ValueError(
        f"dataset {name_or_path!r} has neither an 'image' nor a 'video' feature "
        f"(features: {list(features)})"
    )


def load_dataset(
    name_or_path: str,
    split: str = "train",
    data_dir: str | None = None,
    image_size: int = 32,
    *,
    modality: str | None = None,
    num_frames: int | None = None,
    frame_stride: int = 1,
) -> ImageDataset:
    """Images or clips: `load_image_dataset` or `load_video_dataset` by `modality` (None: the data
    set's own, `dataset_modality`). A `modality` the data set does not hold raises ModalityError.
    `num_frames` (None: DEFAULT_NUM_FRAMES) and `frame_stride` apply to videos only."""
    if modality is None:
        modality = dataset_modality(name_or_path, data_dir)
    if modality == "image":
        if num_frames is not None:
            raise ValueError(f"num_frames={num_frames} given for image data set {name_or_path!r}")
        return load_image_dataset(name_or_path, split, data_dir, image_size)
    if modality == "video":
        return load_video_dataset(
            name_or_path, split, data_dir, image_size,
            DEFAULT_NUM_FRAMES if num_frames is None else num_frames, frame_stride,
        )
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")


def load_video_dataset(
    name_or_path: str,
    split: str = "train",
    data_dir: str | None = None,
    image_size: int = 32,
    num_frames: int = DEFAULT_NUM_FRAMES,
    frame_stride: int = 1,
):
    """A tfds video name (`moving_digits`, `ucf101`, ...) or a video folder path, as clips of
    `num_frames` x `image_size` x `image_size` by the clip rule of elt/data/video.py. The bundled
    moving_digits is built into `data_dir` on demand; a folder is read from its files (data_dir
    unused). An image data set raises ModalityError."""
    from elt.data import video  # pylint: disable=import-outside-toplevel

    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    video.check_clip_args(num_frames, frame_stride)
    if not name_or_path:
        raise ValueError("dataset name or path is empty")
    if is_folder_path(name_or_path):
        if not tf.io.gfile.isdir(name_or_path):
            raise FileNotFoundError(f"video folder {name_or_path!r} does not exist")
        return video.FolderVideoDataset(name_or_path, image_size, num_frames, frame_stride, split)
    return video.TfdsVideoDataset(name_or_path, split, data_dir, image_size, num_frames, frame_stride)


def load_image_dataset(
    name_or_path: str, split: str = "train", data_dir: str | None = None, image_size: int = 32
) -> ImageDataset:
    """A tfds name (`digits`, `cifar10`, `imagenet2012`, ...) or an image folder path.

    An image folder with a `data_dir` (as every stage passes `data.data_dir`) reads the tfds data
    that `prepare_data` built from it there (FileNotFoundError if it has not); with
    `data_dir=None` the folder's files are read directly (`FolderImageDataset`). A video data set
    (moving_digits, a tfds name with a `video` feature, a folder of video files) raises
    ModalityError."""
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not name_or_path:
        raise ValueError("dataset name or path is empty")
    if is_folder_path(name_or_path):
        if not tf.io.gfile.isdir(name_or_path):
            raise FileNotFoundError(f"image folder {name_or_path!r} does not exist")
        if _is_video_folder(name_or_path):
            raise ModalityError(modality_message(name_or_path, "video", "image"))
        if data_dir is None:
            return FolderImageDataset(name_or_path, image_size, split)
        from elt.data import folder_builder  # pylint: disable=import-outside-toplevel

        builder = folder_builder.prepared_builder(name_or_path, image_size, data_dir)
        return TfdsImageDataset(name_or_path, split, data_dir, image_size, builder=builder)
    return TfdsImageDataset(name_or_path, split, data_dir, image_size)
