"""RunTracker against a real `mlflow server`, and against servers that are down or hung."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from elt.tracking import RunTracker, TrackingUnavailableWarning, run_tracker

try:
    from tests.servers import closed_port_uri, mlflow_server, silent_server
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from servers import closed_port_uri, mlflow_server, silent_server

REPO = Path(__file__).resolve().parents[1]
KEY = "tiny-2x2-ilsd"

# A DVC stage in miniature: its own process, logging into the grid point's run.
STAGE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from elt.errors import run_main
    from elt.tracking import RunTracker
    stage, out, key = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    config = {"model": {"N": 2, "L_max": 2, "d": 32}, "train": {"lr": 1e-4, "steps": 3},
              "remote": "https://alice:hunter2@mlflow.example.com", "gcs_token": "ya29.secret"}

    def main():
        if stage == "train":  # the style of stages/train.py: no `with`, ended at exit
            run = RunTracker.for_grid_point(key, stage="train", config=config,
                                            params_hash="cfg0123", dataset="digits:1.0.0",
                                            tokenizer="vq-md5:0123abcd")
            for step, loss in enumerate([3.0, 2.5, 2.25]):
                run.log_metrics({"train/loss": loss}, step=step)
            (out / "metrics.json").write_text(json.dumps({"loss": 2.25}))
            run.log_artifact(out / "metrics.json", "train")
            print("RUN_ID", run.run_id, flush=True)
            if "crash" in sys.argv:  # a bug: an uncaught exception
                raise RuntimeError("training diverged")
            if "usererror" in sys.argv:  # reported by run_main as one line, exit status 1
                raise ValueError("train.lr must be > 0")
        else:
            with RunTracker.for_grid_point(key, dataset="digits:1.0.0") as run:
                run.log_params(config)
                per_loop = {"1": {"fid": 80.5}, "2": {"fid": 61.25}, "4": {"fid": 70.0}}
                run.log_params({"sample": {"loops": [1, 2, 4]}})
                run.log_metric_history("fid", {L: v["fid"] for L, v in per_loop.items()})
                (out / "eval.json").write_text(json.dumps({"run": key, "per_loop": per_loop}))
                run.log_artifact(out / "eval.json")
                print("RUN_ID", run.run_id)
        print("STAGE DONE")

    sys.exit(run_main(main))
""")


def run_stage(stage: str, uri: str, out: Path, timeout_s: float = 120, key: str = KEY,
              *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "DVC_STAGE": f"{stage}@{key}",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DVC_EXP_NAME", None)
    return subprocess.run([sys.executable, "-c", STAGE, stage, str(out), key, *extra], env=env, cwd=out,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(autouse=True)
def _fresh_failures(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    run_tracker._disabled.clear()  # a failed store stays off for the process: forget it per test
    yield
    run_tracker._disabled.clear()


def test_two_stages_share_one_run(server, tmp_path):
    first = run_stage("train", server, tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_stage("evaluate", server, tmp_path)
    assert second.returncode == 0, second.stderr
    rerun = run_stage("evaluate", server, tmp_path)  # DVC reruns a stage: no new run, no new points
    assert rerun.returncode == 0, rerun.stderr
    ids = {line.split()[1] for p in (first, second, rerun) for line in p.stdout.splitlines()
           if line.startswith("RUN_ID")}
    assert len(ids) == 1 and None not in ids

    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("elt")
    runs = client.search_runs([exp.experiment_id], f"tags.`elt.run_key` = '{KEY}'",
                              run_view_type=ViewType.ALL)
    assert [r.info.run_id for r in runs] == list(ids)
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.N"] == "2" and params["model.L_max"] == "2"
    assert params["train.lr"] == "0.0001" and params["sample.loops"] == "[1, 2, 4]"
    # No secret reaches the server.
    assert params["remote"] == "https://***@mlflow.example.com"
    assert params["gcs_token"] == "***"
    tags = run.data.tags
    assert tags["dvc.stage"] == f"evaluate@{KEY}"
    assert f"dvc.stage.train_{KEY}.git_commit" in tags
    assert f"dvc.stage.evaluate_{KEY}.git_commit" in tags
    assert tags["elt.dataset"] == "digits:1.0.0" and tags["elt.tokenizer"] == "vq-md5:0123abcd"
    assert tags["elt.params_hash"] == "cfg0123"
    assert not any("hunter2" in v or "ya29" in v for v in [*params.values(), *tags.values()])

    fid = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "fid"))
    assert fid == [(1, 80.5), (2, 61.25), (4, 70.0)]
    loss = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id,
                                                                        "train/loss"))
    assert loss == [(0, 3.0), (1, 2.5), (2, 2.25)]
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert top == {"eval.json", "train"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "train")] == [
        "train/metrics.json"]


@pytest.mark.parametrize("how, message", [("crash", "training diverged"),  # uncaught: traceback
                                           ("usererror", "error: ")])  # run_main's one line
def test_run_without_with_is_failed_after_an_error(server, tmp_path, how, message):
    proc = run_stage("train", server, tmp_path, 120, f"tiny-{how}", how)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    run_id = next(line.split()[1] for line in proc.stdout.splitlines()
                  if line.startswith("RUN_ID"))
    assert MlflowClient(tracking_uri=server).get_run(run_id).info.status == "FAILED"


def test_changed_params_retire_the_old_run(server):
    key = "S-4x2"
    with RunTracker.for_grid_point(key, tracking_uri=server) as run:
        run.log_params({"train": {"lr": 1e-4}})
        run.log_metrics({"fid": 50.0})
        old = run.run_id
    with RunTracker.for_grid_point(key, tracking_uri=server) as run:
        run.log_params({"train": {"lr": 2e-4}})
        new = run.run_id
    assert new != old
    client = MlflowClient(tracking_uri=server)
    assert client.get_run(old).data.tags["elt.superseded_by"] == new
    assert client.get_run(old).data.tags["elt.run_key"] == f"{key}~superseded"
    assert client.get_run(new).data.params == {"train.lr": "0.0002"}
    assert client.get_run(new).data.metrics == {}  # the old config's FID stays with the old run
    exp = client.get_experiment_by_name("elt")
    live = client.search_runs([exp.experiment_id], f"tags.`elt.run_key` = '{key}'")
    assert [r.info.run_id for r in live] == [new]


def test_dvc_experiments_get_their_own_runs(server, monkeypatch):
    key = "B-2x2"
    with RunTracker.for_grid_point(key, tracking_uri=server) as run:
        workspace = run.run_id
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-lark")
    with RunTracker.for_grid_point(key, tracking_uri=server) as run:
        exp_run = run.run_id
    with RunTracker.for_grid_point(key, tracking_uri=server) as run:
        assert run.run_id == exp_run
    assert exp_run != workspace
    assert MlflowClient(tracking_uri=server).get_run(exp_run).data.tags["dvc.exp_name"] == \
        "lucky-lark"


def test_aggregate_run_logs_table_and_history(server, tmp_path):
    table = tmp_path / "table.md"
    table.write_text("| run | L | fid |\n|---|---|---|\n| tiny-2x2-ilsd | 2 | 61.25 |\n")
    with RunTracker.for_aggregate(tracking_uri=server) as run:
        run.log_dict({"front": [["tiny-2x2-ilsd", 2]]}, "pareto.json")
        run.log_artifact(table)
        run.log_metric_history("tiny-2x2-ilsd/fid", {1: 80.5, 2: 61.25})
        run_id = run.run_id
    client = MlflowClient(tracking_uri=server)
    assert {a.path for a in client.list_artifacts(run_id)} == {"pareto.json", "table.md"}
    assert client.get_run(run_id).data.tags["elt.run_key"] == "aggregate"


def _log_everything(uri: str, tmp_path: Path) -> RunTracker:
    (tmp_path / "eval.json").write_text("{}")
    with RunTracker.for_grid_point(KEY, tracking_uri=uri) as run:
        run.log_params({"model": {"N": 2}})
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_metric_history("fid", {1: 80.0, 2: 60.0})
        run.log_artifact(tmp_path / "eval.json")
        run.set_tags({"note": "x"})
    return run


@pytest.mark.parametrize("kind", ["down", "hung"])
def test_unreachable_server_warns_once_and_returns(kind, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count every warning, not one per code location
        t0 = time.monotonic()
        if kind == "down":  # credentials in the URI must not reach the warning
            run = _log_everything(closed_port_uri().replace("//", "//alice:hunter2@"), tmp_path)
        else:
            with silent_server() as uri:
                run = _log_everything(uri, tmp_path)
                _log_everything(uri, tmp_path)  # a second stage in the same process: silent
        elapsed = time.monotonic() - t0
    ours = [w for w in caught if issubclass(w.category, TrackingUnavailableWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    assert "tracking is off" in str(ours[0].message) and "hunter2" not in str(ours[0].message)
    assert not run.enabled and run.run_id is None
    assert elapsed < 10, elapsed


def test_stage_process_with_hung_server_finishes(tmp_path):
    # The hung socket must not stall the stage's exit either (daemon worker threads).
    with silent_server() as uri:
        t0 = time.monotonic()
        proc = run_stage("evaluate", uri, tmp_path, timeout_s=60)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "STAGE DONE" in proc.stdout
    assert proc.stderr.count("TrackingUnavailableWarning") == 1, proc.stderr
    assert (tmp_path / "eval.json").exists()  # the DVC output is written regardless
    assert elapsed < 30, elapsed


def test_param_keys_from_config_are_made_valid(server):
    with RunTracker.for_grid_point("keys", tracking_uri=server) as run:
        run.log_params({"grid": {"a@b[0]": 1}})
        run_id = run.run_id
    assert MlflowClient(tracking_uri=server).get_run(run_id).data.params == {"grid.a_b_0_": "1"}


def test_default_store_is_what_mlflow_ui_reads(tmp_path, monkeypatch):
    # No MLFLOW_TRACKING_URI: a stage running in a subfolder logs to <repo>/mlflow.db, and
    # MLflow's own default client (what `mlflow ui` uses) started in the repo root sees the run.
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / "runs").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(repo / "runs")
    (repo / "runs" / "eval.json").write_text("{}")
    with RunTracker.for_grid_point(KEY) as run:
        run.log_metric_history("fid", {1: 3.0, 2: 2.0})
        run.log_artifact("eval.json")
        run_id = run.run_id
    assert (repo / "mlflow.db").is_file() and not (repo / "runs" / "mlflow.db").exists()
    assert (repo / "mlruns" / "elt" / run_id / "artifacts" / "eval.json").is_file()
    monkeypatch.chdir(repo)
    client = MlflowClient()  # MLflow's default resolution, relative to the cwd
    assert client.get_run(run_id).data.tags["elt.run_key"] == KEY
    assert [a.path for a in client.list_artifacts(run_id)] == ["eval.json"]


def test_duplicate_runs_of_a_key_resolve_to_the_oldest(server, monkeypatch):
    # Two stages racing to create a grid point's run can both succeed; every later lookup (and
    # the younger creator itself) must then settle on the same, oldest run.
    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("elt") or client.get_experiment(
        client.create_experiment("elt"))
    first = client.create_run(exp.experiment_id, tags={"elt.run_key": "raced"})
    time.sleep(0.01)
    client.create_run(exp.experiment_id, tags={"elt.run_key": "raced"})
    with RunTracker.for_grid_point("raced", tracking_uri=server) as run:
        assert run.run_id == first.info.run_id

    # The creation path: the racer's run appears between our search (empty) and our create.
    rival = client.create_run(exp.experiment_id, tags={"elt.run_key": "raced-late"})
    search = MlflowClient.search_runs
    calls = []

    def first_search_misses(self, *args, **kwargs):
        calls.append(args)
        return [] if len(calls) == 1 else search(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", first_search_misses)
    with RunTracker.for_grid_point("raced-late", tracking_uri=server) as run:
        assert run.run_id == rival.info.run_id
    live = client.search_runs([exp.experiment_id], "tags.`elt.run_key` = 'raced-late'")
    assert [r.info.run_id for r in live] == [rival.info.run_id]  # ours was deleted again
