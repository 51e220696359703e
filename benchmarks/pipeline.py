"""Benchmark the DVC pipeline: the default DAG from scratch, a no-op repro, and `dvc status` on a
grid of 50 points.

    python benchmarks/pipeline.py            # full: default params.yaml from scratch (~15 min)
    python benchmarks/pipeline.py --tiny     # the tiny test grid instead (a few minutes)

Runs in a temporary copy of the repository (git + DVC). Last line: one JSON object with
repro_seconds, noop_repro_seconds (target <= 5) and status_seconds (50-point grid).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_repo import dvc, env_for, make_repo, tiny_params  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="use the tiny test grid instead of params.yaml")
    ap.add_argument("--points", type=int, default=50)
    args = ap.parse_args()

    params = tiny_params() if args.tiny else yaml.safe_load((ROOT / "params.yaml").read_text())
    env = env_for({"MLFLOW_TRACKING_URI": ""})
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo", params)
        # Tracking goes to the copy's own embedded store; the timing covers everything.
        repro_s, _ = timed(lambda: dvc(repo, "repro", env=env, timeout=7200))
        print(f"dvc repro (from scratch): {repro_s:.1f} s", flush=True)
        noop_s, proc = timed(lambda: dvc(repo, "repro", env=env))
        assert "Running stage" not in proc.stdout, proc.stdout
        print(f"dvc repro (nothing changed): {noop_s:.2f} s", flush=True)

        big = dict(params)
        scale = next(iter(big["scales"]))
        big["grid"] = {f"p{i:02d}-{1 + i % 4}x{2 + i % 3}": {"family": "maskgit", "scale": scale, "N": 1 + i % 4, "L_max": 2 + i % 3, "ilsd": bool(i % 2)} for i in range(args.points)}
        repo50 = make_repo(Path(tmp) / "repo50", big)
        status_s, _ = timed(lambda: dvc(repo50, "status", env=env))
        print(f"dvc status ({args.points}-point grid, 3 stages each): {status_s:.2f} s", flush=True)

    print(json.dumps({
        "grid": "tiny" if args.tiny else "default",
        "repro_seconds": round(repro_s, 1),
        "noop_repro_seconds": round(noop_s, 2),
        "status_seconds": round(status_s, 2),
        "status_grid_points": args.points,
    }))


if __name__ == "__main__":
    main()
