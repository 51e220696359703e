"""Long stages after a real SIGKILL: sample and evaluate resume per loop count L and end with what
an uninterrupted run gives; Beam tokenize removes the temp folder a killed run left behind.

One tiny grid point is reproduced once (`dvc repro evaluate@RUN`), then each stage script runs
as a real process in its own process group, killed with SIGKILL (os.killpg: Beam's and JAX's
helper processes and threads die with it) once its first unit of work is durable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline_repo import dvc, env_for, make_repo, run, tiny_params

RUN = "tiny-1x2-elt"


def _params() -> dict:
    p = tiny_params()
    p["scales"] = {"tiny": p["scales"]["tiny"]}
    p["grid"] = {RUN: p["grid"][RUN]}
    p["families"]["maskgit"]["tokenizer"].update(steps=10)
    p["train"].update(steps=4, warmup_steps=1, checkpoint_every=2, log_every=2)
    p["sample"].update(loops=[1, 2, 3], num_samples=10, batch_size=10, cfg_scales=[1.0])
    p["families"]["maskgit"]["sample"]["steps"] = 2
    p["eval"].update(batch_size=10, ref_num_images=10)
    return p


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # Tracking down (must not matter); one JAX compilation cache for the module's processes, so
    # the Inception network and the sampler are compiled once, not once per process.
    return env_for({
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
    })


@pytest.fixture(scope="module")
def repo(tmp_path_factory, env):
    path = make_repo(tmp_path_factory.mktemp("resume") / "repo", _params())
    proc = dvc(path, "repro", f"evaluate@{RUN}", env=env, timeout=1200)
    (path / "repro.log").write_text(proc.stdout + proc.stderr)
    return path


def _start(cmd, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:  # a file, not a pipe: a child never blocks on a full pipe
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, log: Path, timeout: float = 600):
    """Poll ``ready()`` until it returns something true, then SIGKILL the process group."""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            got = ready()
            if got:
                return got
            if proc.poll() is not None:
                raise AssertionError(f"exited ({proc.returncode}) before the kill point:\n{log.read_text()[-4000:]}")
            time.sleep(0.02)
        raise AssertionError(f"kill point not reached in {timeout} s:\n{log.read_text()[-4000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_sample_resumes_per_loop_count_and_matches_an_uninterrupted_run(repo, env, tmp_path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # Enough work per L (a fraction of a second) to kill between two L.
    params["sample"].update(loops=[1, 2, 3], num_samples=300, batch_size=100)
    params["families"]["maskgit"]["sample"]["steps"] = 8
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "stages/sample.py", "--params", str(pfile), "--run", RUN]
    work, out = tmp_path / "work", tmp_path / "killed" / "samples"
    args = ["--work", str(work), "--out", str(out)]

    def sealed():  # L{L}/DONE.json: renamed into place (not L{L}.tmp-*/DONE.json, being written)
        return [p for p in work.glob(f"{RUN}/*/L*/DONE.json") if p.parent.name[1:].isdigit()]

    def durable():
        return sorted(p.parent.name for p in sealed())

    proc = _start(cmd + args, repo, env, tmp_path / "killed.log")
    _kill_when(proc, durable, tmp_path / "killed.log")
    done = durable()
    assert done and len(done) < 3, f"the kill should land between two L, durable: {done}"
    assert not out.exists(), "a killed run must not leave complete-looking output"
    timing_then = {p.parent.name: json.loads(p.read_text())["info"]["timing"] for p in sealed()}

    # The rerun also adds an L to sample.loops: the list is not part of the work folder's key.
    params["sample"]["loops"] = [1, 2, 3, 4]
    pfile.write_text(yaml.safe_dump(params))
    resumed = run(cmd + args, repo, env=env)
    assert f"sample@{RUN}: resuming: {','.join(done)} already done" in resumed.stdout
    assert not list(work.glob(f"{RUN}/*/*.tmp-*")), "the half-written L of the killed run is removed"
    fresh_out = tmp_path / "fresh" / "samples"
    fresh = run(cmd + ["--work", str(tmp_path / "work_fresh"), "--out", str(fresh_out)], repo, env=env)
    assert "resuming" not in fresh.stdout

    assert _files(out) == _files(fresh_out)
    assert len([f for f in _files(out) if f.endswith(".png")]) == 4 * (300 + 1)
    for name in _files(out):
        if name.endswith(".png"):
            assert (out / name).read_bytes() == (fresh_out / name).read_bytes(), name
        elif name.endswith(".npz"):
            with np.load(out / name) as a, np.load(fresh_out / name) as b:
                assert sorted(a.files) == sorted(b.files) == ["images", "labels", "latents"]
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}[{k}]")
    timing = json.loads((out / "timing.json").read_text())
    assert list(timing) == ["L1", "L2", "L3", "L4"]
    for L, t in timing_then.items():
        assert timing[L] == t, "a resumed L keeps the timing measured when it was sampled"


def test_evaluate_resumes_per_loop_count_and_matches_an_uninterrupted_run(repo, env, tmp_path):
    work, out = tmp_path / "work", tmp_path / "eval.json"
    cmd = [sys.executable, "stages/evaluate.py", "--params", "params.yaml", "--run", RUN,
           "--work", str(work), "--out", str(out)]

    def cached():
        return sorted(p.stem for p in work.glob(f"{RUN}/*/L*.json"))

    proc = _start(cmd, repo, env, tmp_path / "killed.log")
    _kill_when(proc, cached, tmp_path / "killed.log")
    done = cached()
    assert done and len(done) < 3, f"the kill should land between two L, cached: {done}"
    assert not out.exists()

    resumed = run(cmd, repo, env=env)
    assert f"evaluate@{RUN}: resuming: {','.join(done)} already done" in resumed.stdout
    ours = json.loads(out.read_text())["per_loop"]
    uninterrupted = json.loads((repo / "runs" / RUN / "eval.json").read_text())["per_loop"]  # dvc repro's
    assert sorted(ours) == sorted(uninterrupted) == ["1", "2", "3"]
    for L in ours:
        assert ours[L]["fid"] == uninterrupted[L]["fid"], L
        assert ours[L] == uninterrupted[L]

    # Every L cached: the Inception network is not even built (building it would fail here).
    out.unlink()
    argv = ["stages/evaluate.py", *cmd[2:]]
    code = (
        "import runpy, sys; import elt.evaluation.fid as f, elt.evaluation.inception as i; "
        "f.FIDEvaluator = i.InceptionFeatures = None; "
        f"sys.argv = {argv!r}; runpy.run_path('stages/evaluate.py', run_name='__main__')"
    )
    again = run([sys.executable, "-c", code], repo, env=env)
    assert f"evaluate@{RUN}: resuming: L1,L2,L3 already done" in again.stdout
    assert json.loads(out.read_text())["per_loop"] == ours


def test_tokenize_removes_the_temp_folder_of_a_killed_run(repo, env, tmp_path):
    out = tmp_path / "tokens"
    cmd = [sys.executable, "stages/tokenize_data.py", "--params", "params.yaml", "--out", str(out)]
    proc = _start(cmd, repo, env, tmp_path / "killed.log")
    stale = _kill_when(proc, lambda: list(tmp_path.glob("tokens.tmp-*")), tmp_path / "killed.log")
    assert [p.name for p in tmp_path.glob("tokens.tmp-*")] == [stale[0].name]
    assert not (out / "manifest.json").exists()

    rerun = run(cmd, repo, env=env)
    assert f"tokenize: removed 1 temp folder(s) of killed runs: {stale[0]}" in rerun.stdout
    assert not list(tmp_path.glob("tokens.tmp-*"))
    original = repo / "data" / "tokens" / "maskgit"
    assert _files(out) == _files(original)
    for name in _files(out):
        assert (out / name).read_bytes() == (original / name).read_bytes(), name


def test_tokenize_leaves_temp_folders_of_live_or_remote_runs(tmp_path, capsys):
    from elt import workdir
    from elt.data.beam_tokenize import _remove_stale_tmp

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = workdir.host_id()
    other = "0" * 8 if host != "0" * 8 else "1" * 8
    names = {
        f"tokens.tmp-{host}-{dead.pid}-0123abcd": False,  # killed run on this host: removed
        "tokens.tmp-0123456789ab": False,  # from before temp names said who wrote them: removed
        f"tokens.tmp-{host}-{os.getpid()}-0123abcd": True,  # a live run: kept
        f"tokens.tmp-{other}-{dead.pid}-0123abcd": True,  # written from another host: kept
        "tokens.tmp-notours": True,
        "tokens2.tmp-0123456789ab": True,  # another output's
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "tokens-00000-of-00001.tfrecord").write_bytes(b"x")
    removed = _remove_stale_tmp(str(tmp_path / "tokens"))
    assert sorted(Path(p).name for p in removed) == sorted(n for n, keep in names.items() if not keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, keep in names.items() if keep)
    assert capsys.readouterr().out.count("\n") == 1
