"""What the spread and KID add to one FID evaluation (the evaluate stage scores every (run, L)).

    python benchmarks/fid_spread.py [--n 100] [--ref 1000] [--repeats 3]

On random 2048-d features (the cost does not depend on the values): the point FID from the
statistics (the eigh route the metric uses; baseline), the grouped jackknife of its spread
(eval.jackknife_groups = 100: leave-one-out at n = 100), the once-per-reference square root, and
KID (100 subsets). Median of `repeats` runs each; ratios against the point FID of the same run.
The Inception forward pass of the n images (about 16 s for 100 on 2 cores) is not included.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from elt.evaluation import fid as fid_mod
from elt.evaluation.kid import kernel_distance
from elt.evaluation.spread import jackknife_fid, psd_sqrt

D = 2048


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="samples scored (sample.num_samples)")
    ap.add_argument("--ref", type=int, default=1000, help="reference images (eval.ref_num_images)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(args.ref, D)).astype(np.float32)
    feats = (rng.normal(size=(args.n, D)) * 1.1 + 0.05).astype(np.float32)
    mu_r, s_r, _ = fid_mod.stats_from_features(ref)

    def point():
        mu, s, _ = fid_mod.stats_from_features(feats)
        return fid_mod.frechet_distance(mu, s, mu_r, s_r, method="eigh")

    t_point, value = timed(point, args.repeats)
    t_sqrt, root = timed(lambda: psd_sqrt(s_r), args.repeats)
    t_jack, spread = timed(lambda: jackknife_fid(feats, mu_r, s_r, value, 100, seed=0, ref_sqrt=root), args.repeats)
    t_kid, kid = timed(lambda: kernel_distance(feats, ref, num_subsets=100, seed=0), args.repeats)
    result = {
        "n": args.n, "ref": args.ref, "dim": D, "load_before": round(load, 2),
        "point_fid_seconds": t_point, "reference_sqrt_seconds_once": t_sqrt,
        "jackknife_seconds": t_jack, "kid_seconds": t_kid,
        "jackknife_over_point": t_jack / t_point, "kid_over_point": t_kid / t_point,
        "fid": value, "fid_std": spread["fid_std"], "kid": kid["kid"],
    }
    print(f"point FID {t_point:.3f} s | jackknife (100 groups) {t_jack:.3f} s "
          f"({t_jack / t_point:.2f}x) | KID {t_kid:.3f} s ({t_kid / t_point:.2f}x) | "
          f"reference sqrt once {t_sqrt:.2f} s | load {load:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
