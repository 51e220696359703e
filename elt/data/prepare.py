"""prepare_data stage core: make the data set readable from `data_dir` and describe it."""

from __future__ import annotations

from elt.data.datasets import is_folder_path, load_image_dataset, load_video_dataset


def prepare(dataset: str, data_dir: str, image_size: int, split: str = "train") -> dict:
    """Build the bundled digits or an image folder (`elt.data.folder_builder`: a tfds data set of
    the folder at `image_size`, rebuilt on every call) into `data_dir` (offline), or check that
    another tfds data set is readable there. Returns {dataset, split, num_examples, num_classes,
    identity}."""
    if is_folder_path(dataset):
        if not data_dir:
            raise ValueError(
                f"data.data_dir is empty: the image folder {dataset!r} is prepared into it"
            )
        from elt.data.folder_builder import prepare_folder

        prepare_folder(dataset, image_size, data_dir)
    return _checked(load_image_dataset(dataset, split, data_dir, image_size), dataset, split)


def _checked(data, dataset: str, split: str) -> dict:
    """Read one example now (fail here, not in the Beam job, if the data is unreadable) and
    describe the data set."""
    data.read(0, min(1, data.num_examples))
    return {"dataset": dataset, "split": split, "num_examples": data.num_examples,
            "num_classes": data.num_classes, "identity": data.identity}


def prepare_video(dataset: str, data_dir: str, image_size: int, num_frames: int, frame_stride: int,
                  split: str = "train") -> dict:
    """`video_data`: build the bundled moving_digits into `data_dir` (offline), or check that a tfds
    video data set or a folder of video files is readable, as clips of `num_frames` frames taken
    every `frame_stride` (the video tokenizer's clip rule). An image data set raises
    ModalityError. Returns {dataset, split, num_examples, num_classes, identity, num_frames}."""
    data = load_video_dataset(dataset, split, data_dir, image_size, num_frames, frame_stride)
    return {**_checked(data, dataset, split), "num_frames": num_frames}
