"""Train the 3-D VQ (video) tokenizer on a video data set and save it (orbax + tokenizer.json +
metrics.json): `train_vq3d`, the kind vq3d's counterpart of elt/tokenizers/train.py.

Same recipe as the image VQ (straight-through VQ, commitment loss, codebook initialised from
encoder outputs of real clips, dead-code restarts every RESTART_EVERY steps until RESTART_UNTIL of
training, Adam with cosine decay to 10%), on clips made by the clip rule of elt/data/video.py at the
config's num_frames / frame_stride / image_size. The training clips are held in memory: a prefix of
the split of at most `max_examples` clips and MAX_BYTES. Reported: reconstruction MSE / PSNR on
the uint8 scale, codebook usage (fraction of codes used) and perplexity, on the first
`eval_examples` training clips, before (psnr_init) and after training. A NaN/inf loss or final
parameter raises NonFiniteError before anything is saved.
"""

from __future__ import annotations

import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from elt.tokenizers import vq, vq3d
from elt.tokenizers.train import DEAD_FRACTION, RESTART_EVERY, RESTART_UNTIL, _diverged, evaluate
from elt.tokenizers.vq3d_config import VQ3DConfig

MAX_BYTES = 1 << 30  # training clips held in memory (16x32x32 clips: all of them; 16x128x128: 1365)


def make_train_step(cfg: VQ3DConfig, tx):
    model = vq3d.VQVAE3D(cfg)

    def loss_fn(params, x):
        recon, ids, codebook_loss, commit_loss, z = model.apply({"params": params}, x)
        rec = jnp.mean((recon - x) ** 2)
        loss = rec + codebook_loss + cfg.commitment * commit_loss
        return loss, (ids, z, {"rec": rec, "codebook": codebook_loss, "commit": commit_loss})

    @jax.jit
    def step(params, opt_state, batch_uint8):
        x = vq.to_float(batch_uint8)
        (loss, (ids, z, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        counts = jnp.bincount(ids.ravel(), length=cfg.codebook_size)
        return params, opt_state, {"loss": loss, **terms}, counts, z

    return step


def fit(
    cfg: VQ3DConfig,
    clips: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    log_every: int = 0,
    progress: bool = False,
) -> tuple[vq3d.VQ3DTokenizer, dict]:
    """Train from scratch on uint8 clips [n, T, S, S, 3]; returns the tokenizer and training
    figures (train_seconds, codes_restarted, history)."""
    cfg = cfg.validate()
    if steps < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"tokenizer: steps >= 0, batch_size >= 1, lr > 0 required; got steps={steps}"
            f" batch_size={batch_size} lr={lr}"
        )
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[1:] != vq3d.clip_shape(cfg) or clips.dtype != np.uint8:
        raise ValueError(
            f"tokenizer: training clips must be uint8 [n, {', '.join(map(str, vq3d.clip_shape(cfg)))}], "
            f"got {clips.dtype} {list(clips.shape)}"
        )
    if len(clips) == 0:
        raise ValueError("tokenizer: no training clips")
    rng = np.random.default_rng(seed)
    params = vq3d.init_params(cfg, seed)
    init = clips[rng.choice(len(clips), size=min(len(clips), 64), replace=False)]
    params = vq3d.init_codebook(cfg, params, init, seed)
    tx = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.1))
    opt_state = tx.init(params)
    step = make_train_step(cfg, tx)
    usage = np.zeros(cfg.codebook_size, np.int64)
    restarted, history, m = 0, [], {}
    t0 = time.time()
    bar = tqdm(range(steps), desc="train_vq3d", unit="step", disable=not progress)
    for i in bar:
        batch = clips[rng.integers(0, len(clips), size=batch_size)]
        params, opt_state, m, counts, z = step(params, opt_state, batch)
        counts, m = jax.device_get((counts, m))
        if not all(math.isfinite(float(v)) for v in m.values()):
            bar.close()
            raise _diverged(f"non-finite loss at step {i + 1} of {steps}", m, lr)
        usage += counts
        if (i + 1) % RESTART_EVERY == 0:
            if i + 1 < RESTART_UNTIL * steps:
                alive = usage >= DEAD_FRACTION * usage.sum() / cfg.codebook_size
                params, n = vq.restart_dead_codes(params, alive.astype(np.int64), np.asarray(z), rng)
                restarted += n
                opt_state = tx.init(params) if n else opt_state  # stale moments would fling moved codes
            usage[:] = 0
        if log_every and (i + 1) % log_every == 0:
            history.append({"step": i + 1, "loss": float(m["loss"]), "rec": float(m["rec"])})
            bar.set_postfix(loss=f"{float(m['loss']):.4f}", rec=f"{float(m['rec']):.4f}")
    bar.close()
    params = jax.block_until_ready(params)
    if not all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(jax.device_get(params))):
        raise _diverged(f"non-finite parameters after the last step ({steps})", m, lr)
    return vq3d.VQ3DTokenizer(cfg, params), {
        "train_seconds": time.time() - t0,
        "codes_restarted": restarted,
        "history": history,
    }


def train_vq3d(
    dataset: str,
    split: str,
    data_dir: str | None,
    out_dir: str,
    cfg: VQ3DConfig,
    *,
    max_examples: int = 50_000,
    eval_examples: int = 256,
    log_every: int = 100,
) -> dict:
    """Train on the clips of `dataset`/`split` (cfg's image_size, num_frames, frame_stride) with
    cfg's settings, save to `out_dir`, return metrics (also in metrics.json): psnr / mse /
    codebook_usage / perplexity after training, psnr_init before, steps, num_clips, dataset,
    identity, train_seconds, codes_restarted."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from elt.data.datasets import load_video_dataset  # pylint: disable=import-outside-toplevel

    cfg = cfg.validate()
    data = load_video_dataset(dataset, split, data_dir, cfg.image_size, cfg.num_frames, cfg.frame_stride)
    clip_bytes = math.prod(vq3d.clip_shape(cfg))
    n = min(data.num_examples, max_examples, max(1, MAX_BYTES // clip_bytes))
    clips, _ = data.read(0, n)
    held = clips[:eval_examples]
    before, _ = fit(cfg, clips, 0, cfg.batch_size, cfg.lr, cfg.seed)  # the initial tokenizer
    psnr_init = evaluate(before, held)["psnr"]
    tok, info = fit(cfg, clips, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, log_every, progress=True)
    metrics = {
        **evaluate(tok, held),
        "psnr_init": psnr_init,
        "eval_clips": int(len(held)),
        "steps": cfg.steps,
        "num_clips": int(len(clips)),
        "dataset": data.identity,
        "identity": tok.identity,
        "train_seconds": info["train_seconds"],
        "codes_restarted": info["codes_restarted"],
    }
    tok.save(out_dir)
    with tf.io.gfile.GFile(f"{out_dir.rstrip('/')}/metrics.json", "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
