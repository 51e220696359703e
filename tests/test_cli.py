"""`elt fid A B`: folders, .npz of images and statistics files; clear errors for bad input."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elt import cli
from elt.evaluation import fid
from elt.evaluation.weights import cached_fid_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights_path():
    return cached_fid_weights()


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(4, 16, 16, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, size=a.shape), 0, 255).astype(np.uint8)
    (root / "a").mkdir()
    for i, img in enumerate(a):
        Image.fromarray(img).save(root / "a" / f"{i}.png")
    np.savez(root / "b.npz", images=b)
    return root, a, b


def test_fid_folder_vs_npz_and_stats_file(capsys, weights_path, image_sets):
    root, a, b = image_sets
    common = ["--weights", str(weights_path), "--batch-size", "4"]
    assert cli.main(["fid-stats", str(root / "a"), str(root / "a_stats.npz"), *common]) == 0
    assert cli.main(["fid-stats", str(root / "b.npz"), str(root / "b_stats.npz"), *common]) == 0
    capsys.readouterr()
    # Folder of PNGs vs .npz of images (both through the network) ...
    assert cli.main(["fid", str(root / "a"), str(root / "b.npz"), *common, "--method", "eigh"]) == 0
    printed = float(capsys.readouterr().out.strip().splitlines()[-1])
    # ... equals the distance of the saved statistics, whose features match the library's.
    mu1, s1, n1 = fid.load_stats(root / "a_stats.npz")
    mu2, s2, n2 = fid.load_stats(root / "b_stats.npz")
    assert (n1, n2) == (4, 4)
    assert printed == pytest.approx(fid.frechet_distance(mu1, s1, mu2, s2, method="eigh"), abs=1e-5)
    assert printed > 1.0  # different image sets
    assert cli.main(["fid", str(root / "a_stats.npz"), str(root / "a_stats.npz"), "--method", "eigh"]) == 0
    assert abs(float(capsys.readouterr().out.strip().splitlines()[-1])) < 1e-5  # stats files need no weights


def test_missing_default_weights_tells_how_to_fetch(tmp_path, image_sets):
    root, _, _ = image_sets
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "elt.cli", "fid", str(root / "a"), str(root / "b.npz")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "dvc repro fetch_fid_weights" in proc.stderr and "--weights" in proc.stderr


def test_bad_inputs_exit_with_the_file_named(tmp_path, weights_path, capsys):
    (tmp_path / "one").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "one" / "x.png")
    assert cli.main(["fid", str(tmp_path / "one"), str(tmp_path / "one"), "--weights", str(weights_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: elt fid: ") and "one: 1 image" in err
    with pytest.raises(SystemExit, match="nowhere: no such file"):
        cli.main(["fid", str(tmp_path / "nowhere"), str(tmp_path / "one"), "--weights", str(weights_path)])
    with pytest.raises(SystemExit, match="--batch-size must be >= 1"):
        cli.main(["fid", str(tmp_path / "one"), str(tmp_path / "one"), "--batch-size", "0"])


def test_fid_reads_class_subfolders_recursively(capsys, weights_path, image_sets):
    """An image-folder dataset, <folder>/<class>/<image>.png, is read at every depth in sorted order."""
    root, a, _ = image_sets
    classes = root / "classes"
    layout = {"n02/b.png": a[3], "n01/x/deep.png": a[2], "n01/a.png": a[0], "n01/b.png": a[1]}
    for rel, img in layout.items():
        (classes / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(classes / rel)
    (classes / "n01" / ".hidden.png").write_text("skipped: hidden")
    (classes / ".cache").mkdir()
    (classes / ".cache" / "junk.txt").write_text("skipped: hidden folder")
    # Sorted by the path relative to the folder: n01/a, n01/b, n01/x/deep, n02/b.
    np.testing.assert_array_equal(fid.load_images(classes), a[[0, 1, 2, 3]])
    # The CLI accepts it: the same 4 images as the flat folder "a", so FID ~ 0 and n = 4.
    capsys.readouterr()
    assert cli.main(["fid", str(classes), str(root / "a"), "--weights", str(weights_path),
                     "--batch-size", "4", "--method", "eigh"]) == 0
    out = capsys.readouterr()
    assert abs(float(out.out.strip().splitlines()[-1])) < 1e-3
    assert f"{classes}: 4 images" in out.err


def test_fid_folder_without_images_at_any_depth(tmp_path, weights_path, capsys):
    (tmp_path / "empty" / "n01" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "n01" / ".keep").write_text("")
    assert cli.main(["fid", str(tmp_path / "empty"), str(tmp_path / "empty"), "--weights", str(weights_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: elt fid: ") and f"{tmp_path / 'empty'}: folder holds no images" in err
    assert "at any depth" in err
