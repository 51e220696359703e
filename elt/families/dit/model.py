"""Diffusion ELT (DiT-style): noisy latents [B, h, w, c] + log-SNR + class -> v-prediction.

  embed  patchify (p x p latent pixels per token) -> Dense(d) + fixed 2-D sin-cos position
         embedding; conditioning c = t_emb(lam) + y_emb[label] ([B, d]), t_emb a fixed
         sinusoidal embedding of the log-SNR, y_emb a table of num_classes + 1 rows (the last,
         ``uncond_label = num_classes``, is the null class of CFG / the core's label drop).
  block  N ``DiTLayer``s (elt.core.looped.LoopedBlock), looped L times by the core.
  head   LayerNorm + adaLN shift/scale from c, Dense(p*p*c) zero-initialised, unpatchify: the
         shared head reads every exit.

The layer (why it is not DiT's): the paper's counts (Table 2: 1N 69M ... 32 layers 2.1B at d 2048,
MLP 8192) fit ~16 d^2 per layer plus ~2M outside, not DiT's ~18 d^2 per layer plus ~15M (its
d -> 6d adaLN Linear per layer and its t-MLP). So each layer is
  * attention 4 d^2 (q, k, v, out with bias),
  * a gated MLP, SwiGLU with hidden width mlp_dim and no biases: 3 d mlp_dim = 12 d^2 at mlp 4d,
  * adaLN-Zero modulation at O(d) per layer: shift/scale/gate (x2: attention, MLP) =
    a_k * silu(c) + b_k with per-layer vectors a_k, b_k in R^d, all zero-initialised, so every
    gate is 0 and every layer the identity at init (DiT's adaLN-Zero), and the zeroed output layer
    makes the initial prediction v = 0.
Outside the block: the class table (1001 d = 2.05M at d 2048), the patch and output Dense layers
(16 d each) and the head's modulation: ~2.1M, no time MLP (the log-SNR embedding is fixed; the
per-layer modulation vectors learn how to use it). With total parameters this gives 69.3M, 270.7M,
539.3M, 1.076B and 2.151B for the five Table 2 models (tests/test_dit_model.py).

Baselines from the same code: vanilla looping = trained on the L_max exit only; unique depth =
``DiTConfig(N=N*L)`` at L_max = L = 1.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from elt.core import looped
from elt.families.dit.config import PATCH_SIZE

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ---------------------------------------------------------------- the noise process
# Here, not in a module of its own: training (losses.py), sampling (sampler.py) and the model's
# conditioning all use it, and model.py is the family module every one of those stages depends
# on (dvc.yaml), so an edit to the schedule reruns each of them.
#
# Pure maths of the diffusion family, in log-SNR form (lam = log alpha^2 / sigma^2).
#
#     z = alpha x + sigma eps,  alpha^2 = sigmoid(lam),  sigma^2 = sigmoid(-lam)   (variance preserving)
#     v = alpha eps - sigma x;  x = alpha z - sigma v;  eps = sigma z + alpha v
#
# Schedule: the cosine schedule lam(t) = -2 log tan(pi t / 2), clipped to [lambda_min, lambda_max]
# the way google-research/diffusion_distillation (schedules.py) does it, -2 log tan(a t + b0) with
# b0 = arctan(e^(-lambda_max/2)), a = arctan(e^(-lambda_min/2)) - b0, then shifted by ``shift``
# (simple diffusion's + 2 log(base/size)). t = 0 is data, t = 1 is noise.
#
# Loss weight (VDM++ sigmoid weighting): eps-space w_eps = sigmoid(b - lam). Since
# ||eps - eps_hat||^2 = e^lam ||x - x_hat||^2, the same weight on x-space errors is
# w_x = e^lam sigmoid(b - lam) = e^b sigmoid(lam - b), which is what the losses use (the paper writes
# its GT and distillation losses on x-predictions). Optionally times -1/2 dlam/dt (the ELBO factor).
#
# Samplers step from t to s < t: ancestral DDPM (diffusion_distillation dpm.py form) and DDIM
# (eta = 0). Everything is float32-safe near the clip ends (expm1, log-sigmoid), no jax.jit here.


import jax.numpy as jnp


def _angles(t, lambda_min: float, lambda_max: float):
    """(a, u = a t + b0, pi/2 - u) in float32, the complement computed without cancellation.

    With c = arctan(e^(lambda_min/2)) = pi/2 - arctan(e^(-lambda_min/2)): a = pi/2 - c - b0 and
    pi/2 - u = (1 - t)(pi/2 - b0) + t c. Near t = 1, u -> pi/2 and float32 pi/2 - u would keep
    only ~1e-7 of an angle ~1e-4: lam would be off by 1e-3 at lambda_min = -20.
    """
    b0 = math.atan(math.exp(-0.5 * lambda_max))  # python floats: constants in float64
    c = math.atan(math.exp(0.5 * lambda_min))
    a = math.pi / 2 - c - b0
    t = jnp.asarray(t, jnp.float32)
    u = a * t + b0
    comp = (1.0 - t) * (math.pi / 2 - b0) + t * c
    return jnp.float32(a), u, comp


def cosine_logsnr(t, lambda_min: float, lambda_max: float, shift: float = 0.0) -> jax.Array:
    """Clipped, shifted cosine log-SNR at t in [0, 1]: lam(0) = lambda_max + shift,
    lam(1) = lambda_min + shift, decreasing in t. -2 log tan(u) = 2 log tan(pi/2 - u): each form
    is used where its angle is the small, accurate one."""
    _, u, comp = _angles(t, lambda_min, lambda_max)
    lam = jnp.where(u < math.pi / 4, -2.0 * jnp.log(jnp.tan(u)), 2.0 * jnp.log(jnp.tan(comp)))
    return lam + jnp.float32(shift)


def elbo_factor(t, lambda_min: float, lambda_max: float) -> jax.Array:
    """-1/2 dlam/dt of ``cosine_logsnr`` (the shift is a constant): a / (sin(u) cos(u)) =
    2a / sin(2u), u = a t + b0, and sin(2u) = sin(2 (pi/2 - u)). Positive: lam decreases in t."""
    a, u, comp = _angles(t, lambda_min, lambda_max)
    return 2.0 * a / jnp.sin(2.0 * jnp.minimum(u, comp))


def alpha_sigma(lam) -> tuple[jax.Array, jax.Array]:
    lam = jnp.asarray(lam, jnp.float32)
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def _bcast(a: jax.Array, like: jax.Array) -> jax.Array:
    """A per-example [B] scalar broadcast against a [B, ...] array."""
    a = jnp.asarray(a, jnp.float32)
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def diffuse(x, eps, lam) -> jax.Array:
    """z = alpha x + sigma eps (lam per example, [B])."""
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, x) * x + _bcast(sigma, x) * eps


def v_from_x_eps(x, eps, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, x) * eps - _bcast(sigma, x) * x


def x_from_v(z, v, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, z) * z - _bcast(sigma, z) * v


def eps_from_v(z, v, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(sigma, z) * z + _bcast(alpha, z) * v


def sigmoid_weight_x(lam, bias: float) -> jax.Array:
    """x-space weight e^b sigmoid(lam - b) (= e^lam sigmoid(b - lam), the eps-space sigmoid(b - lam))."""
    lam = jnp.asarray(lam, jnp.float32)
    return jnp.exp(jnp.float32(bias)) * jax.nn.sigmoid(lam - bias)


def ddpm_moments(z_t, x_hat, lam_t, lam_s) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the ancestral step q(z_s | z_t, x = x_hat), s < t (lam_s > lam_t):
        r = e^(lam_t - lam_s),  mean = r (alpha_s / alpha_t) z_t + (1 - r) alpha_s x_hat,
        var = (1 - r) sigma_s^2.
    1 - r = -expm1(lam_t - lam_s) and alpha_s / alpha_t from log-sigmoids: exact near r -> 1 and
    at the clip ends, where the naive forms lose every digit in float32."""
    lam_t = jnp.asarray(lam_t, jnp.float32)
    lam_s = jnp.asarray(lam_s, jnp.float32)
    r = jnp.exp(lam_t - lam_s)
    one_minus_r = -jnp.expm1(lam_t - lam_s)
    ratio = jnp.exp(0.5 * (jax.nn.log_sigmoid(lam_s) - jax.nn.log_sigmoid(lam_t)))  # alpha_s / alpha_t
    alpha_s = jnp.sqrt(jax.nn.sigmoid(lam_s))
    mean = _bcast(r * ratio, z_t) * z_t + _bcast(one_minus_r * alpha_s, z_t) * x_hat
    var = one_minus_r * jax.nn.sigmoid(-lam_s)
    return mean, var


def ddim_step(x_hat, eps_hat, lam_s) -> jax.Array:
    """DDIM with eta = 0: z_s = alpha_s x_hat + sigma_s eps_hat (the noise estimate is kept)."""
    alpha_s, sigma_s = alpha_sigma(lam_s)
    return _bcast(alpha_s, x_hat) * x_hat + _bcast(sigma_s, x_hat) * eps_hat


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    latent_shape: tuple[int, int, int]  # (h, w, c) of one latent
    num_classes: int
    d_model: int
    num_heads: int
    mlp_dim: int  # hidden width of the gated MLP
    N: int
    patch_size: int = PATCH_SIZE
    remat: bool = False
    dtype: str = "float32"  # compute dtype; params, the conditioning and the output stay float32
    unroll: bool = True  # as MaskGITConfig.unroll: unrolled N layers and training loop over L_max

    def __post_init__(self):
        def as_int(v):
            return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v

        object.__setattr__(self, "latent_shape", tuple(as_int(g) for g in self.latent_shape))
        for name in ("num_classes", "d_model", "num_heads", "mlp_dim", "N", "patch_size"):
            object.__setattr__(self, name, as_int(getattr(self, name)))
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DiTConfig.{name} must be an int >= 1, got {name}={value!r}")
        shape = self.latent_shape
        if len(shape) != 3 or any(not isinstance(g, int) or g < 1 for g in shape):
            raise ValueError(f"DiTConfig.latent_shape must be three ints >= 1 (h, w, c), got latent_shape={shape!r}")
        if shape[0] % self.patch_size or shape[1] % self.patch_size:
            raise ValueError(
                f"DiTConfig.latent_shape={shape} is not divisible by patch_size={self.patch_size} (h and w)"
            )
        if self.d_model % self.num_heads:
            raise ValueError(f"DiTConfig.d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"DiTConfig.dtype must be one of {sorted(_DTYPES)}, got dtype={self.dtype!r}")

    @property
    def grid(self) -> tuple[int, int]:
        """Tokens per side: (h / p, w / p)."""
        return self.latent_shape[0] // self.patch_size, self.latent_shape[1] // self.patch_size

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2 * self.latent_shape[2]


# ---------------------------------------------------------------- fixed embeddings and reshapes


def patchify(z: jax.Array, p: int) -> jax.Array:
    """[B, h, w, c] -> [B, (h/p)(w/p), p*p*c], tokens in row-major order of the (h/p, w/p) grid."""
    B, h, w, c = z.shape
    z = z.reshape(B, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return z.reshape(B, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: jax.Array, p: int, shape: tuple[int, int, int]) -> jax.Array:
    """Inverse of ``patchify``: [B, T, p*p*c] -> [B, h, w, c]."""
    h, w, c = shape
    B = tokens.shape[0]
    x = tokens.reshape(B, h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(B, h, w, c)


def sincos_1d(d: int, pos: np.ndarray) -> np.ndarray:
    """MAE/DiT 1-D sin-cos table [len(pos), d]: first half sin, second half cos."""
    omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
    out = np.outer(pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(d: int, grid: tuple[int, int]) -> np.ndarray:
    """Fixed 2-D position embedding [gh*gw, d] (DiT's get_2d_sincos_pos_embed): half the channels
    encode the column, half the row. Odd leftover channels are zero."""
    gh, gw = grid
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    half = (d // 2) - (d // 2) % 2  # each half needs an even width (sin + cos)
    emb = np.concatenate([sincos_1d(half, cols), sincos_1d(half, rows)], axis=1)
    return np.pad(emb, ((0, 0), (0, d - emb.shape[1]))).astype(np.float32)


def logsnr_embedding(lam: jax.Array, d: int, max_period: float = 10000.0) -> jax.Array:
    """Fixed sinusoidal embedding [B, d] of the log-SNR itself (DiT embeds t*1000 the same way).
    Conditioning on lam, not t, keeps the network's input meaning fixed when the schedule (clip,
    shift) of sampling differs from training. Frequencies 1 .. 1/max_period per unit of lam."""
    half = d // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(lam, jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, d - 2 * half)))


# ---------------------------------------------------------------- modules


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


class _Modulation(nn.Module):
    """k modulation vectors from c at O(d) parameters: m_k = a_k * silu(c) + b_k, zero-initialised."""

    k: int
    dtype: Any

    @nn.compact
    def __call__(self, cond: jax.Array) -> list[jax.Array]:
        d = cond.shape[-1]
        a = self.param("mod_scale", nn.initializers.zeros, (self.k, d))
        b = self.param("mod_bias", nn.initializers.zeros, (self.k, d))
        m = nn.silu(cond.astype(jnp.float32))[:, None, :] * a[None] + b[None]
        return [m[:, i].astype(self.dtype) for i in range(self.k)]


class DiTLayer(nn.Module):
    """adaLN-Zero layer: x + gate_a * MHSA(mod(LN(x))), then x + gate_m * SwiGLU(mod(LN(x))).

    The LayerNorms have no scale or bias (the modulation replaces them, as in DiT). The signature
    is the one elt.core.looped.LoopedBlock needs: (d_model, num_heads, mlp_dim, dtype), called as
    ``layer(x, cond)`` with cond = c [B, d].
    """

    d_model: int
    num_heads: int
    mlp_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = _Modulation(6, self.dtype, name="adaln")(cond)
        norm = lambda name: nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype, name=name)  # noqa: E731
        y = modulate(norm("ln_attn")(x), shift_a, scale_a)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, qkv_features=self.d_model, out_features=self.d_model,
            dtype=self.dtype, deterministic=True, name="attn",
        )(y)
        x = x + gate_a[:, None, :] * y
        y = modulate(norm("ln_mlp")(x), shift_m, scale_m)
        gate = nn.Dense(self.mlp_dim, use_bias=False, dtype=self.dtype, name="mlp_gate")(y)
        up = nn.Dense(self.mlp_dim, use_bias=False, dtype=self.dtype, name="mlp_up")(y)
        y = nn.Dense(self.d_model, use_bias=False, dtype=self.dtype, name="mlp_out")(nn.silu(gate) * up)
        return x + gate_m[:, None, :] * y


class _Embed(nn.Module):
    cfg: DiTConfig
    dtype: Any

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array, lam: jax.Array):
        cfg = self.cfg
        tokens = patchify(z.astype(jnp.float32), cfg.patch_size)
        h = nn.Dense(cfg.d_model, dtype=self.dtype, name="patch")(tokens)
        h = h + jnp.asarray(sincos_2d(cfg.d_model, cfg.grid))[None].astype(h.dtype)
        table = nn.Embed(cfg.num_classes + 1, cfg.d_model, embedding_init=nn.initializers.normal(0.02), name="label")
        y = table(labels)
        cond = logsnr_embedding(lam, cfg.d_model) + y.astype(jnp.float32)
        return h.astype(self.dtype), cond


class _Head(nn.Module):
    cfg: DiTConfig
    dtype: Any

    @nn.compact
    def __call__(self, h: jax.Array, cond: jax.Array) -> jax.Array:
        cfg = self.cfg
        shift, scale = _Modulation(2, self.dtype, name="adaln")(cond)
        h = modulate(nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype, name="ln_final")(h), shift, scale)
        out = nn.Dense(cfg.patch_dim, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="out")(h)
        # v in float32 whatever the compute dtype: the loss and the sampler's maths need it.
        return unpatchify(out.astype(jnp.float32), cfg.patch_size, cfg.latent_shape)


class DiffusionELT:
    """Functional wrapper: params = {"embed", "block", "head"}; the core loops the block params.

    Inputs are (z [B, h, w, c] float32, labels [B] int32, lam [B] float32); the output is
    v_hat [B, h, w, c] float32."""

    def __init__(self, cfg: DiTConfig):
        if not isinstance(cfg, DiTConfig):
            raise TypeError(f"DiffusionELT needs a DiTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        dtype = _DTYPES[cfg.dtype]
        self._embed = _Embed(cfg, dtype)
        self._block = looped.LoopedBlock(
            cfg.N, cfg.d_model, cfg.num_heads, cfg.mlp_dim, dtype, cfg.remat, cfg.unroll, layer_cls=DiTLayer
        )
        self._head = _Head(cfg, dtype)

    # ---- conventions ---------------------------------------------------------------------
    @property
    def uncond_label(self) -> int:
        return self.cfg.num_classes

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.cfg.latent_shape

    @property
    def seq_len(self) -> int:
        return self.cfg.seq_len

    @property
    def unroll(self) -> bool:
        return self.cfg.unroll

    # ---- params --------------------------------------------------------------------------
    def init(self, rng: jax.Array) -> dict:
        r_embed, r_block, r_head = jax.random.split(rng, 3)
        z = jnp.zeros((1, *self.cfg.latent_shape), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32)
        lam = jnp.zeros((1,), jnp.float32)
        h = jnp.zeros((1, self.seq_len, self.cfg.d_model), jnp.float32)
        cond = jnp.zeros((1, self.cfg.d_model), jnp.float32)
        return {
            "embed": self._embed.init(r_embed, z, labels, lam)["params"],
            "block": self._block.init(r_block, h, cond)["params"],
            "head": self._head.init(r_head, h, cond)["params"],
        }

    def num_params(self, params, block_only: bool = False) -> int:
        """Total (the paper's Table 2 "# params" for diffusion, see the module docstring) or the
        block only."""
        return looped.num_params(params, block_only)

    # ---- the three pieces the core loops (elt/core/looped.py) -------------------------------
    def embed(self, params, z: jax.Array, labels: jax.Array, lam: jax.Array):
        """(tokens [B, T, d], cond c [B, d])."""
        self._check_inputs(z, labels, lam)
        return self._embed.apply({"params": params["embed"]}, z, labels.astype(jnp.int32), lam)

    def block_fn(self, params, cond):
        return lambda h: self._block.apply({"params": params["block"]}, h, cond)

    def head(self, params, h: jax.Array, cond) -> jax.Array:
        return self._head.apply({"params": params["head"]}, h, cond)

    def _check_inputs(self, z, labels, lam) -> None:
        shape = tuple(self.cfg.latent_shape)
        if z.ndim != 4 or tuple(z.shape[1:]) != shape:
            raise ValueError(f"latents must have shape [B, {', '.join(map(str, shape))}], got {tuple(z.shape)}")
        B = z.shape[0]
        if labels.shape != (B,) or jnp.shape(lam) != (B,):
            raise ValueError(
                f"labels and lam must have shape [{B}], got {tuple(labels.shape)} and {tuple(jnp.shape(lam))}"
            )

    # ---- public forwards -----------------------------------------------------------------
    def apply(self, params, z, labels, lam, L) -> jax.Array:
        """v_hat after L loops; L a python int (>= 1) or a traced int32 scalar."""
        return looped.apply(self, params, (z, labels, lam), L)

    def apply_with_exit(self, params, z, labels, lam, L_max: int, L_int):
        return looped.apply_with_exit(self, params, (z, labels, lam), L_max, L_int)


# ---------------------------------------------------------------- the family contract (model)


def build_model(spec, num_classes: int, scale, N: int, remat: bool = False) -> DiffusionELT:
    """The model for float32 latent shards of ``spec`` ([h, w, c]) at a params.yaml ``scale``."""
    return DiffusionELT(DiTConfig(
        latent_shape=tuple(spec.shape), num_classes=num_classes, d_model=scale.d_model,
        num_heads=scale.num_heads, mlp_dim=scale.mlp_dim, N=N, remat=remat,
    ))


def model_from_config(config: dict) -> DiffusionELT:
    """The model of a checkpoint, from the ``config`` its model.json records."""
    return DiffusionELT(DiTConfig(**config))
