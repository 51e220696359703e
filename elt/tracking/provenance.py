"""Tags that say where a run's numbers came from: DVC stage and experiment, git commit."""

from __future__ import annotations

import os
import re
import subprocess

DVC_STAGE_ENV = "DVC_STAGE"  # set by DVC for every stage command, e.g. "train@tiny-2x2-ilsd"
DVC_EXP_NAME_ENV = "DVC_EXP_NAME"  # set by `dvc exp run` (queued and --temp runs)


def dvc_stage() -> str | None:
    return os.environ.get(DVC_STAGE_ENV) or None


def dvc_exp_name() -> str | None:
    return os.environ.get(DVC_EXP_NAME_ENV) or None


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """HEAD of the checkout the stage runs in (the temp copy under `dvc exp run --temp`)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def tag_safe(name: str) -> str:
    """A DVC stage address as part of an MLflow tag key ('@' is not allowed in keys)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)
