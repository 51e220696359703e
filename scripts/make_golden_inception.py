"""Golden features of the FID Inception, computed by the TorchScript network in torch.

    python scripts/make_golden_inception.py --weights data/weights/fid_inception.pt \
        --torch-python /tmp/torchvenv/bin/python --out tests/data/inception_golden.npz

Run with the project's Python (numpy, tensorflow); torch is only needed by ``--torch-python``, a
separate interpreter (e.g. a venv with `pip install torch==2.13.0`), so the project never depends
on torch. Writes:
  seed, float_features   features of ``golden_float_inputs(seed)``: 4 preprocessed 299x299 inputs
  uint8_images           2 small uint8 images (stored: they are tiny)
  uint8_features         their features through TF1 bilinear resize (tf.compat.v1) + x/128 - 1
The test regenerates the float inputs from the seed and compares the Flax features.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SEED = 20151205

TORCH_SNIPPET = r"""
import sys, numpy as np, torch
torch.set_num_threads(2)
model = torch.jit.load(sys.argv[1]).eval()
data = np.load(sys.argv[2])
out = {}
with torch.no_grad():
    for key in data.files:
        x = torch.from_numpy(data[key]).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        out[key] = model(x).numpy().astype(np.float32)
np.savez(sys.argv[3], **out)
"""


def golden_float_inputs(seed: int = SEED) -> np.ndarray:
    """4 deterministic NHWC inputs in [-1, 1]: 2 noise images and 2 smooth colour patterns."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-1.0, 1.0, size=(2, 299, 299, 3))
    yy, xx = np.meshgrid(np.linspace(0, 1, 299), np.linspace(0, 1, 299), indexing="ij")
    phases = rng.uniform(0, 2 * np.pi, size=(2, 3))
    smooth = np.stack(
        [np.stack([np.sin(6 * np.pi * (xx + yy * (c + 1) / 3) + p[c]) for c in range(3)], -1) for p in phases]
    )
    return np.concatenate([noise, 0.9 * smooth]).astype(np.float32)


def golden_uint8_images(seed: int = SEED) -> np.ndarray:
    """2 small uint8 images of 32x24 (non-square, so both resize axes use different scales)."""
    rng = np.random.default_rng(seed + 1)
    base = rng.integers(0, 256, size=(2, 8, 6, 3)).astype(np.float32)
    # Blocky but not constant: upsample 4x with jitter, so resize sees edges and gradients.
    img = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2) + rng.normal(0, 12, size=(2, 32, 24, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def tf1_preprocess(images_uint8: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = tf.compat.v1.image.resize_bilinear(images_uint8.astype(np.float32), [299, 299],
                                           align_corners=False, half_pixel_centers=False)
    return (x.numpy() / 128.0 - 1.0).astype(np.float32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="data/weights/fid_inception.pt")
    ap.add_argument("--torch-python", default=sys.executable, help="a Python with torch installed")
    ap.add_argument("--out", default="tests/data/inception_golden.npz")
    args = ap.parse_args(argv)
    if not Path(args.weights).is_file():
        raise SystemExit(f"--weights: {args.weights} missing (run `dvc repro fetch_fid_weights`)")

    float_inputs = golden_float_inputs(SEED)
    uint8_images = golden_uint8_images(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, float_inputs=float_inputs, uint8_inputs=tf1_preprocess(uint8_images))
        subprocess.run([args.torch_python, "-c", TORCH_SNIPPET, args.weights, inputs, outputs], check=True)
        with np.load(outputs) as feats:
            float_features, uint8_features = feats["float_inputs"], feats["uint8_inputs"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, seed=np.int64(SEED), float_features=float_features,
                        uint8_images=uint8_images, uint8_features=uint8_features)
    print(f"{args.out}: float_features {float_features.shape}, uint8_features {uint8_features.shape}")


if __name__ == "__main__":
    main()
