"""Stage tokenize: Beam pipeline, data set split -> data/tokens/ (TFRecord shards + manifest)."""
import sys
# This file is named like the stdlib `tokenize` (which `inspect` imports): drop its own folder
# from the import path first, or Python would import this script as `tokenize`.
from pathlib import Path as _Path
sys.path[:] = [p for p in sys.path if _Path(p or ".").resolve() != _Path(__file__).resolve().parent]
import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from elt.data.beam_tokenize import run  # noqa: E402


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--params", default="params.yaml")
  ap.add_argument("--tokenizer", default="data/tokenizer")
  ap.add_argument("--out", default="data/tokens")
  args = ap.parse_args()
  params = yaml.safe_load(Path(args.params).read_text())
  data, tz = params["data"], params["tokenize"]
  manifest = run(data["dataset"], data.get("train_split", "train"), data["data_dir"],
                 int(data["image_size"]), args.tokenizer, args.out,
                 batch_size=int(tz["batch_size"]), num_shards=int(tz["num_shards"]),
                 runner=tz.get("runner", "DirectRunner"),
                 direct_num_workers=int(tz.get("direct_num_workers", 2)),
                 direct_running_mode=tz.get("direct_running_mode", "multi_threading"),
                 pipeline_flags=list(tz.get("pipeline_options") or []))
  print(json.dumps({k: v for k, v in manifest.items() if k != "shards"}, indent=2))


if __name__ == "__main__":
  main()
