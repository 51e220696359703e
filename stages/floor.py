"""Stage floor: the real-data floor of every quality metric the grid uses, once per dataset.

    python stages/floor.py --params params.yaml

For each metric: the metric of `sample.num_samples` held-out real images (`data.heldout_split`)
against the reference statistics, and of their reconstructions by the tokenizer of each family
the metric scores (data/tokenizer/FAMILY), over up to three disjoint draws (elt/evaluation/floor.py)
-> data/floor/floor.json, which the aggregate prints beside every table and figure. Without a
held-out split the file says so and holds no metric. FVD (video families) measures the same on
clips of `video_data.heldout_split` (elt/evaluation/real_data.py); metrics.<name> names the data.
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
    from elt.evaluation import metrics, real_data

    measured, reasons = {}, []
    for name in params.quality_metrics():
        key, of = real_data.data_config(params, name)
        if of.heldout_split is None:
            reasons.append(f"no {key}.heldout_split: no held-out real data to measure the {name} floor on")
        else:
            measured[name] = (key, of)
    if reasons:
        report["reason"] = "; ".join(reasons)
    if measured:
        from tqdm import tqdm

        from elt.evaluation import floor
        from elt.integrity import verify_manifest
        from elt.tokenizers import load_tokenizer

        heldout, built = {}, {}
        for name, (key, of) in measured.items():  # every input checked before any network is built
            heldout[name] = real_data.load(params, name, of.heldout_split)
            if floor.num_draws(len(heldout[name]), n) == 0:
                raise SystemExit(f"{key}.heldout_split: {of.heldout_split!r} holds {len(heldout[name])} examples, "
                                 f"fewer than sample.num_samples={n}; a floor at another sample count is not comparable")
            built[name] = metrics.from_eval(name, params.eval)
            metrics.check_weights(built[name])
        verify_manifest(Path(args.ref), "reference statistics", "rerun `dvc repro -f ref_stats`")
        for name, (key, of) in measured.items():
            tokenizers = {f: load_tokenizer(str(Path(args.tokenizers) / f), require_manifest=True)
                          for f in real_data.scored_families(params, name)}
            real, _ = heldout[name].read(0, len(heldout[name]))
            draws = floor.num_draws(len(real), n)
            with tqdm(total=draws, desc=f"floor {name}", unit="draw") as bar:
                result = floor.real_data_floor(
                    built[name], Path(args.ref) / name, real, tokenizers, n, seed=params.seed, progress=bar)
            report["metrics"][name] = {**result, "dataset": of.dataset, "split": of.heldout_split, "data": key}
            report["draws"] = result["draws"]
            recon = "; ".join(f"{k}: {v['mean']:.2f}" for k, v in result.items() if k.startswith("reconstruction"))
            print(f"floor: {name.upper()} of {n} held-out real examples of {key} {result['real']['mean']:.2f} "
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
