"""Video preview: the animated GIF grid of sampled clips (elt/tracking/video_preview.py)."""

import numpy as np
import pytest
from PIL import Image

from elt.tracking.video_preview import save_clip_grid, tile_frames


def _clips(n=5, T=4, h=6, w=7, c=3, seed=0):
    # Few colours (<= 256 per frame), so the GIF palette is exact and pixels compare equal.
    palette = np.random.default_rng(seed).integers(0, 256, (40, c), dtype=np.uint8)
    idx = np.random.default_rng(seed + 1).integers(0, len(palette), (n, T, h, w))
    return palette[idx]


def _read_gif(path):
    with Image.open(path) as im:
        frames, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info.get("duration"))
        return np.stack(frames), durations, im.info.get("loop")


def test_tile_layout_by_hand():
    clips = _clips(n=3, T=2, h=2, w=3)
    frames = tile_frames(clips, ncol=2)
    # 2 rows of (2 + 2) px + 2, 2 columns of (3 + 2) px + 2.
    assert frames.shape == (2, 2 * 4 + 2, 2 * 5 + 2, 3)
    np.testing.assert_array_equal(frames[:, 2:4, 2:5], clips[0])
    np.testing.assert_array_equal(frames[:, 2:4, 7:10], clips[1])
    np.testing.assert_array_equal(frames[:, 6:8, 2:5], clips[2])
    assert (frames[:, 6:8, 7:10] == 255).all()  # the empty cell stays white
    assert (frames[:, :2] == 255).all() and (frames[:, :, :2] == 255).all()


def test_gif_frames_size_and_pixels(tmp_path):
    clips = _clips(n=5, T=4, h=6, w=7)
    path = tmp_path / "grid.gif"
    save_clip_grid(clips, path, ncol=3, fps=10)
    frames, durations, loop = _read_gif(path)
    expected = tile_frames(clips, 3)
    assert len(frames) == 4  # one GIF frame per clip frame
    assert frames.shape[1:3] == (2 * 8 + 2, 3 * 9 + 2)  # 2 rows x 3 columns of 6x7 + gaps
    with Image.open(path) as im:
        assert im.size == (3 * 9 + 2, 2 * 8 + 2)  # PIL: (width, height)
    np.testing.assert_array_equal(frames[0], expected[0])
    np.testing.assert_array_equal(frames, expected)
    assert durations == [100] * 4 and loop == 0  # 10 fps, loops forever


def test_grey_clips_and_validation(tmp_path):
    grey = _clips(n=2, T=3, h=4, w=4, c=1)
    save_clip_grid(grey, tmp_path / "g.gif", ncol=2)
    frames, _, _ = _read_gif(tmp_path / "g.gif")
    np.testing.assert_array_equal(frames, np.repeat(tile_frames(grey, 2), 3, axis=-1))
    with pytest.raises(ValueError, match="uint8"):
        save_clip_grid(grey.astype(np.float32), tmp_path / "x.gif", ncol=2)
    with pytest.raises(ValueError, match=r"\[n >= 1, T, H, W"):
        save_clip_grid(grey[:, 0], tmp_path / "x.gif", ncol=2)  # images, not clips
    with pytest.raises(ValueError, match="ncol"):
        save_clip_grid(grey, tmp_path / "x.gif", ncol=0)
