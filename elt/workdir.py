"""Work folders that survive a killed stage: content hashes, sealed (complete) folders, atomic
writes, and temporary folders that say who owns them.

* A *sealed* folder holds ``DONE.json``, written last: the sha256 of every other file in it plus
  what the stage wants to remember (e.g. a timing). ``sealed_info`` accepts a folder only when the
  marker is there and every listed file is present with the listed contents (and nothing else is).
* Temporary names carry their owner: ``<name>.tmp-<host>-<pid>-<random>`` (host: a short hash of
  the host name). ``tmp_owner_state`` tells a stale one (same host, process gone) from one that a
  live run (or a run on another host sharing the folder) is still writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterable

from elt.integrity import file_digest

MARKER = "DONE.json"
_TMP = re.compile(r"\.tmp-(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}|[0-9a-f]{12})$")


# --------------------------------------------------------------------------- deterministic files
def save_npz(path: str | os.PathLike, **arrays) -> None:
    """np.savez_compressed with fixed zip timestamps: the same arrays give the same bytes, so DVC
    and the content-hash caches see a rerun that changed nothing as unchanged."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


# --------------------------------------------------------------------------- hashes
def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(str(path))[0]  # one hashing routine for manifests and work folders


def sha256_tree(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """One hash of files and folders (recursively, ``.py``-compiled caches skipped): each file's
    path (relative to ``root`` when given) and contents, in sorted order."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in p.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    h = hashlib.sha256()
    for f in sorted(set(files)):
        name = f.relative_to(root) if root is not None else f
        h.update(f"{name.as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- atomic writes
def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary name in the same folder, then rename: readers see old or new."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{tmp_tag()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def seal(folder: str | os.PathLike, info: dict) -> None:
    """Write ``folder/DONE.json`` (last): ``info`` plus the sha256 of every file in the folder."""
    folder = Path(folder)
    files = {
        f.relative_to(folder).as_posix(): sha256_file(f)
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.name != MARKER
    }
    atomic_write_text(folder / MARKER, json.dumps({"info": info, "files": files}, indent=1))


def sealed_info(folder: str | os.PathLike) -> dict | None:
    """``info`` of a complete, intact sealed folder; None when it is missing, unsealed or altered."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text())
        files = marker["files"]
        present = {f.relative_to(folder).as_posix() for f in folder.rglob("*") if f.is_file()} - {MARKER}
        if present != set(files):
            return None
        for name, digest in files.items():
            if sha256_file(folder / name) != digest:
                return None
        return marker["info"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publish_folder(tmp: Path, final: Path) -> None:
    """Rename a finished temporary folder to ``final``, replacing whatever is there."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


# --------------------------------------------------------------------------- owned temp names
def host_id() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def tmp_tag() -> str:
    """``tmp-<host>-<pid>-<random>``: a temporary name's suffix that identifies its writer."""
    return f"tmp-{host_id()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def tmp_owner_state(name: str) -> str | None:
    """For a name ending in one of our temporary suffixes: "stale" (its process on this host is
    gone, or it predates owner names), "live" (that process runs) or "foreign" (written from
    another host: we cannot tell). None for any other name."""
    m = _TMP.search(name)
    if m is None:
        return None
    if m["host"] is None:
        return "stale"  # `.tmp-<12 hex>`: from a version that did not record its owner
    if m["host"] != host_id():
        return "foreign"
    pid = int(m["pid"])
    return "live" if pid == os.getpid() or pid_alive(pid) else "stale"


def remove_stale_tmp(folder: Path, prefix: str = "") -> list[Path]:
    """Delete this host's temporary folders/files in ``folder`` (names starting with ``prefix``)
    whose writer is gone; returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        if p.name.startswith(prefix) and tmp_owner_state(p.name) == "stale":
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed
