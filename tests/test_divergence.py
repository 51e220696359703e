"""A diverging run stops with one `error:` line naming the step and the loss terms, and leaves no
complete-looking output: the real train stage in a subprocess (lr 1e6 really diverges within a few
steps: Adam moves every parameter by ~lr), the finiteness reduction, and the VQ tokenizer."""

from __future__ import annotations

import json
import re
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from pipeline_repo import env_for, make_repo, run, tiny_params

from elt.errors import NonFiniteError
from elt.core.finite import all_finite, describe, nonfinite

RUN = "micro-1x2-elt"


def write_tokens(tokens_dir, n=64, num_shards=2, vocab=16, grid=(2, 2)):
    """A small valid token directory (shards + manifest), as tests/test_loader.py builds one:
    far cheaper than the tokenize stage, and the train stage verifies it the same way."""
    from elt.data import shards
    from elt.data.spec import LatentSpec

    spec = LatentSpec(tuple(grid), "int32", vocab)
    tokens_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    infos = []
    for s in range(num_shards):
        lo, hi = shards.shard_bounds(s, n, num_shards)
        idx = np.arange(lo, hi)
        toks = rng.integers(0, vocab, (len(idx), *grid)).astype(np.int32)
        infos.append(
            shards.write_shard(str(tokens_dir / shards.shard_name(s, num_shards)), toks, idx % 10, idx, spec=spec)
        )
    manifest = shards.make_manifest(
        spec, infos, num_classes=10, tokenizer="vq-test", dataset="test", split="train", image_size=8
    )
    (tokens_dir / shards.MANIFEST).write_text(json.dumps(manifest))


def test_train_stage_stops_at_the_diverged_step(tmp_path):
    params = tiny_params()
    # lr 1e6 after a 1-step warmup (step 0 runs at lr 0): the loss is NaN within ~5 steps. The loss
    # is logged (and checked) every step; orbax saves the first step, a checkpoint from before
    # the divergence; the next save (step 10) is never reached.
    params["train"].update(
        {"steps": 40, "lr": 1e6, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 10, "log_every": 1}
    )
    params["scales"] = {"micro": {"d_model": 16, "mlp_dim": 32, "num_heads": 2}}
    params["grid"] = {RUN: {"scale": "micro", "N": 1, "L_max": 2, "ilsd": True}}
    params["data"]["heldout_split"] = None  # only data/tokens/maskgit is written below
    repo = make_repo(tmp_path / "repo", params)
    write_tokens(repo / "data" / "tokens" / "maskgit")

    env = env_for()
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT"):  # track into the temporary repository
        env.pop(name, None)
    proc = run([sys.executable, "stages/train.py", "--params", "params.yaml", "--run", RUN],
               repo, env=env, check=False, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    line = errors[0]
    hit = re.search(r"train@" + RUN + r": non-finite loss at step (\d+) \(loss=(-?inf|nan), ", line)
    assert hit, line
    bad_step = int(hit.group(1))
    assert 1 < bad_step < 10, line  # the first loss (initial parameters) is finite
    for term in ("gt_teacher=", "gt_student=", "distill="):
        assert term in line, line
    assert "train.lr" in line, line

    # Nothing that looks like a finished run.
    assert not (repo / "runs" / RUN / "train").exists()
    assert not list(repo.glob("runs/**/model.json"))
    assert not (repo / "runs" / RUN / "curve.csv").exists()

    # The last good checkpoint is the one the message names: before the divergence, and finite.
    good = re.search(r"the last checkpoint with finite parameters \(step (\d+)\) is kept in (\S+)/ckpt;", line)
    assert good, line
    good_step, work = int(good.group(1)), repo / good.group(2)
    saved = sorted(int(p.name) for p in (work / "ckpt").iterdir() if p.name.isdigit())
    assert saved and saved[-1] == good_step < bad_step, (saved, line)
    import orbax.checkpoint as ocp

    restored = ocp.StandardCheckpointer().restore((work / "ckpt" / str(good_step) / "default").resolve())
    assert bool(all_finite(restored["params"]))
    assert int(restored["step"]) == good_step


def test_all_finite_on_a_param_tree():
    def tree():
        return {
            "dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros((4,))},
            "half": jnp.ones((2,), jnp.bfloat16),
            "count": jnp.arange(3),  # integer leaves are finite by construction
        }

    assert bool(all_finite(tree()))
    assert bool(all_finite({}))
    assert bool(all_finite({"huge": jnp.full((1000,), 3e38)}))  # finite, though their sum is not
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        t = tree()
        t["dense"]["kernel"] = t["dense"]["kernel"].at[2, 1].set(bad)
        assert not bool(all_finite(t)), bad
        t = tree()
        t["half"] = t["half"].at[0].set(bad)
        assert not bool(all_finite(t)), bad
    assert all_finite(tree()).shape == ()


def test_loss_terms_are_named_with_their_values():
    m = {"gt_teacher": float("nan"), "loss": float("inf"), "accuracy": 0.25}
    assert nonfinite(m) == ["gt_teacher", "loss"]
    assert nonfinite({"loss": 1.0}) == []
    assert describe(m) == "loss=inf, accuracy=0.25, gt_teacher=nan"


def test_tokenizer_training_stops_and_saves_nothing(tmp_path):
    from PIL import Image

    from elt.tokenizers.train import train_tokenizer
    from elt.tokenizers.vq_config import VQConfig

    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (images / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(images / c / f"{i}.png")
    out = tmp_path / "tokenizer"
    # lr 1e6: the reconstruction loss is inf at step 2 and NaN after.
    with pytest.raises(NonFiniteError) as err:
        cfg = VQConfig(image_size=8, downsample=2, codebook_size=8, embed_dim=4, channels=16, steps=10,
                       batch_size=8, lr=1e6)
        train_tokenizer(str(images), "train", None, str(out), cfg, log_every=0)
    msg = str(err.value)
    hit = re.search(r"non-finite loss at step (\d+) of 10 \(loss=(-?inf|nan), rec=(-?inf|nan), codebook=", msg)
    assert hit and int(hit.group(1)) > 1, msg
    assert "tokenizer.lr" in msg, msg
    assert not out.exists()
