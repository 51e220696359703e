"""Image-folder data sets: prepare_data builds a tfds data set of the folder into data_dir, every
reader reads that (not the folder), bytes are deterministic; and the DAG end to end on a folder."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from elt.data.datasets import center_crop_resize, load_image_dataset
from elt.data.prepare import prepare

SIZE = 16
CLASSES = ("zebra", "ant", "moth")  # listed unsorted on purpose: labels follow sorted names


def _write_folder(root: Path, per_class: int = 12, seed: int = 0) -> list[tuple[str, int]]:
    """3 classes x per_class PNGs of varied sizes and modes; returns (relpath, label) in the
    dataset's order: classes by sorted name, taken in turn (written here independently)."""
    rng = np.random.default_rng(seed)
    for c, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(8, 48, 2))
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) // 2 + 40 * c
            if i % 5 == 3:  # grayscale and RGBA files too: read as RGB
                Image.fromarray(img[..., 0]).save(root / cls / f"{i:02d}.png")
            elif i % 5 == 4:
                rgba = np.concatenate([img, np.full((h, w, 1), 128, np.uint8)], axis=-1)
                Image.fromarray(rgba).save(root / cls / f"{i:02d}.png")
            else:
                Image.fromarray(img).save(root / cls / f"{i:02d}.png")
    return [
        (f"{cls}/{i:02d}.png", label)
        for i in range(per_class)
        for label, cls in enumerate(sorted(CLASSES))
    ]


def _expected(root: Path, listing):
    images = [
        center_crop_resize(np.asarray(Image.open(root / rel).convert("RGB")), SIZE)
        for rel, _ in listing
    ]
    return np.stack(images), np.array([label for _, label in listing], np.int32)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_prepared_folder_reads_back_in_order_and_rebuilds_byte_identical(tmp_path):
    root, data_dir = tmp_path / "imgs", str(tmp_path / "tfds")
    listing = _write_folder(root)
    with pytest.raises(FileNotFoundError, match=r"imgs.*not prepared.*dvc repro prepare_data"):
        load_image_dataset(str(root), "train", data_dir, SIZE)

    info = prepare(str(root), data_dir, SIZE)
    assert info["num_examples"] == 36 and info["num_classes"] == 3
    assert info["identity"].startswith(f"tfds:elt_image_folder/{SIZE}px-")
    files = _tree_digest(tmp_path / "tfds")
    assert any(name.endswith("dataset_info.json") for name in files)
    assert any(".tfrecord-" in name for name in files)

    ds = load_image_dataset(str(root), "train", data_dir, SIZE)
    assert ds.identity == info["identity"] and ds.num_examples == 36 and ds.num_classes == 3
    images, labels = ds.read(0, ds.num_examples)
    ref_images, ref_labels = _expected(root, listing)
    assert images.dtype == np.uint8 and images.shape == (36, SIZE, SIZE, 3)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(images, ref_images)  # PNG is lossless: the exact pixels
    # Index ranges (what Beam workers read) and iteration give the same examples.
    part, part_labels = ds.read(10, 17)
    np.testing.assert_array_equal(part, ref_images[10:17])
    np.testing.assert_array_equal(part_labels, ref_labels[10:17])
    assert [label for _, label in ds] == ref_labels.tolist()
    # Class names are the sorted sub-folder names.
    assert ds._builder.info.features["label"].names == sorted(CLASSES)
    # The direct reader (no data_dir) sees the same examples.
    direct = load_image_dataset(str(root), "train", None, SIZE)
    np.testing.assert_array_equal(direct.read(0, 36)[0], images)
    assert ds.identity.split(":")[1].endswith(direct.digest + "/1.1.0")

    # Rebuilding gives the same bytes. tfds writes each tf.train.Example with its feature map in
    # an order that varies between processes; every record must be the canonical encoding.
    prepare(str(root), data_dir, SIZE)
    assert _tree_digest(tmp_path / "tfds") == files
    shard = next((tmp_path / "tfds").rglob("*.tfrecord-*"))
    for record in tf.data.TFRecordDataset(str(shard)).as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        assert example.SerializeToString(deterministic=True) == record

    with pytest.raises(ValueError, match="no split 'test'"):
        load_image_dataset(str(root), "test", data_dir, SIZE)


def test_changed_or_unprepared_folder_is_named(tmp_path):
    root, data_dir = tmp_path / "imgs", str(tmp_path / "tfds")
    _write_folder(root, per_class=2)
    prepare(str(root), data_dir, SIZE)
    # Another image size or a changed listing is another data set: not prepared yet.
    with pytest.raises(FileNotFoundError, match=r"not prepared .* at 8px"):
        load_image_dataset(str(root), "train", data_dir, 8)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "ant" / "new.png")
    with pytest.raises(
        FileNotFoundError, match=r"folder or data.image_size changed.*dvc repro -f prepare_data"
    ):
        load_image_dataset(str(root), "train", data_dir, SIZE)
    info = prepare(str(root), data_dir, SIZE)
    assert info["num_examples"] == 7
    assert load_image_dataset(str(root), "train", data_dir, SIZE).num_examples == 7
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        prepare(str(tmp_path / "missing"), data_dir, SIZE)
    with pytest.raises(FileNotFoundError, match="missing.*does not exist"):
        load_image_dataset(str(tmp_path / "missing"), "train", data_dir, SIZE)


# --------------------------------------------------------------------------------------------
# end to end: the DAG with real DVC on a folder data set
# --------------------------------------------------------------------------------------------
RUN = "micro-1x2-elt"


def _folder_params(folder: Path) -> dict:
    from pipeline_repo import tiny_params

    p = tiny_params()
    # the whole folder, no held-out split: the DVC outputs of that case (tests/test_heldout.py
    # holds folder images out by slices)
    p["data"] = {**p["data"], "dataset": str(folder), "image_size": SIZE, "train_split": "train",
                 "heldout_split": None}
    p["families"]["maskgit"]["tokenizer"].update(steps=30, batch_size=16, codebook_size=16, channels=16, embed_dim=8)
    p["tokenize"].update(num_shards=1, direct_num_workers=1, batch_size=64)
    p["scales"] = {"micro": {"d_model": 16, "mlp_dim": 32, "num_heads": 2}}
    p["train"].update(steps=20, batch_size=12, warmup_steps=2, checkpoint_every=20, log_every=10)
    p["grid"] = {RUN: {"family": "maskgit", "scale": "micro", "N": 1, "L_max": 2, "ilsd": True}}
    p["sample"].update(loops=[1], num_samples=6, batch_size=6, cfg_scales=[1.0])
    p["families"]["maskgit"]["sample"]["steps"] = 2
    p["eval"].update(batch_size=36, ref_split="train", ref_num_images=36)
    return p


def test_dag_end_to_end_on_an_image_folder(tmp_path):
    from pipeline_repo import dvc, make_repo, stale_stages

    folder = tmp_path / "images"
    _write_folder(folder)
    repo = make_repo(tmp_path / "repo", _folder_params(folder))
    dvc(repo, "repro", timeout=900)

    assert any((repo / "data" / "tfds").rglob("dataset_info.json"))
    manifest = json.loads((repo / "data" / "tokens" / "maskgit" / "manifest.json").read_text())
    assert manifest["total"] == 36 and manifest["num_classes"] == 3
    assert manifest["dataset"].startswith(f"tfds:elt_image_folder/{SIZE}px-")
    heldout = json.loads((repo / "data" / "tokens_heldout" / "maskgit" / "manifest.json").read_text())
    assert heldout["total"] == 0 and heldout["split"] is None and heldout["shards"] == []
    metrics = json.loads((repo / "runs" / RUN / "train" / "metrics.json").read_text())
    assert metrics["exit_loss_data"].startswith("train (no data.heldout_split")
    ref = json.loads((repo / "data" / "ref_stats" / "info.json").read_text())
    assert ref["n"] == 36
    ev = json.loads((repo / "runs" / RUN / "eval.json").read_text())
    assert sorted(int(L) for L in ev["per_loop"]) == [1]
    for point in ev["per_loop"].values():
        assert math.isfinite(point["fid"]) and point["fid"] > 0

    # Forcing prepare_data on an unchanged folder rebuilds identical bytes: nothing else reruns.
    before = _tree_digest(repo / "data" / "tfds")
    proc = dvc(repo, "repro", "-f", "prepare_data")
    assert "Running stage 'prepare_data'" in proc.stdout
    assert _tree_digest(repo / "data" / "tfds") == before
    assert stale_stages(repo) == set()
