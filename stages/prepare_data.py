"""Stage prepare_data: build/check the data set of `data` in data.data_dir (digits is built
offline), and that of `video_data` when the grid has a video family (moving_digits is built
offline; one clip of num_frames taken every frame_stride frames is decoded as a check).

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
    params = load_params(args.params)
    data = params.data

    from elt.data.prepare import prepare, prepare_video

    info = prepare(data.dataset, data.data_dir, data.image_size, split=data.train_split)
    print(json.dumps(info, indent=2))
    video = params.video_data
    if video is not None:  # set only when the grid has a video family
        info = prepare_video(video.dataset, video.data_dir, video.image_size, video.num_frames, video.frame_stride,
                             split=video.train_split)
        print(json.dumps({"video_data": info}, indent=2))


if __name__ == "__main__":
    from elt.errors import run_main

    sys.exit(run_main(main))
