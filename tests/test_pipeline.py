"""End to end: the real DAG (DVC, Beam, JAX, the FID network) on a tiny grid in a temporary
clone, logging to a real MLflow server on 127.0.0.1, with a point of a test-only family (toy:
continuous latents, MSE per exit) next to the maskgit points through the unchanged stages; then
the granularity users rely on (per scale, per family, per stage), and resume after a kill."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from pipeline_repo import dvc, env_for, make_repo, run, stale_stages, tiny_params

RUNS = ["tiny-1x2-elt", "tiny-1x2-vanilla", "micro-2x1-unique"]  # the maskgit family
TOY = "toy-1x2-elt"  # the toy family (tests/toy_family), only in the module's `repo`
PER_RUN = {"train", "sample", "evaluate"}


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    from servers import mlflow_server

    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mlflow_uri):
    """The tiny DAG, reproduced once for the whole module."""
    path = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", toy=True)
    env = env_for({"MLFLOW_TRACKING_URI": mlflow_uri})
    proc = dvc(path, "repro", env=env, timeout=3000)
    (path / "repro.log").write_text(proc.stdout + proc.stderr)
    run(["git", "add", "-A"], path)  # dvc.lock and .gitignore entries: a clean state to edit from
    run(["git", "commit", "-qm", "reproduced"], path)
    return path


def _stale(repo: Path) -> set[str]:
    # `dvc status` names stages "train@RUN" (optionally prefixed by "dvc.yaml:")
    return {s.split(":")[-1] for s in stale_stages(repo)}


def _restore(repo: Path) -> None:
    run(["git", "checkout", "--", "."], repo)
    assert _stale(repo) == set(), "repository did not return to a clean, reproduced state"


@pytest.mark.timeout(3600)  # builds the module's `repo` (the whole tiny DAG) first
def test_every_output_and_metric_exists_and_is_sane(repo):
    assert (repo / "data" / "ref_stats" / "fid" / "stats.npz").exists()
    identities = {}
    for family, steps in (("maskgit", 60), ("toy", 30)):  # one tokenizer and one token set per family
        manifest = json.loads((repo / "data" / "tokens" / family / "manifest.json").read_text())
        assert manifest["total"] == 1497 and manifest["spec"]["shape"] == [8, 8]  # train[:1497]
        heldout = json.loads((repo / "data" / "tokens_heldout" / family / "manifest.json").read_text())
        assert heldout["total"] == 300 and heldout["split"] == "train[1497:]"  # data.heldout_split
        assert heldout["tokenizer"] == manifest["tokenizer"] and heldout["spec"] == manifest["spec"]
        # the tokenizer never saw the held-out images either
        tok = json.loads((repo / "data" / "tokenizer_metrics" / f"{family}.json").read_text())
        assert tok["num_images"] == 1497 and tok["steps"] == steps, tok
        identities[family] = manifest["tokenizer"]
    assert identities["maskgit"] != identities["toy"]
    for name in RUNS + [TOY]:
        ev = json.loads((repo / "runs" / name / "eval.json").read_text())
        assert ev["metric"] == "fid" and ev["family"] == ("toy" if name == TOY else "maskgit")
        loops = sorted(int(L) for L in ev["per_loop"])
        assert loops == ([1] if name.endswith("unique") else [1, 2, 3])
        for L in loops:
            point = ev["per_loop"][str(L)]
            assert math.isfinite(point["fid"]) and point["fid"] > 0
            assert point["samples_per_second"] > 0
            samples = np.load(repo / "runs" / name / "samples" / f"L{L}.npz")
            assert samples["images"].dtype == np.uint8 and samples["images"].shape[0] == 20
            # class-balanced: 20 samples over 10 classes
            assert np.bincount(samples["labels"], minlength=10).tolist() == [2] * 10
            assert (repo / "runs" / name / "samples" / f"grid_L{L}.png").exists()
        # the CFG sweep: maskgit runs are sampled at both scales and each L reports its best one
        scales = ["1"] if name == TOY else ["1", "2"]
        assert ev["cfg_scales"] == [float(x) for x in scales]
        for L in loops:
            point = ev["per_loop"][str(L)]
            assert sorted(point["by_cfg"]) == scales
            assert point["fid"] == min(v["fid"] for v in point["by_cfg"].values())
            assert point["by_cfg"][str(point["cfg_scale"]).removesuffix(".0")]["fid"] == point["fid"]
            assert point["fid_std"] > 0 and point["kid"] is not None  # every FID comes with its spread
            if name != TOY:  # CFG doubles the network passes, hence the GFLOPs
                by = point["by_cfg"]
                assert by["2"]["gflops"] == pytest.approx(2 * by["1"]["gflops"], rel=1e-12)
                assert (repo / "runs" / name / "samples" / f"L{L}-cfg2.npz").exists()
        gflops = [ev["per_loop"][str(L)]["by_cfg"]["1"]["gflops"] for L in loops]
        # inference compute grows linearly with the loop count (paper Sec. 5.1)
        if len(loops) > 1:
            steps = np.diff(gflops)
            assert np.all(steps > 0) and np.allclose(steps, steps[0], rtol=1e-6)
        assert ev["params"] > 0 and ev["params_total"] > ev["params"]
        curve = (repo / "runs" / name / "curve.csv").read_text().splitlines()
        assert curve[0].startswith("step") and len(curve) == 1 + 4  # 40 steps, logged every 10
    # looped runs share N, so their unique-layer parameters are equal (the point of looping)
    elt = json.loads((repo / "runs" / "tiny-1x2-elt" / "eval.json").read_text())
    van = json.loads((repo / "runs" / "tiny-1x2-vanilla" / "eval.json").read_text())
    assert elt["params"] == van["params"]
    # the toy point went through the same stages: continuous latents sampled, decoded and scored
    toy_samples = np.load(repo / "runs" / TOY / "samples" / "L2.npz")
    assert toy_samples["latents"].dtype == np.float32 and toy_samples["latents"].shape == (20, 8, 8, 8)
    toy_train = json.loads((repo / "runs" / TOY / "train" / "metrics.json").read_text())
    assert set(toy_train["held_out_loss_per_exit"]) == {"1", "2"}
    for name in RUNS + [TOY]:  # per-exit losses of every run on the 300 held-out examples
        train_metrics = json.loads((repo / "runs" / name / "train" / "metrics.json").read_text())
        assert train_metrics["exit_loss_data"] == "heldout train[1497:] (300 examples)", name
    # ... and sits in the one aggregate, next to the maskgit points
    points = (repo / "results" / "points.csv").read_text()
    assert all(name in points for name in RUNS + [TOY])
    for f in ("points.csv", "table.md", "pareto.json", "summary.md", "fid_vs_gflops.png", "fid_vs_params.png", "fid_vs_loops.png"):
        assert (repo / "results" / f).stat().st_size > 0, f
    # the real-data floor: held-out real images and their reconstructions at the runs' sample count
    floor = json.loads((repo / "data" / "floor" / "floor.json").read_text())
    assert floor["num_samples"] == 20
    fid_floor = floor["metrics"]["fid"]
    assert fid_floor["draws"] == 3 and len(fid_floor["real"]["values"]) == 3
    # two families scored by FID: the real images once, the reconstructions by each family's tokenizer
    assert sorted(fid_floor) == ["data", "dataset", "draws", "num_samples", "real", "reconstruction:maskgit",
                                 "reconstruction:toy", "split"]
    # and names the data it measured: FID's images are data's held-out split (FVD's: video_data's)
    assert (fid_floor["data"], fid_floor["dataset"], fid_floor["split"]) == ("data", "digits", "train[1497:]")
    for family in ("maskgit", "toy"):  # the tokenizer loses detail
        assert 0 < fid_floor["real"]["mean"] < fid_floor[f"reconstruction:{family}"]["mean"]
    summary = (repo / "results" / "summary.md").read_text()
    assert "floor" in summary.lower() and "toy reconstruction floor" in summary
    assert _stale(repo) == set()


def test_noop_repro_runs_nothing(repo):
    proc = dvc(repo, "repro")
    assert "didn't change, skipping" in proc.stdout or "is cached" in proc.stdout or "up to date" in proc.stdout
    assert "Running stage" not in proc.stdout


def test_adding_a_scale_and_grid_point_stales_only_that_point(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["scales"]["nano"] = {"d_model": 8, "mlp_dim": 16, "num_heads": 2}
    params["grid"]["nano-1x2-elt"] = {"family": "maskgit", "scale": "nano", "N": 1, "L_max": 2, "ilsd": True}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        assert _stale(repo) == {f"{s}@nano-1x2-elt" for s in PER_RUN} | {"aggregate"}
    finally:
        _restore(repo)


def test_a_family_tokenizer_setting_reruns_only_that_familys_tokenizer(repo):
    _edit_params(repo, lambda p: p["families"]["toy"]["tokenizer"].update(steps=31))
    try:  # downstream (tokenize@toy, the toy's runs, the floor) follows once it reruns
        assert _stale(repo) == {"train_tokenizer@toy"}
    finally:
        _restore(repo)


def test_editing_one_scale_invalidates_only_its_runs(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["scales"]["micro"]["mlp_dim"] = 48
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        # every run of that scale, whatever its family; downstream follows once it reruns
        assert _stale(repo) == {"train@micro-2x1-unique", f"train@{TOY}"}
    finally:
        _restore(repo)


def _edit_params(repo: Path, edit) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# a comment is still a change\n")


def test_a_family_sampling_setting_reruns_only_that_familys_sampling(repo):
    _edit_params(repo, lambda p: p["families"]["maskgit"]["sample"].update(choice_temperature=3.0))
    try:
        assert _stale(repo) == {f"sample@{r}" for r in RUNS}  # not the toy's, never training
    finally:
        _restore(repo)
    _edit_params(repo, lambda p: p["families"]["toy"]["train"].update(noise=0.4))
    try:
        assert _stale(repo) == {f"train@{TOY}"}
    finally:
        _restore(repo)


def test_a_family_code_edit_reruns_only_that_familys_stages(repo):
    _touch(repo / "elt" / "families" / "maskgit" / "sampler.py")
    try:
        assert _stale(repo) == {f"sample@{r}" for r in RUNS}
    finally:
        _restore(repo)
    _touch(repo / "elt" / "families" / "toy" / "losses.py")
    try:
        assert _stale(repo) == {f"train@{TOY}"}
    finally:
        _restore(repo)
    _touch(repo / "elt" / "families" / "toy" / "model.py")
    try:
        assert _stale(repo) == {f"{s}@{TOY}" for s in PER_RUN}
    finally:
        _restore(repo)
    _touch(repo / "elt" / "core" / "looped.py")  # the shared core: every family's runs
    try:
        assert _stale(repo) == {f"{s}@{r}" for s in PER_RUN for r in RUNS + [TOY]}
    finally:
        _restore(repo)


def test_code_dependencies_follow_the_library_parts_used(repo):
    agg = next((repo / "elt" / "aggregate").glob("*.py"))
    agg.write_text(agg.read_text() + "\n# change\n")
    try:
        assert _stale(repo) == {"aggregate"}
    finally:
        _restore(repo)


def _final_params(train_dir: Path):
    import jax
    import orbax.checkpoint as ocp

    tree = ocp.StandardCheckpointer().restore((train_dir / "params").resolve())
    return jax.tree_util.tree_leaves(tree)


def test_training_resumes_after_a_kill_and_matches_an_uninterrupted_run(repo, tmp_path):
    run_name = "tiny-1x2-elt"
    env = env_for({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})  # tracking down: must not matter
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["steps"] = 400
    params["train"]["checkpoint_every"] = 20
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "stages/train.py", "--params", str(pfile), "--run", run_name, "--work", str(tmp_path / "work")]
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed_out)], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt_root = tmp_path / "work" / run_name
    deadline = time.time() + 600
    while time.time() < deadline:
        steps = [int(p.name) for p in ckpt_root.glob("*/ckpt/*") if p.name.isdigit()]
        if steps and max(steps) >= 40:
            break
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_out / "model.json").exists(), "a killed run must not leave complete-looking output"
    resumed = run(cmd + ["--out", str(killed_out)], repo, env=env)
    assert "resuming from step" in resumed.stdout
    fresh = run(
        [sys.executable, "stages/train.py", "--params", str(pfile), "--run", run_name,
         "--work", str(tmp_path / "work_fresh"), "--out", str(tmp_path / "fresh")],
        repo, env=env,
    )
    assert "resuming" not in fresh.stdout
    a, b = _final_params(killed_out), _final_params(tmp_path / "fresh")
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_every_grid_point_has_its_mlflow_run(repo, mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    exps = client.search_experiments()
    runs = [r for e in exps for r in client.search_runs([e.experiment_id])]
    by_key = {}
    for r in runs:
        by_key.setdefault(r.data.tags.get("elt.run_key"), []).append(r)
    for name in RUNS:
        assert len(by_key.get(name, [])) == 1, f"expected exactly one MLflow run for {name}"
        r = by_key[name][0]
        fid = client.get_metric_history(r.info.run_id, "fid")
        expected = [1] if name.endswith("unique") else [1, 2, 3]
        assert sorted(m.step for m in fid) == expected
        ev = json.loads((repo / "runs" / name / "eval.json").read_text())
        for m in fid:
            assert m.value == pytest.approx(ev["per_loop"][str(m.step)]["fid"], rel=1e-6)
        assert any(k.startswith("train.") or k.startswith("grid.") for k in r.data.params)
        arts = [a.path for a in client.list_artifacts(r.info.run_id)]
        assert arts, f"no artifacts logged for {name}"
    assert "aggregate" in by_key


# Typical seconds of each stage on an idle 2-core machine; a kill lands at a random 15-70% of it
# (early enough that a faster machine is still inside the stage most of the time).
STAGE_SECONDS = {"prepare_data": 8, "train_tokenizer": 20, "tokenize": 25, "fetch_fid_weights": 4, "fetch_fvd_weights": 3,
                 "ref_stats": 25, "floor": 30, "train": 20, "sample": 20, "evaluate": 25, "aggregate": 8}


def _dag_stages() -> list[str]:
    head = ["prepare_data", "train_tokenizer@maskgit", "train_tokenizer@toy", "tokenize@maskgit", "tokenize@toy",
            "fetch_fid_weights", "fetch_fvd_weights", "ref_stats", "floor"]
    return head + [f"{s}@{r}" for s in ("train", "sample", "evaluate") for r in RUNS + [TOY]] + ["aggregate"]


def _stage_command(dvc_proc: subprocess.Popen, timeout: float = 120.0):
    """The `python stages/...` process `dvc repro -s STAGE` starts, once it runs; None if DVC
    finished (or failed) without starting one."""
    deadline = time.monotonic() + timeout
    parent = psutil.Process(dvc_proc.pid)
    while time.monotonic() < deadline and dvc_proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                if any(part.startswith("stages/") for part in child.cmdline()):
                    return child
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    return None


@pytest.mark.timeout(3600)  # the whole DAG again, every stage killed and rerun: ~2x a repro on a loaded machine
def test_dag_survives_kill_9_in_every_stage(repo, tmp_path):
    """Every stage of the tiny DAG is SIGKILLed (with its process group: DVC, the stage, Beam's
    workers) at a random moment, then rerun; the outputs equal the uninterrupted run's."""
    import random

    seed = int(os.environ.get("ELT_KILL_SEED", "0"))
    rng = random.Random(seed)
    killed = make_repo(tmp_path / "killed", toy=True)
    env = env_for({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})  # tracking down: must not matter
    interrupted = []
    for stage in _dag_stages():
        delay = rng.uniform(0.15, 0.7) * STAGE_SECONDS[stage.split("@")[0]]
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-s", stage], cwd=killed, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        # The delay counts from the stage's own command, and the kill lands only while it runs: a
        # kill inside DVC's bookkeeping (its .dvc/tmp/rwlock JSON, written before and after the
        # command) tests DVC, not the stages (such a kill leaves that file truncated; README says
        # how to recover).
        command = _stage_command(proc)
        if command is not None:
            try:
                command.wait(timeout=delay)
            except psutil.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                interrupted.append(f"{stage}@{delay:.1f}s")
        proc.wait()
        dvc(killed, "repro", "-s", stage, env=env)  # the rerun completes
    print(f"seed {seed}: killed mid-run: {', '.join(interrupted)}")
    # Stages that ended before their kill were not tested: a vacuous run must not pass.
    assert len(interrupted) >= len(_dag_stages()) // 3, f"too few stages were interrupted: {interrupted}"
    assert _stale(killed) == set()
    assert not list(killed.glob("data/*.tmp*")) and not list(killed.glob("runs/*/*.tmp"))

    for rel in sorted(p.relative_to(repo / "data" / "tokens") for p in (repo / "data" / "tokens").rglob("*") if p.is_file()):
        # every family's tokens (data/tokens/<family>/...)
        assert (repo / "data" / "tokens" / rel).read_bytes() == (killed / "data" / "tokens" / rel).read_bytes(), rel
    for name in RUNS + [TOY]:
        for x, y in zip(_final_params(repo / "runs" / name / "train"), _final_params(killed / "runs" / name / "train")):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        want = json.loads((repo / "runs" / name / "eval.json").read_text())["per_loop"]
        got = json.loads((killed / "runs" / name / "eval.json").read_text())["per_loop"]
        assert sorted(want) == sorted(got)
        for L in want:
            assert got[L]["fid"] == pytest.approx(want[L]["fid"], rel=1e-9) and got[L]["gflops"] == want[L]["gflops"]
            a = np.load(repo / "runs" / name / "samples" / f"L{L}.npz")
            b = np.load(killed / "runs" / name / "samples" / f"L{L}.npz")
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    want_front = json.loads((repo / "results" / "pareto.json").read_text())
    got_front = json.loads((killed / "results" / "pareto.json").read_text())
    assert [(p.get("run"), p.get("L")) for p in want_front.get("front", [])] == \
        [(p.get("run"), p.get("L")) for p in got_front.get("front", [])]


def test_tokenized_data_shared_through_a_gcs_remote(repo, tmp_path):
    """Machine A pushes the real tokenize output (and run-cache) to gs:// (a local emulator);
    machine B clones, pulls only the tokens byte-identical, and `dvc repro` skips tokenization."""
    from servers import add_gcs_remote, gcs_emulator, gcs_env, point_remote_at_emulator

    with gcs_emulator(tmp_path / "gcs", bucket="elt-share") as endpoint:
        env = env_for(gcs_env())
        add_gcs_remote(repo, "elt-share")
        point_remote_at_emulator(repo, endpoint)
        run(["git", "add", ".dvc/config"], repo)
        run(["git", "commit", "-qm", "gs:// remote"], repo)
        dvc(repo, "push", "--run-cache", env=env)

        clone = tmp_path / "machine_b"
        run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
        point_remote_at_emulator(clone, endpoint)
        dvc(clone, "pull", "data/tokens/maskgit", env=env)  # only one family's tokens, for someone who wants them
        # only the tokens came: no dataset, no checkpoints (metrics files are in git, not pulled)
        assert not (clone / "data" / "tfds").exists() and not (clone / "runs" / RUNS[0] / "train").exists()
        assert not (clone / "data" / "tokens" / "toy").exists()  # nor the other family's tokens
        # (data/tokens/.gitignore, DVC's list of the folder's outputs, comes with git)
        src = sorted(p.relative_to(repo) for p in (repo / "data" / "tokens" / "maskgit").rglob("*") if p.is_file())
        dst = sorted(p.relative_to(clone) for p in (clone / "data" / "tokens" / "maskgit").rglob("*") if p.is_file())
        assert src == dst and src
        for rel in src:
            assert (repo / rel).read_bytes() == (clone / rel).read_bytes(), rel

        dvc(clone, "pull", env=env)
        proc = dvc(clone, "repro", "tokenize@maskgit", env=env)
        assert "Running stage 'tokenize@maskgit'" not in proc.stdout, proc.stdout
        assert "didn't change, skipping" in proc.stdout or "is cached" in proc.stdout
    run(["git", "reset", "-q", "--hard", "HEAD~1"], repo)
