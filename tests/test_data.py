"""Data sets: the digits tfds builder, tfds names (mocked), image folders, bad inputs."""

import collections
import hashlib

import jax
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from elt.data import digits
from elt.data.datasets import center_crop_resize, load_image_dataset
from elt.data.prepare import prepare

SIZE = 16


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_upscale_matches_independent_bilinear():
    # jax.image.resize (half-pixel centres, no antialias when enlarging) is an independent
    # implementation of the same bilinear upscale.
    imgs = load_digits().images[:5]
    ref = jax.image.resize(imgs[..., None] * (255.0 / 16.0), (5, SIZE, SIZE, 1), "bilinear")
    ref = np.clip(np.rint(np.asarray(ref)), 0, 255).astype(np.uint8)
    got = digits.upscale(imgs, SIZE)
    assert got.shape == (5, SIZE, SIZE, 3) and got.dtype == np.uint8
    assert np.abs(got[..., 0].astype(int) - ref[..., 0].astype(int)).max() <= 1
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 0] == got[..., 2]).all()
    # 16 (ink maximum) maps to 255 and 0 to 0.
    flat = digits.upscale(np.full((1, 8, 8), 16.0), SIZE)
    assert (flat == 255).all() and (digits.upscale(np.zeros((1, 8, 8)), SIZE) == 0).all()


def test_digits_builder_yields_all_labelled_examples(digits_dir):
    ds = load_image_dataset("digits", "train", digits_dir, SIZE)
    assert ds.num_examples == 1797 and ds.num_classes == 10
    images, labels = ds.read(0, ds.num_examples)
    bunch = load_digits()
    assert images.shape == (1797, SIZE, SIZE, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(
        np.bincount(labels, minlength=10), np.bincount(bunch.target, minlength=10)
    )
    # Same multiset of (image, label) as sklearn's, upscaled (tfds stores them in its own order).
    key = lambda im, l: (hashlib.sha1(im.tobytes()).hexdigest(), int(l))
    ref = digits.upscale(bunch.images, SIZE)
    assert collections.Counter(map(key, images, labels)) == collections.Counter(
        map(key, ref, bunch.target)
    )
    # Index ranges read the same examples as one full read (what Beam workers rely on).
    part, part_labels = ds.read(100, 130)
    np.testing.assert_array_equal(part, images[100:130])
    np.testing.assert_array_equal(part_labels, labels[100:130])
    assert "digits/16" in ds.identity
    info = prepare("digits", digits_dir, SIZE)
    assert info["num_examples"] == 1797 and info["num_classes"] == 10
    with pytest.raises(ValueError, match="no split 'test'"):
        load_image_dataset("digits", "test", digits_dir, SIZE)
    # A sliced split reads through the stream: same examples as the plain split's range.
    sliced = load_image_dataset("digits", "train[10:20]", digits_dir, SIZE)
    assert sliced.num_examples == 10
    np.testing.assert_array_equal(sliced.read(2, 5)[0], images[12:15])


def test_center_crop_resize_numbers():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    # Same size after the central square crop: exactly columns 1..4.
    np.testing.assert_array_equal(center_crop_resize(img, 4), img[:, 1:5])
    # 2x downscale of a constant stays constant; grayscale becomes 3 equal channels.
    out = center_crop_resize(np.full((8, 8), 77, np.uint8), 4)
    assert out.shape == (4, 4, 3) and (out == 77).all()


def _write_folder(root, classes=("cat", "dog"), per_class=3, size=10):
    rng = np.random.default_rng(0)
    expected = []
    for label, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}.png")
            expected.append((img, label))
    (root / "cat" / "notes.txt").write_text("ignored: not an image extension")
    return expected


def test_image_folder_two_classes(tmp_path):
    expected = _write_folder(tmp_path / "imgs")
    ds = load_image_dataset(str(tmp_path / "imgs"), "train", None, 8)
    assert ds.num_classes == 2 and ds.num_examples == 6 and ds.classes == ["cat", "dog"]
    got = list(ds)
    assert [l for _, l in got] == [0, 1, 0, 1, 0, 1]  # classes in turn
    in_turn = [expected[i] for i in (0, 3, 1, 4, 2, 5)]
    for (img, _), (ref, _) in zip(got, in_turn):
        np.testing.assert_array_equal(img, center_crop_resize(ref, 8))
        assert img.shape == (8, 8, 3)


def test_image_folder_slices_hold_every_class_in_proportion(tmp_path):
    # Uneven classes (5, 2, 3 files): the classes are taken in turn while each has files left, so
    # a held-out slice at the end is not the last class alone (the sorted listing's failure).
    root = tmp_path / "imgs"
    for cls, n in (("a", 5), ("b", 2), ("c", 3)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(root / cls / f"{i}.png")
    ds = load_image_dataset(str(root), "train", None, 4)
    assert [rel for rel, _ in ds.files] == [
        "a/0.png", "b/0.png", "c/0.png", "a/1.png", "b/1.png", "c/1.png", "a/2.png", "c/2.png", "a/3.png", "a/4.png",
    ]
    assert [label for _, label in load_image_dataset(str(root), "train[:60%]", None, 4).files] == [0, 1, 2, 0, 1, 2]


def test_mock_tfds_dataset_by_name(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        ds = load_image_dataset("cifar10", "train", str(tmp_path), 16)
        assert ds.num_examples == 7 and ds.num_classes == 10
        images, labels = ds.read(0, 7)
        assert images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
        assert labels.min() >= 0 and labels.max() < 10
        np.testing.assert_array_equal(ds.read(2, 5)[0], images[2:5])
        assert ds.identity.startswith("tfds:cifar10/")


def test_unknown_dataset_name_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'no_such_dataset_xyz'.*list_builders"):
        load_image_dataset("no_such_dataset_xyz", "train", None, 16)


def test_unprepared_tfds_dataset_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="'mnist' has no prepared data"):
        load_image_dataset("mnist", "train", str(tmp_path), 16)


def test_bad_folders_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no class sub-folders"):
        load_image_dataset(str(tmp_path / "empty"), "train", None, 8)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_dataset(str(tmp_path / "missing"), "train", None, 8)
    _write_folder(tmp_path / "bad")
    (tmp_path / "bad" / "dog" / "9.png").write_bytes(b"not a png at all")
    ds = load_image_dataset(str(tmp_path / "bad"), "train", None, 8)
    with pytest.raises(ValueError, match=r"unreadable image file .*dog/9\.png"):
        ds.read(0, ds.num_examples)
    with pytest.raises(ValueError, match="image_size"):
        load_image_dataset(str(tmp_path / "bad"), "train", None, 0)


def test_tf_and_pil_resize_agree():
    # tfds data sets resize inside tf.data, folders with PIL: both must give the same pixels (+-1).
    import tensorflow as tf
    from elt.data.datasets import tf_center_crop_resize

    rng = np.random.default_rng(0)
    for shape, size in [((20, 24, 3), 8), ((64, 50, 3), 16), ((10, 10, 1), 32), ((16, 16, 3), 16)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        a = center_crop_resize(img, size).astype(int)
        b = tf_center_crop_resize(tf.constant(img), size).numpy().astype(int)
        assert a.shape == b.shape == (size, size, 3)
        assert np.abs(a - b).max() <= 1
