"""Train the KL autoencoder (kind "vae") on an image data set and save it (orbax + tokenizer.json +
metrics.json); or, with tokenizer.checkpoint set, convert an SD v1.x .safetensors VAE / copy a
tokenizer directory instead. Same contract as elt/tokenizers/train.py's train_tokenizer.

Loss per image, in [-1, 1] units: squared error summed over pixels + kl_weight * KL summed over
latent elements (LDM's normalisation, so kl_weight reads as in LDM configs). MSE rather than LDM's
L1: there is no perceptual/GAN term here to sharpen edges, and MSE is what PSNR measures.
After training, scale_factor = 1 / std of the posterior means of the training images.

CPU-sized by default (digits 32x32 -> 8x8x4): ~1-2 minutes on 2 cores.
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
from elt.tokenizers import vae
from elt.tokenizers.vae_config import VAEConfig
from elt.tokenizers.vq import psnr_from_mse


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def evaluate(tok: vae.VAETokenizer, images: np.ndarray) -> dict:
    """Reconstruction MSE/PSNR on the uint8 scale, and per-channel statistics of the scaled
    latents (what the diffusion model trains on: ~0 mean, ~unit std when the scale is right)."""
    z = tok.encode(images)
    recon = tok.decode(z)
    mse = float(np.mean((recon.astype(np.float64) - images.astype(np.float64)) ** 2))
    z64 = z.astype(np.float64).reshape(-1, z.shape[-1])
    return {
        "mse": mse,
        "psnr": psnr_from_mse(mse),
        "scale_factor": tok.scale_factor,
        "latent_std": float(z64.std()),
        "latent_mean_per_channel": z64.mean(0).tolist(),
        "latent_std_per_channel": z64.std(0).tolist(),
    }


def mean_image_psnr(images: np.ndarray) -> float:
    """The trivial baseline: PSNR of predicting every image by the data set's mean image."""
    x = images.astype(np.float64)
    return psnr_from_mse(float(np.mean((x - x.mean(0)) ** 2)))


# --------------------------------------------------------------------------------------------
# Update step and loop
# --------------------------------------------------------------------------------------------
def make_train_step(cfg: VAEConfig, tx):
    model = vae.AutoencoderKL(cfg)

    def loss_fn(params, x, key):
        recon, mean, logvar = model.apply({"params": params}, x, key)
        rec = jnp.mean(jnp.sum((recon - x) ** 2, axis=(1, 2, 3)))
        kl = jnp.mean(vae.kl_per_example(mean, logvar))
        return rec + cfg.kl_weight * kl, {"rec": rec, "kl": kl}

    @jax.jit
    def step(params, opt_state, batch_uint8, key):
        x = vae.to_float(batch_uint8)
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, **terms}

    return step


def fit(
    cfg: VAEConfig,
    images: np.ndarray,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    log_every: int = 0,
    progress: bool = False,
) -> tuple[vae.VAETokenizer, dict]:
    """Train from scratch on uint8 [n, S, S, 3]; returns the tokenizer (scale measured on `images`)
    and training figures."""
    cfg = cfg.validate()
    if steps < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"tokenizer: steps >= 0, batch_size >= 1, lr > 0 required; got steps={steps}"
            f" batch_size={batch_size} lr={lr}"
        )
    if len(images) == 0:
        raise ValueError("tokenizer: no training images")
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    params = vae.init_params(cfg, seed)
    # Short warmup (Adam's first steps on a fresh GroupNorm net overshoot), cosine decay to 10%.
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, min(100, max(steps // 10, 1)), max(steps, 2), end_value=0.1 * lr
    )
    tx = optax.adam(schedule)
    opt_state = tx.init(params)
    step = make_train_step(cfg, tx)
    t0 = time.time()
    history = []
    m = {}
    bar = tqdm(range(steps), desc="train_tokenizer (vae)", unit="step", disable=not progress)
    for i in bar:
        batch = images[rng.integers(0, len(images), size=batch_size)]
        params, opt_state, m = step(params, opt_state, batch, jax.random.fold_in(key, i))
        # Fetching three scalars a step catches divergence at the step it happens, at no
        # measurable cost next to a conv net's step.
        m = jax.device_get(m)
        if not all(math.isfinite(float(v)) for v in m.values()):
            bar.close()  # the error line starts on a line of its own
            raise _diverged(f"non-finite loss at step {i + 1} of {steps}", m, lr)
        if log_every and ((i + 1) % log_every == 0 or i == 0):
            history.append({"step": i + 1, **{k: float(v) for k, v in m.items()}})
            bar.set_postfix(loss=f"{float(m['loss']):.3f}", rec=f"{float(m['rec']):.3f}", kl=f"{float(m['kl']):.1f}")
    bar.close()
    jax.block_until_ready(params)
    if not all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(jax.device_get(params))):
        raise _diverged(f"non-finite parameters after the last step ({steps})", m, lr)
    train_seconds = time.time() - t0
    unscaled = vae.VAETokenizer(cfg, params, 1.0).encode(images)
    tok = vae.VAETokenizer(cfg, params, vae.measure_scale_factor(unscaled))
    return tok, {"train_seconds": train_seconds, "history": history, "final": {k: float(v) for k, v in m.items()}}


def _diverged(what: str, terms: dict, lr: float) -> NonFiniteError:
    shown = ", ".join(f"{k}={float(terms[k]):.4g}" for k in ("loss", "rec", "kl") if k in terms)
    return NonFiniteError(
        f"tokenizer training diverged: {what}" + (f" ({shown})" if shown else "")
        + f"; the tokenizer is not saved. Lower tokenizer.lr (now {lr:g})"
    )


# --------------------------------------------------------------------------------------------
# Stage entry
# --------------------------------------------------------------------------------------------
def train_vae(
    dataset: str,
    split: str,
    data_dir: str | None,
    out_dir: str,
    cfg: VAEConfig,
    *,
    max_examples: int = 50_000,
    log_every: int = 100,
) -> dict:
    """Train on `dataset`/`split` at cfg.image_size with cfg's settings (params.yaml `tokenizer`),
    save to `out_dir`, return metrics (also in metrics.json).

    cfg.checkpoint, when set: a .safetensors file is an SD v1.x VAE (diffusers layout), converted
    with scale 0.18215 (elt/tokenizers/sd_vae.py); anything else is a tokenizer directory, copied
    and evaluated (elt/tokenizers/pretrained.py)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from elt.data.datasets import load_image_dataset  # pylint: disable=import-outside-toplevel

    cfg = cfg.validate()
    if cfg.checkpoint and not cfg.checkpoint.endswith(".safetensors"):
        from elt.tokenizers.pretrained import use_pretrained  # pylint: disable=import-outside-toplevel

        return use_pretrained(cfg.checkpoint, out_dir, dataset, split, data_dir, cfg.image_size)
    data = load_image_dataset(dataset, split, data_dir, cfg.image_size)
    images, _ = data.read(0, min(data.num_examples, max_examples))
    if cfg.checkpoint:
        from elt.tokenizers.sd_vae import load_sd_vae  # pylint: disable=import-outside-toplevel

        tok = load_sd_vae(cfg.checkpoint, cfg.image_size)
        info = {"checkpoint": cfg.checkpoint}
    else:
        tok, fitted = fit(cfg, images, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed, log_every, progress=True)
        info = {"steps": cfg.steps, "train_seconds": fitted["train_seconds"], "final_loss": fitted["final"]}
    metrics = {
        **evaluate(tok, images),
        **info,
        "mean_image_psnr": mean_image_psnr(images),
        "num_images": int(len(images)),
        "dataset": data.identity,
        "identity": tok.identity,
    }
    if tf.io.gfile.exists(out_dir):
        tf.io.gfile.rmtree(out_dir)  # no stale files of an earlier kind or run
    tok.save(out_dir)
    with tf.io.gfile.GFile(f"{out_dir.rstrip('/')}/metrics.json", "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
