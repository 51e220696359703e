"""Train-step and sampler benchmark of the ELT core (CPU-sized; run: python benchmarks/train_step.py
[--family maskgit|dit]; default maskgit).

Figures, all measured in this one run:
  ilsd_over_vanilla     ILSD step time / vanilla-looping step time, same N x L_max (target <= 1.03)
  looped_over_unique    N x L looped step / N*L unique-layer step, both on the L_max exit (target <= 1.05)
  mfu                   model FLOPs/s of the ILSD step (formula, the family's flops.py) / float32
                        matmul peak measured here with jnp.dot (target >= 0.5)
  sample_seconds_per_loop  {L: seconds for one batch of samples} for L = 1 .. L_max + 2
  peak_rss_mb           peak RSS of a train step at two L_max, with/without remat (one subprocess each)
Step times are the MINIMUM over interleaved repeats (configs alternate, and the matmul peak is
re-measured between rounds), so load from other processes on a shared machine hits every config
alike and the least-disturbed run counts. Because wall-clock MFU on a loaded machine measures the
load, ``mfu_cpu_time`` is also reported: FLOPs per process-CPU-second of the step over that of the
matmul (both use the same thread pool). Models use ``unroll=True`` (XLA CPU runs the backward of a
rolled scan markedly slower); ``step_ms.ilsd_rolled`` shows the rolled-scan ILSD step for reference.
The last line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Running a file from benchmarks/ puts that folder first on sys.path, where a module named like a
# stdlib one (benchmarks/tokenize.py) would shadow it; import from the repository root instead.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in ("", _HERE) and Path(p).resolve() != Path(_HERE)]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from elt import families  # noqa: E402
from elt.config import TrainConfig  # noqa: E402
from elt.core.train_step import create_train_state, make_train_step  # noqa: E402

# Scale S of the paper (d 384, MLP 1536, 6 heads): big enough that matmuls dominate. maskgit: 8x8
# tokens; dit: 16x16x4 latents in 2x2 patches (64 tokens too), so the two families compare.
MODELS = {
    "maskgit": dict(codebook_size=256, num_classes=10, grid=(8, 8), d_model=384, num_heads=6, mlp_dim=1536,
                    unroll=True),
    "dit": dict(latent_shape=(16, 16, 4), num_classes=10, d_model=384, num_heads=6, mlp_dim=1536, unroll=True),
}
# Memory probe: longer sequences (256 tokens) so activations, not weights, dominate RSS.
RSS_MODELS = {
    "maskgit": dict(codebook_size=256, num_classes=10, grid=(16, 16), d_model=256, num_heads=4, mlp_dim=1024, N=2),
    "dit": dict(latent_shape=(32, 32, 4), num_classes=10, d_model=256, num_heads=4, mlp_dim=1024, N=2),
}
FAMILY = "maskgit"  # set by --family before anything is built


def part(name):
    return families.module(FAMILY, name)


def build_model(**kw):
    return part("model").model_from_config(kw)


def family_train_config():
    return part("config").TrainConfig()


def sample_config():
    """The sampler at 24 network evaluations per sample, whatever the family."""
    return part("config").SampleConfig(steps=24)


def train_config(batch, steps, warmup_steps):
    """The old TrainConfig defaults (lr 1e-4, label_drop 0.1; label_smoothing 0.1 is the family's)."""
    return TrainConfig(batch_size=batch, steps=steps, lr=1e-4, warmup_steps=warmup_steps, label_drop=0.1)

N, L_MAX, BATCH = 2, 3, 16
REPEATS = 8
RSS_BATCH, RSS_L_MAX = 16, (2, 6)


def _batch(model, B, seed=0):
    """Random training data of the family's latents: token ids or Gaussian latents."""
    r1, r2 = jax.random.split(jax.random.key(seed))
    cfg = model.cfg
    if hasattr(cfg, "codebook_size"):
        latents = jax.random.randint(r1, (B, *cfg.grid), 0, cfg.codebook_size)
    else:
        latents = jax.random.normal(r1, (B, *cfg.latent_shape), jnp.float32)
    return {"latents": latents, "labels": jax.random.randint(r2, (B,), 0, cfg.num_classes)}


def _block(tree):
    jax.tree_util.tree_map(lambda x: x.block_until_ready(), tree)


class MatmulPeak:
    """float32 jnp.dot of two n x n matrices (2048 on CPU, 8192 on an accelerator; XLA's default
    precision, the same the model's matmuls use): GFLOP/s by wall clock and per CPU-second."""

    def __init__(self, n=None, dtype="float32"):
        # 2048^3 saturates a CPU; an accelerator needs bigger products to reach its peak.
        n = n or (2048 if jax.default_backend() == "cpu" else 8192)
        self.n, self.flops = n, 2 * n**3
        self.a = jnp.ones((n, n), dtype)  # the model's compute dtype: a bf16 model against the bf16 peak
        self.f = jax.jit(lambda a, b: a @ b)
        self.f(self.a, self.a).block_until_ready()
        self.wall, self.cpu = [], []

    def measure(self, repeats=3):
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            self.f(self.a, self.a).block_until_ready()
            self.wall.append(time.perf_counter() - t)
            self.cpu.append(time.process_time() - c)

    @property
    def gflops(self):
        return self.flops / min(self.wall) / 1e9

    @property
    def gflops_per_cpu_s(self):
        return self.flops / min(self.cpu) / 1e9


class StepRunner:
    def __init__(self, model_kw, L_max, ilsd, remat=False, batch=None):
        batch = batch or BATCH  # read at call time: --batch sets the module global
        self.model = build_model(**dict(model_kw, remat=remat))
        self.tc = train_config(batch, 1000, 10)
        self.state = create_train_state(self.model, self.tc, jax.random.key(0))
        self.step = make_train_step(part("losses"), self.model, self.tc, L_max, ilsd, family_train_config())
        self.batch = _batch(self.model, batch)
        self.times, self.cpu_times = [], []
        self.i = 0
        self.run()  # compile + warm-up

    def run(self):
        t, c = time.perf_counter(), time.process_time()
        self.state, m = self.step(self.state, self.batch, jax.random.key(self.i))
        _block((self.state, m))
        self.i += 1
        return time.perf_counter() - t, time.process_time() - c

    def timed(self):
        wall, cpu = self.run()
        self.times.append(wall)
        self.cpu_times.append(cpu)

    @property
    def best(self):
        return min(self.times)


def rss_probe(L_max: int, remat: bool) -> None:
    """Child process: two train steps, then print the peak RSS.

    ``after_init_mb`` (RSS once params and optimizer state exist, before the step is compiled)
    separates the fixed cost from what the step's activations and compilation add.
    """
    model = build_model(**dict(RSS_MODELS[FAMILY], remat=remat))
    tc = train_config(RSS_BATCH, 10, 1)
    state = create_train_state(model, tc, jax.random.key(0))
    _block(state)
    after_init = psutil.Process().memory_info().rss / 2**20
    step = make_train_step(part("losses"), model, tc, L_max, True, family_train_config())
    batch = _batch(model, RSS_BATCH)
    for i in range(2):
        state, m = step(state, batch, jax.random.key(i))
        _block((state, m))
    print(json.dumps({"peak_rss_mb": _peak_rss_mb(), "after_init_mb": after_init}))


def _peak_rss_mb() -> float:
    """Peak RSS of this process. Linux keeps ru_maxrss across fork+exec (a child started by a big
    parent reports at least the parent's RSS), so read this address space's own high-water mark
    (VmHWM) where /proc exists and fall back to ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    t_start = time.time()
    MODEL = MODELS[FAMILY]
    print(f"family {FAMILY}  devices: {jax.devices()}  model: {MODEL}  N={N} L_max={L_MAX} batch={BATCH}")
    peak = MatmulPeak(dtype=MODEL.get("dtype", "float32"))
    runners = {
        "ilsd": StepRunner(dict(MODEL, N=N), L_MAX, ilsd=True),
        "vanilla": StepRunner(dict(MODEL, N=N), L_MAX, ilsd=False),
        "unique": StepRunner(dict(MODEL, N=N * L_MAX), 1, ilsd=False),
        "ilsd_rolled": StepRunner(dict(MODEL, N=N, unroll=False), L_MAX, ilsd=True),
    }
    for _ in range(REPEATS):
        peak.measure()
        for r in runners.values():
            r.timed()
    best = {k: r.best for k, r in runners.items()}
    for k, r in runners.items():
        print(f"step {k:12s}: min {r.best * 1e3:8.1f} ms  (all: {[round(t * 1e3) for t in r.times]})")
    print(f"float32 matmul peak ({peak.n}^3 jnp.dot): {peak.gflops:.1f} GFLOP/s wall, "
          f"{peak.gflops_per_cpu_s:.1f} GFLOP per CPU-second")

    cfg = runners["ilsd"].model.cfg
    step_flops = part("flops").flops_per_train_step(cfg, L_MAX, BATCH, ilsd=True)
    achieved = step_flops / best["ilsd"] / 1e9
    mfu = achieved / peak.gflops
    mfu_cpu = step_flops / min(runners["ilsd"].cpu_times) / 1e9 / peak.gflops_per_cpu_s
    print(f"ILSD step model FLOPs {step_flops / 1e9:.1f} GFLOP -> {achieved:.1f} GFLOP/s, "
          f"MFU {mfu:.3f} (wall), {mfu_cpu:.3f} (CPU time)")
    ilsd_over_vanilla = best["ilsd"] / best["vanilla"]
    looped_over_unique = best["vanilla"] / best["unique"]
    print(f"ilsd_over_vanilla {ilsd_over_vanilla:.3f}  looped_over_unique {looped_over_unique:.3f}")

    # Sampling time per loop count: one compiled sampler, L passed at run time.
    sc = sample_config()
    model = runners["ilsd"].model
    params = runners["ilsd"].state.params
    sample = part("sampler").make_sampler(model, sc, cfg_scale=1.0)
    labels = jnp.arange(4, dtype=jnp.int32) % model.cfg.num_classes
    sample(params, labels, 1, jax.random.key(0)).block_until_ready()
    sample_seconds = {}
    for L in range(1, L_MAX + 3):
        times = []
        for rep in range(3):
            t = time.perf_counter()
            sample(params, labels, L, jax.random.key(rep)).block_until_ready()
            times.append(time.perf_counter() - t)
        sample_seconds[L] = round(min(times), 4)
        print(f"sample 4 images, K=24, L={L}: {sample_seconds[L]:.3f} s")
    if hasattr(sample, "_cache_size"):
        assert sample._cache_size() == 1, "sampler recompiled for a new L"
    # Sampling time should be linear in L (each step runs L loops of the block): the largest
    # relative deviation of a straight-line fit through all L.
    Ls = sorted(sample_seconds)
    slope, icpt = np.polyfit(Ls, [sample_seconds[L] for L in Ls], 1)
    linear_dev = max(abs(sample_seconds[L] - (slope * L + icpt)) / sample_seconds[L] for L in Ls)
    print(f"sampling linear in L: max deviation from a line {linear_dev:.3f} (target <= 0.10)")

    del runners, params, model
    rss = {}
    if jax.default_backend() != "cpu":
        # Host RSS says little about an accelerator run: report the device's own high-water mark.
        stats = jax.devices()[0].memory_stats() or {}
        rss["device_peak_mb"] = round(stats.get("peak_bytes_in_use", 0) / 2**20, 1)
        print(f"device peak memory {rss['device_peak_mb']:.0f} MB (host RSS probes skipped)")
    for L_max in RSS_L_MAX if jax.default_backend() == "cpu" else ():
        for remat in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--family", FAMILY, "--rss", str(L_max), str(int(remat))],
                capture_output=True, text=True, check=True,
            )
            probe = json.loads(out.stdout.strip().splitlines()[-1])
            key = f"L_max={L_max},remat={remat}"
            rss[key] = round(probe["peak_rss_mb"], 1)
            print(f"peak RSS {key}: {probe['peak_rss_mb']:.0f} MB (after init {probe['after_init_mb']:.0f} MB)")
    if jax.default_backend() == "cpu":
        print(f"RSS model {RSS_MODELS[FAMILY]}, batch {RSS_BATCH}, ILSD step")

    print(f"total benchmark time {time.time() - t_start:.0f} s")
    print(json.dumps({
        "family": FAMILY,
        "backend": jax.default_backend(),
        "batch": BATCH,
        "ilsd_over_vanilla": round(ilsd_over_vanilla, 4),
        "looped_over_unique": round(looped_over_unique, 4),
        "mfu": round(mfu, 4),
        "mfu_cpu_time": round(mfu_cpu, 4),
        "matmul_peak_gflops": round(peak.gflops, 1),
        "step_ms": {k: round(v * 1e3, 1) for k, v in best.items()},
        "sample_seconds_per_loop": sample_seconds,
        "sample_linear_max_deviation": round(float(linear_dev), 4),
        "peak_rss_mb": rss,
    }))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="maskgit", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, default=BATCH,
                    help=f"training batch of the step timings (default {BATCH}, CPU-sized; an accelerator "
                         "needs a few hundred to be busy)")
    ap.add_argument("--width", nargs=3, type=int, metavar=("D_MODEL", "MLP_DIM", "HEADS"),
                    help="another model width than scale S (384 1536 6), e.g. scale L: 1024 4096 16")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="compute dtype of the model (params stay float32) and of the matmul peak")
    ap.add_argument("--rss", nargs=2, type=int, metavar=("L_MAX", "REMAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    FAMILY, BATCH = args.family, args.batch
    if args.width:
        MODELS[FAMILY].update(d_model=args.width[0], mlp_dim=args.width[1], num_heads=args.width[2])
    if args.dtype != "float32":
        MODELS[FAMILY]["dtype"] = args.dtype
    if args.rss:
        rss_probe(args.rss[0], bool(args.rss[1]))
    else:
        main()
