"""3-D VQ tokenizer for video (Flax linen), kind "vq3d": MAGVIT-style 3-D CNN encoder ->
l2-normalised codebook -> 3-D CNN decoder. uint8 clips [B, T, H, W, 3] <-> int32 ids [B, t, h, w].

Architecture (after google-research/magvit videogvt/models/enc_dec_3dcnn.py, without its GAN,
perceptual and LeCAM losses): 3x3x3 convolutions; per level `num_res_blocks` residual blocks
(GroupNorm, swish, conv, twice; a 1x1x1 conv on the skip where the width changes); between levels
average pooling, 2x in space and 2x in time where `temporal_downsample` says so; as many residual
blocks again at the token grid; GroupNorm, swish, a 1x1x1 conv to `embed_dim`. The decoder mirrors
it, upsampling by nearest-neighbour repetition followed by a 3x3x3 conv.

Quantiser: plain VQ with the straight-through estimator and the choices that keep a codebook in
use on a CPU budget (REFERENCE "Pitfalls"; the same as elt/tokenizers/vq.py, whose helpers this
reuses): l2-normalised codes matched by cosine similarity, a codebook initialised from encoder
outputs of real clips (`init_codebook`), and dead-code restarts with usage tracking in the
trainer (elt/tokenizers/vq3d_train.py). loss = MSE + ||sg[z]-e||^2 + beta*||z-sg[e]||^2.
Clips are uint8 outside the model and [-1, 1] floats inside.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elt.data.spec import LatentSpec
from elt.integrity import write_manifest
from elt.tokenizers.shared import bucketed, weights_identity
from elt.tokenizers.vq import VQVAE, _abs, l2_normalize, to_float, to_uint8
from elt.tokenizers.vq3d_config import VQ3DConfig


class Conv3D(nn.Module):
    """A 3-D convolution (stride 1, SAME zero padding; the kernel [kt, kh, kw, in, out] and bias of
    flax's nn.Conv, same initialisation), computed as one 2-D convolution over the kt frames
    stacked on the channel axis. Same numbers as a 3-D convolution; XLA's CPU backend runs 3-D
    convolutions ~5x slower than this 2-D form (measured on 2 cores: 388 vs 80 ms for a 3x3x3
    16->16 conv on [8, 16, 32, 32, 16])."""

    features: int
    kernel_size: tuple[int, int, int]

    @nn.compact
    def __call__(self, x):
        kt, kh, kw = self.kernel_size
        b, t, h, w, cin = x.shape
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kt, kh, kw, cin, self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if kt > 1:
            lo = (kt - 1) // 2
            xp = jnp.pad(x, ((0, 0), (lo, kt - 1 - lo), (0, 0), (0, 0), (0, 0)))
            x = jnp.concatenate([xp[:, i : i + t] for i in range(kt)], axis=-1)
        k2 = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(kh, kw, kt * cin, self.features)
        y = jax.lax.conv_general_dilated(
            x.reshape(b * t, h, w, kt * cin), k2, (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y.reshape(b, t, h, w, self.features) + bias


class ResBlock3D(nn.Module):
    channels: int
    groups: int

    @nn.compact
    def __call__(self, x):
        h = Conv3D(self.channels, (3, 3, 3))(nn.swish(nn.GroupNorm(num_groups=self.groups)(x)))
        h = Conv3D(self.channels, (3, 3, 3))(nn.swish(nn.GroupNorm(num_groups=self.groups)(h)))
        if x.shape[-1] != self.channels:
            x = Conv3D(self.channels, (1, 1, 1))(x)
        return x + h


def downsample(x, temporal: bool):
    """Average pooling: 2x in H and W, and in T if `temporal` (MAGVIT's pooling downsample)."""
    t = 2 if temporal else 1
    return nn.avg_pool(x, (t, 2, 2), strides=(t, 2, 2))


def upsample(x, temporal: bool):
    """Nearest-neighbour repetition: 2x in H and W, and in T if `temporal`."""
    if temporal:
        x = jnp.repeat(x, 2, axis=1)
    return jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)


class Encoder3D(nn.Module):
    cfg: VQ3DConfig

    @nn.compact
    def __call__(self, x):
        cfg, widths = self.cfg, self.cfg.widths
        x = Conv3D(widths[0], (3, 3, 3))(x)
        for i, width in enumerate(widths):
            for _ in range(cfg.num_res_blocks):
                x = ResBlock3D(width, cfg.norm_groups)(x)
            if i + 1 < len(widths):
                x = downsample(x, cfg.temporal_downsample[i])
        for _ in range(cfg.num_res_blocks):
            x = ResBlock3D(widths[-1], cfg.norm_groups)(x)
        x = nn.swish(nn.GroupNorm(num_groups=cfg.norm_groups)(x))
        return Conv3D(cfg.embed_dim, (1, 1, 1))(x)


class Decoder3D(nn.Module):
    cfg: VQ3DConfig

    @nn.compact
    def __call__(self, z):
        cfg, widths = self.cfg, self.cfg.widths
        x = Conv3D(widths[-1], (3, 3, 3))(z)
        for _ in range(cfg.num_res_blocks):
            x = ResBlock3D(widths[-1], cfg.norm_groups)(x)
        for i in reversed(range(len(widths))):
            for _ in range(cfg.num_res_blocks):
                x = ResBlock3D(widths[i], cfg.norm_groups)(x)
            if i > 0:
                # The conv after the repetition already narrows to the finer level's width: the
                # finest levels hold most of the positions (and FLOPs).
                x = Conv3D(widths[i - 1], (3, 3, 3))(upsample(x, cfg.temporal_downsample[i - 1]))
        x = nn.swish(nn.GroupNorm(num_groups=cfg.norm_groups)(x))
        return Conv3D(3, (3, 3, 3))(x)


class VQVAE3D(VQVAE):
    """vq.py's VQ-VAE (its quantiser, losses and parameter names) with the 3-D coders."""

    cfg: VQ3DConfig

    def coders(self):
        return Encoder3D(self.cfg), Decoder3D(self.cfg)


def clip_shape(cfg: VQ3DConfig) -> tuple[int, int, int, int]:
    return cfg.num_frames, cfg.image_size, cfg.image_size, 3


@functools.lru_cache(maxsize=16)
def programs(cfg: VQ3DConfig) -> dict:
    """The jitted functions of one architecture (params are arguments), shared by every tokenizer
    of that config: loading or re-creating a tokenizer compiles nothing that ran before."""
    model = VQVAE3D(cfg)
    dummy = jnp.zeros((1, *clip_shape(cfg)), jnp.float32)
    return {
        "init": jax.jit(lambda key: model.init(key, dummy)["params"]),
        "latents": jax.jit(
            lambda p, x: model.apply({"params": p}, to_float(x), method=VQVAE3D.encode_latents)
        ),
        "encode": jax.jit(lambda p, x: model.apply({"params": p}, to_float(x), method=VQVAE3D.encode)),
        "decode_latents": jax.jit(
            lambda p, z: to_uint8(model.apply({"params": p}, z, method=VQVAE3D.decode_latents))
        ),
    }


def init_params(cfg: VQ3DConfig, seed: int) -> Any:
    return programs(cfg)["init"](jax.random.PRNGKey(seed))


def init_codebook(cfg: VQ3DConfig, params, clips_uint8: np.ndarray, seed: int, batch: int = 16):
    """Codebook <- K encoder outputs of real clips (random distinct positions): every code starts
    next to data."""
    z = bucketed(programs(cfg)["latents"], params, np.asarray(clips_uint8), batch)
    z = np.asarray(z).reshape(-1, cfg.embed_dim)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(z), size=cfg.codebook_size, replace=len(z) < cfg.codebook_size)
    return {**params, "codebook": jnp.asarray(z[pick])}


# --------------------------------------------------------------------------------------------
# The Tokenizer object (what the rest of the pipeline sees)
# --------------------------------------------------------------------------------------------
class VQ3DTokenizer:
    """uint8 clips [B, T, S, S, 3] <-> int32 token grids [B, t, h, w] with a trained VQVAE3D.

    Spec: LatentSpec((t, h, w), "int32", K). Video-specific attributes next to the Tokenizer
    contract: modality "video", num_frames and frame_stride (the clip rule the tokenizer was
    trained with: elt/data/beam_tokenize.py reads its data set with them). Like the 2-D VQ it
    exposes latents_of / decode_latents, with decode(t) == decode_latents(latents_of(t))."""

    kind = "vq3d"
    modality = "video"

    def __init__(self, cfg: VQ3DConfig, params, max_batch: int = 32):
        self.cfg = cfg.validate()
        self.params = params
        self.max_batch = max_batch
        self._encode = programs(cfg)["encode"]
        self._decode_latents = programs(cfg)["decode_latents"]
        self._codes = np.asarray(l2_normalize(jnp.asarray(params["codebook"], jnp.float32)))
        self._identity = None

    spec = property(lambda self: LatentSpec(self.cfg.grid, "int32", self.cfg.codebook_size))
    codebook_size = property(lambda self: self.cfg.codebook_size)
    image_size = property(lambda self: self.cfg.image_size)
    num_frames = property(lambda self: self.cfg.num_frames)
    frame_stride = property(lambda self: self.cfg.frame_stride)

    @property
    def identity(self) -> str:
        """sha256 of the JSON config and every weight's bytes (sorted key paths)."""
        if self._identity is None:
            header = {"kind": self.kind, "config": dataclasses.asdict(self.cfg)}
            self._identity = weights_identity(self.kind, header, self.params)
        return self._identity

    def encode(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips [B, T, S, S, 3] -> int32 ids [B, t, h, w]."""
        clips = np.asarray(clips)
        want = clip_shape(self.cfg)
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[1:] != want:
            raise ValueError(
                f"encode expects uint8 clips [B, {', '.join(map(str, want))}], got "
                f"{clips.dtype} {list(clips.shape)}"
            )
        if len(clips) == 0:
            return np.zeros((0, *self.spec.shape), np.int32)
        return bucketed(self._encode, self.params, clips, self.max_batch).astype(np.int32)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """int ids [B, t, h, w] -> uint8 clips [B, T, S, S, 3]."""
        return self.decode_latents(self.latents_of(tokens))

    def latents_of(self, tokens: np.ndarray) -> np.ndarray:
        """int ids [B, t, h, w] -> float32 [B, t, h, w, D]: the unit-norm code vectors."""
        return self._codes[self.spec.check(tokens, "tokens")]

    def decode_latents(self, z: np.ndarray) -> np.ndarray:
        """float32 code vectors [B, t, h, w, D] -> uint8 clips [B, T, S, S, 3]."""
        z = np.asarray(z)
        shape = (*self.cfg.grid, self.cfg.embed_dim)
        if z.ndim != 5 or z.shape[1:] != shape or z.dtype != np.float32:
            raise ValueError(
                f"decode_latents expects float32 [B, {', '.join(map(str, shape))}], got "
                f"{z.dtype} {list(z.shape)}"
            )
        if len(z) == 0:
            return np.zeros((0, *clip_shape(self.cfg)), np.uint8)
        return bucketed(self._decode_latents, self.params, z, self.max_batch)

    # ---- persistence: <dir>/tokenizer.json + <dir>/params (orbax) + MANIFEST.json ----
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
                {"kind": self.kind, "config": dataclasses.asdict(self.cfg), "identity": self.identity},
                f,
                indent=2,
                sort_keys=True,
            )
        write_manifest(path)  # last: a folder with a manifest is a complete tokenizer

    @classmethod
    def load(cls, path: str, meta: dict) -> "VQ3DTokenizer":
        import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

        path = _abs(path)
        try:
            cfg = VQ3DConfig(**meta["config"]).validate()
        except (TypeError, KeyError) as e:
            raise ValueError(
                f"{path}/tokenizer.json: bad vq3d config {meta.get('config')!r}: {e}"
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
