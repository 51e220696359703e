"""Use a given tokenizer checkpoint (any registered kind) instead of training one: copy it into
the stage's output directory and record its reconstruction metrics on the data set."""

from __future__ import annotations

import json

from elt.integrity import has_manifest, write_manifest
from elt.tokenizers import load_tokenizer


def copy_tree(src: str, dst: str) -> None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (local and gs://)

    src, dst = src.rstrip("/"), dst.rstrip("/")
    for root, _, files in tf.io.gfile.walk(src):
        rel = root[len(src) :].lstrip("/")
        target = f"{dst}/{rel}" if rel else dst
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{root}/{name}", f"{target}/{name}", overwrite=True)


def use_pretrained(
    checkpoint: str,
    out_dir: str,
    dataset: str,
    split: str,
    data_dir: str | None,
    image_size: int,
    max_examples: int = 10_000,
    key: str = "tokenizer.checkpoint",
    clips: tuple[int, int] | None = None,
) -> dict:
    """`key` names the setting in messages (families.F.tokenizer.checkpoint in the stage).
    ``clips`` = (num_frames, frame_stride) of video_data: a video tokenizer (vq3d), checked to
    have been made with the same clip rule and measured on up to 256 clips."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from elt.data.datasets import load_image_dataset, load_video_dataset  # pylint: disable=import-outside-toplevel
    from elt.tokenizers.train import evaluate  # pylint: disable=import-outside-toplevel

    tok = load_tokenizer(checkpoint)
    video = clips is not None
    data_key = "video_data" if video else "data"
    if (getattr(tok, "modality", "image") == "video") != video:
        raise ValueError(f"{key} {checkpoint!r} is a {getattr(tok, 'modality', 'image')} tokenizer "
                         f"({getattr(tok, 'kind', '?')}); this family reads {'videos' if video else 'images'}")
    if tok.image_size != image_size:
        raise ValueError(
            f"{key} {checkpoint!r} works on {tok.image_size}px {'frames' if video else 'images'}, "
            f"{data_key}.image_size is {image_size}"
        )
    if video:
        for name, want in zip(("num_frames", "frame_stride"), clips):
            if getattr(tok, name) != want:
                raise ValueError(f"{key} {checkpoint!r} was made for clips of {name} {getattr(tok, name)}, "
                                 f"video_data.{name} is {want}")
        data = load_video_dataset(dataset, split, data_dir, image_size, *clips)
        max_examples = min(max_examples, 256)  # clips are T times an image
    else:
        data = load_image_dataset(dataset, split, data_dir, image_size)
    images, _ = data.read(0, min(data.num_examples, max_examples))
    metrics = {
        **evaluate(tok, images),
        "num_images": int(len(images)),
        "dataset": data.identity,
        "identity": tok.identity,
        "checkpoint": checkpoint,
    }
    if tf.io.gfile.exists(out_dir):
        tf.io.gfile.rmtree(out_dir)
    copy_tree(checkpoint, out_dir)
    if not has_manifest(out_dir):  # a checkpoint from elsewhere: checked by identity on load above
        write_manifest(out_dir)
    with tf.io.gfile.GFile(f"{out_dir.rstrip('/')}/metrics.json", "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
