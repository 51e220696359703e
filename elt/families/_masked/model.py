"""Masked-image ELT (MaskGIT family): class token + h*w image tokens -> codebook logits.

Token conventions (docs/DESIGN.md): codebook ids 0..K-1, ``mask_id = K``, class c -> ``K + 1 + c``,
unconditional class (CFG null / label drop) -> ``K + 1 + num_classes``; embedding vocabulary
``K + num_classes + 2``. The head predicts only the K codebook ids and reads every exit after a
shared final LayerNorm.

Baselines from the same code:
  * vanilla looping = this model trained on the L_max exit only (grid point ``ilsd: false``);
  * unique-depth    = ``MaskGITConfig(N=N*L)`` trained and sampled with ``L_max = L = 1``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from elt.core import looped

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class MaskGITConfig:
    codebook_size: int
    num_classes: int
    grid: tuple[int, int]
    d_model: int
    num_heads: int
    mlp_dim: int
    N: int
    remat: bool = False
    dtype: str = "float32"  # compute dtype; params stay float32
    # Unroll the N layers and the static training loop over L_max: the ILSD step ran 1.5x faster
    # on CPU than with rolled scans (benchmarks/README.md, train step); False compiles faster for very
    # deep N x L_max. Inference with a traced L always keeps a rolled loop over L, and remat keeps
    # the layer scan rolled (its memory saving needs the loop, see LoopedBlock).
    unroll: bool = True
    # The token grid's axes: (h, w) here; the video family's subclass (elt/families/magvit) has
    # (t, h, w). Everything else (flat sequence of prod(grid) tokens after a class token) is shared.
    GRID_AXES: ClassVar[tuple[str, ...]] = ("h", "w")

    def __post_init__(self):
        # Frozen dataclass: normalise a list (from YAML/JSON) to a tuple and numpy integers (from a
        # manifest) to python ints before validating, so configs hash and compare alike.
        def as_int(v):
            return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v

        me, axes = type(self).__name__, self.GRID_AXES
        object.__setattr__(self, "grid", tuple(as_int(g) for g in self.grid))
        for name in ("codebook_size", "num_classes", "d_model", "num_heads", "mlp_dim", "N"):
            object.__setattr__(self, name, as_int(getattr(self, name)))
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{me}.{name} must be an int >= 1, got {name}={value!r}")
        if len(self.grid) != len(axes) or any(not isinstance(g, int) or g < 1 for g in self.grid):
            raise ValueError(
                f"{me}.grid must be {len(axes)} ints >= 1 ({', '.join(axes)}), got grid={self.grid!r}"
            )
        if self.d_model % self.num_heads:
            raise ValueError(f"{me}.d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"{me}.dtype must be one of {sorted(_DTYPES)}, got dtype={self.dtype!r}")

    @property
    def seq_len(self) -> int:
        """Tokens after the class token: the product of the grid's axes."""
        return math.prod(self.grid)

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 2


class _Embed(nn.Module):
    vocab_size: int
    length: int
    d_model: int
    dtype: Any

    @nn.compact
    def __call__(self, ids: jax.Array) -> jax.Array:
        init = nn.initializers.normal(0.02)
        x = nn.Embed(self.vocab_size, self.d_model, embedding_init=init, name="tok")(ids)
        pos = self.param("pos_embedding", init, (self.length, self.d_model))
        return (x + pos[None]).astype(self.dtype)


class _Head(nn.Module):
    codebook_size: int
    dtype: Any

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        h = nn.LayerNorm(dtype=self.dtype, name="ln_final")(h)
        # Logits in float32 whatever the compute dtype: the softmax/CE and the sampler need them.
        return nn.Dense(self.codebook_size, dtype=self.dtype, name="out")(h).astype(jnp.float32)


class MaskedImageELT:
    """Functional wrapper: params = {"embed", "block", "head"}; the core loops the block params."""

    def __init__(self, cfg: MaskGITConfig):
        if not isinstance(cfg, MaskGITConfig):
            raise TypeError(f"MaskedImageELT needs a MaskGITConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        dtype = _DTYPES[cfg.dtype]
        self._embed = _Embed(cfg.vocab_size, cfg.seq_len + 1, cfg.d_model, dtype)
        self._block = looped.LoopedBlock(cfg.N, cfg.d_model, cfg.num_heads, cfg.mlp_dim, dtype, cfg.remat, cfg.unroll)
        self._head = _Head(cfg.codebook_size, dtype)

    # ---- conventions ---------------------------------------------------------------------
    @property
    def mask_id(self) -> int:
        return self.cfg.codebook_size

    @property
    def uncond_label(self) -> int:
        return self.cfg.num_classes

    @property
    def seq_len(self) -> int:
        return self.cfg.seq_len

    @property
    def unroll(self) -> bool:
        return self.cfg.unroll

    # ---- params --------------------------------------------------------------------------
    def init(self, rng: jax.Array) -> dict:
        r_embed, r_block, r_head = jax.random.split(rng, 3)
        ids = jnp.zeros((1, self.seq_len + 1), jnp.int32)
        h = jnp.zeros((1, self.seq_len + 1, self.cfg.d_model), jnp.float32)
        return {
            "embed": self._embed.init(r_embed, ids)["params"],
            "block": self._block.init(r_block, h)["params"],
            "head": self._head.init(r_head, h)["params"],
        }

    def num_params(self, params, block_only: bool = False) -> int:
        return looped.num_params(params, block_only)

    # ---- the three pieces the core loops (elt/core/looped.py) -------------------------------
    def embed(self, params, tokens: jax.Array, labels: jax.Array):
        """(hidden state [B, 1 + h*w, d], cond=None): the class enters as the first token."""
        self._check_inputs(tokens, labels)
        cls = self.cfg.codebook_size + 1 + labels.astype(jnp.int32)
        ids = jnp.concatenate([cls[:, None], tokens.astype(jnp.int32)], axis=1)
        return self._embed.apply({"params": params["embed"]}, ids), None

    def block_fn(self, params, cond=None):
        """g_Theta as a function of the hidden state, closed over the block's params."""
        return lambda h: self._block.apply({"params": params["block"]}, h, cond)

    def head(self, params, h: jax.Array, cond=None) -> jax.Array:
        # Drop the class position before the head: only image tokens are predicted.
        return self._head.apply({"params": params["head"]}, h[:, 1:])

    def _check_inputs(self, tokens, labels) -> None:
        if tokens.ndim != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens must have shape [B, {self.seq_len}], got {tuple(tokens.shape)}")
        if labels.ndim != 1 or labels.shape[0] != tokens.shape[0]:
            raise ValueError(f"labels must have shape [{tokens.shape[0]}], got {tuple(labels.shape)}")

    # ---- public forwards -----------------------------------------------------------------
    def apply(self, params, tokens: jax.Array, labels: jax.Array, L) -> jax.Array:
        """Logits [B, h*w, K] after L loops; L a python int (>= 1) or a traced int32 scalar."""
        return looped.apply(self, params, (tokens, labels), L)

    def apply_with_exit(self, params, tokens, labels, L_max: int, L_int):
        """(logits after L_max loops, logits after L_int loops) from ONE forward of L_max loops."""
        return looped.apply_with_exit(self, params, (tokens, labels), L_max, L_int)


# ---------------------------------------------------------------- the family contract (model)


def build_model(spec, num_classes: int, scale, N: int, remat: bool = False) -> MaskedImageELT:
    """The model for shards of latent ``spec`` at a params.yaml ``scale`` with N unique layers."""
    return MaskedImageELT(MaskGITConfig(
        codebook_size=spec.vocab_size, num_classes=num_classes, grid=tuple(spec.shape),
        d_model=scale.d_model, num_heads=scale.num_heads, mlp_dim=scale.mlp_dim, N=N, remat=remat,
    ))


def model_from_config(config: dict) -> MaskedImageELT:
    """The model of a checkpoint, from the ``config`` its model.json records."""
    return MaskedImageELT(MaskGITConfig(**config))
