"""TF1-style bilinear resize (``tf.compat.v1.image.resize_bilinear``, align_corners=False,
half_pixel_centers=False) in jnp, and the FID Inception's input preprocessing.

The original TF FID graph resizes with that legacy kernel, and the choice of resize changes FID
noticeably (clean-fid), so we copy it exactly: source coordinate ``dst * (in/out)`` in float32,
lerp ``top + (bottom - top) * frac`` in the same order as TF's CPU kernel.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299


def _axis_taps(in_size: int, out_size: int):
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    lower = np.floor(src).astype(np.int32)
    upper = np.minimum(lower + 1, in_size - 1)
    frac = (src - np.floor(src)).astype(np.float32)
    return lower, upper, frac


def resize_bilinear_tf1(images, size: tuple[int, int]):
    """[B, H, W, C] -> [B, size[0], size[1], C] float32, identical maths to TF1 resize_bilinear."""
    images = jnp.asarray(images, jnp.float32)
    in_h, in_w = images.shape[1], images.shape[2]
    out_h, out_w = size
    if (in_h, in_w) == (out_h, out_w):
        return images  # scale 1: TF returns the input values unchanged
    y0, y1, fy = _axis_taps(in_h, out_h)
    x0, x1, fx = _axis_taps(in_w, out_w)
    top = jnp.take(images, y0, axis=1)
    bottom = jnp.take(images, y1, axis=1)
    fx = jnp.asarray(fx)[None, None, :, None]
    top_left, top_right = jnp.take(top, x0, axis=2), jnp.take(top, x1, axis=2)
    bottom_left, bottom_right = jnp.take(bottom, x0, axis=2), jnp.take(bottom, x1, axis=2)
    top = top_left + (top_right - top_left) * fx
    bottom = bottom_left + (bottom_right - bottom_left) * fx
    return top + (bottom - top) * jnp.asarray(fy)[None, :, None, None]


def preprocess_uint8(images_uint8):
    """uint8 [B, H, W, 3] -> float32 [B, 299, 299, 3] in [-1, 1] as the TF FID graph does it."""
    x = resize_bilinear_tf1(images_uint8, (INPUT_SIZE, INPUT_SIZE))
    return x / 128.0 - 1.0
