"""Throughput of a jitted function, timed on finished results (JAX dispatch is asynchronous)."""
from __future__ import annotations

import time
from typing import Callable

import jax


def measure_samples_per_second(fn: Callable, *args, samples_per_call: int | None = None, warmup: int = 1,
                               repeats: int = 3, **kwargs) -> dict:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times (compilation), then ``repeats`` timed times.

    ``samples_per_call`` defaults to the leading dimension of the first argument. Returns
    {"samples_per_second" (median call), "seconds_per_call", "times", "samples_per_call"}.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    if samples_per_call is None:
        if not args or not hasattr(args[0], "shape") or len(args[0].shape) == 0:
            raise ValueError("samples_per_call not given and the first argument has no batch dimension")
        samples_per_call = int(args[0].shape[0])
    for _ in range(warmup):
        jax.block_until_ready(fn(*args, **kwargs))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args, **kwargs))
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    return {
        "samples_per_second": samples_per_call / median,
        "seconds_per_call": median,
        "times": times,
        "samples_per_call": samples_per_call,
    }
