"""End to end for the diffusion family: params-dit-digits.yaml, shrunk, through the real DAG
(`dvc repro`: the vae tokenizer trained by train_tokenizer, float latent shards written by Beam,
dit runs trained with ILSD / vanilla / unique depth and an EMA, DDPM-sampled at every L and
guidance scale, FID with spreads, the aggregate). What the params file promises must run."""

from __future__ import annotations

import json

import numpy as np
import yaml

from pipeline_repo import ROOT, dvc, env_for, make_repo

RUNS = ("tiny-1x2-elt", "tiny-1x2-vanilla", "micro-2x1-unique")


def _tiny_dit_params() -> dict:
    raw = yaml.safe_load((ROOT / "params-dit-digits.yaml").read_text())
    raw["families"]["dit"]["tokenizer"].update(steps=40, batch_size=32)
    raw["tokenize"].update(num_shards=2, batch_size=256)
    raw["scales"] = {"tiny": {"d_model": 32, "mlp_dim": 64, "num_heads": 2}, "micro": {"d_model": 16, "mlp_dim": 32, "num_heads": 2}}
    raw["train"].update(steps=30, batch_size=32, warmup_steps=5, checkpoint_every=10, log_every=10)
    raw["grid"] = {
        "tiny-1x2-elt": {"family": "dit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": True},
        "tiny-1x2-vanilla": {"family": "dit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": False},
        "micro-2x1-unique": {"family": "dit", "scale": "micro", "N": 2, "L_max": 1, "ilsd": False},
    }
    raw["families"]["dit"]["sample"]["steps"] = 4
    raw["sample"].update(loops=[1, 2, 3], num_samples=20, batch_size=20, cfg_scales=[1.0, 2.0])
    raw["eval"].update(batch_size=32, ref_num_images=64)
    return raw


def test_the_dit_params_file_runs_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "repo", params=_tiny_dit_params())
    dvc(repo, "repro", env=env_for(), timeout=3000)  # tracking: the default local store

    tok = json.loads((repo / "data" / "tokenizer_metrics" / "dit.json").read_text())
    assert tok["psnr"] > 10 and np.isfinite(tok["scale_factor"]) and tok["scale_factor"] > 0
    manifest = json.loads((repo / "data" / "tokens" / "dit" / "manifest.json").read_text())
    assert manifest["spec"]["dtype"] == "float32" and manifest["spec"]["shape"] == [8, 8, 4]
    for run in RUNS:
        model = json.loads((repo / "runs" / run / "train" / "model.json").read_text())
        assert model["family"] == "dit" and model["params_are"] == "ema (decay 0.999)"
        ev = json.loads((repo / "runs" / run / "eval.json").read_text())
        loops = [1] if run.endswith("unique") else [1, 2, 3]
        assert sorted(int(L) for L in ev["per_loop"]) == loops
        for L in loops:
            point = ev["per_loop"][str(L)]
            assert np.isfinite(point["fid"]) and point["fid_std"] > 0 and point["gflops"] > 0
            assert set(point["by_cfg"]) == {"1", "2"}  # every guidance scale sampled and scored
            # CFG doubles the network passes of a step: the GFLOPs of scale 2 are twice scale 1's
            assert point["by_cfg"]["2"]["gflops"] == 2 * point["by_cfg"]["1"]["gflops"]
        for name in (f"L{loops[-1]}", f"L{loops[-1]}-cfg2"):
            got = np.load(repo / "runs" / run / "samples" / f"{name}.npz")
            assert got["images"].dtype == np.uint8 and got["images"].shape == (20, 32, 32, 3) and got["images"].std() > 0
            assert got["latents"].dtype == np.float32 and got["latents"].shape == (20, 8, 8, 4)
    summary = (repo / "results" / "summary.md").read_text()
    assert "tiny-1x2-elt" in summary and "±" in summary
