"""FID Inception throughput on this CPU: the Flax network (TF1 resize included) vs the TorchScript
network in torch on the same batch.

    python benchmarks/fid.py [--batch-size 16] [--image-size 32] [--repeats 3] [--torch-python PY]

Torch is not a project dependency: the comparison runs it in a subprocess with --torch-python
(default: $ELT_TORCH_PYTHON, else /tmp/torchvenv/bin/python, else this interpreter); when none
imports torch, the ratio is skipped with the reason in the JSON. Last line: one JSON object.
"""
from __future__ import annotations

import os
import sys


import argparse
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TORCH_TIMING = r"""
import json, os, sys, time, numpy as np, torch
torch.set_num_threads(os.cpu_count())
model = torch.jit.load(sys.argv[1]).eval()
x = torch.from_numpy(np.load(sys.argv[2])).permute(0, 3, 1, 2).contiguous()
repeats = int(sys.argv[3])
with torch.no_grad():
    model(x)  # warm-up (TorchScript profiling run)
    model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); model(x); times.append(time.perf_counter() - t0)
med = sorted(times)[len(times) // 2]
print(json.dumps({"samples_per_second": x.shape[0] / med, "threads": torch.get_num_threads(),
                  "torch": torch.__version__}))
"""


def _torch_python(arg: str | None) -> str | None:
    candidates = [arg, os.environ.get("ELT_TORCH_PYTHON"), "/tmp/torchvenv/bin/python", sys.executable]
    for py in candidates:
        if py and Path(py).exists():
            ok = subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0
            if ok:
                return py
    return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=32, help="uint8 input size, resized to 299 inside")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None, help="default: the cached fetch ($ELT_CACHE_DIR or ~/.cache/elt)")
    ap.add_argument("--torch-python", default=None)
    args = ap.parse_args(argv)

    import jax

    from elt.evaluation.inception import InceptionFeatures
    from elt.evaluation.resize import preprocess_uint8
    from elt.evaluation.throughput import measure_samples_per_second
    from elt.evaluation.weights import cached_fid_weights

    weights = Path(args.weights) if args.weights else cached_fid_weights()
    extractor = InceptionFeatures(weights, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch_size, args.image_size, args.image_size, 3)).astype(np.uint8)
    jax_images = jax.device_put(images)
    fn = lambda x: extractor._from_uint8(extractor.variables, x)  # noqa: E731  (one jitted call)
    jax_run = measure_samples_per_second(fn, jax_images, warmup=1, repeats=args.repeats)
    print(f"Flax InceptionV3 FID (resize {args.image_size}->299 incl.), batch {args.batch_size}: "
          f"{jax_run['samples_per_second']:.2f} images/s ({jax_run['seconds_per_call']:.2f} s/batch)")

    result = {
        "benchmark": "fid_inception",
        "device": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "images_per_second": round(jax_run["samples_per_second"], 3),
    }
    py = _torch_python(args.torch_python)
    if py is None:
        result["jax_over_torch"] = None
        result["jax_over_torch_skipped"] = "no Python with torch found (set --torch-python or $ELT_TORCH_PYTHON)"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            x = os.path.join(tmp, "x.npy")
            np.save(x, np.asarray(preprocess_uint8(images)))  # torch gets the already resized batch
            proc = subprocess.run([py, "-c", TORCH_TIMING, str(weights), x, str(args.repeats)],
                                  capture_output=True, text=True)
        if proc.returncode != 0:
            result["jax_over_torch"] = None
            result["jax_over_torch_skipped"] = f"torch run failed: {proc.stderr[-300:]}"
        else:
            t = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"TorchScript in torch {t['torch']} ({t['threads']} threads), batch {args.batch_size}: "
                  f"{t['samples_per_second']:.2f} images/s (no resize)")
            result["torch_images_per_second"] = round(t["samples_per_second"], 3)
            result["jax_over_torch"] = round(jax_run["samples_per_second"] / t["samples_per_second"], 3)
            print(f"jax / torch: {result['jax_over_torch']:.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
