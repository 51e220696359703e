"""KL autoencoder tokenizer (Flax linen): uint8 images <-> float32 latents for the diffusion family.

The network is diffusers' AutoencoderKL (the Stable Diffusion VAE) layer for layer, with module
names that mirror diffusers' parameter names, so an SD v1.x checkpoint loads into it by a
mechanical renaming (elt/tokenizers/sd_vae.py) and the small default trained here is the same
code that a golden test checks against diffusers:

  encoder  conv_in, per level num_res_blocks ResnetBlock2D (+ stride-2 conv except the last),
           mid block (resnet, single-head self-attention, resnet), GroupNorm, SiLU, conv_out
           -> 2 * latent_channels; quant_conv (1x1) -> posterior mean and log-variance
  decoder  post_quant_conv (1x1), conv_in, mid block, per level num_res_blocks + 1 resnets
           (+ nearest x2 and a 3x3 conv except the last), GroupNorm, SiLU, conv_out -> RGB
GroupNorm eps 1e-6 everywhere; images are [-1, 1] floats inside, uint8 outside.

Tokenization is the posterior MEAN times scale_factor (no sampling: a rerun gives the same bytes).
scale_factor = 1 / std of the training latents (LDM's scale_by_std), so the diffusion model sees
unit-variance latents; SD v1 checkpoints use their published constant 0.18215.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elt.data.spec import LatentSpec
from elt.tokenizers.shared import bucketed, weights_identity
from elt.integrity import write_manifest
from elt.tokenizers.vae_config import VAEConfig
from elt.tokenizers.vq import to_float, to_uint8

LOGVAR_RANGE = (-30.0, 20.0)  # diffusers' DiagonalGaussianDistribution clamp


# --------------------------------------------------------------------------------------------
# Network (names = diffusers' AutoencoderKL parameter names, "x.0" spelled "x_0")
# --------------------------------------------------------------------------------------------
def _norm(groups: int, name: str) -> nn.GroupNorm:
    # Two-pass variance: the one-pass E[x^2] - E[x]^2 loses digits that the 1e-4 golden test needs.
    return nn.GroupNorm(num_groups=groups, epsilon=1e-6, use_fast_variance=False, name=name)


class ResnetBlock2D(nn.Module):
    out_channels: int
    groups: int

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.out_channels, (3, 3), padding=1, name="conv1")(nn.silu(_norm(self.groups, "norm1")(x)))
        h = nn.Conv(self.out_channels, (3, 3), padding=1, name="conv2")(nn.silu(_norm(self.groups, "norm2")(h)))
        if x.shape[-1] != self.out_channels:
            x = nn.Conv(self.out_channels, (1, 1), name="conv_shortcut")(x)
        return x + h


class Attention(nn.Module):
    """Single-head self-attention over the h*w positions with a residual (diffusers' VAE mid block)."""

    groups: int

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        t = _norm(self.groups, "group_norm")(x).reshape(b, h * w, c)
        q = nn.Dense(c, name="to_q")(t)
        k = nn.Dense(c, name="to_k")(t)
        v = nn.Dense(c, name="to_v")(t)
        attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", q, k) * c**-0.5, axis=-1)
        out = nn.Dense(c, name="to_out_0")(jnp.einsum("bqk,bkc->bqc", attn, v))
        return x + out.reshape(b, h, w, c)


class MidBlock(nn.Module):
    groups: int

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = ResnetBlock2D(c, self.groups, name="resnets_0")(x)
        x = Attention(self.groups, name="attentions_0")(x)
        return ResnetBlock2D(c, self.groups, name="resnets_1")(x)


class Downsample(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        # torch pads right/bottom by one, then a 3x3 stride-2 conv without padding.
        return nn.Conv(self.channels, (3, 3), strides=(2, 2), padding=((0, 1), (0, 1)), name="conv")(x)


class Upsample(nn.Module):
    channels: int

    @nn.compact
    def __call__(self, x):
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest x2
        return nn.Conv(self.channels, (3, 3), padding=1, name="conv")(x)


class Level(nn.Module):
    """diffusers' DownEncoderBlock2D / UpDecoderBlock2D: resnets then an optional resampler."""

    out_channels: int
    num_layers: int
    groups: int
    resample: str | None  # "down", "up" or None (the last level)

    @nn.compact
    def __call__(self, x):
        for j in range(self.num_layers):
            x = ResnetBlock2D(self.out_channels, self.groups, name=f"resnets_{j}")(x)
        if self.resample == "down":
            x = Downsample(self.out_channels, name="downsamplers_0")(x)
        elif self.resample == "up":
            x = Upsample(self.out_channels, name="upsamplers_0")(x)
        return x


class Encoder(nn.Module):
    block_out_channels: Sequence[int]
    layers_per_block: int
    out_channels: int  # 2 * latent_channels (mean and log-variance)
    groups: int

    @nn.compact
    def __call__(self, x):
        chans = self.block_out_channels
        x = nn.Conv(chans[0], (3, 3), padding=1, name="conv_in")(x)
        for i, c in enumerate(chans):
            last = i == len(chans) - 1
            x = Level(c, self.layers_per_block, self.groups, None if last else "down", name=f"down_blocks_{i}")(x)
        x = MidBlock(self.groups, name="mid_block")(x)
        x = nn.silu(_norm(self.groups, "conv_norm_out")(x))
        return nn.Conv(self.out_channels, (3, 3), padding=1, name="conv_out")(x)


class Decoder(nn.Module):
    block_out_channels: Sequence[int]
    layers_per_block: int
    groups: int

    @nn.compact
    def __call__(self, z):
        chans = tuple(reversed(self.block_out_channels))
        x = nn.Conv(chans[0], (3, 3), padding=1, name="conv_in")(z)
        x = MidBlock(self.groups, name="mid_block")(x)
        for i, c in enumerate(chans):
            last = i == len(chans) - 1
            x = Level(c, self.layers_per_block + 1, self.groups, None if last else "up", name=f"up_blocks_{i}")(x)
        x = nn.silu(_norm(self.groups, "conv_norm_out")(x))
        return nn.Conv(3, (3, 3), padding=1, name="conv_out")(x)


class AutoencoderKL(nn.Module):
    cfg: VAEConfig

    def setup(self):
        cfg = self.cfg
        self.encoder = Encoder(cfg.block_out_channels, cfg.num_res_blocks, 2 * cfg.latent_channels, cfg.norm_groups)
        self.quant_conv = nn.Conv(2 * cfg.latent_channels, (1, 1))
        self.post_quant_conv = nn.Conv(cfg.latent_channels, (1, 1))
        self.decoder = Decoder(cfg.block_out_channels, cfg.num_res_blocks, cfg.norm_groups)

    def encode(self, x):
        """x float [-1, 1] [B, H, W, 3] -> posterior (mean, logvar), each [B, h, w, latent_channels]."""
        mean, logvar = jnp.split(self.quant_conv(self.encoder(x)), 2, axis=-1)
        return mean, jnp.clip(logvar, *LOGVAR_RANGE)

    def decode(self, z):
        """Unscaled latents [B, h, w, latent_channels] -> images in [-1, 1] (not clipped)."""
        return self.decoder(self.post_quant_conv(z))

    def __call__(self, x, key):
        """Training pass: reparameterised posterior sample -> reconstruction, mean, logvar."""
        mean, logvar = self.encode(x)
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
        return self.decode(z), mean, logvar


def kl_per_example(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent elements: [B] (LDM's kl())."""
    return 0.5 * jnp.sum(mean**2 + jnp.exp(logvar) - 1.0 - logvar, axis=(1, 2, 3))


def init_params(cfg: VAEConfig, seed: int) -> Any:
    dummy = jnp.zeros((1, cfg.image_size, cfg.image_size, 3), jnp.float32)
    key = jax.random.PRNGKey(seed)
    # One jitted init instead of op-by-op dispatch: seconds faster on CPU.
    return jax.jit(AutoencoderKL(cfg).init)(key, dummy, key)["params"]


def measure_scale_factor(latents: np.ndarray) -> float:
    """LDM's scale_by_std: 1 / std of all elements of the (unscaled) training latents."""
    std = float(np.std(np.asarray(latents, np.float64)))
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"cannot measure the latent scale: the latents' std is {std}")
    return 1.0 / std


@functools.lru_cache(maxsize=None)
def _compiled(cfg: VAEConfig):
    """Jitted encode/decode per architecture, the scale an argument: tokenizers of one config (the
    unscaled one that measures the scale, the scaled one, a reloaded one) share compiled programs."""
    model = AutoencoderKL(cfg)
    encode = jax.jit(lambda p, x, s: model.apply({"params": p}, to_float(x), method=AutoencoderKL.encode)[0] * s)
    decode = jax.jit(lambda p, z, s: to_uint8(model.apply({"params": p}, z / s, method=AutoencoderKL.decode)))
    return encode, decode


# --------------------------------------------------------------------------------------------
# The Tokenizer object (what the rest of the pipeline sees)
# --------------------------------------------------------------------------------------------
class VAETokenizer:
    """uint8 images <-> float32 latents (posterior mean * scale_factor). Jitted, shape-bucketed calls.

    Spec: LatentSpec((h, w, latent_channels), "float32", None)."""

    kind = "vae"

    def __init__(self, cfg: VAEConfig, params, scale_factor: float, max_batch: int = 256, source: str | None = None):
        self.cfg = cfg.validate()
        if not (np.isfinite(scale_factor) and scale_factor > 0):
            raise ValueError(f"vae: scale_factor must be a finite number > 0, got {scale_factor!r}")
        self.params = params
        self.scale_factor = float(scale_factor)
        self.max_batch = max_batch
        self.source = source  # where pretrained weights came from (recorded in tokenizer.json)
        encode, decode = _compiled(cfg)
        scale = np.float32(self.scale_factor)
        self._encode = lambda p, x: encode(p, x, scale)
        self._decode = lambda p, z: decode(p, z, scale)
        self._identity = None

    spec = property(lambda self: LatentSpec(self.cfg.latent_shape, "float32", None))
    image_size = property(lambda self: self.cfg.image_size)

    @property
    def identity(self) -> str:
        """sha256 of the JSON config, the scale factor and every weight's bytes (sorted key paths)."""
        if self._identity is None:
            self._identity = weights_identity(self.kind, {"kind": self.kind, "config": dataclasses.asdict(self.cfg), "scale_factor": self.scale_factor}, self.params)
        return self._identity

    def _bucketed(self, fn, x):
        return bucketed(fn, self.params, x, self.max_batch)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] -> float32 [B, h, w, c]: posterior mean * scale_factor."""
        images = np.asarray(images)
        s = self.cfg.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise ValueError(f"encode expects uint8 [B, {s}, {s}, 3], got {images.dtype} {list(images.shape)}")
        if len(images) == 0:
            return np.zeros((0, *self.spec.shape), np.float32)
        return self._bucketed(self._encode, images).astype(np.float32, copy=False)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """float32 scaled latents [B, h, w, c] -> uint8 images [B, H, W, 3]."""
        z = self.spec.check(latents, "latents")
        if len(z) == 0:
            s = self.image_size
            return np.zeros((0, s, s, 3), np.uint8)
        return self._bucketed(self._decode, z)

    # ---- persistence: <dir>/tokenizer.json + <dir>/params (orbax), the VQ tokenizer's layout ----
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
        meta = {
            "kind": self.kind,
            "config": dataclasses.asdict(self.cfg),
            "scale_factor": self.scale_factor,
            "identity": self.identity,
        }
        if self.source:
            meta["source"] = self.source
        with tf.io.gfile.GFile(f"{path}/tokenizer.json", "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        write_manifest(path)  # last: a folder with a manifest is a complete tokenizer

    @classmethod
    def load(cls, path: str, meta: dict) -> "VAETokenizer":
        import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

        path = _abs(path)
        try:
            cfg = VAEConfig(**meta["config"]).validate()
            scale = float(meta["scale_factor"])
        except (TypeError, KeyError) as e:
            raise ValueError(f"{path}/tokenizer.json: bad vae config or scale_factor: {e!r}") from e
        abstract = jax.eval_shape(lambda: init_params(cfg, 0))
        with ocp.StandardCheckpointer() as ckptr:
            params = ckptr.restore(f"{path}/params", abstract)
        tok = cls(cfg, params, scale, source=meta.get("source"))
        if "identity" in meta and meta["identity"] != tok.identity:
            raise ValueError(
                f"{path}: weights do not match the identity recorded in tokenizer.json "
                f"({meta['identity']} != {tok.identity}); the checkpoint was altered"
            )
        return tok


def _abs(path: str) -> str:
    # orbax wants absolute paths; URLs (gs://) are absolute already.
    return path.rstrip("/") if "://" in path else os.path.abspath(path)
