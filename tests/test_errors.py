"""User errors end a stage or the CLI with one line on stderr and exit 1, no traceback; bugs keep
their traceback; ELT_DEBUG=1 shows it for user errors too. Real stage scripts in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from elt.errors import EltError, run_main

ROOT = Path(__file__).resolve().parents[1]
PARAM_STAGES = ["prepare_data", "train_tokenizer", "tokenize_data", "ref_stats", "aggregate"]
RUN_STAGES = ["train", "sample", "evaluate"]


def _stage(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def _one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bad_params(tmp_path_factory) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["lr"] = -1
    path = tmp_path_factory.mktemp("params") / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("stage", PARAM_STAGES + RUN_STAGES)
def test_bad_param_is_one_line_naming_the_key(stage, bad_params):
    args = ["--params", str(bad_params)] + (["--run", "tiny-2x3-elt"] if stage in RUN_STAGES else [])
    line = _one_error_line(_stage(stage, *args), "train.lr", "must be > 0")
    assert line.startswith(f"error: {stage}: ")


@pytest.mark.parametrize("stage", RUN_STAGES)
def test_unknown_run_is_one_line(stage):
    _one_error_line(_stage(stage, "--params", str(ROOT / "params.yaml"), "--run", "no-such-run"), "--run", "'no-such-run'")


def test_missing_params_file_names_it(tmp_path):
    _one_error_line(_stage("train", "--params", str(tmp_path / "nope.yaml"), "--run", "x"), "nope.yaml")


def test_debug_variable_shows_the_traceback(bad_params):
    proc = _stage("train", "--params", str(bad_params), "--run", "tiny-2x3-elt", env={"ELT_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "train.lr" in proc.stderr


def test_run_main_keeps_tracebacks_of_bugs(capsys, monkeypatch):
    monkeypatch.delenv("ELT_DEBUG", raising=False)

    def user_error():
        raise EltError("step 25: loss=nan")

    assert run_main(user_error, prog="train") == 1
    assert capsys.readouterr().err.startswith("error: train: step 25: loss=nan")

    def bug():
        raise RuntimeError("an internal error")

    with pytest.raises(RuntimeError, match="internal"):  # not swallowed into one line
        run_main(bug)
    assert run_main(lambda: None) == 0 and run_main(lambda: 3) == 3
