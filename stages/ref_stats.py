"""Stage ref_stats: reference statistics of the real data for every quality metric the grid's
families use, computed once per dataset and resolution.

    python stages/ref_stats.py --params params.yaml

Reads `data` (dataset, image_size, data_dir) and `eval` (ref_split, ref_num_images, ref_seed,
batch_size, weights) from params.yaml; writes data/ref_stats/<metric>/ (for FID: stats.npz with mu,
sigma float64, n, up to 10,000 reference features float32 for KID, and what they are of: split
size, selection, seed, sha256 of the chosen indices) and data/ref_stats/info.json (the same record).

eval.ref_num_images null: the whole split; k: a random subset of k images of the split chosen by
index with seed eval.ref_seed (not the first k); k above the split size is an error naming the key.
"""
from __future__ import annotations

import os
import shutil
import sys

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.config import load_params  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/ref_stats")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    weights = Path(params.eval.weights)
    if not weights.is_file():
        raise SystemExit(f"eval.weights: {weights} missing (run `dvc repro fetch_fid_weights`)")

    from elt.data.datasets import load_image_dataset
    from elt.evaluation import metrics
    from elt.evaluation.reference import choose_subset
    from elt.integrity import write_manifest

    data = params.data
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")  # published whole, with its manifest, or not at all
    shutil.rmtree(tmp, ignore_errors=True)
    info = {"dataset": data.dataset, "split": params.eval.ref_split, "image_size": data.image_size, "metrics": {}}
    ev = params.eval
    info.update(ref_num_images=ev.ref_num_images, ref_seed=ev.ref_seed)
    for name in params.quality_metrics():
        metric = metrics.get(name)(weights, batch_size=ev.batch_size, jackknife_groups=ev.jackknife_groups,
                                   kid_subsets=ev.kid_subsets, seed=ev.ref_seed)
        dataset = load_image_dataset(data.dataset, ev.ref_split, data.data_dir, data.image_size)
        if ev.ref_num_images is not None:
            choose_subset(len(dataset), ev.ref_num_images, ev.ref_seed)  # k > split size: fail before any compute
        info["metrics"][name] = metric.reference(dataset, tmp / name, max_images=ev.ref_num_images)
    n = max(m["n"] for m in info["metrics"].values())
    info["n"] = n
    (tmp / "info.json").write_text(json.dumps(info, indent=1))
    write_manifest(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    first = next(iter(info["metrics"].values()))
    what = ""
    if first.get("selection") and first.get("split_size") is not None:
        what = (f", {first['selection']} of {first['split_size']} (seed {first.get('seed')}, indices sha256 "
                f"{str(first.get('indices_sha256'))[:12]})")
    print(f"ref_stats: {n} images of {data.dataset} (split {params.eval.ref_split}{what}) at {data.image_size}px, "
          f"metrics {', '.join(info['metrics'])} -> {out}")


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
