"""Stage train@RUN: train one grid point (ELT with ILSD, vanilla looping, or unique depth).

    python stages/train.py --params params.yaml --run small-2x3-elt

Reads data/tokens/FAMILY, writes runs/RUN/train/ (final orbax checkpoint, model.json, metrics.json)
and runs/RUN/curve.csv (DVC plot). metrics.json's per-exit losses ("held_out_loss_per_exit") are
measured on data/tokens_heldout/FAMILY, the tokens of `data.heldout_split` (at most 512 of them); without
a held-out split (null) on 256 training examples, and "exit_loss_data" says which.
Resumes automatically: checkpoints go to a work folder (.elt_work/train/RUN/<config hash>/) that
DVC does not wipe, and a rerun with the same configuration continues from the last one. Data
order and per-step randomness are functions of the step number, so a resumed run ends with the
same parameters as an uninterrupted one.
A diverged run (a NaN/inf loss at a logged step, parameters at a checkpoint save, or a final
per-exit loss) stops with NonFiniteError naming the step and the loss terms: that state is not
saved, runs/RUN/train is not written, and the last good checkpoint stays in the work folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.config import config_hash, family_paths, load_params  # noqa: E402

EXIT_LOSS_CAP = 512  # held-out examples the per-exit losses are measured on, at most
EXIT_LOSS_SEED = 1234  # which examples, when there are more (a seeded choice, as ever)


def heldout_tokens(split: str | None, heldout_dir: str, train, key: str = "data", family: str = "FAMILY"):
    """The verified tokens of `<key>.heldout_split` (None when it is null), checked to be of that
    split and of the training tokens' tokenizer before any compute."""
    if split is None:
        return None
    from elt.data.loader import LatentData

    try:
        held = LatentData(heldout_dir)  # verifies every shard against the manifest
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{key}.heldout_split is {split!r}, but {e}") from None
    m, t = held.manifest, train.manifest
    if m["split"] != split:
        raise ValueError(
            f"{heldout_dir} holds the tokens of split {m['split']!r}, but {key}.heldout_split is "
            f"{split!r}: rerun `dvc repro -f tokenize@{family}`"
        )
    for key in ("tokenizer", "spec", "num_classes", "image_size"):
        if m[key] != t[key]:
            raise ValueError(
                f"{heldout_dir} and {train.latents_dir} were tokenized apart ({key} {m[key]!r} vs "
                f"{t[key]!r}): rerun `dvc repro -f tokenize@{family}`"
            )
    if held.num_examples == 0:
        raise ValueError(f"{heldout_dir}: {key}.heldout_split {split!r} holds no examples")
    return held


def heldout_batch(held, cap: int = EXIT_LOSS_CAP, seed: int = EXIT_LOSS_SEED) -> dict:
    """All held-out examples in index order, or `cap` of them (a seeded choice): the same on
    every process."""
    import numpy as np

    share = held.read()
    n = len(share["labels"])
    idx = np.arange(n) if n <= cap else np.sort(np.random.default_rng(seed).permutation(n)[:cap])
    return {"latents": share["latents"][idx], "labels": share["labels"][idx]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run", required=True, help="grid point name (a key of params.yaml `grid`)")
    ap.add_argument("--tokens", default=None, help="default: data/tokens/FAMILY (the run's family)")
    ap.add_argument("--heldout-tokens", default=None,
                    help="default: data/tokens_heldout/FAMILY, or TOKENS_heldout when --tokens is given")
    ap.add_argument("--out", default=None, help="default: runs/RUN/train")
    ap.add_argument("--work", default=".elt_work/train", help="resumable checkpoints live here")
    ap.add_argument("--stop-after", type=int, default=None, help="exit after this step (tests of resume)")
    args = ap.parse_args(argv)

    # ---------------------------------------------------------------- config (before any compute)
    params = load_params(args.params)
    point = params.point(args.run)  # an unknown run name fails here, naming it
    hyper = params.train_hyper(args.run)
    scale = params.scales[point.scale]
    out = Path(args.out or f"runs/{args.run}/train")
    paths = family_paths(point.family)
    tokens_dir = args.tokens or paths["tokens"]
    curve_path = out.parent / "curve.csv"
    run_cfg = params.run_config(args.run)
    # The checkpoints are resumed on a match of what determines the parameters: not the held-out
    # split, only measured on. A new one reruns this stage (DVC: data/tokens_heldout is a dep),
    # which resumes the final checkpoint and measures the per-exit losses again.
    chash = config_hash({**run_cfg, "data": {k: v for k, v in run_cfg["data"].items() if k != "heldout_split"}})
    work = Path(args.work) / args.run / chash

    from elt.core.hosts import DistributedSetupError, initialize_distributed

    try:  # before any JAX computation: join the job's other processes when the environment says so
        initialize_distributed()
    except DistributedSetupError as e:
        raise SystemExit(f"train@{args.run}: {e}") from None
    import jax
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    from elt import families
    from elt.core.finite import all_finite, describe, nonfinite
    from elt.core.hosts import barrier, is_main
    from elt.core.mesh import batch_sharding, check_batch_divisible, make_mesh
    from elt.core.train_step import create_train_state, make_eval_loss, make_train_step
    from elt.data.loader import LatentData
    from elt.errors import NonFiniteError
    from elt.integrity import write_manifest
    from elt.tracking import RunTracker
    from elt.core.batches import StepBatches, process_rows

    # ---------------------------------------------------------------- data
    latents = LatentData(tokens_dir)  # verifies every shard against the manifest first
    losses, family_cfg = families.module(point.family, "losses"), params.family(args.run)
    losses.check_latents(latents.spec)
    data = StepBatches(latents)
    split = params.data_for(point.family).heldout_split
    held_data = heldout_tokens(split, args.heldout_tokens or (
        f"{tokens_dir.rstrip('/')}_heldout" if args.tokens else paths["tokens_heldout"]), latents,
        key=params.data_key(point.family), family=point.family)
    if held_data is not None:
        held = heldout_batch(held_data)
        n = len(held["labels"])
        of = f"{n} examples" if n == held_data.num_examples else f"{n} of {held_data.num_examples} examples"
        exit_data = f"heldout {split} ({of})"
    else:
        held = None  # training examples, chosen after training as they always were
        exit_data = (f"train (no {params.data_key(point.family)}.heldout_split; "
                     f"{min(256, data.num_examples)} training examples)")
    model = families.module(point.family, "model").build_model(
        latents.spec, latents.num_classes, scale, point.N, remat=hyper.remat
    )
    seed = hyper.seed + params.seed

    # ---------------------------------------------------------------- mesh
    # params.yaml `mesh`: data parallel over every device of every host, parameters and optimizer
    # state sharded over its fsdp axis. Each process feeds its rows of the global batch (the same
    # batch whatever the topology), assembled into one global array on the mesh.
    try:
        mesh = make_mesh(params.mesh)
        check_batch_divisible(hyper.batch_size, mesh)
    except ValueError as e:
        raise SystemExit(f"train@{args.run}: {e}") from None
    sharding = batch_sharding(mesh)
    rows = process_rows(sharding, hyper.batch_size)

    def global_batch(step: int) -> dict:
        local = data.batch_for_step(step, hyper.batch_size, seed=seed, rows=rows)
        return {k: jax.make_array_from_process_local_data(sharding, v, (hyper.batch_size, *v.shape[1:]))
                for k, v in local.items()}

    # ---------------------------------------------------------------- model, optimizer, resume
    rng = jax.random.PRNGKey(seed)
    init_rng, step_rng_base = jax.random.split(rng)
    state = create_train_state(model, hyper, init_rng, mesh, params.mesh)
    train_step = make_train_step(losses, model, hyper, point.L_max, point.ilsd, family_cfg.train, mesh, params.mesh)

    if is_main():
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(json.dumps(run_cfg, indent=1, default=str))
    mngr = ocp.CheckpointManager(
        work.resolve() / "ckpt",
        options=ocp.CheckpointManagerOptions(max_to_keep=2, save_interval_steps=hyper.checkpoint_every),
    )
    start = 0
    curve_rows: list[dict] = []
    if mngr.latest_step() is not None:
        start = mngr.latest_step()
        state = mngr.restore(start, args=ocp.args.StandardRestore(state))
        curve_file = work / "curve.json"
        if curve_file.exists():
            curve_rows = [r for r in json.loads(curve_file.read_text()) if r["step"] <= start]
        print(f"train@{args.run}: resuming from step {start} ({work})", flush=True)

    identity = {k: str(latents.manifest[k]) for k in ("dataset", "tokenizer")}
    tracker = RunTracker.for_grid_point(
        args.run, stage="train", config=run_cfg, params_hash=chash,
        dataset=identity["dataset"][:250], tokenizer=identity["tokenizer"][:250],
    )

    # ---------------------------------------------------------------- loop
    t0, last_t, last_step = time.time(), time.time(), start
    bar = tqdm(range(start, hyper.steps), initial=start, total=hyper.steps, desc=f"train@{args.run}", unit="step")

    def diverged(what: str) -> NonFiniteError:
        # A non-finite loss or parameter: this state is not saved and nothing is published to
        # `out`; the checkpoints saved so far (each checked before saving) stay in the work folder.
        bar.close()
        mngr.wait_until_finished()
        good = mngr.latest_step()
        kept = (
            f"the last checkpoint with finite parameters (step {good}) is kept in {work / 'ckpt'}"
            if good is not None
            else "no checkpoint was saved before it"
        )
        return NonFiniteError(
            f"train@{args.run}: {what}; {kept}; nothing was written to {out}. The run diverged: lower "
            f"train.lr (now {hyper.lr:g}) or lengthen train.warmup_steps (now {hyper.warmup_steps})"
        )

    for step in bar:
        state, metrics = train_step(state, global_batch(step), jax.random.fold_in(step_rng_base, step))
        done = step + 1
        if done % hyper.log_every == 0 or done == hyper.steps:
            m = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if nonfinite(m):  # checked on the values fetched for the log: no extra device sync
                raise diverged(f"non-finite loss at step {done} ({describe(m)})")
            now = time.time()
            m["steps_per_second"] = (done - last_step) / max(now - last_t, 1e-9)
            last_t, last_step = now, done
            curve_rows.append({"step": done, **m})
            bar.set_postfix(loss=f"{m['loss']:.3f}", lam=f"{m.get('lam', 0):.2f}")
            tracker.log_metrics({k: v for k, v in m.items()}, step=done)
        if mngr.should_save(done) or done == hyper.steps:
            if not bool(all_finite((state.params, state.ema_params))):  # one jitted reduction, only at saves
                last = {k: v for k, v in (curve_rows[-1] if curve_rows else {}).items() if k != "steps_per_second"}
                logged = f"; last logged (step {last.pop('step')}): {describe(last)}" if last else ""
                raise diverged(f"non-finite parameters at step {done}, not saved{logged}")
            mngr.save(done, args=ocp.args.StandardSave(state))
            mngr.wait_until_finished()
            if is_main():
                (work / "curve.json").write_text(json.dumps(curve_rows))
        if args.stop_after is not None and done >= args.stop_after:
            mngr.wait_until_finished()
            print(f"train@{args.run}: stopping after step {done} as asked", flush=True)
            return
    mngr.wait_until_finished()
    train_seconds = time.time() - t0

    # ---------------------------------------------------------------- final evaluation per exit
    if held is None:
        held = data.eval_batch(min(256, data.num_examples), seed=EXIT_LOSS_SEED)
    eval_loss = make_eval_loss(losses, model, family_cfg.train)
    published = state.eval_params()  # the EMA when train.ema_decay is set: what sampling uses
    exit_losses = {
        str(L): float(eval_loss(published, held, jax.random.PRNGKey(7), L))
        for L in range(1, point.L_max + 1)
    }
    per_exit = ", ".join(f"L{L}={v:.4g}" for L, v in exit_losses.items())
    if nonfinite(exit_losses):
        raise diverged(f"non-finite per-exit loss on {exit_data} of the step-{hyper.steps} parameters ({per_exit})")
    print(f"train@{args.run}: per-exit loss on {exit_data}: {per_exit}", flush=True)

    # ---------------------------------------------------------------- outputs (atomic)
    tmp = out.with_name(out.name + ".tmp")
    if is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier("train: output folder ready")
    with ocp.StandardCheckpointer() as ckptr:  # every process saves its shards; async: wait
        ckptr.save(tmp.resolve() / "params", published)
        ckptr.wait_until_finished()
    barrier("train: checkpoint saved")
    if not is_main():
        return
    model_json = {
        "family": point.family,
        "config": dataclasses.asdict(model.cfg),
        "run": args.run,
        "kind": point.kind,
        "scale": point.scale,
        "N": point.N,
        "L_max": point.L_max,
        "ilsd": point.ilsd,
        "params_are": "raw" if state.ema_params is None else f"ema (decay {hyper.ema_decay})",
        "params_block": model.num_params(state.params, block_only=True),
        "params_total": model.num_params(state.params),
        "config_hash": chash,
        "tokens_identity": identity,
    }
    (tmp / "model.json").write_text(json.dumps(model_json, indent=1))
    final = curve_rows[-1] if curve_rows else {}
    metrics_json = {
        "final_loss": final.get("loss"),
        "held_out_loss_per_exit": exit_losses,  # the family's eval_loss at each exit L, on:
        "exit_loss_data": exit_data,  # "heldout SPLIT (n examples)" or "train (no data.heldout_split; ...)"
        "steps": hyper.steps,
        "train_seconds_this_session": train_seconds,
        "params_block": model_json["params_block"],
    }
    (tmp / "metrics.json").write_text(json.dumps(metrics_json, indent=1))
    write_manifest(tmp)  # last: sample and evaluate check every file against it
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    with open(curve_path, "w", newline="") as f:
        keys = sorted({k for r in curve_rows for k in r}, key=lambda k: (k != "step", k))
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(curve_rows)
    tracker.log_metrics({f"held_out_loss_L{L}": v for L, v in exit_losses.items()}, step=hyper.steps)
    tracker.log_artifact(str(curve_path))
    tracker.set_tags({"checkpoint": str(out.resolve() / "params"), "exit_loss_data": exit_data})
    print(json.dumps(metrics_json), flush=True)


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
