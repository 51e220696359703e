"""data.heldout_split: validated before compute, tokenized by the tokenize stage into
data/tokens_heldout (a manifest of no examples when null), sliced the same way in image folders,
and the split the train stage measures its per-exit losses on (metrics.json says which)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from elt.config import ConfigError, DataConfig, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def _data(**data) -> dict:
    raw = copy.deepcopy(DEFAULT)
    raw["data"].update(data)
    return raw


def _stage(script: str, *args, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", **(env or {})}  # tracking down
    env.pop("DVC_ROOT", None)
    return subprocess.run([sys.executable, f"stages/{script}", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


# --------------------------------------------------------------------------------------------
# params.yaml
# --------------------------------------------------------------------------------------------
def test_default_holds_out_the_last_300_digits():
    p = load_params(ROOT / "params.yaml")
    assert (p.data.train_split, p.data.heldout_split) == ("train[:1497]", "train[1497:]")
    paper = parse_params(yaml.safe_load((ROOT / "params-imagenet256.yaml").read_text()))
    assert (paper.data.train_split, paper.data.heldout_split) == ("train", "validation")


@pytest.mark.parametrize("train, heldout", [
    ("train[:1497]", "train[:1497]"),  # the same split
    ("train", "train"),
    ("train", "train[1497:]"),  # the whole split holds every slice of it
    ("train[:1500]", "train[1497:]"),
    ("train[:91%]", "train[90%:]"),
    ("train[:-300]", "train[-400:]"),
    ("train", " "),
])
def test_an_overlapping_heldout_split_fails_naming_the_key(train, heldout):
    with pytest.raises(ConfigError, match=r"^data\.heldout_split: ") as err:
        parse_params(_data(train_split=train, heldout_split=heldout))
    assert err.value.key == "data.heldout_split"
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("train, heldout", [
    ("train[:1497]", "train[1497:]"),
    ("train", "validation"),
    ("train[:90%]", "train[90%:]"),
    ("train[:-300]", "train[-300:]"),
    ("train[100:200]", "train[:100]"),
    ("train[:1497]", "train[-300:]"),  # cannot be told without the split's size: accepted
    ("train", None),  # no held-out split
])
def test_disjoint_or_null_heldout_splits_are_accepted(train, heldout):
    p = parse_params(_data(train_split=train, heldout_split=heldout))
    assert p.data.heldout_split == heldout


def test_a_file_without_the_key_has_no_heldout_split():
    raw = copy.deepcopy(DEFAULT)
    del raw["data"]["heldout_split"]
    assert parse_params(raw).data.heldout_split is None
    with pytest.raises(ConfigError, match=r"^data\.heldout_split: expected a string"):
        parse_params(_data(heldout_split=3))


def test_splits_overlap_is_symmetric_and_says_when_it_cannot_tell():
    assert DataConfig.splits_overlap("train[:50%]", "train[1000:]") is None
    assert DataConfig.splits_overlap("train[:10%]+test", "train[50%:]") is None
    for a, b, want in [("train[:1497]", "train[1497:]", False), ("train", "train[:]", True),
                       ("train[-10%:]", "train[:90%]", False), ("train[100:200]", "train[150:300]", True)]:
        assert DataConfig.splits_overlap(a, b) is want and DataConfig.splits_overlap(b, a) is want


# --------------------------------------------------------------------------------------------
# image folders: the same slices as tfds
# --------------------------------------------------------------------------------------------
def test_folder_slices_take_what_tfds_takes_of_the_prepared_folder(tmp_path):
    from test_folder_dataset import SIZE, _write_folder

    from elt.data.datasets import load_image_dataset
    from elt.data.prepare import prepare

    root, data_dir = tmp_path / "imgs", str(tmp_path / "tfds")
    _write_folder(root)  # 36 images
    prepare(str(root), data_dir, SIZE)
    whole_images, whole_labels = load_image_dataset(str(root), "train", None, SIZE).read(0, 36)
    for split, lo, hi in [("train[:30]", 0, 30), ("train[30:]", 30, 36), ("train[-6:]", 30, 36),
                          ("train[:50%]", 0, 18), ("train[50%:]", 18, 36)]:
        direct = load_image_dataset(str(root), split, None, SIZE)  # the files themselves
        prepared = load_image_dataset(str(root), split, data_dir, SIZE)  # what every stage reads
        assert direct.num_examples == prepared.num_examples == hi - lo, split
        for ds in (direct, prepared):
            images, labels = ds.read(0, hi - lo)
            np.testing.assert_array_equal(images, whole_images[lo:hi], err_msg=split)
            np.testing.assert_array_equal(labels, whole_labels[lo:hi], err_msg=split)
            part, _ = ds.read(2, 5)  # ranges are relative to the slice, as Beam workers read them
            np.testing.assert_array_equal(part, whole_images[lo + 2 : lo + 5], err_msg=split)
    assert load_image_dataset(str(root), "train[30:]", None, SIZE).identity != \
        load_image_dataset(str(root), "train", None, SIZE).identity
    with pytest.raises(ValueError, match=r"incompatible with 36 examples"):
        load_image_dataset(str(root), "train[40:]", None, SIZE)
    with pytest.raises(ValueError, match=r"split 'train\[40:\]'.*incompatible with 36 examples"):
        load_image_dataset(str(root), "train[40:]", data_dir, SIZE)


# --------------------------------------------------------------------------------------------
# the tokenize stage
# --------------------------------------------------------------------------------------------
SIZE = 16


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from sklearn.datasets import load_digits

    from elt.data import digits
    from elt.tokenizers import vq
    from elt.tokenizers.train import fit

    root = tmp_path_factory.mktemp("heldout_tok")
    cfg = vq.VQConfig(image_size=SIZE, downsample=4, codebook_size=32, embed_dim=8, channels=16)
    tok, _ = fit(cfg, digits.upscale(load_digits().images[:128], SIZE), steps=0, batch_size=8, lr=1e-3)
    tok.save(str(root / "tok"))
    return root / "tok"


def _tokenize(tmp_path, tokenizer_dir, data_dir, out, **data):
    raw = _data(image_size=SIZE, data_dir=str(data_dir), **data)
    raw["tokenize"].update(num_shards=2, direct_num_workers=2, batch_size=256)
    pfile = tmp_path / f"params-{len(list(tmp_path.glob('params-*')))}.yaml"
    pfile.write_text(yaml.safe_dump(raw))
    proc = _stage("tokenize_data.py", "--params", pfile, "--tokenizer", tokenizer_dir, "--out", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_tokenize_writes_the_heldout_split_and_a_marker_without_one(tmp_path, tokenizer_dir):
    from test_beam_tokenize import assert_same_tokens, top_two

    from elt.data.datasets import load_image_dataset
    from elt.data.loader import LatentData
    from elt.tokenizers import load_tokenizer

    data_dir, out = tmp_path / "tfds", tmp_path / "tokens"
    _tokenize(tmp_path, tokenizer_dir, data_dir, out, train_split="train[:1497]", heldout_split="train[1497:]")
    tok = load_tokenizer(str(tokenizer_dir))
    whole = load_image_dataset("digits", "train", str(data_dir), SIZE)
    images, labels = whole.read(0, whole.num_examples)

    train, held = LatentData(str(out)), LatentData(str(tmp_path / "tokens_heldout"))
    assert (train.num_examples, held.num_examples) == (1497, 300)
    assert held.manifest["split"] == "train[1497:]" and len(held.manifest["shards"]) == 2
    for key in ("tokenizer", "spec", "num_classes", "image_size"):
        assert held.manifest[key] == train.manifest[key], key
    assert held.manifest["dataset"] == load_image_dataset("digits", "train[1497:]", str(data_dir), SIZE).identity
    recs = held.read()
    np.testing.assert_array_equal(recs["index"], np.arange(300))
    np.testing.assert_array_equal(recs["labels"], labels[1497:])  # the last 300 images, in order
    top, tie = top_two(tok, images[1497:])
    assert_same_tokens(recs["latents"], tok.encode(images[1497:]), top, tie)  # encoding them directly
    np.testing.assert_array_equal(train.read()["labels"], labels[:1497])

    # Without a held-out split: a manifest of no examples, no shard of the earlier run left behind.
    proc = _tokenize(tmp_path, tokenizer_dir, data_dir, out, train_split="train", heldout_split=None)
    assert "no data.heldout_split" in proc.stdout
    held = LatentData(str(tmp_path / "tokens_heldout"))
    assert held.num_examples == 0 and held.manifest["split"] is None and held.manifest["shards"] == []
    assert held.manifest["tokenizer"] == tok.identity and held.manifest["spec"] == train.manifest["spec"]
    assert sorted(p.name for p in (tmp_path / "tokens_heldout").iterdir()) == ["manifest.json"]
    assert len(held.read()["labels"]) == 0
    assert LatentData(str(out)).num_examples == 1797
    assert not list(tmp_path.glob("*.tmp-*"))


# --------------------------------------------------------------------------------------------
# the train stage
# --------------------------------------------------------------------------------------------
RUN = "micro-1x2-elt"


def _write_tokens(tokens_dir: Path, tokens: np.ndarray, split: str, tokenizer: str = "vq-test", num_shards: int = 2):
    """A valid token directory (shards + manifest) of int32 `tokens` [n, 2, 2], labels index % 10."""
    from elt.data import shards
    from elt.data.spec import LatentSpec

    spec, n = LatentSpec((2, 2), "int32", 16), len(tokens)
    tokens_dir.mkdir(parents=True)
    infos = []
    for s in range(num_shards):
        lo, hi = shards.shard_bounds(s, n, num_shards)
        idx = np.arange(lo, hi)
        infos.append(shards.write_shard(str(tokens_dir / shards.shard_name(s, num_shards)), tokens[lo:hi],
                                        idx % 10, idx, spec=spec))
    manifest = shards.make_manifest(spec, infos, num_classes=10, tokenizer=tokenizer, dataset="test",
                                    split=split, image_size=8)
    (tokens_dir / shards.MANIFEST).write_text(json.dumps(manifest))


def _train_params(heldout_split):
    raw = _data(train_split="train[:60]", heldout_split=heldout_split)
    raw["scales"] = {"micro": {"d_model": 16, "mlp_dim": 32, "num_heads": 2}}
    raw["grid"] = {RUN: {"family": "maskgit", "scale": "micro", "N": 1, "L_max": 2, "ilsd": True}}
    raw["train"].update(steps=20, batch_size=8, warmup_steps=2, checkpoint_every=10, log_every=10)
    return raw


def _exit_losses(params_file: Path, train_dir: Path, batch: dict) -> dict:
    """The per-exit losses of a finished run's checkpoint on `batch`, as the stage computes them."""
    import jax
    import orbax.checkpoint as ocp

    from elt import families
    from elt.core.train_step import make_eval_loss

    meta = json.loads((train_dir / "model.json").read_text())
    model = families.module("maskgit", "model").model_from_config(meta["config"])
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    weights = ocp.StandardCheckpointer().restore((train_dir / "params").resolve(), abstract)
    eval_loss = make_eval_loss(families.module("maskgit", "losses"), model,
                               load_params(params_file).family(RUN).train)
    return {str(L): float(eval_loss(weights, batch, jax.random.PRNGKey(7), L)) for L in (1, 2)}


def test_train_measures_the_exit_losses_on_the_heldout_tokens(tmp_path):
    from elt.core.batches import StepBatches
    from elt.data.loader import LatentData

    rng = np.random.default_rng(0)
    tokens, heldout = tmp_path / "tokens", tmp_path / "tokens_heldout"
    _write_tokens(tokens, rng.integers(0, 16, (60, 2, 2)).astype(np.int32), "train[:60]")
    # held-out examples unlike the training ones (codes 0-3 only): the losses on them differ
    _write_tokens(heldout, rng.integers(0, 4, (40, 2, 2)).astype(np.int32), "train[60:]")
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(_train_params("train[60:]")))
    common = ["--params", pfile, "--run", RUN, "--tokens", tokens, "--work", tmp_path / "work"]

    proc = _stage("train.py", *common, "--out", tmp_path / "held" / "train")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "held" / "train" / "metrics.json").read_text())
    assert metrics["exit_loss_data"] == "heldout train[60:] (40 examples)"
    assert f"train@{RUN}: per-exit loss on heldout train[60:] (40 examples): L1=" in proc.stdout
    held = LatentData(str(heldout)).read()
    on_heldout = _exit_losses(pfile, tmp_path / "held" / "train", {k: held[k] for k in ("latents", "labels")})
    on_train = _exit_losses(pfile, tmp_path / "held" / "train",
                            StepBatches(LatentData(str(tokens))).eval_batch(60, seed=1234))
    assert metrics["held_out_loss_per_exit"] == pytest.approx(on_heldout, rel=1e-5)
    for L in ("1", "2"):  # not what the training examples give
        assert abs(metrics["held_out_loss_per_exit"][L] - on_train[L]) > 0.05, (metrics, on_train)

    # Without a held-out split: the same parameters (the split is not part of what is resumed on:
    # the finished checkpoint is resumed), measured on training examples, and metrics.json says so.
    pfile.write_text(yaml.safe_dump(_train_params(None)))
    proc = _stage("train.py", *common, "--out", tmp_path / "nohold" / "train")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"train@{RUN}: resuming from step 20" in proc.stdout
    metrics = json.loads((tmp_path / "nohold" / "train" / "metrics.json").read_text())
    assert metrics["exit_loss_data"] == "train (no data.heldout_split; 60 training examples)"
    assert metrics["held_out_loss_per_exit"] == pytest.approx(on_train, rel=1e-5)

    # Held-out tokens of another split than params.yaml names fail before any compute.
    pfile.write_text(yaml.safe_dump(_train_params("train[70:]")))
    proc = _stage("train.py", *common, "--out", tmp_path / "stale" / "train", "--work", tmp_path / "work2")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "holds the tokens of split 'train[60:]', but data.heldout_split is 'train[70:]'" in proc.stderr
    assert not (tmp_path / "work2").exists() and not (tmp_path / "stale").exists()
