"""prepare_data stage core: make the data set readable from `data_dir` and describe it."""

from __future__ import annotations

from elt.data.datasets import load_image_dataset


def prepare(dataset: str, data_dir: str, image_size: int, split: str = "train") -> dict:
    """Build the bundled digits into `data_dir` (offline), or check that another tfds data set /
    image folder is readable there. Returns {dataset, split, num_examples, num_classes, identity}."""
    data = load_image_dataset(dataset, split, data_dir, image_size)
    data.read(0, min(1, data.num_examples))  # fail now, not in the Beam job, if data is unreadable
    return {
        "dataset": dataset,
        "split": split,
        "num_examples": data.num_examples,
        "num_classes": data.num_classes,
        "identity": data.identity,
    }
