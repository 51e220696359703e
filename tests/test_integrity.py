"""MANIFEST.json load checks on real files: every kind of damage is named, nothing else is."""

from __future__ import annotations

import json

import pytest

from elt.integrity import IntegrityError, file_digest, has_manifest, verify_manifest, write_manifest


@pytest.fixture
def artifact(tmp_path):
    folder = tmp_path / "art"
    (folder / "params" / "d").mkdir(parents=True)
    (folder / "model.json").write_text('{"N": 2}')
    (folder / "params" / "d" / "0.bin").write_bytes(bytes(range(256)) * 10)
    write_manifest(folder)
    return folder


def test_manifest_lists_every_file_with_size_and_sha256(artifact):
    import hashlib

    listed = json.loads((artifact / "MANIFEST.json").read_text())["files"]
    assert sorted(listed) == ["model.json", "params/d/0.bin"]
    data = bytes(range(256)) * 10
    assert listed["params/d/0.bin"] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": 2560}
    assert file_digest(str(artifact / "params/d/0.bin")) == (hashlib.sha256(data).hexdigest(), 2560)
    assert verify_manifest(artifact, "checkpoint") is True


def test_each_kind_of_damage_names_the_file(artifact):
    blob = artifact / "params" / "d" / "0.bin"
    blob.write_bytes(blob.read_bytes()[:-1])  # truncated
    with pytest.raises(IntegrityError, match=r"checkpoint .*params/d/0.bin: 2559 bytes, MANIFEST.json says 2560; rerun"):
        verify_manifest(artifact, "checkpoint", "rerun")
    blob.write_bytes(b"\x01" + (bytes(range(256)) * 10)[1:])  # same size, one byte changed
    with pytest.raises(IntegrityError, match=r"0.bin: SHA-256 .* differs"):
        verify_manifest(artifact, "checkpoint")
    blob.unlink()
    with pytest.raises(IntegrityError, match=r"0.bin: missing"):
        verify_manifest(artifact, "checkpoint")


def test_unlisted_files_are_ignored_and_a_missing_manifest_is_an_error_only_when_required(artifact, tmp_path):
    (artifact / "notes.txt").write_text("added beside the artifact")
    assert verify_manifest(artifact, "checkpoint")
    (artifact / "MANIFEST.json").unlink()
    assert not has_manifest(artifact)
    assert verify_manifest(artifact, "checkpoint", required=False) is False
    with pytest.raises(IntegrityError, match="no MANIFEST.json"):
        verify_manifest(artifact, "checkpoint")
    with pytest.raises(IntegrityError, match="folder does not exist"):
        verify_manifest(tmp_path / "nowhere", "checkpoint", required=False)
    (artifact / "MANIFEST.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="unreadable"):
        verify_manifest(artifact, "checkpoint")


def test_save_npz_is_byte_identical_across_writes_and_loads_back(tmp_path):
    import time

    import numpy as np

    from elt.workdir import save_npz

    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    save_npz(tmp_path / "a.npz", images=images, labels=np.array([3, 1]))
    time.sleep(2.1)  # zip timestamps have 2 s resolution: np.savez would differ by now
    save_npz(tmp_path / "b.npz", images=images, labels=np.array([3, 1]))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as data:
        assert data.files == ["images", "labels"]
        np.testing.assert_array_equal(data["images"], images)
        assert data["labels"].tolist() == [3, 1]
