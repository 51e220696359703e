"""Throughput of the Beam tokenization pipeline vs a plain in-process encode loop, same data.

  python benchmarks/tokenize.py [--image-size 32] [--repeat 1] [--mode multi_threading]

Data: the bundled digits (tfds builder) at --image-size; --repeat k > 1 tokenizes the split k
times over (an image folder holding k copies) so fixed costs (pipeline start, per-worker jit)
weigh as they would on a larger data set. Tokenizer: the default VQ config (weights random: the
cost does not depend on them). Plain loop = load the tokenizer (jit compile included), read the
images (--read-size at a time, as Beam work items) and encode them in batches, in this process.
Beam = the whole `beam_tokenize.run` (start, read, encode, shard writing, sha256, manifest).
Last line: one JSON object.
"""

import sys

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from elt.data import beam_tokenize  # noqa: E402
from elt.data.datasets import load_image_dataset  # noqa: E402
from elt.tokenizers import load_tokenizer, vq  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)  # params.yaml tokenize.batch_size
    ap.add_argument("--read-size", type=int, default=1024)
    ap.add_argument("--num-shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--mode",
        default="multi_threading",
        choices=["in_memory", "multi_threading", "multi_processing"],
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_tokenize_"))
    cfg = vq.VQConfig(image_size=args.image_size)
    tok = vq.VQTokenizer(cfg, vq.init_params(cfg, 0))
    tok.save(str(work / "tok"))

    dataset, data_dir = "digits", str(work / "tfds")
    data = load_image_dataset(dataset, "train", data_dir, args.image_size)
    if args.repeat > 1:  # an image folder with `repeat` copies of the split
        images, labels = data.read(0, data.num_examples)
        for r in range(args.repeat):
            for i, (im, lab) in enumerate(zip(images, labels)):
                d = work / "folder" / f"class{lab}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(im).save(d / f"{r:03d}_{i:05d}.png")
        dataset, data_dir = str(work / "folder"), None
        data = load_image_dataset(dataset, "train", None, args.image_size)
    n = data.num_examples

    # Plain loop: what one process does without Beam: load the tokenizer (jit compile included,
    # as each Beam worker pays it too), read and encode in batches of the same size.
    t = time.perf_counter()
    plain_tok = load_tokenizer(str(work / "tok"))
    for a in range(0, n, args.read_size):
        images = data.read(a, min(a + args.read_size, n))[0]
        for b in range(0, len(images), args.batch_size):
            plain_tok.encode(images[b : b + args.batch_size])
    plain_s = time.perf_counter() - t

    t = time.perf_counter()
    beam_tokenize.run(
        dataset,
        "train",
        data_dir,
        args.image_size,
        str(work / "tok"),
        str(work / "tokens"),
        batch_size=args.batch_size,
        read_size=args.read_size,
        num_shards=args.num_shards,
        direct_num_workers=args.workers,
        direct_running_mode=args.mode,
    )
    beam_s = time.perf_counter() - t

    result = {
        "examples": n,
        "image_size": args.image_size,
        "grid": list(cfg.grid),
        "batch_size": args.batch_size,
        "mode": args.mode,
        "workers": args.workers,
        "plain_seconds": round(plain_s, 3),
        "beam_seconds": round(beam_s, 3),
        "plain_examples_per_second": round(n / plain_s, 1),
        "examples_per_second": round(n / beam_s, 1),
        "beam_over_plain": round(plain_s / beam_s, 3),
        "cpu_count": os.cpu_count(),
    }
    print(f"{n} examples {args.image_size}px -> {cfg.grid} tokens, batch {args.batch_size}")
    print(f"plain loop : {plain_s:7.2f} s  {n / plain_s:9.1f} examples/s")
    print(
        f"beam ({args.mode}, {args.workers} workers): {beam_s:7.2f} s  {n / beam_s:9.1f} "
        f"examples/s  ratio {plain_s / beam_s:.3f}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
