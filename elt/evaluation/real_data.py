"""The real data a quality metric compares samples with, by the metric's modality: images of
`data` for FID; for FVD, clips of `video_data` (its num_frames and frame_stride, which the video
tokenizer was made with too, so real and generated clips have the same length).

The reference (stage ref_stats) is eval.ref_split (eval.ref_num_images of it) for images and
video_data.train_split (eval.fvd_ref_clips of it) for clips: the training clips, as MAGVIT scores
UCF-101 against its training set. The floor (stage floor) reads the held-out split of either.
"""

from __future__ import annotations

from elt.config import DataConfig, Params
from elt.evaluation import metrics


def scored_families(params: Params, metric: str) -> list[str]:
    """The grid's families whose quality metric is `metric`."""
    return sorted({p.family for p in params.grid.values() if params.families[p.family].quality_metric == metric})


def _video(metric: str) -> bool:
    return metrics.get(metric).modality == "video"


def data_config(params: Params, metric: str) -> tuple[str, DataConfig]:
    """(params key, section) of the data `metric` scores: ("data", ...) or ("video_data", ...)."""
    key = "video_data" if _video(metric) else "data"
    return key, getattr(params, key)


def reference_split(params: Params, metric: str) -> tuple[str, int | None]:
    """(split, how many examples of it, None: all) the reference statistics of `metric` are of."""
    if _video(metric):
        return params.video_data.train_split, params.eval.fvd_ref_clips
    return params.eval.ref_split, params.eval.ref_num_images


def load(params: Params, metric: str, split: str):
    """The dataset of `split` in the data `metric` scores: images, or clips by the clip rule."""
    from elt.data.datasets import load_image_dataset, load_video_dataset  # pylint: disable=import-outside-toplevel

    _, data = data_config(params, metric)
    if _video(metric):
        return load_video_dataset(data.dataset, split, data.data_dir, data.image_size, data.num_frames,
                                  data.frame_stride)
    return load_image_dataset(data.dataset, split, data.data_dir, data.image_size)
