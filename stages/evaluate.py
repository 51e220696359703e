"""Stage evaluate@RUN: the family's quality metric (FID for images, with its spread and KID) of
every sampling point (L, guidance scale) against the cached reference statistics, inference GFLOPs
(the family's formula), parameter counts and sampling throughput -> runs/RUN/eval.json.

    python stages/evaluate.py --params params.yaml --run small-2x3-elt

eval.json `per_loop[L]` is the best guidance scale at that L (lowest metric, as the paper reports
CFG-swept models), with `cfg_scale` naming it and `by_cfg` holding every scale's result.

Resumes per point: each point's result is kept in .elt_work/evaluate/RUN/<hash>/<point>.json (hash
of the reference statistics, the weights, the eval settings and the evaluation code; the file also
records the sha256 of the <point>.npz it was computed from). A rerun recomputes only the points
whose result is missing or was computed from other samples, and builds no network when none is.
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
    ap.add_argument("--ref", default="data/ref_stats", help="reference statistics, one folder per metric")
    ap.add_argument("--samples", default=None, help="default: runs/RUN/samples")
    ap.add_argument("--out", default=None, help="default: runs/RUN/eval.json")
    ap.add_argument("--work", default=".elt_work/evaluate", help="per-L results live here")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    params.point(args.run)  # an unknown run name fails here, naming it
    from elt.core.hosts import is_main

    if not is_main():  # one process evaluates and writes; the others have nothing to add yet
        return
    family_cfg = params.family(args.run)
    metric_name = family_cfg.quality_metric
    run_dir = Path("runs") / args.run
    samples = Path(args.samples or run_dir / "samples")
    ref_dir = Path(args.ref) / metric_name
    from elt.evaluation import metrics

    metric = metrics.from_eval(metric_name, params.eval)  # FID: eval.weights; FVD: eval.fvd_weights
    metrics.check_weights(metric)
    for need in (run_dir / "train" / "model.json", samples / "timing.json", ref_dir):
        if not need.exists():
            raise SystemExit(f"{need}: missing (run the stages before evaluate@{args.run})")
    from elt.integrity import listed_files, verify_manifest

    # Every input against its manifest before any compute (the weights are SHA1-checked on load).
    verify_manifest(run_dir / "train", "checkpoint", f"rerun `dvc repro -f train@{args.run}`")
    verify_manifest(samples, "samples", f"rerun `dvc repro -f sample@{args.run}`")
    verify_manifest(Path(args.ref), "reference statistics", "rerun `dvc repro -f ref_stats`")

    import numpy as np

    from elt import families
    from elt.config import config_hash
    from elt.tracking import RunTracker
    from elt.workdir import atomic_write_text, remove_stale_tmp, sha256_file, sha256_tree

    meta = json.loads((run_dir / "train" / "model.json").read_text())
    timing = json.loads((samples / "timing.json").read_text())
    # the settings the samples were made with (not params.yaml: a sampling edit reruns sampling,
    # which reruns this stage through its output)
    sampling = json.loads((samples / "sampling.json").read_text())
    sample_cfg = families.config_module(meta["family"]).SampleConfig(**sampling["sample"])
    flops = families.module(meta["family"], "flops")
    cfg = families.module(meta["family"], "model").model_from_config(meta["config"]).cfg
    points = {p["name"]: (int(p["L"]), float(p["cfg_scale"])) for p in sampling["points"]}
    ref_files = {k: v["sha256"] for k, v in listed_files(Path(args.ref)).items() if k.startswith(f"{metric_name}/")}
    ident = {
        "run": args.run,
        "ref": ref_files,  # verified above
        "weights": sha256_file(metric.weights),
        "eval": {"batch_size": metric.batch_size, "metric": metric_name, "method": getattr(metric, "method", None),
                 "settings": getattr(metric, "settings", None)},
        "code": sha256_tree([ROOT / "stages" / "evaluate.py", ROOT / "elt" / "evaluation"], root=ROOT),
    }
    work = Path(args.work) / args.run / config_hash(ident)
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(work)
    atomic_write_text(work / "key.json", json.dumps(ident, indent=1))
    listed = listed_files(samples)  # hashed by verify_manifest already: no second read
    npz_hash = {name: listed[f"{name}.npz"]["sha256"] for name in points}
    cached = {}
    for name in points:
        try:
            entry = json.loads((work / f"{name}.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("samples_sha256") == npz_hash[name] and "result" in entry:
            cached[name] = entry["result"]
    if cached:
        print(f"evaluate@{args.run}: resuming: {','.join(cached)} already done ({work})", flush=True)

    spread = getattr(metric, "spread_key", None)
    scored = {}  # point name -> its result
    for name, (L, scale) in points.items():
        if name in cached:
            result = cached[name]
        else:  # the metric builds its network on the first point it scores
            images = np.load(samples / f"{name}.npz")["images"]
            result = dict(metric.score(images, ref_dir), num_samples=int(len(images)))
            entry = {"point": name, "samples_sha256": npz_hash[name], "result": result}
            atomic_write_text(work / f"{name}.json", json.dumps(entry, indent=1))
        scored[name] = {
            **result,
            "L": L,
            "cfg_scale": scale,
            "gflops": float(flops.sample_gflops(cfg, L, sample_cfg, scale)),
            "samples_per_second": timing[name]["samples_per_second"],
        }
        pm = f" +- {result[spread]:.2f}" if spread and result.get(spread) is not None else ""
        print(f"evaluate@{args.run}: {name} {metric_name.upper()}={result[metric_name]:.2f}{pm} "
              f"GFLOPs={scored[name]['gflops']:.4f}", flush=True)
    # Per L the best guidance scale (lowest metric), as the paper reports every model at its best
    # CFG. Choosing the minimum of noisy estimates favours luck slightly when several scales are
    # within noise of each other; `by_cfg` keeps every scale for a reader who wants to check.
    per_loop = {}
    for L in sorted({L for L, _ in points.values()}):
        at_L = {r["cfg_scale"]: r for r in scored.values() if r["L"] == L}
        best = min(at_L.values(), key=lambda r: r[metric_name])
        per_loop[str(L)] = {**best, "by_cfg": {f"{s:g}": at_L[s] for s in sorted(at_L)}}

    report = {
        "run": args.run,
        "metric": metric_name,  # per_loop[L][metric] is the quality number (lower is better)
        "modality": family_cfg.modality,
        "family": meta["family"],
        "scale": meta["scale"],
        "N": meta["N"],
        "L_max": meta["L_max"],
        "ilsd": meta["ilsd"],
        "kind": meta["kind"],
        "params": meta["params_block"],
        "params_total": meta["params_total"],
        "sampling_steps": sample_cfg.steps,
        "cfg_scales": sorted({s for _, s in points.values()}),
        "per_loop": per_loop,
    }
    out = Path(args.out or run_dir / "eval.json")
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)

    tracker = RunTracker.for_grid_point(args.run, stage="evaluate")
    # per L (the MLflow step): the metric at the best scale, its spread, KID/IS where the metric
    # gives them, the scale chosen, GFLOPs (multiply-adds) and throughput
    for name in (metric_name, spread, "kid", "kid_std", "is", "cfg_scale", "gflops", "samples_per_second"):
        history = {int(L): v[name] for L, v in per_loop.items() if name and v.get(name) is not None}
        if history:
            tracker.log_metric_history(name, history)
    tracker.log_metrics({"params_block": meta["params_block"], "params_total": meta["params_total"]})
    tracker.log_artifact(str(out))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
