"""Unit tests of tracking without a server: scrubbing, default store location, bad input, JAX processes."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from elt.tracking import RunTracker
from elt.tracking.run_tracker import resolve_tracking_uri
from elt.tracking.scrub import REDACTED, is_sensitive_key, scrub_mapping, scrub_value

REPO = Path(__file__).resolve().parents[1]
DOWN = "http://127.0.0.1:9"  # nothing listens: any store call would fail (and warn)


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


# ---------------------------------------------------------------- caller mistakes
@pytest.mark.parametrize("bad", [[1, 2], "x", {1: "a"}, {"": 1}, {"model": {2: "b"}}])
def test_bad_params_raise_before_any_call(bad):
    with pytest.raises(TypeError, match="param"):
        RunTracker.for_grid_point("k", tracking_uri=DOWN).log_params(bad)


def test_bad_input_raises_before_any_call(tmp_path):
    run = RunTracker.for_grid_point("bad-input", tracking_uri=DOWN)
    with pytest.raises(TypeError, match="fid"):
        run.log_metrics({"fid": "high"})
    with pytest.raises(ValueError, match="metric name"):
        run.log_metrics({"fid!": 1.0})
    with pytest.raises(TypeError, match="step"):
        run.log_metric_history("fid", {"two": 1.0})
    with pytest.raises(TypeError, match="step"):
        run.log_metrics({"fid": 1.0}, step=1.5)
    with pytest.raises(ValueError, match="tag name"):
        run.set_tags({"a@b": 1})
    with pytest.raises(FileNotFoundError, match="nope.json"):
        run.log_artifact(tmp_path / "nope.json")
    with pytest.raises(TypeError):
        run.log_dict({"x": object()}, "x.json")
    with pytest.raises(ValueError, match="run_key"):
        RunTracker.for_grid_point("it's", tracking_uri=DOWN)
    assert run.enabled and run.run_id is None  # nothing reached the store, nothing switched off


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
    assert resolve_tracking_uri() == f"sqlite:///{repo.resolve() / 'mlflow.db'}"
    assert resolve_tracking_uri().startswith("sqlite:////")  # four slashes: an absolute path
    assert RunTracker.for_grid_point("k").tracking_uri == resolve_tracking_uri()


def test_git_root_when_there_is_no_dvc(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "sub")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_dvc_root_env_wins_over_cwd(tmp_path, monkeypatch):
    # `dvc exp run --temp` runs in a temp copy but exports the original root as DVC_ROOT.
    original = tmp_path / "original"
    temp_copy = tmp_path / "tmpcopy"
    (original / ".dvc").mkdir(parents=True)
    (temp_copy / ".dvc").mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(original))
    monkeypatch.chdir(temp_copy)
    assert resolve_tracking_uri() == f"sqlite:///{original.resolve() / 'mlflow.db'}"


def test_dvc_root_env_must_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="DVC_ROOT"):
        resolve_tracking_uri()


def test_env_tracking_uri_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == "http://tracking.example:5000"


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
    assert resolve_tracking_uri() == path_to_local_sqlite_uri(str(Path(relative_db).resolve()))


# ---------------------------------------------------------------- multi-process JAX
def _fake_jax(monkeypatch, index: int) -> None:
    jax = types.ModuleType("jax")
    jax.process_index = lambda: index
    monkeypatch.setitem(sys.modules, "jax", jax)


def test_only_jax_process_0_logs(tmp_path, monkeypatch):
    store = tmp_path / "mlflow.db"
    (tmp_path / "eval.json").write_text("{}")
    _fake_jax(monkeypatch, 1)
    with RunTracker.for_grid_point("k", stage="train", config={"a": 1}, tracking_uri=f"sqlite:///{store}") as run:
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_metric_history("fid", {1: 2.0})
        run.log_artifact(tmp_path / "eval.json")
        run.log_dict({"a": 1}, "a.json")
        run.set_tags({"note": "x"})
        with pytest.raises(TypeError):  # caller mistakes still raise in every process
            run.log_metrics({"fid": "high"})
    assert not run.enabled and run.run_id is None
    assert not store.exists()  # no store was even opened
    _fake_jax(monkeypatch, 0)
    assert RunTracker.for_grid_point("k", tracking_uri=f"sqlite:///{store}").enabled


def test_importing_tracking_does_not_import_jax():
    code = "import sys, elt.tracking; assert 'jax' not in sys.modules, 'jax imported'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
