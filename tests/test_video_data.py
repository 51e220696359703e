"""Video data sets: the moving_digits builder, the clip rule, folders of video files (PyAV), tfds
video names (mocked ucf101), and clear errors between image and video readers."""

import hashlib

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from elt.data import moving_digits
from elt.data.datasets import (
    ModalityError,
    dataset_modality,
    load_dataset,
    load_image_dataset,
    load_video_dataset,
)
from elt.data.video import clip_indices, make_clip, tf_clip_indices

T, SIZE = 8, 16  # a small moving_digits (builds in seconds)


@pytest.fixture(scope="module")
def md_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def md(md_dir):
    ds = load_video_dataset("moving_digits", "train", md_dir, SIZE, T)
    return ds, *ds.read(0, N)


N = 300  # clips read in full (all 1,797 take ~10 s more)


def test_moving_digits_builder(md, md_dir):
    ds, clips, labels = md
    bunch = load_digits()
    assert ds.modality == "video" and ds.num_frames == T and ds.image_size == SIZE
    assert ds.num_examples == 1797 and ds.num_classes == 10
    assert clips.shape == (N, T, SIZE, SIZE, 3) and clips.dtype == np.uint8
    np.testing.assert_array_equal(labels, bunch.target[:N])  # example i is scan i
    assert "moving_digits/8x16" in ds.identity and ds.identity.endswith(f":{SIZE}:{T}f/1")
    # Every clip is a fixed function of its index (PNG frames: the exact pixels).
    pick = np.r_[0:12, 250:256]
    np.testing.assert_array_equal(clips[pick], moving_digits.make_clips(bunch.images[pick], pick, T, SIZE))
    # One grey digit of half the canvas, inside it in every frame, and it moves.
    d = SIZE // 2
    assert (clips[..., 0] == clips[..., 2]).all()
    ink = clips[..., 0] > 0
    rows, cols = ink.any(axis=3), ink.any(axis=2)  # [n, T, S]
    assert (rows.sum(-1) <= d).all() and (cols.sum(-1) <= d).all()
    assert (ink.reshape(N, T, -1).sum(-1) == ink[:, :1].reshape(N, 1, -1).sum(-1)).all()
    assert (clips[:, 0] != clips[:, -1]).any(axis=(1, 2, 3)).mean() > 0.9
    # Trajectories bounce inside [0, L] with at most the speed of the convention (+ rounding).
    for i in range(50):
        p = moving_digits.trajectory(i, 40, SIZE - d)
        assert p.min() >= 0 and p.max() <= SIZE - d
        assert np.abs(np.diff(p, axis=0)).max() <= moving_digits.SPEED * (SIZE - d) + 1
    # Slices partition the split like the image data set's (train[:1497] / train[1497:]).
    head = load_video_dataset("moving_digits", "train[:1497]", md_dir, SIZE, T)
    tail = load_video_dataset("moving_digits", "train[1497:]", md_dir, SIZE, T)
    assert (head.num_examples, tail.num_examples) == (1497, 300)
    got, got_labels = tail.read(3, 9)
    pick = np.arange(1500, 1506)
    np.testing.assert_array_equal(got, moving_digits.make_clips(bunch.images[pick], pick, T, SIZE))
    np.testing.assert_array_equal(got_labels, bunch.target[pick])
    np.testing.assert_array_equal(head.read(250, 256)[0], clips[250:256])
    assert [label for _, label in head][:20] == labels[:20].tolist()
    with pytest.raises(ValueError, match="plain 'moving_digits'"):
        load_video_dataset("moving_digits/16x32", "train", md_dir, SIZE, T)


def test_moving_digits_rebuilds_byte_identical(tmp_path):
    def digests(root):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.tfrecord-*"))
        }

    # Two frames (quick to build): the bytes of a build do not depend on the process.
    for where in ("a", "b"):
        moving_digits.builder(2, SIZE, str(tmp_path / where)).download_and_prepare()
    first = digests(tmp_path / "a")
    assert first and digests(tmp_path / "b") == first


def test_clip_rule_numbers():
    # n >= span: the centred window (the odd extra frame goes to the end)
    assert clip_indices(20, 4).tolist() == [8, 9, 10, 11]
    assert clip_indices(21, 4).tolist() == [8, 9, 10, 11]
    assert clip_indices(20, 8, 2).tolist() == [2, 4, 6, 8, 10, 12, 14, 16]
    assert clip_indices(16, 16).tolist() == list(range(16))
    # n < span: from frame 0 at the stride, then the last taken frame repeated
    assert clip_indices(5, 8).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert clip_indices(12, 8, 2).tolist() == [0, 2, 4, 6, 8, 10, 10, 10]
    assert clip_indices(11, 8, 2).tolist() == [0, 2, 4, 6, 8, 10, 10, 10]
    assert clip_indices(1, 3, 5).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="no frames"):
        clip_indices(0, 4)
    # The tf.data twin agrees everywhere.
    for n in range(1, 40):
        for t in (1, 3, 8, 16):
            for s in (1, 2, 3):
                np.testing.assert_array_equal(tf_clip_indices(n, t, s).numpy(), clip_indices(n, t, s))
    # make_clip cuts and pads the frames themselves, then resizes every frame alike.
    frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 6, 4, 3), np.uint8)
    clip = make_clip(frames, 7, 1, 4)
    assert clip.shape == (7, 4, 4, 3) and clip.dtype == np.uint8
    assert clip[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4, 4]


# ---------------------------------------------------------------------------------------------
# folders of video files
# ---------------------------------------------------------------------------------------------
def level(k):
    return 20 + 12 * k  # frame k is uniform grey at this level: the frame's id survives codecs


def frame_ids(clip):
    return np.rint((clip.reshape(len(clip), -1).mean(1) - 20) / 12).astype(int).tolist()


def write_video(path, n, codec, pix_fmt, size=(24, 20)):
    """n uniform grey frames (frame k at level(k)), W x H = size, with PyAV."""
    import av

    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for k in range(n):
            frame = np.full((h, w, 3), level(k), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(path, n, size=(24, 20)):
    w, h = size
    frames = [Image.fromarray(np.full((h, w), level(k), np.uint8)) for k in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "vids"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    write_video(root / "a" / "0.mp4", 20, "libx264", "yuv420p")
    write_gif(root / "a" / "1.gif", 5)
    write_video(root / "b" / "0.avi", 12, "mjpeg", "yuvj420p")
    (root / "b" / "notes.txt").write_text("not a video")
    return root


def test_video_folder_reads_clips_by_the_rule(video_folder, tmp_path):
    root = str(video_folder)
    assert dataset_modality(root) == "video"
    ds = load_video_dataset(root, "train", None, SIZE, num_frames=8, frame_stride=2)
    assert ds.modality == "video" and ds.num_classes == 2 and ds.num_examples == 3
    assert ds.classes == ["a", "b"]
    clips, labels = ds.read(0, 3)
    assert clips.shape == (3, 8, SIZE, SIZE, 3) and clips.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 1, 0])  # classes in turn: a/0.mp4, b/0.avi, a/1.gif
    assert frame_ids(clips[0]) == [2, 4, 6, 8, 10, 12, 14, 16]  # 20 frames: centred window, cut
    assert frame_ids(clips[1]) == [0, 2, 4, 6, 8, 10, 10, 10]  # 12 < span 15: padded
    assert frame_ids(clips[2]) == [0, 2, 4, 4, 4, 4, 4, 4]  # 5-frame gif: padded
    # Decoded frames agree with the written levels (lossy codecs: within a few levels).
    expect = [level(k) for k in [2, 4, 6, 8, 10, 12, 14, 16]]
    assert np.abs(clips[0].reshape(8, -1).mean(1) - expect).max() < 3
    # Another length and stride, ranges, slices, iteration and the generic entry point.
    short = load_dataset(root, "train", "ignored/data_dir", SIZE, num_frames=4)
    assert short.modality == "video" and short.identity.endswith(f":{SIZE}:4f/1")
    c, _ = short.read(0, 3)
    assert [frame_ids(x) for x in c] == [[8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]]
    np.testing.assert_array_equal(short.read(1, 3)[0], c[1:])
    assert [label for _, label in short] == [0, 1, 0]
    tail = load_video_dataset(root, "train[1:]", None, SIZE, 4)
    assert tail.num_examples == 2 and ":train[1:]:" in tail.identity
    np.testing.assert_array_equal(tail.read(0, 2)[0], c[1:])
    assert short.read(0, 0)[0].shape == (0, 4, SIZE, SIZE, 3)
    with pytest.raises(IndexError):
        short.read(2, 4)
    # A broken file is named.
    (video_folder / "b" / "1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    broken = load_video_dataset(root, "train", None, SIZE, 4)
    with pytest.raises(ValueError, match=r"unreadable video file .*b/1\.mp4"):
        broken.read(0, broken.num_examples)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_video_dataset(str(tmp_path / "missing"), "train", None, SIZE, 4)
    with pytest.raises(ValueError, match="num_frames"):
        load_video_dataset(root, "train", None, SIZE, 0)


def test_gif_folder_is_images_unless_read_as_video(tmp_path):
    for cls in ("x", "y"):
        (tmp_path / "g" / cls).mkdir(parents=True)
        write_gif(tmp_path / "g" / cls / "0.gif", 3, size=(16, 16))
    root = str(tmp_path / "g")
    assert dataset_modality(root) == "image"
    images, _ = load_image_dataset(root, "train", None, SIZE).read(0, 2)
    assert images.shape == (2, SIZE, SIZE, 3) and frame_ids(images[:1]) == [0]  # first frame
    clips, labels = load_dataset(root, "train", None, SIZE, modality="video", num_frames=4).read(0, 2)
    assert [frame_ids(c) for c in clips] == [[0, 1, 2, 2]] * 2 and labels.tolist() == [0, 1]


def test_image_readers_refuse_video_data_sets_and_back(video_folder, md, md_dir, tmp_path):
    root = str(video_folder)
    with pytest.raises(ModalityError, match="holds videos, not images.*image families"):
        load_image_dataset(root, "train", None, SIZE)
    with pytest.raises(ModalityError, match="holds videos, not images"):
        load_image_dataset(root, "train", str(tmp_path / "tfds"), SIZE)  # before any prepared-data lookup
    with pytest.raises(ModalityError, match="'moving_digits' holds videos, not images"):
        load_image_dataset("moving_digits", "train", md_dir, SIZE)
    with pytest.raises(ModalityError, match="holds videos"):
        load_dataset(root, "train", None, SIZE, modality="image")
    with pytest.raises(ModalityError, match="'digits' holds images, not videos.*video family"):
        load_video_dataset("digits", "train", md_dir, SIZE)
    assert dataset_modality("digits") == "image" and dataset_modality("moving_digits") == "video"
    imgs = tmp_path / "imgs" / "c"
    imgs.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs / "0.png")
    with pytest.raises(ModalityError, match="holds images, not videos"):
        load_video_dataset(str(tmp_path / "imgs"), "train", None, SIZE)
    with pytest.raises(ValueError, match="modality must be one of"):
        load_dataset("digits", modality="audio")
    ds = load_dataset("moving_digits", "train[:3]", md_dir, SIZE, num_frames=T)
    assert ds.modality == "video" and ds.read(0, 3)[0].shape == (3, T, SIZE, SIZE, 3)


def test_mocked_ucf101_by_name(tmp_path):
    import tensorflow_datasets as tfds

    data_dir = str(tmp_path / "tfds")
    with tfds.testing.mock_data(num_examples=4):
        assert dataset_modality("ucf101", data_dir) == "video"
        # The mock's videos have 20-40 frames of 256x256: 48 frames pads them all, 8 at stride 2 cuts.
        import tensorflow as tf

        # Every frame, decoded from the stored encoded frames as tf.data does.
        stored = tfds.builder("ucf101", data_dir=data_dir).as_dataset(
            split="train", shuffle_files=False, decoders={"video": tfds.decode.SkipDecoding()}
        )
        raw = [
            (np.stack([tf.io.decode_image(f, channels=3).numpy() for f in ex["video"]]), ex["label"])
            for ex in stored.as_numpy_iterator()
        ]
        for t, s in ((48, 1), (8, 2)):
            ds = load_video_dataset("ucf101", "train", data_dir, SIZE, t, s)
            assert ds.num_examples == 4 and ds.num_classes == 101 and ds.modality == "video"
            assert ds.identity.startswith("tfds:ucf101/") and ds.identity.endswith(f":{SIZE}:{t}f/{s}")
            clips, labels = ds.read(0, 4)
            assert clips.shape == (4, t, SIZE, SIZE, 3) and clips.dtype == np.uint8
            # tf.data decodes only the taken frames; the rule applied to the fully decoded video
            # (numpy indices, same resize) gives the same pixels.
            for clip, label, (video, want_label) in zip(clips, labels, raw):
                assert label == want_label
                np.testing.assert_array_equal(clip, make_clip(video, t, s, SIZE))
            np.testing.assert_array_equal(ds.read(1, 3)[0], clips[1:3])
        assert max(len(v) for v, _ in raw) < 48 and min(len(v) for v, _ in raw) > 15
        with pytest.raises(ModalityError, match="'ucf101' holds videos, not images"):
            load_image_dataset("ucf101", "train", data_dir, SIZE)
