"""Stage floor: the real-data floor of every quality metric the grid uses, once per dataset.

    python stages/floor.py --params params.yaml

For each metric: the metric of `sample.num_samples` held-out real images (`data.heldout_split`)
against the reference statistics, and of their reconstructions by the tokenizer of each family
the metric scores (data/tokenizer/FAMILY), over up to three disjoint draws (elt/evaluation/floor.py)
-> data/floor/floor.json, which the aggregate prints beside every table and figure. Without a
held-out split the file says so and holds no metric.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.config import load_params  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--ref", default="data/ref_stats")
    ap.add_argument("--tokenizers", default="data/tokenizer", help="folder of one tokenizer per family")
    ap.add_argument("--out", default="data/floor", help="folder: floor.json")
    args = ap.parse_args(argv)

    params = load_params(args.params)
    data, n = params.data, params.sample.num_samples
    out = Path(args.out)
    report = {"dataset": data.dataset, "split": data.heldout_split, "num_samples": n, "metrics": {}}
    if data.heldout_split is None:
        report["reason"] = "no data.heldout_split: no held-out real images to measure a floor on"
    else:
        from tqdm import tqdm

        from elt.data.datasets import load_image_dataset
        from elt.evaluation import floor, metrics
        from elt.integrity import verify_manifest
        from elt.tokenizers import load_tokenizer

        heldout = load_image_dataset(data.dataset, data.heldout_split, data.data_dir, data.image_size)
        draws = floor.num_draws(len(heldout), n)
        if draws == 0:  # before any network is built
            raise SystemExit(f"data.heldout_split: {data.heldout_split!r} holds {len(heldout)} images, fewer "
                             f"than sample.num_samples={n}; a floor at another sample count is not comparable")
        verify_manifest(Path(args.ref), "reference statistics", "rerun `dvc repro -f ref_stats`")
        images, _ = heldout.read(0, len(heldout))
        ev = params.eval
        for name in params.quality_metrics():
            scored = sorted({p.family for p in params.grid.values()
                             if params.families[p.family].quality_metric == name})
            tokenizers = {f: load_tokenizer(str(Path(args.tokenizers) / f), require_manifest=True) for f in scored}
            metric = metrics.get(name)(ev.weights, batch_size=ev.batch_size, jackknife_groups=ev.jackknife_groups,
                                       kid_subsets=ev.kid_subsets, seed=ev.ref_seed)
            with tqdm(total=draws, desc=f"floor {name}", unit="draw") as bar:
                report["metrics"][name] = floor.real_data_floor(
                    metric, Path(args.ref) / name, images, tokenizers, n, seed=params.seed, progress=bar)
            result = report["metrics"][name]
            report["draws"] = result["draws"]
            recon = "; ".join(f"{k}: {v['mean']:.2f}" for k, v in result.items() if k.startswith("reconstruction"))
            print(f"floor: {name.upper()} of {n} held-out real images {result['real']['mean']:.2f} "
                  f"(std over {draws} draws {result['real']['std'] or float('nan'):.2f}); {recon}", flush=True)
    # published whole or not at all: a killed run leaves only out.tmp, removed by the next one
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "floor.json").write_text(json.dumps(report, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
