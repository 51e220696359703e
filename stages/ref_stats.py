"""Stage ref_stats: reference statistics of the real data for every quality metric the grid's
families use, computed once per dataset and resolution.

    python stages/ref_stats.py --params params.yaml

Reads `data` (dataset, image_size, data_dir) and `eval` (ref_split, ref_num_images, ref_seed,
batch_size, weights) from params.yaml; writes data/ref_stats/<metric>/ (for FID: stats.npz with mu,
sigma float64, n, up to 10,000 reference features float32 for KID, and what they are of: split
size, selection, seed, sha256 of the chosen indices) and data/ref_stats/info.json (the same record).
FVD (a video family in the grid): clips of `video_data.train_split` (eval.fvd_ref_clips of them),
I3D features by eval.fvd_weights (elt/evaluation/real_data.py).

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
    from elt.evaluation import metrics, real_data

    built = {name: metrics.from_eval(name, params.eval) for name in params.quality_metrics()}
    for metric in built.values():  # every weights file before any compute
        metrics.check_weights(metric)

    from elt.evaluation.reference import choose_subset
    from elt.integrity import write_manifest

    data = params.data
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")  # published whole, with its manifest, or not at all
    shutil.rmtree(tmp, ignore_errors=True)
    info = {"dataset": data.dataset, "split": params.eval.ref_split, "image_size": data.image_size, "metrics": {}}
    ev = params.eval
    info.update(ref_num_images=ev.ref_num_images, ref_seed=ev.ref_seed)
    datasets = {}
    for name in built:  # every split opened and its subset size checked before any compute
        split, num = real_data.reference_split(params, name)
        datasets[name] = real_data.load(params, name, split)
        if num is not None:
            choose_subset(len(datasets[name]), num, ev.ref_seed)  # k > split size: fail here
    for name, metric in built.items():
        split, num = real_data.reference_split(params, name)
        key, of = real_data.data_config(params, name)
        info["metrics"][name] = {
            **metric.reference(datasets[name], tmp / name, max_images=num),
            "dataset": of.dataset, "split": split, "data": key,
        }
    n = max(m["n"] for m in info["metrics"].values())
    info["n"] = n
    (tmp / "info.json").write_text(json.dumps(info, indent=1))
    write_manifest(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    for name, m in info["metrics"].items():
        what = ""
        if m.get("selection") and m.get("split_size") is not None:
            what = (f", {m['selection']} of {m['split_size']} (seed {m.get('seed')}, indices sha256 "
                    f"{str(m.get('indices_sha256'))[:12]})")
        unit = "clips" if built[name].modality == "video" else "images"
        print(f"ref_stats: {name}: {m['n']} {unit} of {m['dataset']} (split {m['split']}{what}) -> {out / name}")


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
