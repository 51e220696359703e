"""Stage evaluate@RUN: FID per loop count L against the cached reference statistics, inference
GFLOPs per L (by formula), parameter counts and sampling throughput -> runs/RUN/eval.json.

    python stages/evaluate.py --params params.yaml --run small-2x3-elt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.config import load_params  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--run", required=True)
    ap.add_argument("--ref", default="data/ref_stats/stats.npz")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    params.point(args.run)  # an unknown run name fails here, naming it
    run_dir = Path("runs") / args.run
    samples = run_dir / "samples"
    for need in (run_dir / "train" / "model.json", samples / "timing.json", Path(args.ref), Path(params.eval.weights)):
        if not need.exists():
            raise SystemExit(f"{need}: missing (run the stages before evaluate@{args.run})")

    import numpy as np

    from elt.evaluation.fid import FIDEvaluator, load_stats
    from elt.evaluation.flops import maskgit_sample_gflops
    from elt.models import build_model
    from elt.tracking import RunTracker

    meta = json.loads((run_dir / "train" / "model.json").read_text())
    timing = json.loads((samples / "timing.json").read_text())
    cfg = build_model(meta["family"], **meta["config"]).cfg
    ref_mu, ref_sigma, _ = load_stats(args.ref)
    evaluator = FIDEvaluator(params.eval.weights, batch_size=params.eval.batch_size)

    per_loop = {}
    for L in sorted(int(k) for k in timing):
        images = np.load(samples / f"L{L}.npz")["images"]
        # eigh: the same trace-sqrt as scipy's sqrtm (tested equal) in seconds instead of a minute
        result = evaluator.evaluate(images, ref_mu, ref_sigma, method="eigh")
        per_loop[str(L)] = {
            "fid": float(result["fid"]),
            "is": result.get("is"),
            "gflops": float(maskgit_sample_gflops(cfg, L, params.sample.steps, params.sample.cfg_scale)),
            "samples_per_second": timing[str(L)]["samples_per_second"],
            "num_samples": int(len(images)),
        }
        print(f"evaluate@{args.run}: L={L} FID={per_loop[str(L)]['fid']:.2f} GFLOPs={per_loop[str(L)]['gflops']:.4f}", flush=True)

    report = {
        "run": args.run,
        "family": meta["family"],
        "scale": meta["scale"],
        "N": meta["N"],
        "L_max": meta["L_max"],
        "ilsd": meta["ilsd"],
        "kind": meta["kind"],
        "params": meta["params_block"],
        "params_total": meta["params_total"],
        "sampling_steps": params.sample.steps,
        "cfg_scale": params.sample.cfg_scale,
        "per_loop": per_loop,
    }
    out = run_dir / "eval.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)

    tracker = RunTracker.for_grid_point(args.run, stage="evaluate")
    for name in ("fid", "gflops", "samples_per_second"):
        tracker.log_metric_history(name, {int(L): v[name] for L, v in per_loop.items()})
    if any(v["is"] is not None for v in per_loop.values()):
        tracker.log_metric_history("is", {int(L): v["is"] for L, v in per_loop.items() if v["is"] is not None})
    tracker.log_metrics({"params_block": meta["params_block"], "params_total": meta["params_total"]})
    tracker.log_artifact(str(out))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
