"""Stage prepare_data: build/check the data set in data.data_dir (digits is built offline)."""
import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from elt.data.prepare import prepare  # noqa: E402


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--params", default="params.yaml")
  args = ap.parse_args()
  data = yaml.safe_load(Path(args.params).read_text())["data"]
  info = prepare(data["dataset"], data["data_dir"], int(data["image_size"]),
                 split=data.get("train_split", "train"))
  print(json.dumps(info, indent=2))


if __name__ == "__main__":
  main()
