"""VQ-VAE tokenizer (Flax linen): conv encoder -> l2-normalised codebook -> conv decoder.

Codebook usage is kept high by three choices (ViT-VQGAN / "improved VQGAN" recipe):
  * l2-normalised codes: encoder outputs and code vectors live on the unit sphere and are matched
    by cosine similarity, so no code can drift far away from the data and die;
  * k-means-style init: the codebook starts as encoder outputs of real images (`init_codebook`),
    so every code begins next to data;
  * dead-code restart: during training, codes unused for a while are moved onto random current
    encoder outputs (`restart_dead_codes`, called by the trainer).
Gradients pass the quantiser straight-through; loss = MSE + ||sg[z]-e||^2 + beta*||z-sg[e]||^2.
Images are uint8 outside the model and [-1, 1] floats inside.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elt.data.spec import LatentSpec
from elt.tokenizers.shared import bucketed, weights_identity
from elt.integrity import write_manifest
from elt.tokenizers.vq_config import VQConfig


class ResBlock(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.channels, (3, 3))(nn.swish(nn.GroupNorm(num_groups=8)(x)))
        h = nn.Conv(self.channels, (3, 3))(nn.swish(nn.GroupNorm(num_groups=8)(h)))
        return x + h


def level_channels(cfg: VQConfig) -> list[int]:
    """Widths from the finest to the coarsest level: `channels` at the token grid, halved per
    level above it (min 16). Most FLOPs sit at high resolution, so narrowing there is what keeps a
    1,500-step CPU training in minutes."""
    k = int(math.log2(cfg.downsample))
    return [max(16, cfg.channels >> (k - 1 - i)) for i in range(k)]


class Encoder(nn.Module):
    cfg: VQConfig

    @nn.compact
    def __call__(self, x):
        for c in level_channels(self.cfg):  # one stride-2 conv per factor 2 of downsampling
            x = nn.swish(nn.Conv(c, (4, 4), strides=(2, 2))(x))
        for _ in range(self.cfg.num_res_blocks):
            x = ResBlock(self.cfg.channels)(x)
        x = nn.swish(nn.GroupNorm(num_groups=8)(x))
        return nn.Conv(self.cfg.embed_dim, (1, 1))(x)


class Decoder(nn.Module):
    """Mirror of the encoder: 3x3 in, residual blocks at the token grid, stride-2 transposed convs."""

    cfg: VQConfig

    @nn.compact
    def __call__(self, z):
        x = nn.Conv(self.cfg.channels, (3, 3))(z)
        for _ in range(self.cfg.num_res_blocks):
            x = ResBlock(self.cfg.channels)(x)
        widths = level_channels(self.cfg)[::-1][1:] + [3]
        for i, c in enumerate(widths):
            x = nn.ConvTranspose(c, (4, 4), strides=(2, 2))(x)
            if i + 1 < len(widths):
                x = nn.swish(x)
        return x


def l2_normalize(x, axis=-1, eps=1e-6):
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps * eps))


class VQVAE(nn.Module):
    """Encoder -> unit-norm latents -> nearest code (straight-through) -> decoder. The quantiser is
    shared by every VQ kind; a kind with other coders (vq3d: 3-D CNNs) overrides ``coders``."""

    cfg: VQConfig

    def coders(self):
        return Encoder(self.cfg), Decoder(self.cfg)

    def setup(self):
        self.encoder, self.decoder = self.coders()
        self.codebook = self.param(
            "codebook", nn.initializers.normal(1.0), (self.cfg.codebook_size, self.cfg.embed_dim)
        )

    def encode_latents(self, x):
        """x float [-1, 1] [B, (T,) H, W, 3] -> unit-norm latents [B, (t,) h, w, D]."""
        return l2_normalize(self.encoder(x))

    def quantize(self, z):
        codes = l2_normalize(self.codebook)
        # Cosine similarity = -distance/2 + 1 on the unit sphere: argmax == nearest code.
        ids = jnp.argmax(jnp.einsum("...d,kd->...k", z, codes), axis=-1).astype(jnp.int32)
        return ids, codes[ids]

    def encode(self, x):
        return self.quantize(self.encode_latents(x))[0]

    def decode(self, ids):
        return self.decode_latents(l2_normalize(self.codebook)[ids])

    def decode_latents(self, z):
        """Quantised code vectors [B, (t,) h, w, D] -> images (clips) in [-1, 1] (what decode feeds the decoder)."""
        return self.decoder(z)

    def __call__(self, x):
        z = self.encode_latents(x)
        ids, e = self.quantize(z)
        codebook_loss = jnp.mean(jnp.sum((jax.lax.stop_gradient(z) - e) ** 2, -1))
        commit_loss = jnp.mean(jnp.sum((z - jax.lax.stop_gradient(e)) ** 2, -1))
        zq = z + jax.lax.stop_gradient(e - z)  # straight-through estimator
        recon = self.decoder(zq)
        return recon, ids, codebook_loss, commit_loss, z


def to_float(images_uint8):
    return images_uint8.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(x):
    return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def init_params(cfg: VQConfig, seed: int) -> Any:
    model = VQVAE(cfg)
    dummy = jnp.zeros((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
    # One jitted init instead of op-by-op dispatch: seconds faster on CPU.
    return jax.jit(model.init)(jax.random.PRNGKey(seed), dummy)["params"]


def init_codebook(cfg: VQConfig, params, images_uint8: np.ndarray, seed: int):
    """Codebook <- K encoder outputs of real images (random distinct positions)."""
    z = VQVAE(cfg).apply(
        {"params": params}, to_float(jnp.asarray(images_uint8)), method=VQVAE.encode_latents
    )
    z = np.asarray(z).reshape(-1, cfg.embed_dim)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(z), size=cfg.codebook_size, replace=len(z) < cfg.codebook_size)
    return {**params, "codebook": jnp.asarray(z[pick])}


def restart_dead_codes(params, usage_counts: np.ndarray, latents: np.ndarray, rng):
    """Move codes whose usage count is zero onto random current encoder outputs (unit sphere)."""
    dead = np.flatnonzero(usage_counts == 0)
    if dead.size == 0:
        return params, 0
    flat = latents.reshape(-1, latents.shape[-1])
    pick = rng.choice(len(flat), size=dead.size, replace=len(flat) < dead.size)
    codebook = np.array(params["codebook"])
    codebook[dead] = flat[pick]
    return {**params, "codebook": jnp.asarray(codebook)}, int(dead.size)


def psnr_from_mse(mse_uint8_scale: float) -> float:
    """PSNR in dB of images on the 0..255 scale."""
    if mse_uint8_scale <= 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse_uint8_scale))


def usage_stats(ids: np.ndarray, codebook_size: int) -> dict:
    """Fraction of codes used and perplexity exp(H(p)) of the code histogram."""
    counts = np.bincount(np.asarray(ids).ravel(), minlength=codebook_size).astype(np.float64)
    p = counts / counts.sum()
    nz = p[p > 0]
    return {
        "codebook_usage": float((counts > 0).mean()),
        "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
    }


# --------------------------------------------------------------------------------------------
# The Tokenizer object (what the rest of the pipeline sees)
# --------------------------------------------------------------------------------------------
class VQTokenizer:
    """uint8 images <-> int32 token grids with a trained VQVAE. Jitted, shape-bucketed calls.

    Spec: LatentSpec((h, w), "int32", K). Besides the Tokenizer contract it exposes the quantised
    code vectors: latents_of(tokens) -> float32 [B, h, w, D] and decode_latents(z) -> images, with
    decode(t) == decode_latents(latents_of(t)) by construction (decode is that composition), so a
    family with continuous latents can train on the very vectors this decoder consumes."""

    kind = "vq"

    def __init__(self, cfg: VQConfig, params, max_batch: int = 256):
        self.cfg = cfg.validate()
        self.params = params
        self.max_batch = max_batch
        model = VQVAE(cfg)
        self._encode = jax.jit(
            lambda p, x: model.apply({"params": p}, to_float(x), method=VQVAE.encode)
        )
        self._decode_latents = jax.jit(
            lambda p, z: to_uint8(model.apply({"params": p}, z, method=VQVAE.decode_latents))
        )
        # The unit-norm codebook on the host: latents_of is then an exact gather, with no
        # compiled program whose rounding could differ between batch sizes.
        self._codes = np.asarray(l2_normalize(jnp.asarray(params["codebook"], jnp.float32)))
        self._identity = None

    spec = property(lambda self: LatentSpec(self.cfg.grid, "int32", self.cfg.codebook_size))
    # VQ-specific (codebook usage statistics in elt/tokenizers/train.py); = spec.vocab_size.
    codebook_size = property(lambda self: self.cfg.codebook_size)
    image_size = property(lambda self: self.cfg.image_size)

    @property
    def identity(self) -> str:
        """sha256 of the JSON config and every weight's bytes (sorted key paths)."""
        if self._identity is None:
            self._identity = weights_identity(self.kind, {"kind": self.kind, "config": dataclasses.asdict(self.cfg)}, self.params)
        return self._identity

    def _bucketed(self, fn, x):
        return bucketed(fn, self.params, x, self.max_batch)

    def encode(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        s = self.cfg.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise ValueError(
                f"encode expects uint8 [B, {s}, {s}, 3], got {images.dtype} {list(images.shape)}"
            )
        if len(images) == 0:
            return np.zeros((0, *self.spec.shape), np.int32)
        return self._bucketed(self._encode, images).astype(np.int32)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """int tokens [B, h, w] -> uint8 images [B, H, W, 3]."""
        return self.decode_latents(self.latents_of(tokens))

    def latents_of(self, tokens: np.ndarray) -> np.ndarray:
        """int tokens [B, h, w] -> float32 [B, h, w, D]: the unit-norm code vectors of the ids."""
        tokens = self.spec.check(tokens, "tokens")
        return self._codes[tokens]

    def decode_latents(self, z: np.ndarray) -> np.ndarray:
        """float32 code vectors [B, h, w, D] -> uint8 images [B, H, W, 3]."""
        z = np.asarray(z)
        shape = (*self.cfg.grid, self.cfg.embed_dim)
        if z.ndim != 4 or z.shape[1:] != shape or z.dtype != np.float32:
            raise ValueError(
                f"decode_latents expects float32 [B, {', '.join(map(str, shape))}], got "
                f"{z.dtype} {list(z.shape)}"
            )
        if len(z) == 0:
            s = self.image_size
            return np.zeros((0, s, s, 3), np.uint8)
        return self._bucketed(self._decode_latents, z)

    # ---- persistence: <dir>/tokenizer.json + <dir>/params (orbax) ----
    def save(self, path: str) -> None:
        import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        path = _abs(path)
        tf.io.gfile.makedirs(path)
        params_dir = f"{path}/params"
        if tf.io.gfile.exists(params_dir):
            tf.io.gfile.rmtree(params_dir)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(params_dir, jax.device_get(self.params))
            ckptr.wait_until_finished()
        with tf.io.gfile.GFile(f"{path}/tokenizer.json", "w") as f:
            json.dump(
                {
                    "kind": self.kind,
                    "config": dataclasses.asdict(self.cfg),
                    "identity": self.identity,
                },
                f,
                indent=2,
                sort_keys=True,
            )
        write_manifest(path)  # last: a folder with a manifest is a complete tokenizer

    @classmethod
    def load(cls, path: str, meta: dict) -> "VQTokenizer":
        import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

        path = _abs(path)
        try:
            cfg = VQConfig(**meta["config"]).validate()
        except TypeError as e:
            raise ValueError(
                f"{path}/tokenizer.json: bad vq config {meta.get('config')!r}: {e}"
            ) from e
        abstract = jax.eval_shape(lambda: init_params(cfg, 0))
        with ocp.StandardCheckpointer() as ckptr:
            params = ckptr.restore(f"{path}/params", abstract)
        tok = cls(cfg, params)
        if "identity" in meta and meta["identity"] != tok.identity:
            raise ValueError(
                f"{path}: weights do not match the identity recorded in tokenizer.json "
                f"({meta['identity']} != {tok.identity}); the checkpoint was altered"
            )
        return tok


def _abs(path: str) -> str:
    # orbax wants absolute paths; URLs (gs://) are absolute already.
    return path.rstrip("/") if "://" in path else os.path.abspath(path)
