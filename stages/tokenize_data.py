"""Stage tokenize@FAMILY: Beam pipeline, data set split -> data/tokens/FAMILY/ (TFRecord shards
+ manifest), each example stored as an array by the family tokenizer's latent spec (manifest
"spec": shape, dtype, vocab_size): `data.train_split` into data/tokens/FAMILY, `data.heldout_split`
(same pipeline, same format) into data/tokens_heldout/FAMILY. Without a held-out split (null)
the latter holds a manifest of no examples (split null, no shards), so the output DVC declares
always exists. A video family reads `video_data` instead of `data` (clips, by its clip rule).

    python stages/tokenize_data.py --params params.yaml --family maskgit

(Not named tokenize.py: a script's folder comes first on sys.path, and a stages/tokenize.py
would shadow the standard library's `tokenize`, which inspect and linecache import.)
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elt.config import family_paths, load_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--family", default=None, help="a family of the grid (default: the grid's only one)")
    ap.add_argument("--tokenizer", default=None, help="default: data/tokenizer/FAMILY")
    ap.add_argument("--out", default=None, help="default: data/tokens/FAMILY")
    ap.add_argument("--heldout-out", default=None,
                    help="default: data/tokens_heldout/FAMILY, or OUT_heldout when --out is given")
    args = ap.parse_args()
    params = load_params(args.params)  # validated before any compute
    family = params.grid_family(args.family).name
    paths = family_paths(family)
    args.tokenizer, args.out = args.tokenizer or paths["tokenizer"], args.out or paths["tokens"]
    data, tz = params.data_for(family), params.tokenize  # video_data for a video family
    heldout_out = args.heldout_out or (f"{args.out.rstrip('/')}_heldout" if args.out != paths["tokens"]
                                       else paths["tokens_heldout"])

    from elt.data.beam_tokenize import run, write_empty
    from elt.data.shards import spec_of

    def tokenize(split: str, out: str) -> dict:
        return run(
            data.dataset, split, data.data_dir, data.image_size, args.tokenizer, out,
            batch_size=tz.batch_size, num_shards=tz.num_shards, read_size=tz.read_size,
            runner=tz.runner, direct_num_workers=tz.direct_num_workers,
            direct_running_mode=tz.direct_running_mode, pipeline_flags=list(tz.pipeline_options),
        )

    manifest = tokenize(data.train_split, args.out)
    print(json.dumps({k: v for k, v in manifest.items() if k != "shards"}, indent=2))
    if data.heldout_split is None:
        write_empty(
            heldout_out, spec_of(manifest), num_classes=manifest["num_classes"],
            tokenizer=manifest["tokenizer"], dataset=data.dataset, image_size=data.image_size,
        )
        print(f"tokenize: no {params.data_key(family)}.heldout_split: {heldout_out} holds no examples", flush=True)
    else:
        held = tokenize(data.heldout_split, heldout_out)
        print(json.dumps({k: v for k, v in held.items() if k != "shards"}, indent=2))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
