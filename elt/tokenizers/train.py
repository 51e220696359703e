"""Train the VQ tokenizer on an image data set and save it (orbax + tokenizer.json + metrics.json).

CPU-sized by default (digits 32x32 -> 8x8 tokens, 128 codes): ~1-2 minutes on 2 cores.
The training set is held in memory (capped by `max_examples`, a prefix of the split).
A NaN/inf loss (checked every step) or final parameter raises NonFiniteError before anything is saved.
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

from elt.errors import NonFiniteError
from elt.tokenizers import vq

RESTART_EVERY = 50  # steps between dead-code checks
RESTART_UNTIL = 0.8  # fraction of training after which codes are left alone to settle
# A code is "dead" below this fraction of its uniform share of the window's assignments: codes
# hit only by a few stray vectors would otherwise count as alive while the rest collapse.
DEAD_FRACTION = 0.03


def evaluate(tok: vq.VQTokenizer, images: np.ndarray) -> dict:
    """Reconstruction MSE/PSNR on the uint8 scale and codebook usage over `images`."""
    ids = tok.encode(images)
    recon = tok.decode(ids)
    mse = float(np.mean((recon.astype(np.float64) - images.astype(np.float64)) ** 2))
    usage = vq.usage_stats(ids, tok.spec.vocab_size) if tok.spec.vocab_size else {}  # codebooks only
    return {"mse": mse, "psnr": vq.psnr_from_mse(mse), **usage}


def make_train_step(cfg: vq.VQConfig, tx):
    model = vq.VQVAE(cfg)

    def loss_fn(params, x):
        recon, ids, codebook_loss, commit_loss, z = model.apply({"params": params}, x)
        rec = jnp.mean((recon - x) ** 2)
        loss = rec + codebook_loss + cfg.commitment * commit_loss
        return loss, (rec, ids, z, {"codebook": codebook_loss, "commit": commit_loss})

    @jax.jit
    def step(params, opt_state, batch_uint8):
        x = vq.to_float(batch_uint8)
        (loss, (rec, ids, z, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        counts = jnp.bincount(ids.ravel(), length=cfg.codebook_size)
        return params, opt_state, {"loss": loss, "rec": rec, **terms}, counts, z

    return step


def fit(
    cfg: vq.VQConfig,
    images: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    log_every: int = 0,
    progress: bool = False,
) -> tuple[vq.VQTokenizer, dict]:
    """Train from scratch on uint8 [n, S, S, 3]; returns the tokenizer and training figures."""
    cfg = cfg.validate()
    if steps < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"tokenizer: steps >= 0, batch_size >= 1, lr > 0 required; got steps={steps}"
            f" batch_size={batch_size} lr={lr}"
        )
    if len(images) == 0:
        raise ValueError("tokenizer: no training images")
    rng = np.random.default_rng(seed)
    params = vq.init_params(cfg, seed)
    init_batch = images[rng.choice(len(images), size=min(len(images), 512), replace=False)]
    params = vq.init_codebook(cfg, params, init_batch, seed)
    # Cosine decay to 10% keeps the last steps from undoing code placement.
    tx = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.1))
    opt_state = tx.init(params)
    step = make_train_step(cfg, tx)
    usage = np.zeros(cfg.codebook_size, np.int64)
    restarted = 0
    t0 = time.time()
    history = []
    bar = tqdm(range(steps), desc="train_tokenizer", unit="step", disable=not progress)
    for i in bar:
        batch = images[rng.integers(0, len(images), size=batch_size)]
        params, opt_state, m, counts, z = step(params, opt_state, batch)
        # The counts come to the host every step anyway: the loss terms ride along in the same
        # fetch, so divergence is caught at the step it happens, at no measurable cost.
        counts, m = jax.device_get((counts, m))
        if not all(math.isfinite(float(v)) for v in m.values()):
            bar.close()  # the error line starts on a line of its own
            raise _diverged(f"non-finite loss at step {i + 1} of {steps}", m, lr)
        usage += counts
        if (i + 1) % RESTART_EVERY == 0:
            if i + 1 < RESTART_UNTIL * steps:
                alive = usage >= DEAD_FRACTION * usage.sum() / cfg.codebook_size
                params, n = vq.restart_dead_codes(
                    params, alive.astype(np.int64), np.asarray(z), rng
                )
                restarted += n
                opt_state = (
                    tx.init(params) if n else opt_state
                )  # stale moments would fling moved codes
            usage[:] = 0
        if log_every and (i + 1) % log_every == 0:
            history.append({"step": i + 1, "loss": float(m["loss"]), "rec": float(m["rec"])})
            bar.set_postfix(loss=f"{float(m['loss']):.4f}", rec=f"{float(m['rec']):.4f}")
    bar.close()
    jax.block_until_ready(params)
    if not all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(jax.device_get(params))):
        raise _diverged(f"non-finite parameters after the last step ({steps})", m if steps else {}, lr)
    return vq.VQTokenizer(cfg, params), {
        "train_seconds": time.time() - t0,
        "codes_restarted": restarted,
        "history": history,
    }


def _diverged(what: str, terms: dict, lr: float) -> NonFiniteError:
    order = ("loss", "rec", "codebook", "commit")
    keys = sorted(terms, key=lambda k: (order.index(k) if k in order else len(order), k))
    shown = ", ".join(f"{k}={float(terms[k]):.4g}" for k in keys)
    return NonFiniteError(
        f"tokenizer training diverged: {what}" + (f" ({shown})" if shown else "")
        + f"; the tokenizer is not saved. Lower tokenizer.lr (now {lr:g})"
    )


def train_tokenizer(
    dataset: str,
    split: str,
    data_dir: str | None,
    out_dir: str,
    cfg: vq.VQConfig,
    *,
    max_examples: int = 50_000,
    log_every: int = 100,
) -> dict:
    """Train on `dataset`/`split` at cfg.image_size with cfg's settings (params.yaml `tokenizer`),
    save to `out_dir`, return metrics (also in metrics.json)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from elt.data.datasets import load_image_dataset  # pylint: disable=import-outside-toplevel

    cfg = cfg.validate()
    data = load_image_dataset(dataset, split, data_dir, cfg.image_size)
    images, _ = data.read(0, min(data.num_examples, max_examples))
    tok, info = fit(cfg, images, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, log_every, progress=True)
    metrics = {
        **evaluate(tok, images),
        "steps": cfg.steps,
        "num_images": int(len(images)),
        "dataset": data.identity,
        "identity": tok.identity,
        "train_seconds": info["train_seconds"],
        "codes_restarted": info["codes_restarted"],
    }
    tok.save(out_dir)
    with tf.io.gfile.GFile(f"{out_dir.rstrip('/')}/metrics.json", "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
