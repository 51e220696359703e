"""Stage train_tokenizer@FAMILY: train the family's tokenizer (`families.FAMILY.tokenizer`, by
its kind: vq: VQ, vae: KL autoencoder, vq3d: 3-D VQ on clips of `video_data`) -> data/tokenizer/FAMILY/ (orbax + tokenizer.json +
metrics.json) and data/tokenizer_metrics/FAMILY.json. With its `checkpoint` set, the given
pretrained tokenizer (any registered kind; for vae also a Stable Diffusion VAE .safetensors file)
is copied or converted and evaluated instead.

    python stages/train_tokenizer.py --params params.yaml --family maskgit
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
    ap.add_argument("--out", default=None, help="default: data/tokenizer/FAMILY")
    # DVC metrics must live outside the cached `outs` folder: a copy of out/metrics.json.
    ap.add_argument("--metrics", default=None, help="default: data/tokenizer_metrics/FAMILY.json")
    args = ap.parse_args()
    params = load_params(args.params)
    family = params.grid_family(args.family)
    paths = family_paths(family.name)
    args.out, args.metrics = args.out or paths["tokenizer"], args.metrics or paths["tokenizer_metrics"]
    data, tk = params.data_for(family.name), family.tokenizer  # video_data for a video family
    if tk.kind == "vq3d" and tk.checkpoint:  # a given 3-D VQ, checked against video_data's clips
        from elt.tokenizers.pretrained import use_pretrained

        metrics = use_pretrained(tk.checkpoint, args.out, data.dataset, data.train_split, data.data_dir,
                                 data.image_size, key=f"families.{family.name}.tokenizer.checkpoint",
                                 clips=(data.num_frames, data.frame_stride))
    elif tk.kind == "vq3d":
        from elt.tokenizers.vq3d_train import train_vq3d

        metrics = train_vq3d(data.dataset, data.train_split, data.data_dir, args.out, tk)
    elif tk.kind == "vae":  # trains, or converts an SD .safetensors / copies a tokenizer folder
        from elt.tokenizers.vae_train import train_vae

        metrics = train_vae(data.dataset, data.train_split, data.data_dir, args.out, tk)
    elif tk.checkpoint:
        from elt.tokenizers.pretrained import use_pretrained

        metrics = use_pretrained(tk.checkpoint, args.out, data.dataset, data.train_split, data.data_dir, data.image_size,
                                 key=f"families.{family.name}.tokenizer.checkpoint")
    else:
        from elt.tokenizers.train import train_tokenizer

        metrics = train_tokenizer(data.dataset, data.train_split, data.data_dir, args.out, tk)
    from elt.integrity import write_manifest

    write_manifest(args.out)  # last, over metrics.json too: later stages check the folder against it
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2, sort_keys=True))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
