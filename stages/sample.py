"""Stage sample@RUN: any-time sampling of one trained run at every loop count L and every
classifier-free guidance scale of `sample.cfg_scales` (scale 1 only for a family without guidance).

    python stages/sample.py --params params.yaml --run small-2x3-elt

A point is one (L, scale), named `L3` (no guidance) or `L3-cfg1.5` (elt.config.point_name). One
compiled sampler per scale serves every L (L is a runtime value). Class-balanced labels, seeded; for
each point writes runs/RUN/samples/<point>/NNNNN.png (uint8), <point>.npz (images, labels, latents)
and a sample grid grid_<point>.png; a video family's points have no per-sample files: <point>.npz
(`images` holds uint8 clips [n, T, H, W, C]) and an animated grid_<point>.gif of at most 8 x 4
clips, one column per class (a GIF of thousands of clips helps nobody); sampling.json the settings and points that made them (evaluate
counts GFLOPs from it); timing.json per-point wall time and samples/s (model only, after
compilation, and with tokenizer decoding).

Resumes per point: each finished point is kept in a work folder (.elt_work/sample/RUN/<hash>/<point>/,
sealed by a DONE.json written last) keyed by the checkpoint, the sample section (less `loops` and
`cfg_scales`), the seeds, the tokenizer and the sampling code, so a rerun after a kill (or with an L
or a scale added) samples only the missing points. runs/RUN/samples is assembled from it and renamed
into place at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.config import family_paths, load_params, point_name  # noqa: E402


def image_grid(images, ncol: int):
    """Tile uint8 images [B,H,W,C] into one picture, row-major."""
    import numpy as np

    b, h, w, c = images.shape
    nrow = -(-b // ncol)
    canvas = np.full((nrow * (h + 2) + 2, ncol * (w + 2) + 2, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, ncol)
        canvas[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + q * (w + 2) : 2 + q * (w + 2) + w] = im
    return canvas


GIF_COLUMNS, GIF_ROWS = 8, 4  # the animated grid of a video point: at most 32 clips


def grid_file(folder: Path, name: str) -> Path:
    """A finished point's sample grid: grid_<point>.png (images) or grid_<point>.gif (clips)."""
    gif = folder / f"grid_{name}.gif"
    return gif if gif.exists() else folder / f"grid_{name}.png"


def write_point(folder: Path, name: str, images, labels, latents, num_classes: int) -> None:
    """The files of one point: <point>.npz, the grid, and for images one PNG per sample."""
    import numpy as np
    from PIL import Image

    from elt.workdir import save_npz

    save_npz(folder / f"{name}.npz", images=images, labels=labels, latents=latents)  # fixed timestamps
    if images.ndim == 5:  # clips [n, T, H, W, C]
        from elt.tracking.video_preview import save_clip_grid

        ncol = min(num_classes, GIF_COLUMNS)
        # balanced labels cycle 0..C-1: the first GIF_ROWS cycles of classes < ncol, row-major,
        # put one class in each column
        keep = np.flatnonzero(labels < ncol)[: ncol * GIF_ROWS]
        save_clip_grid(images[keep], folder / f"grid_{name}.gif", ncol=ncol)
        return
    (folder / name).mkdir()
    for j, im in enumerate(images):
        Image.fromarray(im.squeeze(-1) if im.shape[-1] == 1 else im).save(folder / name / f"{j:05d}.png")
    order = np.argsort(labels[: min(len(images), 10 * num_classes)], kind="stable")
    Image.fromarray(image_grid(images[order], ncol=num_classes).squeeze()).save(folder / f"grid_{name}.png")


def sample_key(params, run: str, train_dir: Path, tokenizer_identity: str) -> dict:
    """Everything that determines the samples of one point (but not the list of points): the
    checkpoint, the sample sections (less `loops`, `cfg_scales`), the seeds, the tokenizer, the code
    that samples, and JAX."""
    import dataclasses

    import jax

    from elt import families
    from elt.integrity import listed_files
    from elt.workdir import sha256_tree

    meta = json.loads((train_dir / "model.json").read_text())
    return {
        "run": run,
        "checkpoint": {
            "config_hash": meta.get("config_hash"),
            "files": listed_files(train_dir),  # its verified manifest: sizes and SHA-256 of every file
        },
        "sample": {k: v for k, v in dataclasses.asdict(params.sample).items() if k not in ("loops", "cfg_scales")},
        "family_sample": dataclasses.asdict(params.family(run).sample),
        "seed": params.seed,
        "tokenizer": tokenizer_identity,
        "code": sha256_tree(  # the stage's code dependencies (dvc.yaml)
            [ROOT / "stages" / "sample.py", ROOT / "elt" / "core", ROOT / "elt" / "tokenizers",
             ROOT / "elt" / "tracking" / "video_preview.py",
             *families.source_files(params.grid[run].family, "model", "sampler")],
            root=ROOT,
        ),
        "jax": [jax.__version__, jax.default_backend()],
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run", required=True)
    ap.add_argument("--tokenizer", default=None, help="default: data/tokenizer/FAMILY (the run's family)")
    ap.add_argument("--out", default=None, help="default: runs/RUN/samples")
    ap.add_argument("--work", default=".elt_work/sample", help="finished loop counts live here until published")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    params.point(args.run)  # an unknown run name fails here, naming it
    from elt.core.hosts import is_main

    if not is_main():  # one process samples and writes; the others have nothing to add yet
        return
    sc_cfg = params.sample
    points = {point_name(L, s): (L, s) for L, s in params.sample_points(args.run)}
    run_dir = Path("runs") / args.run
    train_dir = run_dir / "train"
    out = Path(args.out or run_dir / "samples")
    model_json = train_dir / "model.json"
    if not model_json.exists():
        raise SystemExit(f"{model_json}: missing; run `dvc repro train@{args.run}` first")

    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm import tqdm

    from elt import families
    from elt.core.ckpt import restore_on_one_device
    from elt.core.mesh import split_over_local_devices
    from elt.config import config_hash
    from elt.integrity import verify_manifest, write_manifest
    from elt.tokenizers import load_tokenizer
    from elt.tracking import RunTracker
    from elt.workdir import atomic_write_text, publish_folder, remove_stale_tmp, seal, sealed_info, tmp_tag

    verify_manifest(train_dir, "checkpoint", f"rerun `dvc repro -f train@{args.run}`")
    tokenizer_dir = args.tokenizer or family_paths(params.grid[args.run].family)["tokenizer"]
    tokenizer = load_tokenizer(tokenizer_dir, require_manifest=True)
    # Resume per point: each finished point is a sealed folder work/<point>/ (files + DONE.json,
    # renamed into place), in a folder keyed by everything that determines the samples. Every point
    # restarts from the same seed (keys depend on the batch index only), so a point sampled in an
    # earlier, killed process is the very point an uninterrupted run would have produced.
    ident = sample_key(params, args.run, train_dir, tokenizer.identity)
    work = Path(args.work) / args.run / config_hash(ident)
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(work)  # L folders of killed runs, half written
    atomic_write_text(work / "key.json", json.dumps(ident, indent=1))
    done = {name: sealed_info(work / name) for name in points}
    done = {name: info for name, info in done.items() if info is not None}
    todo = [name for name in points if name not in done]
    if done:
        print(f"sample@{args.run}: resuming: {','.join(done)} already done ({work})", flush=True)
    for name in todo:
        if (work / name).exists():
            print(f"sample@{args.run}: {name} in {work} is incomplete or altered: sampling it again", flush=True)

    timing = {name: info["timing"] for name, info in done.items()}
    tracker = RunTracker.for_grid_point(args.run, stage="sample")
    for name in done:
        tracker.log_artifact(str(grid_file(work / name, name)), artifact_path=f"samples/{name}")
    samplers = {}  # guidance scale -> compiled sampler (L is dynamic: one compilation covers every L)
    if todo:
        meta = json.loads(model_json.read_text())
        family = families.module(meta["family"], "sampler")
        model = families.module(meta["family"], "model").model_from_config(meta["config"])
        abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0))
        model_params = restore_on_one_device(train_dir / "params", abstract)
        num_classes = model.cfg.num_classes
        labels_all = np.arange(sc_cfg.num_samples, dtype=np.int32) % num_classes  # class-balanced
        bs = min(sc_cfg.batch_size, sc_cfg.num_samples)
        # Batches split over this process's devices (the same samples as on one device): the
        # parameters are replicated there once.
        model_params, _ = split_over_local_devices(model_params, labels_all[:bs])

    def sampler_for(scale: float):
        """The sampler at one guidance scale, compiled (and the decoder too) before any timing."""
        if scale not in samplers:
            sampler = family.make_sampler(model, params.family(args.run).sample, scale)
            warm = sampler(*split_over_local_devices(model_params, labels_all[:bs]), jnp.int32(1), jax.random.PRNGKey(0))
            family.decode(tokenizer, np.asarray(jax.block_until_ready(warm)))
            samplers[scale] = sampler
        return samplers[scale]

    for name in tqdm(todo, desc=f"sample@{args.run}", unit="point"):
        L, scale = points[name]
        sampler = sampler_for(scale)
        rng = jax.random.PRNGKey(sc_cfg.seed + params.seed)
        latents, model_seconds = [], 0.0
        for i in range(0, sc_cfg.num_samples, bs):
            lab = labels_all[i : i + bs]
            pad = bs - len(lab)  # keep one shape: pad the last batch, drop the padding after
            lab_in = np.concatenate([lab, lab[:pad] if pad <= len(lab) else np.resize(lab, pad)]) if pad else lab
            key = jax.random.fold_in(rng, i)  # eager ops: not timed
            _, lab_in = split_over_local_devices(model_params, np.asarray(lab_in))
            t = time.perf_counter()
            sampled = sampler(model_params, lab_in, jnp.int32(L), key)
            sampled = np.asarray(jax.block_until_ready(sampled))[: len(lab)]
            model_seconds += time.perf_counter() - t
            latents.append(sampled)
        latents = np.concatenate(latents)
        t = time.perf_counter()
        images = np.asarray(family.decode(tokenizer, latents))
        decode_seconds = time.perf_counter() - t
        if images.dtype != np.uint8:
            raise SystemExit(f"tokenizer at {tokenizer_dir} decoded {images.dtype}, expected uint8 images")
        ltmp = work / f"{name}.{tmp_tag()}"
        ltmp.mkdir(parents=True)
        write_point(ltmp, name, images, labels_all, latents, num_classes)
        timing[name] = {
            "L": L,
            "cfg_scale": scale,
            "model_seconds": model_seconds,
            "samples_per_second": len(images) / model_seconds,
            "decode_seconds": decode_seconds,
            "samples_per_second_with_decode": len(images) / (model_seconds + decode_seconds),
            "num_samples": int(len(images)),
        }
        seal(ltmp, {"point": name, "timing": timing[name]})  # DONE.json last, then one rename: durable
        publish_folder(ltmp, work / name)
        tracker.log_artifact(str(grid_file(work / name, name)), artifact_path=f"samples/{name}")

    # Assemble the DVC output from the work folder (a copy: DVC may move or lock what it caches).
    timing = {name: timing[name] for name in points}
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in points:
        if (work / name / name).is_dir():  # per-sample PNGs (images only)
            shutil.copytree(work / name / name, tmp / name)
        for file in (work / name / f"{name}.npz", grid_file(work / name, name)):
            shutil.copyfile(file, tmp / file.name)
    (tmp / "timing.json").write_text(json.dumps(timing, indent=1))
    sampling = {"family": params.grid[args.run].family, "sample": dataclasses.asdict(params.family(args.run).sample),
                "points": [{"name": name, "L": L, "cfg_scale": s} for name, (L, s) in points.items()]}
    (tmp / "sampling.json").write_text(json.dumps(sampling, indent=1))
    write_manifest(tmp)  # last: evaluate checks every file against it
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    for scale in sorted({s for _, s in points.values()}):  # one history over L per guidance scale
        suffix = "" if scale == 1.0 else f"_cfg{scale:g}"
        tracker.log_metric_history(f"samples_per_second{suffix}", {
            v["L"]: v["samples_per_second"] for v in timing.values() if v["cfg_scale"] == scale})
    print(json.dumps(timing), flush=True)


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
