"""Preview of sampled clips: one animated GIF whose frame k tiles frame k of every clip.

The layout is the image sample grid's (stages/sample.py ``image_grid``): clips row-major, ``ncol``
per row, 2-pixel white gaps and border. GIF stores at most 256 colours per frame (Pillow picks an
adaptive palette per frame, exact when a frame has <= 256 colours) and delays in 1/100 s; that is
enough for looking at samples, which is all this is for (metrics read the arrays, not the GIF).
Pillow folds a frame identical to the one before into it (the delay adds up), so a clip that stands
still for a while gives fewer stored frames, same playing time.
"""

from __future__ import annotations

import os

import numpy as np


def tile_frames(clips: np.ndarray, ncol: int) -> np.ndarray:
    """uint8 clips [n, T, H, W, C] -> uint8 frames [T, rows*(H+2)+2, ncol*(W+2)+2, C]."""
    n, T, h, w, c = clips.shape
    nrow = -(-n // ncol)
    canvas = np.full((T, nrow * (h + 2) + 2, ncol * (w + 2) + 2, c), 255, np.uint8)
    for i, clip in enumerate(clips):
        r, q = divmod(i, ncol)
        canvas[:, 2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + q * (w + 2) : 2 + q * (w + 2) + w] = clip
    return canvas


def save_clip_grid(clips, path: str | os.PathLike, ncol: int, fps: float = 8.0) -> None:
    """Write uint8 clips [n, T, H, W, 3] (or [..., 1], grey) as one looping animated GIF grid."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.dtype != np.uint8 or clips.shape[-1] not in (1, 3) or not len(clips):
        raise ValueError(f"clips must be uint8 [n >= 1, T, H, W, 3 or 1], got {clips.dtype} {list(clips.shape)}")
    if ncol < 1:
        raise ValueError(f"ncol must be >= 1, got {ncol}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames = tile_frames(clips, ncol)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:],
        duration=max(1, round(1000 / fps)), loop=0,
    )
