"""Cost of the divergence checks of the train stage (run: python benchmarks/finite_check.py).

The train stage checks the loss of every logged step on the host (values it fetches for the log
anyway) and, before every checkpoint save, the parameters with one jitted reduction
(elt.core.finite.all_finite). This prints, for the default grid's tiny model (d 64, N=2,
L_max=3, batch 32) and for scale S: the median train step, the median all_finite call (compiled),
its one-time compile, and the ratio check/step, measured in this one run. The last line is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in ("", _HERE) and Path(p).resolve() != Path(_HERE)]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from elt import families  # noqa: E402
from elt.config import TrainConfig  # noqa: E402
from elt.core.finite import all_finite, nonfinite  # noqa: E402
from elt.core.train_step import create_train_state, make_train_step  # noqa: E402
from elt.families.maskgit.config import TrainConfig as MaskGITTrainConfig  # noqa: E402

SCALES = {"tiny": dict(d_model=64, mlp_dim=256, num_heads=4), "S": dict(d_model=384, mlp_dim=1536, num_heads=6)}


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure(scale: str) -> dict:
    model = families.module("maskgit", "model").model_from_config(
        dict(codebook_size=128, num_classes=10, grid=(8, 8), N=2, **SCALES[scale]))
    # The old TrainConfig defaults (lr 1e-4, label_drop 0.1, label_smoothing 0.1): the same step.
    tc = TrainConfig(batch_size=32, steps=1000, lr=1e-4, warmup_steps=10, label_drop=0.1)
    state = create_train_state(model, tc, jax.random.key(0))
    step = make_train_step(families.module("maskgit", "losses"), model, tc, 3, True, MaskGITTrainConfig())
    r1, r2 = jax.random.split(jax.random.key(1))
    batch = {"latents": jax.random.randint(r1, (32, model.seq_len), 0, 128).reshape(32, *model.cfg.grid),
             "labels": jax.random.randint(r2, (32,), 0, 10)}
    box = {"state": state}

    def one_step():
        box["state"], metrics = step(box["state"], batch, jax.random.key(2))
        return metrics

    one_step()  # compile
    t = time.perf_counter()
    jax.block_until_ready(all_finite(box["state"].params))
    compile_s = time.perf_counter() - t
    step_ms = _median_ms(one_step, 15)
    check_ms = _median_ms(lambda: all_finite(box["state"].params), 30)
    metrics = {k: float(v) for k, v in jax.device_get(one_step()).items()}
    t = time.perf_counter()
    for _ in range(1000):
        nonfinite(metrics)
    loss_check_us = (time.perf_counter() - t) * 1e3  # per call: ms/1000 = us
    return {"train_step_ms": round(step_ms, 2), "all_finite_ms": round(check_ms, 3),
            "all_finite_compile_s": round(compile_s, 2), "all_finite_over_step": round(check_ms / step_ms, 5),
            "loss_check_us": round(loss_check_us, 2)}


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    out = {scale: measure(scale) for scale in SCALES}
    for scale, m in out.items():
        print(f"{scale}: step {m['train_step_ms']} ms, all_finite {m['all_finite_ms']} ms "
              f"({m['all_finite_over_step']:.2%} of a step, once per checkpoint), compile {m['all_finite_compile_s']} s, "
              f"loss check {m['loss_check_us']} us per logged step", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
