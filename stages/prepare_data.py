"""Stage prepare_data: build/check the data set in data.data_dir (digits is built offline).

    python stages/prepare_data.py --params params.yaml
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elt.config import load_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    data = load_params(args.params).data

    from elt.data.prepare import prepare

    info = prepare(data.dataset, data.data_dir, data.image_size, split=data.train_split)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
