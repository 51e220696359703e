"""Stage tokenize: Beam pipeline, data set split -> data/tokens/ (TFRecord shards + manifest)."""
import sys

if __name__ != "__main__":
  # Every script in stages/ has this folder first on sys.path, so the stdlib's own
  # `import tokenize` (inspect, linecache, ...) lands here. Load the real module in our place.
  import importlib.util
  import sysconfig
  _spec = importlib.util.spec_from_file_location(
      "tokenize", f"{sysconfig.get_paths()['stdlib']}/tokenize.py")
  _real = importlib.util.module_from_spec(_spec)
  sys.modules[__name__] = _real
  _spec.loader.exec_module(_real)
else:
  from pathlib import Path
  # Same clash from this side: drop stages/ from the path before importing anything heavy.
  sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

  import argparse
  import json

  import yaml

  from elt.data.beam_tokenize import run

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
                   read_size=int(tz.get("read_size", 1024)),
                   runner=tz.get("runner", "DirectRunner"),
                   direct_num_workers=int(tz.get("direct_num_workers", 2)),
                   direct_running_mode=tz.get("direct_running_mode", "multi_threading"),
                   pipeline_flags=list(tz.get("pipeline_options") or []))
    print(json.dumps({k: v for k, v in manifest.items() if k != "shards"}, indent=2))

  main()
