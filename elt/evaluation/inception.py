"""The FID InceptionV3 (TF graph inception-2015-12-05) with the standard weights, on two backends.

Facts of that network (see docs and the TorchScript code it is read from): 299x299 input in
[-1, 1] (x/128 - 1), no resize or scaling inside; every conv is conv (no bias) -> BN without scale
(eps 1e-3) -> ReLU; branch average pools exclude the padding; the last mixed block's branch pool is a
max pool; a final 8x8 average pool gives the 2048-d feature.

The topology is written once (``forward``) against a small ops interface, and runs on
- ``jax``: XLA, the accelerator path (GPU/TPU), and the CPU fallback;
- ``tf``: TensorFlow graph mode with oneDNN convolutions. On CPU, XLA's convolutions reach about half
  of oneDNN's throughput on this network (benchmarks/fid.py), and tensorflow is already installed for
  tfds, so ``backend="auto"`` picks it whenever JAX runs on the CPU.
Strides and padding are part of the topology and checked against the TorchScript file's own;
a layer the topology does not use, or one it needs but the file lacks, is named in the error. BN is folded into the conv
(kernel * s, bias beta - mean * s with s = 1/sqrt(var + eps)) when the weights are converted, and
the 1x1 convs of a block that read the same input run as one wider conv.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from elt.evaluation.weights import FidWeights, load_fid_weights

BN_EPS = 1e-3
INPUT_SIZE = 299
FEATURE_DIM = 2048
BACKENDS = ("auto", "jax", "tf")


# --------------------------------------------------------------------------- topology (one place)
def _block_a(ops, x, n):
    b1, t, t1 = ops.fused1x1(x, (f"{n}.conv", f"{n}.tower.conv", f"{n}.tower_1.conv"))
    t = ops.conv(t, f"{n}.tower.conv_1")
    t1 = ops.conv(ops.conv(t1, f"{n}.tower_1.conv_1"), f"{n}.tower_1.conv_2")
    t2 = ops.conv(ops.avg_pool3(x), f"{n}.tower_2.conv")
    return ops.concat([b1, t, t1, t2])


def _block_b(ops, x, n):
    b1 = ops.conv(x, f"{n}.conv", stride=2, same=False)
    t = ops.conv(ops.conv(x, f"{n}.tower.conv"), f"{n}.tower.conv_1")
    t = ops.conv(t, f"{n}.tower.conv_2", stride=2, same=False)
    return ops.concat([b1, t, ops.max_pool3s2(x)])


def _block_c(ops, x, n):
    b1, t, t1 = ops.fused1x1(x, (f"{n}.conv", f"{n}.tower.conv", f"{n}.tower_1.conv"))
    t = ops.conv(ops.conv(t, f"{n}.tower.conv_1"), f"{n}.tower.conv_2")
    for i in range(1, 5):
        t1 = ops.conv(t1, f"{n}.tower_1.conv_{i}")
    t2 = ops.conv(ops.avg_pool3(x), f"{n}.tower_2.conv")
    return ops.concat([b1, t, t1, t2])


def _block_d(ops, x, n):
    t, t1 = ops.fused1x1(x, (f"{n}.tower.conv", f"{n}.tower_1.conv"))
    t = ops.conv(t, f"{n}.tower.conv_1", stride=2, same=False)
    t1 = ops.conv(ops.conv(t1, f"{n}.tower_1.conv_1"), f"{n}.tower_1.conv_2")
    t1 = ops.conv(t1, f"{n}.tower_1.conv_3", stride=2, same=False)
    return ops.concat([t, t1, ops.max_pool3s2(x)])


def _block_e(ops, x, n, pool):
    b1, a, b = ops.fused1x1(x, (f"{n}.conv", f"{n}.tower_conv", f"{n}.tower_1_conv"))
    a1, a2 = ops.conv(a, f"{n}.tower_mixed_conv"), ops.conv(a, f"{n}.tower_mixed_conv_1")
    b = ops.conv(b, f"{n}.tower_1_conv_1")
    b1_, b2 = ops.conv(b, f"{n}.tower_1_mixed_conv"), ops.conv(b, f"{n}.tower_1_mixed_conv_1")
    p = ops.avg_pool3(x) if pool == "avg" else ops.max_pool3s1(x)
    return ops.concat([b1, a1, a2, b1_, b2, ops.conv(p, f"{n}.tower_2_conv")])


def forward(ops, x):
    """[B, 299, 299, 3] in [-1, 1] -> [B, 2048] pool features, on whatever backend ``ops`` is."""
    x = ops.conv(x, "conv", stride=2, same=False)
    x = ops.conv(ops.conv(x, "conv_1", same=False), "conv_2")
    x = ops.max_pool3s2(x)
    x = ops.max_pool3s2(ops.conv(ops.conv(x, "conv_3"), "conv_4", same=False))
    for n in ("mixed", "mixed_1", "mixed_2"):
        x = _block_a(ops, x, n)
    x = _block_b(ops, x, "mixed_3")
    for n in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
        x = _block_c(ops, x, n)
    x = _block_d(ops, x, "mixed_8")
    x = _block_e(ops, x, "mixed_9", "avg")
    x = _block_e(ops, x, "mixed_10", "max")  # the TF graph's last block pools with max
    return ops.mean_hw(x)  # the 8x8 average pool over the whole 8x8 map


class _Recorder:
    """Ops that compute nothing and note which conv layers the topology reads."""

    def __init__(self):
        self.names: list[str] = []
        self.geometry: dict[str, tuple[int, bool]] = {}

    def conv(self, x, name, stride=1, same=True):
        self.names.append(name)
        self.geometry[name] = (stride, same)
        return x

    def fused1x1(self, x, names):
        for name in names:
            self.conv(x, name)
        return [x] * len(names)

    def avg_pool3(self, x):
        return x

    max_pool3s2 = max_pool3s1 = mean_hw = avg_pool3

    def concat(self, xs):
        return xs[0]


def _recorded() -> _Recorder:
    rec = _Recorder()
    forward(rec, None)
    return rec


def layer_names() -> list[str]:
    """Every conv layer the topology uses, in order."""
    return _recorded().names


# --------------------------------------------------------------------------- weights -> params
def convert_params(weights: FidWeights) -> dict:
    """Numpy FID weights -> {layer: {"kernel": HWIO float32 with BN folded, "bias", "stride", "padding"}}."""
    rec = _recorded()
    used = rec.names
    missing = [n for n in used if n not in weights.convs]
    unused = sorted(set(weights.convs) - set(used))
    if missing or unused:
        raise ValueError(f"FID weights {weights.source}: layers missing from the file {missing}, "
                         f"layers the InceptionV3 does not use {unused}")
    params = {}
    for name in used:
        c = weights.convs[name]
        scale = 1.0 / np.sqrt(c.var.astype(np.float64) + BN_EPS)
        kernel = (c.weight.astype(np.float64) * scale[:, None, None, None]).transpose(2, 3, 1, 0)
        bias = c.beta.astype(np.float64) - c.mean.astype(np.float64) * scale
        stride, same = rec.geometry[name]
        # "same" layers pad k//2 on each side (every kernel here is odd); the rest pad nothing.
        padding = (kernel.shape[0] // 2, kernel.shape[1] // 2) if same else (0, 0)
        if c.stride is not None and (c.stride, tuple(c.padding)) != (stride, padding):
            # A TorchScript file carries its geometry (a state_dict does not): it must agree.
            raise ValueError(f"FID weights {weights.source}: layer {name} has stride {c.stride} padding "
                             f"{tuple(c.padding)}, the InceptionV3 topology expects {stride} {padding}")
        params[name] = {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32),
                        "stride": stride, "padding": padding}
    return params


def _fused_kernel(params, names):
    """One (1, 1, cin, sum cout) kernel and bias for 1x1 layers reading the same input."""
    for n in names:
        if params[n]["kernel"].shape[:2] != (1, 1) or params[n]["stride"] != 1:
            raise ValueError(f"FID weights: layer {n} is fused as a 1x1 stride-1 conv, the file has "
                             f"kernel {params[n]['kernel'].shape[:2]} stride {params[n]['stride']}")
    return (np.concatenate([params[n]["kernel"] for n in names], -1),
            np.concatenate([params[n]["bias"] for n in names]),
            np.cumsum([params[n]["bias"].shape[0] for n in names])[:-1])


# --------------------------------------------------------------------------- backends
class _Ops:
    """Conv layers by name from the converted arrays; a backend supplies ``_conv`` and ``_split``."""

    def __init__(self, arrays, geometry):
        self.arrays, self.geometry = arrays, geometry

    def conv(self, x, name, stride=1, same=True):  # noqa: ARG002  geometry: from convert_params
        a, (stride, padding) = self.arrays[name], self.geometry[name]
        return self._conv(x, a["kernel"], a["bias"], stride, padding)

    def fused1x1(self, x, names):
        key = "fused:" + ",".join(names)
        a, splits = self.arrays[key], self.geometry[key]
        return self._split(self._conv(x, a["kernel"], a["bias"], 1, (0, 0)), splits)


class _JaxOps(_Ops):
    def __init__(self, arrays, geometry):
        import flax.linen as nn
        import jax
        import jax.numpy as jnp
        super().__init__(arrays, geometry)
        self.nn, self.jax, self.jnp = nn, jax, jnp

    def _split(self, y, splits):
        return self.jnp.split(y, splits, axis=-1)

    def _conv(self, x, kernel, bias, stride, padding):
        ph, pw = padding
        y = self.jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((ph, ph), (pw, pw)),
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return self.jax.nn.relu(y + bias)

    def avg_pool3(self, x):
        return self.nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)

    def max_pool3s2(self, x):
        return self.nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")

    def max_pool3s1(self, x):
        return self.nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))

    def concat(self, xs):
        return self.jnp.concatenate(xs, -1)

    def mean_hw(self, x):
        return self.jnp.mean(x, axis=(1, 2))


class _TfOps(_Ops):
    def __init__(self, arrays, geometry):
        import tensorflow as tf
        super().__init__(arrays, geometry)
        self.tf = tf

    def _conv(self, x, kernel, bias, stride, padding):
        ph, pw = padding
        # Stride-1 convs here pad k//2 on each side, which is TF's "SAME"; the named form keeps
        # grappler's conv + bias + relu fusion into one oneDNN kernel (explicit pads measured slower).
        pad = "VALID" if (ph, pw) == (0, 0) else "SAME" if stride == 1 and 2 * ph + 1 == kernel.shape[0] \
            and 2 * pw + 1 == kernel.shape[1] else [[0, 0], [ph, ph], [pw, pw], [0, 0]]
        return self.tf.nn.relu(self.tf.nn.bias_add(self.tf.nn.conv2d(x, kernel, stride, pad), bias))

    def _split(self, y, splits):
        sizes = np.diff(np.concatenate([[0], splits, [y.shape[-1]]])).tolist()
        return self.tf.split(y, sizes, axis=-1)

    def avg_pool3(self, x):
        return self.tf.nn.avg_pool2d(x, 3, 1, "SAME")  # TF's SAME average excludes the padding

    def max_pool3s2(self, x):
        return self.tf.nn.max_pool2d(x, 3, 2, "VALID")

    def max_pool3s1(self, x):
        return self.tf.nn.max_pool2d(x, 3, 1, "SAME")

    def concat(self, xs):
        return self.tf.concat(xs, -1)

    def mean_hw(self, x):
        return self.tf.reduce_mean(x, axis=[1, 2])


def _split_params(params: dict):
    """-> (arrays: {key: {"kernel", "bias"}}, geometry: {key: static info}) incl. the fused 1x1 groups."""
    arrays, geometry = {}, {}
    for name, p in params.items():
        arrays[name] = {"kernel": p["kernel"], "bias": p["bias"]}
        geometry[name] = (p["stride"], p["padding"])

    class _Fusions(_Recorder):
        def fused1x1(self, x, names):
            kernel, bias, splits = _fused_kernel(params, names)
            key = "fused:" + ",".join(names)
            arrays[key] = {"kernel": kernel, "bias": bias}
            geometry[key] = tuple(int(s) for s in splits)
            return [x] * len(names)

    forward(_Fusions(), None)
    return arrays, geometry


def tf_available() -> bool:
    try:
        import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"Inception backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    import jax  # pylint: disable=import-outside-toplevel
    return "tf" if jax.default_backend() == "cpu" and tf_available() else "jax"


def _jax_programs(arrays, geometry):
    import jax
    import jax.numpy as jnp

    from elt.evaluation.resize import preprocess_uint8

    from elt.core.mesh import split_over_local_devices

    arrays = jax.tree_util.tree_map(jnp.asarray, arrays)
    net = jax.jit(lambda a, x: forward(_JaxOps(a, geometry), x))
    from_uint8 = jax.jit(lambda a, img: forward(_JaxOps(a, geometry), preprocess_uint8(img)))
    placed = {"arrays": arrays}

    def run(fn, batch):
        # The batch split over this process's devices (several GPUs/TPU cores); the weights are
        # replicated there on the first call and stay (a no-op placement afterwards).
        placed["arrays"], batch = split_over_local_devices(placed["arrays"], batch)
        return np.asarray(fn(placed["arrays"], batch))

    return (lambda x: run(net, np.asarray(x, np.float32)), lambda img: run(from_uint8, np.asarray(img)))


def _tf_programs(arrays, geometry):
    import tensorflow as tf

    consts = {k: {leaf: tf.constant(v) for leaf, v in a.items()} for k, a in arrays.items()}
    ops = _TfOps(consts, geometry)
    net = tf.function(lambda x: forward(ops, x), autograph=False, reduce_retracing=True)

    def preprocess(img):
        # The TF FID graph's own resize: legacy bilinear, align_corners=False, half_pixel_centers=False.
        x = tf.raw_ops.ResizeBilinear(images=tf.cast(img, tf.float32), size=(INPUT_SIZE, INPUT_SIZE),
                                      align_corners=False, half_pixel_centers=False)
        return x / 128.0 - 1.0

    from_uint8 = tf.function(lambda img: forward(ops, preprocess(img)), autograph=False, reduce_retracing=True)
    return (lambda x: net(tf.constant(np.asarray(x, np.float32))).numpy(),
            lambda img: from_uint8(tf.constant(np.asarray(img))).numpy())


class InceptionFeatures:
    """Batched feature extractor: uint8 images -> 2048-d FID features (float64).

    ``backend``: "auto" (TensorFlow/oneDNN when JAX runs on the CPU, else JAX), "jax" or "tf".
    """

    def __init__(self, weights: FidWeights | str | Path, batch_size: int = 50, backend: str = "auto"):
        if not isinstance(weights, FidWeights):
            weights = load_fid_weights(weights)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights = weights
        self.batch_size = batch_size
        self.backend = resolve_backend(backend)
        arrays, geometry = _split_params(convert_params(weights))
        build = _tf_programs if self.backend == "tf" else _jax_programs
        self._net, self._from_uint8 = build(arrays, geometry)

    def features_from_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """[B, 299, 299, 3] floats already in [-1, 1] (no resize) -> [B, 2048] float32."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"InceptionV3 expects [B, 299, 299, 3] inputs, got {x.shape}")
        return self._net(x)

    def batch_from_uint8(self, images_uint8: np.ndarray) -> np.ndarray:
        """One call of the compiled uint8 program on exactly ``batch_size`` images -> float32 features."""
        return self._from_uint8(images_uint8)

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
            out[s : s + bs] = self._from_uint8(chunk)[: min(bs, n - s)]
        return out
