"""FID Inception throughput on this CPU: our network (the backend ``auto`` picks, and JAX/XLA for
comparison) vs TensorFlow's Keras InceptionV3 (same architecture, random weights, oneDNN) and vs
the TorchScript network in torch, all on the same preprocessed 299x299 batch in the same run.

    python benchmarks/fid.py [--batch-size 16] [--image-size 32] [--repeats 3] [--torch-python PY]

Torch is not a project dependency: the comparison runs it in a subprocess with --torch-python
(default: $ELT_TORCH_PYTHON, else /tmp/torchvenv/bin/python, else this interpreter); when none
imports torch, the ratio is skipped with the reason in the JSON. Ratios: over_tf (ours / Keras),
over_torch (ours / torch), jax_over_torch (the XLA backend / torch). Last line: one JSON object.
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


KERAS_TIMING = r"""
import json, sys, time, numpy as np, tensorflow as tf
model = tf.keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3))
run = tf.function(lambda x: model(x, training=False))
x = tf.constant(np.load(sys.argv[1]))
run(x).numpy(); run(x).numpy()
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter(); run(x).numpy(); times.append(time.perf_counter() - t0)
med = sorted(times)[len(times) // 2]
print(json.dumps({"samples_per_second": x.shape[0] / med, "tensorflow": tf.__version__}))
"""


def _subprocess_rate(cmd: list[str]) -> tuple[dict | None, str]:
    """Run a timing snippet in its own process (its own threads and memory) -> (result, error)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr[-300:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


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
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch_size, args.image_size, args.image_size, 3)).astype(np.uint8)
    x = np.asarray(preprocess_uint8(images))
    result = {"benchmark": "fid_inception", "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
              "load_at_start": round(os.getloadavg()[0], 2), "batch_size": args.batch_size,
              "image_size": args.image_size}
    ours = InceptionFeatures(weights, batch_size=args.batch_size)
    backends = {"ours": ours} if ours.backend == "jax" else {
        "ours": ours, "jax": InceptionFeatures(weights, batch_size=args.batch_size, backend="jax")}
    rates = {}
    for name, ex in backends.items():
        run = measure_samples_per_second(ex.features_from_preprocessed, x, warmup=1, repeats=args.repeats)
        rates[name] = run["samples_per_second"]
        print(f"{name} ({ex.backend}), batch {args.batch_size}: {rates[name]:.2f} images/s (preprocessed 299x299)")
    uint8 = measure_samples_per_second(ours.batch_from_uint8, images, warmup=1, repeats=args.repeats)
    print(f"ours ({ours.backend}) from uint8 {args.image_size}x{args.image_size} incl. TF1 resize: "
          f"{uint8['samples_per_second']:.2f} images/s")
    result.update(backend=ours.backend, images_per_second=round(rates["ours"], 3),
                  images_per_second_from_uint8=round(uint8["samples_per_second"], 3),
                  jax_images_per_second=round(rates.get("jax", rates["ours"]), 3))

    with tempfile.TemporaryDirectory() as tmp:
        x_path = os.path.join(tmp, "x.npy")
        np.save(x_path, x)
        keras, err = _subprocess_rate([sys.executable, "-c", KERAS_TIMING, x_path, str(args.repeats)])
        if keras is None:
            result.update(over_tf=None, over_tf_skipped=f"Keras InceptionV3 run failed: {err}")
        else:
            print(f"Keras InceptionV3 (TensorFlow {keras['tensorflow']}, oneDNN): "
                  f"{keras['samples_per_second']:.2f} images/s")
            result.update(tf_images_per_second=round(keras["samples_per_second"], 3),
                          over_tf=round(rates["ours"] / keras["samples_per_second"], 3))
        py = _torch_python(args.torch_python)
        torch, err = (None, "no Python with torch found (set --torch-python or $ELT_TORCH_PYTHON)") if py is None \
            else _subprocess_rate([py, "-c", TORCH_TIMING, str(weights), x_path, str(args.repeats)])
        if torch is None:
            result.update(over_torch=None, jax_over_torch=None, over_torch_skipped=err)
        else:
            print(f"TorchScript in torch {torch['torch']} ({torch['threads']} threads): "
                  f"{torch['samples_per_second']:.2f} images/s")
            result.update(torch_images_per_second=round(torch["samples_per_second"], 3),
                          over_torch=round(rates["ours"] / torch["samples_per_second"], 3),
                          jax_over_torch=round(result["jax_images_per_second"] / torch["samples_per_second"], 3))
    result["load_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
