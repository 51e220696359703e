"""`video_data`: the data of the video families, parsed and checked like `data`, and a magvit grid
run on it through the real DAG (`dvc repro`: prepare_data -> train_tokenizer@magvit (vq3d) ->
tokenize@magvit -> train -> sample -> fetch_fvd_weights, ref_stats -> evaluate, floor ->
aggregate) on clips of the bundled moving_digits, scored by FVD with the real I3D weights."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from elt.config import ConfigError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())
T, SIZE = 12, 16  # 12 frames: FVD's I3D needs at least 9
# A tiny 3-D VQ (12x16x16 clips -> 3x4x4 tokens), trained briefly.
VQ3D = {"kind": "vq3d", "channels": 8, "channel_mult": [1, 2, 2], "temporal_downsample": [True, True],
        "norm_groups": 4, "codebook_size": 32, "embed_dim": 8, "steps": 20, "batch_size": 8, "lr": 2e-3}
VIDEO_DATA = {"dataset": "moving_digits", "image_size": SIZE, "num_frames": T, "train_split": "train[:96]",
              "heldout_split": "train[96:112]", "data_dir": "data/tfds"}


def video_params(**video_data) -> dict:
    """The default file with one magvit grid point on `video_data` (its image data stays)."""
    raw = copy.deepcopy(DEFAULT)
    raw["scales"]["micro"] = {"d_model": 16, "mlp_dim": 32, "num_heads": 2}
    raw["grid"] = {"micro-1x2-elt": {"family": "magvit", "scale": "micro", "N": 1, "L_max": 2, "ilsd": True}}
    raw["families"] = {"magvit": {"tokenizer": dict(VQ3D), "train": {}, "sample": {"steps": 2}}}
    raw["video_data"] = {**VIDEO_DATA, **video_data}
    raw["train"].update(steps=3, batch_size=8, checkpoint_every=3, log_every=1, warmup_steps=1)
    raw["sample"].update(loops=[1, 3], num_samples=10, batch_size=10)
    return raw


# --------------------------------------------------------------------------------------------
# params.yaml
# --------------------------------------------------------------------------------------------
def test_the_default_has_no_video_data_and_every_family_reads_data():
    p = load_params(ROOT / "params.yaml")
    assert p.video_data is None
    assert p.data_for("maskgit") is p.data


def test_a_video_family_reads_video_data_and_its_tokenizer_works_at_its_frame_size():
    p = parse_params(video_params(image_size=24))
    assert p.data_for("magvit") is p.video_data
    assert (p.video_data.dataset, p.video_data.image_size, p.video_data.heldout_split) == (
        "moving_digits", 24, "train[96:112]")
    tk = p.families["magvit"].tokenizer
    assert (tk.kind, tk.image_size, tk.num_frames, tk.frame_stride) == ("vq3d", 24, T, 1)  # video_data's, not data's 32
    assert p.run_config("micro-1x2-elt")["data"]["dataset"] == "moving_digits"


@pytest.mark.parametrize("edit, key, words", [
    (lambda r: r.update(video_data=None), "video_data", "families.magvit models video: set video_data"),
    (lambda r: r["video_data"].pop("dataset"), "video_data.dataset", "missing required key"),
    (lambda r: r["video_data"].update(image_size=0), "video_data.image_size", "must be > 0"),
    (lambda r: r["video_data"].update(frames=16), "video_data.frames", "unknown key"),
    (lambda r: r["video_data"].update(heldout_split="train[:96]"), "video_data.heldout_split", "overlap"),
    (lambda r: r["families"]["magvit"]["tokenizer"].update(image_size=16), "families.magvit.tokenizer.image_size",
     "works at video_data.image_size"),
    (lambda r: r["families"]["magvit"]["tokenizer"].update(num_frames=16), "families.magvit.tokenizer.num_frames",
     "works at video_data.num_frames"),
    (lambda r: r["video_data"].update(frame_stride=0), "video_data.frame_stride", "must be > 0"),
    (lambda r: r["video_data"].update(num_frames=14), "families.magvit.tokenizer.temporal_downsample",
     "4x in time does not divide num_frames 14"),
    (lambda r: r["video_data"].update(num_frames=8), "video_data.num_frames", "I3D needs clips of at least 9 frames"),
])
def test_bad_video_data_fails_naming_the_key(edit, key, words):
    raw = video_params()
    edit(raw)
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert err.value.key == key and words in str(err.value), str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_the_frame_minimum_the_parser_checks_is_the_i3d_networks():
    from elt.config import FVD_MIN_FRAMES
    from elt.evaluation.i3d import MIN_FRAMES

    assert FVD_MIN_FRAMES == MIN_FRAMES == 9


def test_video_data_without_a_video_family_is_refused():
    raw = copy.deepcopy(DEFAULT)
    raw["video_data"] = dict(VIDEO_DATA)
    with pytest.raises(ConfigError, match=r"^video_data: no grid point uses a video family"):
        parse_params(raw)


def test_an_unknown_video_dataset_names_video_data(tmp_path):
    raw = video_params(dataset="./no/such/folder")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"^video_data\.dataset: './no/such/folder' looks like a folder path"):
        load_params(tmp_path / "params.yaml")


# --------------------------------------------------------------------------------------------
# the DAG, through `dvc repro` in a real git + DVC repository
# --------------------------------------------------------------------------------------------
def test_a_magvit_grid_runs_through_the_dag_on_video_data(tmp_path):
    from pipeline_repo import dvc, env_for, make_repo

    raw = video_params()
    raw["grid"]["micro-2x1-unique"] = {"family": "magvit", "scale": "micro", "N": 2, "L_max": 1, "ilsd": False}
    raw["tokenize"].update(num_shards=2)
    # FVD as MAGVIT reports it, scaled down (I3D runs at ~1.3 clips/s here): the mean +- std of 2
    # repeats of 5 samples vs 5 real clips; the I3D weights come from the fetch_fvd_weights stage
    raw["eval"].update(fvd_repeats=2, fvd_clips_per_repeat=5, fvd_ref_clips=20)
    repo = make_repo(tmp_path / "repo", params=raw)
    dvc(repo, "repro", env=env_for(), timeout=3000)  # tracking: the default local store
    tmp_path = repo  # the stages' outputs, below, are the repository's

    metrics = json.loads((tmp_path / "data/tokenizer_metrics/magvit.json").read_text())
    assert metrics["num_clips"] == 96  # video_data.train_split, not data's 1,497 images
    assert "moving_digits" in metrics["dataset"]
    assert metrics["psnr"] > metrics["psnr_init"]  # 20 steps do train it

    from elt.data.loader import LatentData

    tokens, held = LatentData(str(tmp_path / "data/tokens/magvit")), LatentData(str(tmp_path / "data/tokens_heldout/magvit"))
    assert (tokens.num_examples, held.num_examples) == (96, 16)
    assert tuple(tokens.spec.shape) == (T // 4, SIZE // 4, SIZE // 4)  # (t, h, w) tokens of 12x16x16 clips
    latents = tokens.read()["latents"]
    assert latents.shape == (96, T // 4, SIZE // 4, SIZE // 4) and int(latents.max()) < VQ3D["codebook_size"]

    train = json.loads((tmp_path / "runs/micro-1x2-elt/train/metrics.json").read_text())
    assert train["exit_loss_data"].startswith("heldout train[96:112] (16 examples)")
    assert sorted(train["held_out_loss_per_exit"], key=int) == ["1", "2"]
    assert all(np.isfinite(v) for v in train["held_out_loss_per_exit"].values())

    samples = tmp_path / "runs/micro-1x2-elt/samples"
    assert sorted(p.name for p in samples.iterdir()) == [
        "L1.npz", "L3.npz", "MANIFEST.json", "grid_L1.gif", "grid_L3.gif", "sampling.json", "timing.json"]
    with np.load(samples / "L3.npz") as z:
        clips, labels = z["images"], z["labels"]
    assert clips.dtype == np.uint8 and clips.shape[:4] == (10, T, SIZE, SIZE) and clips.shape[-1] in (1, 3)
    assert list(labels) == list(range(10))  # class-balanced
    from PIL import Image

    with Image.open(samples / "grid_L3.gif") as gif:
        assert 1 <= gif.n_frames <= T  # PIL merges identical consecutive frames
        # 8 columns (classes 0-7) x 1 row (10 balanced samples hold one of each), 2-px borders
        assert gif.size == (8 * (SIZE + 2) + 2, 1 * (SIZE + 2) + 2)

    info = json.loads((tmp_path / "data/ref_stats/info.json").read_text())
    fvd_ref = info["metrics"]["fvd"]
    assert list(info["metrics"]) == ["fvd"] and fvd_ref["data"] == "video_data"
    assert (fvd_ref["n"], fvd_ref["split"], fvd_ref["split_size"]) == (20, "train[:96]", 96)  # eval.fvd_ref_clips
    assert not (tmp_path / "data/ref_stats/fid").exists()  # no image family: no FID statistics

    ev = json.loads((tmp_path / "runs/micro-1x2-elt/eval.json").read_text())
    assert ev["metric"] == "fvd" and ev["modality"] == "video"
    for L in ("1", "3"):
        r = ev["per_loop"][L]
        assert r["fvd"] > 0 and r["fvd_std"] > 0 and r["repeats"] == 2 and r["num_per_repeat"] == 5
        assert r["fvd"] == pytest.approx(np.mean(r["fvd_repeats"]))

    fl = json.loads((tmp_path / "data/floor/floor.json").read_text())["metrics"]["fvd"]
    assert (fl["split"], fl["data"], fl["draws"]) == ("train[96:112]", "video_data", 1)  # 16 held-out clips: 1 draw of 10
    # real held-out clips sit closer to the training clips than the untrained model's samples
    assert 0 < fl["real"]["mean"] < min(ev["per_loop"][L]["fvd"] for L in ("1", "3"))
    assert fl["reconstruction"]["mean"] > 0

    unique = json.loads((tmp_path / "runs/micro-2x1-unique/eval.json").read_text())
    assert list(unique["per_loop"]) == ["1"] and unique["per_loop"]["1"]["fvd_std"] > 0
    # the video front has its own files (results/fvd_*), its spread and floor named as FVD's
    summary = (tmp_path / "results" / "fvd_summary.md").read_text()
    assert summary.startswith("# Aggregate summary: FVD (video)") and "micro-1x2-elt at 1x3" in summary
    assert "± = std of the FVD over its repeats" in summary and "jackknife" not in summary
    assert "(moving_digits, train[96:112]; data/floor/floor.json)" in summary  # the clips, not data's digits
