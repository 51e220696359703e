"""Stage tokenize: Beam pipeline, data set split -> data/tokens/ (TFRecord shards + manifest),
each example stored as an array by the tokenizer's latent spec (manifest "spec": shape, dtype,
vocab_size).

    python stages/tokenize_data.py --params params.yaml

(Not named tokenize.py: a script's folder comes first on sys.path, and a stages/tokenize.py
would shadow the standard library's `tokenize`, which inspect and linecache import.)
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elt.config import load_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--tokenizer", default="data/tokenizer")
    ap.add_argument("--out", default="data/tokens")
    args = ap.parse_args()
    params = load_params(args.params)  # validated before any compute
    data, tz = params.data, params.tokenize

    from elt.data.beam_tokenize import run

    manifest = run(
        data.dataset, data.train_split, data.data_dir, data.image_size, args.tokenizer, args.out,
        batch_size=tz.batch_size, num_shards=tz.num_shards, read_size=tz.read_size,
        runner=tz.runner, direct_num_workers=tz.direct_num_workers,
        direct_running_mode=tz.direct_running_mode, pipeline_flags=list(tz.pipeline_options),
    )
    print(json.dumps({k: v for k, v in manifest.items() if k != "shards"}, indent=2))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
