"""Unit tests of the tracking helpers: scrubbing, flattening, hashing, default store location."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from elt.tracking import (
    REDACTED,
    default_tracking_uri,
    find_repo_root,
    flatten_params,
    is_sensitive_key,
    params_hash,
    resolve_tracking_uri,
    scrub_mapping,
    scrub_value,
)
from elt.tracking.store import artifact_root_for


# ---------------------------------------------------------------- scrubber
@pytest.mark.parametrize("key", [
    "token", "access_token", "MLFLOW_TRACKING_TOKEN", "gcs.secret", "db_password", "passwd",
    "credentials", "GOOGLE_APPLICATION_CREDENTIALS", "key", "remote.key", "apiKey", "api_key",
    "aws.secretAccessKey", "accessKeyId", "X-Goog-Signature", "X-Goog-Credential", "sig", "auth",
])
def test_sensitive_keys(key):
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", [
    "elt.run_key", "model.d", "monkey", "keyboard", "signal", "author", "train.lr", "L_max",
    "dataset", "tokenizer", "tokenizer.codebook_size", "data.num_tokens", "sample.loops",
])
def test_harmless_keys(key):
    assert not is_sensitive_key(key)


@pytest.mark.parametrize("value, expected", [
    ("https://alice:s3cret@mlflow.example.com/api", "https://***@mlflow.example.com/api"),
    ("https://ghp_abcdef@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    ("gs://bucket/cache", "gs://bucket/cache"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://h.com/p?token=abc123&page=2", "https://h.com/p?token=***&page=2"),
    ("https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=sa%40p.iam&X-Goog-Signature=deadbeef",
     "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=***&X-Goog-Signature=***"),
    ("remote is https://u:p@h.org/x and http://plain.org", "remote is https://***@h.org/x and "
     "http://plain.org"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "Authorization: Bearer ***"),
    ("no url here", "no url here"),
])
def test_scrub_value(value, expected):
    assert scrub_value(value) == expected


def test_scrub_value_leaves_non_strings():
    assert scrub_value(3) == 3
    assert scrub_value(None) is None


def test_scrub_mapping_redacts_sensitive_keys_and_secret_urls():
    got = scrub_mapping({"gcs_token": "ya29.abc", "remote.url": "https://a:b@h/x", "lr": 1e-4,
                         "elt.run_key": "tiny-2x2-ilsd"})
    assert got == {"gcs_token": REDACTED, "remote.url": "https://***@h/x", "lr": 1e-4,
                   "elt.run_key": "tiny-2x2-ilsd"}


# ---------------------------------------------------------------- params
def test_flatten_params_nested_and_lists():
    flat = flatten_params({"model": {"d": 64, "mlp": {"dim": 256}}, "sample": {"loops": [1, 2, 4]},
                           "seed": 0})
    assert flat == {"model.d": 64, "model.mlp.dim": 256, "sample.loops": "[1, 2, 4]", "seed": 0}
    assert flatten_params({"a": 1}, prefix="train") == {"train.a": 1}


def test_flatten_params_dataclass():
    import dataclasses

    @dataclasses.dataclass
    class Model:
        N: int = 2
        L_max: int = 4

    assert flatten_params({"model": Model()}) == {"model.N": 2, "model.L_max": 4}


@pytest.mark.parametrize("bad", [[1, 2], "x", {1: "a"}, {"": 1}])
def test_flatten_params_rejects_bad_input(bad):
    with pytest.raises(TypeError):
        flatten_params(bad)


def test_params_hash_matches_hand_computation_and_ignores_order():
    canonical = json.dumps({"a": "1", "b": "x"}, sort_keys=True)
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert params_hash({"b": "x", "a": 1}) == expected
    assert params_hash({"a": 1, "b": "x"}) == expected
    assert params_hash({"a": 2, "b": "x"}) != expected


# ---------------------------------------------------------------- store location
def test_default_uri_is_absolute_at_dvc_root(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".git").mkdir()
    work = repo / "runs" / "x"
    work.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(work)
    expected_db = repo.resolve() / "mlflow.db"
    assert find_repo_root() == repo.resolve()
    assert default_tracking_uri() == f"sqlite:///{expected_db}"
    assert resolve_tracking_uri() == f"sqlite:///{expected_db}"
    assert resolve_tracking_uri().startswith("sqlite:////")  # four slashes: an absolute path
    assert artifact_root_for(resolve_tracking_uri()) == (repo.resolve() / "mlruns").as_uri()


def test_dvc_root_env_wins_over_cwd(tmp_path, monkeypatch):
    # `dvc exp run --temp` runs in a temp copy but exports the original root as DVC_ROOT.
    original = tmp_path / "original"
    temp_copy = tmp_path / "tmpcopy"
    (original / ".dvc").mkdir(parents=True)
    (temp_copy / ".dvc").mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(original))
    monkeypatch.chdir(temp_copy)
    assert default_tracking_uri() == f"sqlite:///{original.resolve() / 'mlflow.db'}"


def test_dvc_root_env_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="DVC_ROOT"):
        find_repo_root()


def test_env_tracking_uri_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking_uri(tmp_path) == "http://tracking.example:5000"
    assert artifact_root_for("http://tracking.example:5000") is None


def test_default_uri_matches_what_mlflow_ui_reads(tmp_path, monkeypatch):
    # `mlflow ui` with no flags, started in the repo root, reads MLflow's default store: the
    # same file as our absolute default.
    from mlflow.store.tracking import DEFAULT_TRACKING_URI
    from mlflow.utils.file_utils import path_to_local_sqlite_uri

    (tmp_path / ".dvc").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    relative_db = DEFAULT_TRACKING_URI.removeprefix("sqlite:///")
    assert default_tracking_uri() == path_to_local_sqlite_uri(str(Path(relative_db).resolve()))
