"""Where runs are stored: an embedded sqlite store at the repository root, or MLFLOW_TRACKING_URI.

MLflow's own default (``sqlite:///mlflow.db`` and ``./mlruns``) is relative to the working
directory. ``dvc exp run --temp`` runs stages in a throw-away copy of the repository, so a relative
store would lose those runs; we pin the same file names to an absolute location derived from the
DVC root, so ``mlflow ui`` started in the repository (no flags) shows every run.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlflow.utils.file_utils import path_to_local_sqlite_uri

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# DVC exports the root of the repository that launched the stage, also for `dvc exp run --temp`
# (dvc/repo/experiments/queue/base.py sets it to the original repo, not the temp copy).
DVC_ROOT_ENV = "DVC_ROOT"
DB_FILE = "mlflow.db"  # MLflow's default store file name
ARTIFACTS_DIR = "mlruns"  # MLflow's default local artifacts folder


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: ``$DVC_ROOT``, else the nearest folder holding ``.dvc``, else ``.git``.

    Falls back to the (absolute) start folder when neither is found, which is what MLflow itself
    would use.
    """
    env_root = os.environ.get(DVC_ROOT_ENV)
    if env_root:
        root = Path(env_root)
        if not root.is_dir():
            raise ValueError(f"{DVC_ROOT_ENV}={env_root!r} is not a directory")
        return root.resolve()
    here = Path(start if start is not None else os.getcwd()).resolve()
    for marker in (".dvc", ".git"):
        for folder in (here, *here.parents):
            if (folder / marker).is_dir():
                return folder
    return here


def default_tracking_uri(start: str | os.PathLike | None = None) -> str:
    """``sqlite:////<repo root>/mlflow.db`` (absolute)."""
    return path_to_local_sqlite_uri(str(find_repo_root(start) / DB_FILE))


def resolve_tracking_uri(start: str | os.PathLike | None = None) -> str:
    """``$MLFLOW_TRACKING_URI`` when set (a shared server), else the embedded default."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    return uri or default_tracking_uri(start)


def is_local_store(uri: str) -> bool:
    """True for stores on this machine (no network to time out on)."""
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def artifact_root_for(uri: str) -> str | None:
    """Artifact folder for new experiments of a local sqlite store: ``<folder of the db>/mlruns``.

    None for servers, which choose their own artifact location.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    db_path = Path(uri[len(prefix):]).resolve()
    return (db_path.parent / ARTIFACTS_DIR).as_uri()
