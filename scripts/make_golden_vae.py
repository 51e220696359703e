"""Golden values of diffusers' AutoencoderKL (the SD VAE), for tests/test_vae.py.

Builds a small randomly initialised AutoencoderKL (2 levels of 16 and 32 channels, one resnet per
level, GroupNorm(8), 4 latent channels, 32x32 images, torch seed 0; the GroupNorm affine and all
biases are perturbed so that a swapped scale/bias or a dropped bias shows), saves it with
save_pretrained (config.json + diffusion_pytorch_model.safetensors) and writes golden.npz:

  images   float32 [2, 32, 32, 3] NHWC in [-1, 1]    encoder input
  mean     float32 [2, 16, 16, 4] NHWC               posterior mean of `images`
  logvar   float32 [2, 16, 16, 4] NHWC               posterior log-variance (clamped as diffusers)
  latents  float32 [2, 16, 16, 4] NHWC ~ N(0, 1)     decoder input (unscaled)
  decoded  float32 [2, 32, 32, 3] NHWC               decoder output of `latents` (not clipped)

torch and diffusers are tools of this script, not project dependencies: run it with a separate
interpreter, from the repository root:

    python -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/golden-venv/bin/pip install diffusers safetensors     # (numpy comes with them)
    /tmp/golden-venv/bin/python scripts/make_golden_vae.py --out tests/data/vae_golden

(Where that index is unreachable, install a torch CPU wheel from PyPI or a local wheel.) Last made
with torch 2.13.0+cpu and diffusers 0.42.1; the output is about 0.7 MB.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SEED = 0
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 2,
    up_block_types=["UpDecoderBlock2D"] * 2,
    block_out_channels=[16, 32],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.18215,
)


def golden_images(seed: int = SEED) -> np.ndarray:
    """2 NHWC images in [-1, 1]: smooth colour waves plus noise (edges and gradients for the convs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    waves = np.stack([np.stack([np.sin(2 * np.pi * (k + 1) * (xx + c * yy) + k) for c in range(3)], -1) for k in range(2)])
    return np.clip(0.7 * waves + 0.3 * rng.standard_normal(waves.shape), -1, 1).astype(np.float32)


def main(argv=None) -> None:
    import torch
    from diffusers import AutoencoderKL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/vae_golden")
    args = ap.parse_args(argv)
    out = Path(args.out)

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    model = AutoencoderKL(**CONFIG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.add_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)

    images = golden_images(SEED)
    latents = np.random.default_rng(SEED + 1).standard_normal((2, 16, 16, 4)).astype(np.float32)
    to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
    to_nhwc = lambda t: t.numpy().transpose(0, 2, 3, 1).astype(np.float32)  # noqa: E731
    with torch.no_grad():
        posterior = model.encode(to_nchw(images)).latent_dist
        decoded = model.decode(to_nchw(latents)).sample
    np.savez_compressed(
        out / "golden.npz",
        images=images,
        mean=to_nhwc(posterior.mean),
        logvar=to_nhwc(posterior.logvar),
        latents=latents,
        decoded=to_nhwc(decoded),
    )
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(json.dumps({"out": str(out), "bytes": sizes, "total": sum(sizes.values())}, indent=2))


if __name__ == "__main__":
    main()
