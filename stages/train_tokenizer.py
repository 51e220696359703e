"""Stage train_tokenizer: train the VQ tokenizer -> data/tokenizer/ (orbax + tokenizer.json +
metrics.json) and data/tokenizer_metrics.json. With tokenizer.checkpoint set, the given
pretrained tokenizer (any registered kind) is copied and evaluated instead."""
import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--params", default="params.yaml")
  ap.add_argument("--out", default="data/tokenizer")
  # DVC metrics must live outside the cached `outs` folder: a copy of out/metrics.json.
  ap.add_argument("--metrics", default="data/tokenizer_metrics.json")
  args = ap.parse_args()
  params = yaml.safe_load(Path(args.params).read_text())
  data, tk = params["data"], params["tokenizer"]
  if tk.get("checkpoint"):
    from elt.tokenizers.pretrained import use_pretrained  # pylint: disable=import-outside-toplevel
    metrics = use_pretrained(tk["checkpoint"], args.out, data["dataset"],
                             data.get("train_split", "train"), data["data_dir"],
                             int(data["image_size"]))
  else:
    if tk.get("kind", "vq") != "vq":
      raise SystemExit(f"tokenizer.kind {tk['kind']!r} cannot be trained here; give "
                       "tokenizer.checkpoint (a directory with tokenizer.json)")
    from elt.tokenizers.train import train_tokenizer  # pylint: disable=import-outside-toplevel
    metrics = train_tokenizer(
        data["dataset"], data.get("train_split", "train"), data["data_dir"],
        int(data["image_size"]), args.out, downsample=int(tk["downsample"]),
        codebook_size=int(tk["codebook_size"]), embed_dim=int(tk["embed_dim"]),
        channels=int(tk["channels"]), steps=int(tk["steps"]), batch_size=int(tk["batch_size"]),
        lr=float(tk["lr"]), commitment=float(tk["commitment"]), seed=int(tk["seed"]))
  Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
  Path(args.metrics).write_text(json.dumps(metrics, indent=2, sort_keys=True))
  print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
  main()
