"""The ELT core, written once for every family: N unique layers (one block g) applied L times.

A family's model exposes ``embed(params, *inputs) -> (h, cond)``, ``block_fn(params, cond)``
(g as a function of the hidden state) and ``head(params, h, cond)``; ``apply`` and
``apply_with_exit`` below loop any such model. ``cond`` is the conditioning input the layers
receive (None for the masked families, the timestep/class embedding for adaLN-Zero layers).

The block holds the N layers' weights stacked on a leading axis (``nn.scan`` over layers), so
its parameter count is that of N layers whatever the loop count. Looping is done *functionally*
on the block's params (``loop_block`` / ``loop_block_with_exit``) rather than inside a Flax module,
so that:
  * at inference L is a runtime value (``lax.fori_loop`` with a traced trip count): one compiled
    program serves every L, including L > L_max;
  * in training one forward of L_max loops also yields the student state after a *traced* L_int
    loops (Alg. 1 of the paper), selected with ``jnp.where`` inside the loop.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class TransformerLayer(nn.Module):
    """Pre-LayerNorm layer: x + MHSA(LN(x)), then x + MLP(LN(x)); q/k/v/out and MLP with bias."""

    d_model: int
    num_heads: int
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: Any = None) -> jax.Array:
        del cond  # unconditioned layer: class information enters as a token
        y = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.d_model,
            out_features=self.d_model,
            dtype=self.dtype,
            deterministic=True,
            name="attn",
        )(y)
        x = x + y
        y = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        y = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(y)
        # tanh approximation: the usual choice of BERT/MaskGIT-style JAX code bases.
        y = nn.gelu(y, approximate=True)
        y = nn.Dense(self.d_model, dtype=self.dtype, name="mlp_out")(y)
        return x + y


class _ScanLayer(nn.Module):
    """A layer with the (carry, x) -> (carry, y) signature nn.scan needs; ``cond`` is broadcast."""

    layer_cls: Any
    d_model: int
    num_heads: int
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, cond: Any) -> tuple[jax.Array, None]:
        layer = self.layer_cls(self.d_model, self.num_heads, self.mlp_dim, self.dtype, name="layer")
        return layer(x, cond), None


class LoopedBlock(nn.Module):
    """The weight-shared block g: N unique layers with stacked weights, applied once per call.

    ``layer_cls`` is any layer taking ``(d_model, num_heads, mlp_dim, dtype)`` and called as
    ``layer(x, cond)``: the plain pre-LN layer, or an adaLN-Zero layer for diffusion.

    ``remat=True`` rematerializes each layer in the backward pass (activation memory of one layer
    per loop instead of all its intermediates), trading about one extra forward of compute.
    ``unroll=True`` unrolls the scan over the N layers (same stacked params, static slices): XLA
    on CPU runs the backward of a rolled scan markedly slower; rolled compiles faster for large N.
    """

    N: int
    d_model: int
    num_heads: int
    mlp_dim: int
    dtype: Dtype = jnp.float32
    remat: bool = False
    unroll: bool = False
    layer_cls: Any = TransformerLayer

    @nn.compact
    def __call__(self, x: jax.Array, cond: Any = None) -> jax.Array:
        scan_cls = _ScanLayer
        # Remat keeps the scan over layers rolled: unrolled straight-line code lets XLA schedule
        # the recomputation early (measured on CPU: no memory saved at all), the loop forbids it.
        unroll = self.unroll and not self.remat
        if self.remat:
            scan_cls = nn.remat(scan_cls, prevent_cse=False)
        layers = nn.scan(
            scan_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=nn.broadcast,
            length=self.N,
            unroll=self.N if unroll else 1,
        )(self.layer_cls, self.d_model, self.num_heads, self.mlp_dim, self.dtype, name="layers")
        x, _ = layers(x, cond)
        return x


def loop_block(block_fn: Callable[[jax.Array], jax.Array], x: jax.Array, L, unroll: bool = False) -> jax.Array:
    """Apply ``block_fn`` L times (Alg. 2). L may be a python int or a traced int32 scalar.

    With a traced L, ``fori_loop`` lowers to a while loop: no recompilation per L, any L >= 0
    (including L > L_max) runs. With a python int it lowers to a scan (reverse-differentiable).
    """
    if unroll and isinstance(L, int):
        # Static L (training): unrolled loop, no while-loop overhead in the backward pass.
        return jax.lax.fori_loop(0, L, lambda _, h: block_fn(h), x, unroll=L)
    return jax.lax.fori_loop(0, L, lambda _, h: block_fn(h), x)


def loop_block_with_exit(
    block_fn: Callable[[jax.Array], jax.Array], x: jax.Array, L_max: int, L_int, unroll: bool = False
) -> tuple[jax.Array, jax.Array]:
    """One forward of a static L_max loops that also returns the state after L_int loops (Alg. 1).

    L_int is traced (drawn inside the jitted step); the state is captured with a select at loop
    index ``L_int - 1``. ``lax.scan`` keeps the whole thing reverse-differentiable, and gradients
    reach the shared weights through both exits.
    """
    if not isinstance(L_max, int) or L_max < 1:
        raise ValueError(f"L_max must be a python int >= 1, got L_max={L_max!r}")
    L_int = jnp.asarray(L_int, jnp.int32)

    def body(carry, step):
        h, h_int = carry
        h = block_fn(h)
        h_int = jnp.where(step == L_int - 1, h, h_int)
        return (h, h_int), None

    (h_max, h_int), _ = jax.lax.scan(
        body, (x, x), jnp.arange(L_max, dtype=jnp.int32), unroll=L_max if unroll else 1
    )
    return h_max, h_int


def check_L(name: str, L) -> None:
    """A python-int loop count must be >= 1 (a traced one is checked by the caller's config)."""
    if isinstance(L, bool) or (isinstance(L, int) and L < 1):
        raise ValueError(f"{name} must be >= 1, got {name}={L!r}")


def apply(model, params, inputs: tuple, L):
    """The model's output after L loops: head(g^L(embed(inputs))). L: python int or traced int32."""
    check_L("L", L)
    h, cond = model.embed(params, *inputs)
    h = loop_block(model.block_fn(params, cond), h, L, model.unroll)
    return model.head(params, h, cond)


def apply_with_exit(model, params, inputs: tuple, L_max: int, L_int):
    """(output after L_max loops, output after L_int loops) from ONE forward of L_max loops; the
    shared head reads both exits."""
    check_L("L_max", L_max)
    check_L("L_int", L_int)
    h, cond = model.embed(params, *inputs)
    h_max, h_int = loop_block_with_exit(model.block_fn(params, cond), h, L_max, L_int, model.unroll)
    return model.head(params, h_max, cond), model.head(params, h_int, cond)


def num_params(params, block_only: bool = False) -> int:
    """Parameter count; ``block_only`` = the paper's "# params" (the unique layers only).

    Works on real arrays and on ``jax.eval_shape`` outputs (ShapeDtypeStruct)."""
    tree = params["block"] if block_only else params
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
