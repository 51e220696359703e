"""The FID InceptionV3 (TF graph inception-2015-12-05) in Flax, NHWC, with the standard weights.

Facts of that network (see docs and the TorchScript code it is read from): 299x299 input in
[-1, 1] (x/128 - 1), no resize or scaling inside; every conv is conv (no bias) -> BN without scale
(eps 1e-3) -> ReLU; branch average pools exclude the padding; the last mixed block's branch pool is a
max pool; a final 8x8 average pool gives the 2048-d feature.

For speed on CPU the BN is folded into the conv (kernel * s, bias beta - mean * s with
s = 1/sqrt(var + eps)) when the numpy weights become Flax params, and the 1x1 convs of a block that
read the same input run as one wider conv (see ``_fused_1x1``). Parameter names follow the
TorchScript module tree, so a mismatch names the layer.
"""
from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from elt.evaluation.resize import preprocess_uint8
from elt.evaluation.weights import FidWeights, load_fid_weights

BN_EPS = 1e-3
INPUT_SIZE = 299
FEATURE_DIM = 2048


class ConvBN(nn.Module):
    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.zeros, (*self.kernel, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return nn.relu(_conv(x, kernel, self.stride, self.padding) + bias)


def _conv(x, kernel, stride, padding):
    ph, pw = padding
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding=((ph, ph), (pw, pw)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


class Fused1x1(nn.Module):
    """1x1 ConvBN layers reading the same input, computed as one conv (params stay per layer)."""

    specs: tuple[tuple[str, int], ...]  # (dotted name relative to the block, features)

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        kernels, biases = [], []
        for name, features in self.specs:
            scope_names = name.split(".")
            kernels.append(self._param(scope_names, "kernel", (1, 1, cin, features)))
            biases.append(self._param(scope_names, "bias", (features,)))
        y = nn.relu(_conv(x, jnp.concatenate(kernels, -1), 1, (0, 0)) + jnp.concatenate(biases))
        splits = np.cumsum([f for _, f in self.specs])[:-1]
        return jnp.split(y, splits, axis=-1)

    def _param(self, scope_names, leaf, shape):
        # Flat param name "<path>/<leaf>" under this module; convert_params places them here.
        return self.param("/".join(scope_names) + "/" + leaf, nn.initializers.zeros, shape)


def _avg_pool3(x):
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool3s2(x):
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1, t, t1 = Fused1x1((("conv", 64), ("tower.conv", 48), ("tower_1.conv", 64)), name="fused")(x)
        t = ConvBN(64, (5, 5), padding=(2, 2), name="tower.conv_1")(t)
        t1 = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1.conv_1")(t1)
        t1 = ConvBN(96, (3, 3), padding=(1, 1), name="tower_1.conv_2")(t1)
        t2 = ConvBN(self.pool_features, (1, 1), name="tower_2.conv")(_avg_pool3(x))
        return jnp.concatenate([b1, t, t1, t2], -1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b1 = ConvBN(384, (3, 3), stride=2, name="conv")(x)
        t = ConvBN(64, (1, 1), name="tower.conv")(x)
        t = ConvBN(96, (3, 3), padding=(1, 1), name="tower.conv_1")(t)
        t = ConvBN(96, (3, 3), stride=2, name="tower.conv_2")(t)
        return jnp.concatenate([b1, t, _max_pool3s2(x)], -1)


class InceptionC(nn.Module):
    c7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.c7
        b1, t, t1 = Fused1x1((("conv", 192), ("tower.conv", c7), ("tower_1.conv", c7)), name="fused")(x)
        t = ConvBN(c7, (1, 7), padding=(0, 3), name="tower.conv_1")(t)
        t = ConvBN(192, (7, 1), padding=(3, 0), name="tower.conv_2")(t)
        t1 = ConvBN(c7, (7, 1), padding=(3, 0), name="tower_1.conv_1")(t1)
        t1 = ConvBN(c7, (1, 7), padding=(0, 3), name="tower_1.conv_2")(t1)
        t1 = ConvBN(c7, (7, 1), padding=(3, 0), name="tower_1.conv_3")(t1)
        t1 = ConvBN(192, (1, 7), padding=(0, 3), name="tower_1.conv_4")(t1)
        t2 = ConvBN(192, (1, 1), name="tower_2.conv")(_avg_pool3(x))
        return jnp.concatenate([b1, t, t1, t2], -1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        t, t1 = Fused1x1((("tower.conv", 192), ("tower_1.conv", 192)), name="fused")(x)
        t = ConvBN(320, (3, 3), stride=2, name="tower.conv_1")(t)
        t1 = ConvBN(192, (1, 7), padding=(0, 3), name="tower_1.conv_1")(t1)
        t1 = ConvBN(192, (7, 1), padding=(3, 0), name="tower_1.conv_2")(t1)
        t1 = ConvBN(192, (3, 3), stride=2, name="tower_1.conv_3")(t1)
        return jnp.concatenate([t, t1, _max_pool3s2(x)], -1)


class InceptionE(nn.Module):
    pool: str  # "avg" (mixed_9) or "max" (mixed_10): the TF graph's last block uses a max pool

    @nn.compact
    def __call__(self, x):
        b1, a, b = Fused1x1((("conv", 320), ("tower_conv", 384), ("tower_1_conv", 448)), name="fused")(x)
        a1 = ConvBN(384, (1, 3), padding=(0, 1), name="tower_mixed_conv")(a)
        a2 = ConvBN(384, (3, 1), padding=(1, 0), name="tower_mixed_conv_1")(a)
        b = ConvBN(384, (3, 3), padding=(1, 1), name="tower_1_conv_1")(b)
        b1_ = ConvBN(384, (1, 3), padding=(0, 1), name="tower_1_mixed_conv")(b)
        b2 = ConvBN(384, (3, 1), padding=(1, 0), name="tower_1_mixed_conv_1")(b)
        if self.pool == "avg":
            p = _avg_pool3(x)
        else:
            p = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        p = ConvBN(192, (1, 1), name="tower_2_conv")(p)
        return jnp.concatenate([b1, a1, a2, b1_, b2, p], -1)


class InceptionV3FID(nn.Module):
    """x: [B, 299, 299, 3] float32 in [-1, 1] -> [B, 2048] pool features."""

    @nn.compact
    def __call__(self, x):
        if x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"InceptionV3FID expects [B, 299, 299, 3] inputs, got {x.shape}")
        x = ConvBN(32, (3, 3), stride=2, name="conv")(x)
        x = ConvBN(32, (3, 3), name="conv_1")(x)
        x = ConvBN(64, (3, 3), padding=(1, 1), name="conv_2")(x)
        x = _max_pool3s2(x)
        x = ConvBN(80, (1, 1), name="conv_3")(x)
        x = ConvBN(192, (3, 3), name="conv_4")(x)
        x = _max_pool3s2(x)
        x = InceptionA(32, name="mixed")(x)
        x = InceptionA(64, name="mixed_1")(x)
        x = InceptionA(64, name="mixed_2")(x)
        x = InceptionB(name="mixed_3")(x)
        x = InceptionC(128, name="mixed_4")(x)
        x = InceptionC(160, name="mixed_5")(x)
        x = InceptionC(160, name="mixed_6")(x)
        x = InceptionC(192, name="mixed_7")(x)
        x = InceptionD(name="mixed_8")(x)
        x = InceptionE("avg", name="mixed_9")(x)
        x = InceptionE("max", name="mixed_10")(x)
        return jnp.mean(x, axis=(1, 2))  # 8x8 average pool over the whole 8x8 map


# --------------------------------------------------------------------------- weights -> params
def _target_slot(flax_shapes: dict, path: str) -> tuple[tuple[str, ...], str]:
    """Where the TorchScript layer ``path`` lives in the Flax param tree: (module keys, leaf prefix)."""
    parts = path.split(".")
    block, rest = parts[0], ".".join(parts[1:])
    if rest:
        block_tree = flax_shapes.get(block, {})
        if rest in block_tree:  # a ConvBN named e.g. "tower.conv_1" inside the block
            return (block, rest), ""
        fused = block_tree.get("fused", {})
        if f"{rest.replace('.', '/')}/kernel" in fused:
            return (block, "fused"), rest.replace(".", "/") + "/"
    elif block in flax_shapes:
        return (block,), ""
    raise ValueError(f"FID weights layer {path!r} has no place in the Flax InceptionV3FID")


def convert_params(weights: FidWeights) -> dict:
    """Numpy FID weights -> Flax params (NHWC kernels, BN folded), checked against the model's shapes."""
    model = InceptionV3FID()
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))["params"]
    shapes = jax.tree_util.tree_map(lambda s: s.shape, shapes)
    params: dict = {}
    for path, c in weights.convs.items():
        scale = 1.0 / np.sqrt(c.var.astype(np.float64) + BN_EPS)
        kernel = (c.weight.astype(np.float64) * scale[:, None, None, None]).transpose(2, 3, 1, 0)
        bias = c.beta.astype(np.float64) - c.mean.astype(np.float64) * scale
        keys, prefix = _target_slot(shapes, path)
        expected = shapes
        for k in keys:
            expected = expected[k]
        for leaf, value in (("kernel", kernel), ("bias", bias)):
            want = expected[prefix + leaf]
            if tuple(value.shape) != tuple(want):
                raise ValueError(
                    f"FID weights {weights.source}: layer {path} {leaf} has shape {value.shape}, model expects {want}"
                )
            node = params
            for k in keys:
                node = node.setdefault(k, {})
            node[prefix + leaf] = jnp.asarray(value, jnp.float32)
    n_expected = len(jax.tree_util.tree_leaves(shapes, is_leaf=lambda s: isinstance(s, tuple)))
    n_got = len(jax.tree_util.tree_leaves(params))
    if n_got != n_expected:
        raise ValueError(f"FID weights {weights.source}: filled {n_got} of {n_expected} Flax params")
    return {"params": params}


class InceptionFeatures:
    """Jit-compiled batched feature extractor: uint8 images -> 2048-d FID features (float64)."""

    def __init__(self, weights: FidWeights | str | Path, batch_size: int = 50):
        if not isinstance(weights, FidWeights):
            weights = load_fid_weights(weights)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = weights
        self.batch_size = batch_size
        self.variables = convert_params(weights)
        model = InceptionV3FID()
        self._net = jax.jit(lambda v, x: model.apply(v, x))
        self._from_uint8 = jax.jit(lambda v, img: model.apply(v, preprocess_uint8(img)))

    def features_from_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """[B, 299, 299, 3] floats already in [-1, 1] (no resize) -> [B, 2048] float32."""
        return np.asarray(self._net(self.variables, jnp.asarray(x, jnp.float32)))

    def __call__(self, images_uint8: np.ndarray, progress: bool = False, desc: str = "inception") -> np.ndarray:
        """[N, H, W, 3] uint8 -> [N, 2048] float64 (TF1 bilinear resize to 299, x/128 - 1 inside).

        Batches are padded to ``batch_size`` so every call reuses one compiled program.
        """
        images = np.asarray(images_uint8)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
        n, bs = len(images), self.batch_size
        out = np.empty((n, FEATURE_DIM), np.float64)
        starts = range(0, n, bs)
        for s in tqdm(starts, desc=desc, unit="batch", disable=not progress or n <= bs):
            chunk = images[s : s + bs]
            if len(chunk) < bs:
                chunk = np.concatenate([chunk, np.zeros((bs - len(chunk), *chunk.shape[1:]), np.uint8)])
            out[s : s + bs] = np.asarray(self._from_uint8(self.variables, chunk))[: min(bs, n - s)]
        return out
