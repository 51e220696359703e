"""Train-step time and state memory per device on 1, 2, 4 and 8 simulated CPU devices, data
parallel (fsdp 1) and FSDP (fsdp = all devices), at a fixed global batch: what to expect when
moving a run to more devices. Each configuration runs in its own process
(XLA_FLAGS=--xla_force_host_platform_device_count=n).

    python benchmarks/mesh.py [--scale small] [--batch 32] [--repeats 5]

Simulated devices share this machine's cores, so the step times show the partitioning overhead,
not a speed-up; the state bytes per device are exact. Ratios are against 1 device in the same run.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from elt import families
from elt.config import MeshConfig, TrainConfig
from elt.core.mesh import make_mesh, shard_batch
from elt.core.train_step import create_train_state, make_train_step
from elt.families.maskgit.config import TrainConfig as MaskGITTrainConfig
d, mlp, heads, fsdp, batch, repeats = map(int, sys.argv[1:7])
model = families.module("maskgit", "model").model_from_config(
    dict(codebook_size=1024, num_classes=10, grid=(8, 8), d_model=d, num_heads=heads, mlp_dim=mlp, N=4))
tc = TrainConfig(batch_size=batch, steps=100, lr=1e-4, warmup_steps=1)
cfg = MeshConfig(data=-1, fsdp=fsdp)
mesh = make_mesh(cfg)
state = create_train_state(model, tc, jax.random.key(0), mesh, cfg)
step = make_train_step(families.module("maskgit", "losses"), model, tc, 3, True, MaskGITTrainConfig(), mesh, cfg)
rng = np.random.default_rng(0)
batch_ = shard_batch({"latents": rng.integers(0, 1024, (batch, 8, 8)).astype(np.int32),
                      "labels": rng.integers(0, 10, (batch,)).astype(np.int32)}, mesh)
state, m = step(state, batch_, jax.random.key(1)); jax.block_until_ready(m)
times = []
for i in range(repeats):
    t0 = time.perf_counter(); state, m = step(state, batch_, jax.random.key(i)); jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
dev0 = jax.devices()[0]
per_device = sum(s.data.nbytes for x in jax.tree.leaves(state) for s in x.addressable_shards if s.device == dev0)
total = sum(x.nbytes for x in jax.tree.leaves(state))
print(json.dumps({"step_ms": 1e3 * sorted(times)[len(times) // 2], "state_mb_per_device": per_device / 2**20,
                  "state_mb_total": total / 2**20}))
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    heads, mlp = max(1, args.d_model // 64), 4 * args.d_model
    result = {"benchmark": "mesh", "cpu_count": os.cpu_count(), "load_at_start": round(os.getloadavg()[0], 2),
              "d_model": args.d_model, "global_batch": args.batch, "configs": {}}
    for n in (1, 2, 4, 8):
        for fsdp in sorted({1, n}):
            env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu",
                       PYTHONPATH=str(ROOT))
            proc = subprocess.run([sys.executable, "-c", PROBE, str(args.d_model), str(mlp), str(heads), str(fsdp),
                                   str(args.batch), str(args.repeats)], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{n} devices, fsdp {fsdp}: {proc.stderr.strip().splitlines()[-1]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            key = f"{n}dev_fsdp{fsdp}"
            result["configs"][key] = {k: round(v, 2) for k, v in r.items()}
            base = result["configs"]["1dev_fsdp1"]
            print(f"{n} devices, fsdp {fsdp}: step {r['step_ms']:.1f} ms ({r['step_ms'] / base['step_ms']:.2f}x 1 device), "
                  f"state {r['state_mb_per_device']:.2f} MB/device of {r['state_mb_total']:.2f} MB", flush=True)
    base = result["configs"]["1dev_fsdp1"]
    result["step_over_one_device"] = {k: round(v["step_ms"] / base["step_ms"], 3) for k, v in result["configs"].items()}
    result["state_per_device_over_one_device"] = {
        k: round(v["state_mb_per_device"] / base["state_mb_per_device"], 3) for k, v in result["configs"].items()}
    result["load_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
