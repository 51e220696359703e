"""Video classification data sets: fixed-size labelled clips from tfds video data sets (ucf101, ...),
the bundled `moving_digits`, or a folder of video files (one sub-folder per class).

`load_video_dataset` (elt/data/datasets.py) returns a `VideoDataset`: the `ImageDataset` interface
(iterable of (array, int label), `num_classes`, `num_examples`, `identity`, `read(start, stop)`)
with clips uint8 [T, S, S, 3] instead of images, `modality = "video"` and `num_frames`.

The clip rule (every source, so the tokenizer, the token shards and the reference statistics all
see the same clips). A source video of n frames gives T = `num_frames` frames at stride s =
`frame_stride`, spanning span = s*(T-1)+1 source frames:

* n >= span: the centred window, frames start + s*k (k = 0..T-1) with start = (n - span) // 2
  (a longer clip is cut at both ends; the extra odd frame goes to the end);
* n < span: frames 0, s, 2s, ... up to the last one that exists, then that last taken frame
  repeated until there are T (a too-short clip is padded at the end, never stretched);
* n == 0: an error naming the video.

(The bundled moving_digits is built with exactly span frames, so the rule takes every s-th frame.)

Each taken frame is then brought to S x S = `image_size` like an image of a tfds image data set
(`elt.data.datasets.tf_center_crop_resize`: central square crop, TF bilinear resize with
antialiasing, rounded to uint8; grey and RGBA frames become RGB). tfds videos are resized inside
tf.data, folder videos by the same TF function on the decoded frames, so both give equal pixels.

Folder videos (`.mp4 .avi .mov .mkv .webm .m4v .mpg .mpeg .gif`) are decoded with PyAV (the FFmpeg
bindings: any container and codec FFmpeg reads), first video stream, all frames in presentation
order, converted to RGB. A folder is read from its files at every read; `data_dir` plays no role
(unlike image folders, no tfds copy is prepared). The listing order is the image folders': classes
in turn (round robin), each class's files sorted, so every slice holds every class.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import tensorflow as tf

from elt.data.datasets import (
    DEFAULT_NUM_FRAMES,
    VIDEO_EXTENSIONS,
    ImageDataset,
    ModalityError,
    TfdsImageDataset,
    _absolute_ranges,
    _list_folder,
    _SplitSize,
    modality_message,
    tf_center_crop_resize,
)


def check_clip_args(num_frames, frame_stride) -> None:
    for what, v in (("num_frames", num_frames), ("frame_stride", frame_stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{what} must be an int >= 1, got {v!r}")


def clip_indices(n: int, num_frames: int, frame_stride: int = 1) -> np.ndarray:
    """int [T]: the source frames (of n) the clip rule takes (see the module docstring)."""
    if n < 1:
        raise ValueError("a video with no frames")
    span = frame_stride * (num_frames - 1) + 1
    start = (n - span) // 2 if n >= span else 0
    idx = start + frame_stride * np.arange(num_frames)
    last = start + frame_stride * ((n - 1 - start) // frame_stride)  # last frame taken at the stride
    return np.minimum(idx, last)


def tf_clip_indices(n, num_frames: int, frame_stride: int = 1):
    """TF twin of `clip_indices` for tf.data (n a scalar int32 tensor)."""
    n = tf.cast(n, tf.int32)
    span = frame_stride * (num_frames - 1) + 1
    start = tf.where(n >= span, (n - span) // 2, 0)
    idx = start + frame_stride * tf.range(num_frames, dtype=tf.int32)
    last = start + frame_stride * ((n - 1 - start) // frame_stride)
    return tf.minimum(idx, last)


def resize_clip(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 [T, H, W, C] -> uint8 [T, S, S, 3] with the tfds image path's resize."""
    return tf_center_crop_resize(tf.convert_to_tensor(frames), image_size).numpy()


def make_clip(frames: np.ndarray, num_frames: int, frame_stride: int, image_size: int) -> np.ndarray:
    """The clip rule on decoded frames [n, H, W, C] -> uint8 [T, S, S, 3]."""
    return resize_clip(np.asarray(frames)[clip_indices(len(frames), num_frames, frame_stride)], image_size)


class VideoDataset(ImageDataset):
    """`ImageDataset` of clips: read(start, stop) -> (uint8 [n, T, S, S, 3], int32 [n])."""

    modality = "video"
    num_frames: int
    frame_stride: int

    def _empty(self):
        s, t = self.image_size, self.num_frames
        return np.zeros((0, t, s, s, 3), np.uint8), np.zeros((0,), np.int32)

    def _geometry(self) -> str:
        return f"{self.image_size}:{self.num_frames}f/{self.frame_stride}"


# --------------------------------------------------------------------------------------------
# tfds (ucf101, moving_digits, any builder with `video` and `label` features)
# --------------------------------------------------------------------------------------------
class TfdsVideoDataset(VideoDataset, TfdsImageDataset):
    """Any tfds data set with a `video` (tfds Video, frames [n, H, W, C]) and a `label`
    (ClassLabel) feature, read without downloading; each video becomes one clip by the clip rule.
    Only the frames the rule takes are decoded."""

    _feature = "video"
    _read_batch = 64  # clips per tf.data batch (16x128x128x3 clips are 768 kB each)

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None,
        image_size: int,
        num_frames: int = DEFAULT_NUM_FRAMES,
        frame_stride: int = 1,
        builder=None,
    ):
        check_clip_args(num_frames, frame_stride)
        self.num_frames, self.frame_stride = num_frames, frame_stride
        super().__init__(name, split, data_dir, image_size, builder=builder)

    def _named_builder(self, name: str, data_dir: str | None):
        from elt.data import moving_digits  # pylint: disable=import-outside-toplevel  (registers it)

        base = name.split("/")[0].split(":")[0]
        if base == "moving_digits":
            if name != "moving_digits":
                raise ValueError(
                    f"dataset {name!r}: use plain 'moving_digits'; the size comes from image_size "
                    "and the length from num_frames"
                )
            # Built with exactly the frames the clip rule takes (offline, ~20 s at 16x32).
            span = self.frame_stride * (self.num_frames - 1) + 1
            b = moving_digits.builder(span, self.image_size, data_dir)
            b.download_and_prepare()
            return b
        if base == "digits":
            raise ModalityError(modality_message(name, "image", "video"))
        return super()._named_builder(name, data_dir)

    def _decoders(self):
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

        if isinstance(self._builder.info.features[self._feature], tfds.features.Video):
            return {self._feature: tfds.decode.SkipDecoding()}  # decode the taken frames only
        return None

    def _example(self, ex):
        frames = ex[self._feature]
        t, stride = self.num_frames, self.frame_stride
        taken = tf.gather(frames, tf_clip_indices(tf.shape(frames)[0], t, stride))
        if taken.dtype == tf.string:  # encoded frames (tfds Video): decode the T taken ones
            taken = tf.map_fn(
                lambda b: tf.io.decode_image(b, channels=3, expand_animations=False),
                taken,
                fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
            )
        clip = tf_center_crop_resize(taken, self.image_size)
        s = self.image_size
        return {"x": tf.ensure_shape(clip, (t, s, s, 3)), "label": tf.cast(ex["label"], tf.int32)}


# --------------------------------------------------------------------------------------------
# video folders (one sub-folder per class), decoded with PyAV
# --------------------------------------------------------------------------------------------
def decode_video(data: bytes, where: str = "video") -> np.ndarray:
    """Encoded video file bytes -> uint8 [n, H, W, 3], every frame of its first video stream."""
    import av  # pylint: disable=import-outside-toplevel

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except Exception as e:  # PyAV raises several types (av.error.*) for bad files
        raise ValueError(f"unreadable video file {where}: {e}") from e
    if not frames:
        raise ValueError(f"unreadable video file {where}: no frames")
    return np.stack(frames)


class FolderVideoDataset(VideoDataset):
    """`root/<class>/<video file>`; classes are the sorted sub-folder names, labels their
    positions, files in the image folders' order (classes in turn, files sorted)."""

    def __init__(
        self,
        root: str,
        image_size: int,
        num_frames: int = DEFAULT_NUM_FRAMES,
        frame_stride: int = 1,
        split: str = "train",
    ):
        check_clip_args(num_frames, frame_stride)
        self.root, self.image_size, self.split = root.rstrip("/"), image_size, split
        self.num_frames, self.frame_stride = num_frames, frame_stride
        classes, files = _list_folder(self.root, VIDEO_EXTENSIONS, "video")
        digest = hashlib.sha256("\n".join(f"{p}\t{l}" for p, l in files).encode()).hexdigest()[:16]
        self.classes, self.digest, self.num_classes = classes, digest, len(classes)
        if split != "train":
            whole = {"train": _SplitSize(len(files), [len(files)])}
            files = [f for _, a, b in _absolute_ranges(split, whole) for f in files[a:b]]
        self.files, self.num_examples = files, len(files)
        where = self.root if split == "train" else f"{self.root}:{split}"
        self.identity = f"video-folder:{where}:{self.num_examples}:{digest}:{self._geometry()}"

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= start <= stop <= self.num_examples:
            raise IndexError(
                f"range [{start}, {stop}) outside video folder {self.root!r} "
                f"of {self.num_examples} videos"
            )
        if start == stop:
            return self._empty()
        clips, labels = [], []
        for rel, label in self.files[start:stop]:
            path = f"{self.root}/{rel}"
            with tf.io.gfile.GFile(path, "rb") as f:
                frames = decode_video(f.read(), path)
            clips.append(make_clip(frames, self.num_frames, self.frame_stride, self.image_size))
            labels.append(label)
        return np.stack(clips).astype(np.uint8), np.asarray(labels, np.int32)

