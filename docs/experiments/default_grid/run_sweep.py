"""A recorded sweep around the default grid: does ILSD's any-time effect show at CPU scale?

    python docs/experiments/default_grid/run_sweep.py [--variants A,B,C] [--root /tmp/elt-sweep]

Each variant is params.yaml with a few overrides and a grid of one ILSD run and its vanilla twin
(N=2, L_max=3, sampled at L = 1..5). It is reproduced by the real pipeline (`dvc repro`) in its
own copy of the repository; all copies share one DVC cache, so the stages the variants have in
common (data, tokenizer, tokens, reference statistics, floor) run once and are restored from
DVC's run cache after that. The script prints and writes results.json and results.md beside
itself: FID ± jackknife std per L, the held-out per-exit losses, and the ILSD-vs-vanilla verdicts
of the aggregate (|gap| > 2 x combined std).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CODE = ["elt", "stages", "dvc.yaml", "pyproject.toml", ".dvcignore", ".gitignore"]

PAIR = {
    "2x3-elt": {"family": "maskgit", "N": 2, "L_max": 3, "ilsd": True},
    "2x3-vanilla": {"family": "maskgit", "N": 2, "L_max": 3, "ilsd": False},
}
# name -> (what it tests, scale, overrides of params.yaml sections)
VARIANTS = {
    "A": ("the default: scale tiny, 1,200 steps", "tiny", {}),
    "B": ("training length: 2x the steps", "tiny", {"train": {"steps": 2400}}),
    "C": ("model width: scale small (d 128)", "small", {}),
}


def variant_params(scale: str, overrides: dict) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in overrides.items():
        raw[section] = {**raw[section], **values}
    raw["grid"] = {f"{scale}-{name}": {"scale": scale, **point} for name, point in PAIR.items()}
    return raw


def run(cmd, cwd, log):
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=f, stderr=subprocess.STDOUT)


def make_copy(dest: Path, params: dict, cache: Path) -> None:
    if dest.exists():  # rerun: keep its outputs, DVC reruns only what changed
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        return
    dest.mkdir(parents=True)
    for name in CODE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = dest / "sweep.log"
    run(["git", "init", "-q"], dest, log)
    run(["dvc", "init", "-q"], dest, log)
    run(["dvc", "cache", "dir", str(cache)], dest, log)


def collect(repo: Path, scale: str) -> dict:
    out = {}
    for name in PAIR:
        run_name = f"{scale}-{name}"
        ev = json.loads((repo / "runs" / run_name / "eval.json").read_text())
        train = json.loads((repo / "runs" / run_name / "train" / "metrics.json").read_text())
        out[name] = {
            "fid": {L: [v["fid"], v.get("fid_std")] for L, v in ev["per_loop"].items()},
            "exit_loss": train["held_out_loss_per_exit"],
            "exit_loss_data": train.get("exit_loss_data"),
        }
    out["summary"] = (repo / "results" / "summary.md").read_text()
    floor = repo / "data" / "floor" / "floor.json"
    out["floor"] = json.loads(floor.read_text()) if floor.exists() else None
    return out


def markdown(results: dict) -> str:
    lines = ["| variant | run | " + " | ".join(f"FID L={L}" for L in range(1, 6))
             + " | exit loss L=1 / 2 / 3 (held-out) | repro s |",
             "|---|---|" + "---:|" * 5 + "---|---:|"]
    for key, r in results.items():
        for name in PAIR:
            fid = r[name]["fid"]
            cells = [f"{fid[str(L)][0]:.1f} ± {fid[str(L)][1]:.1f}" if str(L) in fid else "-"
                     for L in range(1, 6)]
            losses = " / ".join(f"{v:.3f}" for v in r[name]["exit_loss"].values())
            lines.append(f"| {key}: {r['what']} | {name} | " + " | ".join(cells)
                         + f" | {losses} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--root", default="/tmp/elt-sweep")
    args = ap.parse_args()
    root = Path(args.root)
    cache = root / "dvc-cache"
    cache.mkdir(parents=True, exist_ok=True)
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for key in args.variants.split(","):
        what, scale, overrides = VARIANTS[key]
        repo = root / key
        make_copy(repo, variant_params(scale, overrides), cache)
        load = os.getloadavg()[0]
        t = time.time()
        print(f"variant {key} ({what}): dvc repro in {repo} (load {load:.2f})", flush=True)
        run(["dvc", "repro"], repo, repo / "sweep.log")
        results[key] = {"what": what, "scale": scale, "overrides": overrides,
                        "seconds": time.time() - t, "load_before": load, **collect(repo, scale)}
        results_path.write_text(json.dumps(results, indent=1))
        (HERE / "results.md").write_text(markdown(results))
        print(markdown({key: results[key]}), flush=True)
    print(f"-> {results_path}, {HERE / 'results.md'}")


if __name__ == "__main__":
    sys.exit(main())
