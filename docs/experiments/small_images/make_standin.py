"""A stand-in for a user's small photo set: 1,600 RGB crops in 8 classes, from the two real
photographs scikit-learn ships (sklearn.datasets.load_sample_images: china.jpg, flower.jpg).

    python docs/experiments/small_images/make_standin.py data/standin_photos

The issue that asked for params-small-images.yaml reported a private folder of 1,600 RGB photo
crops (8 classes, 32x32). No such data can be downloaded here, so this makes a folder with the
same shape from real photographs: each photo's four quadrants are four classes, and each class
holds 200 square crops of 48-112 pixels at seeded random positions inside its quadrant (resized to
32x32 by the pipeline, as any folder is). Real-photo textures and colours, classes that differ in
content (sky, roof, leaves, petals, ...) and crops that overlap, as crops of a few scenes do.
Deterministic: the same seed writes byte-identical PNGs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

PER_CLASS = 200
CROP_MIN, CROP_MAX = 48, 112


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder to write (one sub-folder per class)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    photos = load_sample_images()
    for name, photo in zip(("china", "flower"), photos.images):
        h, w = photo.shape[:2]
        for qi, (y0, x0) in enumerate([(0, 0), (0, w // 2), (h // 2, 0), (h // 2, w // 2)]):
            qh, qw = h // 2, w // 2
            folder = Path(args.out) / f"{name}_q{qi}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(PER_CLASS):
                size = int(rng.integers(CROP_MIN, min(CROP_MAX, qh, qw) + 1))
                y = y0 + int(rng.integers(0, qh - size + 1))
                x = x0 + int(rng.integers(0, qw - size + 1))
                Image.fromarray(photo[y:y + size, x:x + size]).save(folder / f"{i:03d}.png")
    print(f"wrote {8 * PER_CLASS} crops in 8 classes to {args.out}")


if __name__ == "__main__":
    main()
