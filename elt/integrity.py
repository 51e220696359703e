"""Load checks: a stage's output folder carries MANIFEST.json (size and SHA-256 of every file it
holds), written last, and every stage that reads the folder verifies it first.

A file truncated by a full disk, edited by hand or swapped by a bad `dvc checkout` then fails
before any compute with an error naming the file, instead of as an orbax or numpy traceback (or,
worse, as quietly wrong numbers). Works on local paths and, through tf.io.gfile, on gs:// ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from elt.errors import EltError

MANIFEST = "MANIFEST.json"
_CHUNK = 1 << 20


class IntegrityError(EltError):
    """An artifact does not match its manifest (or has none where one is required)."""


def _fs(path: str):
    if "://" in path:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  (gs:// and other URLs)

        return tf.io.gfile
    return None


def _files(folder: str) -> list[str]:
    """Relative paths of every file under ``folder``, sorted, except the manifest itself."""
    fs = _fs(folder)
    if fs is None:
        root = Path(folder)
        rels = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    else:
        rels = []
        for base, _, names in fs.walk(folder):
            sub = base[len(folder):].strip("/")
            rels += [f"{sub}/{n}" if sub else n for n in names]
    return sorted(r for r in rels if r != MANIFEST)


def _open(path: str):
    fs = _fs(path)
    return open(path, "rb") if fs is None else fs.GFile(path, "rb")


def file_digest(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with _open(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def write_manifest(folder: str | Path) -> dict:
    """Record size and SHA-256 of every file under ``folder``; call it after the last file is written."""
    folder = str(folder).rstrip("/")
    entries = {}
    for rel in _files(folder):
        digest, size = file_digest(f"{folder}/{rel}")
        entries[rel] = {"sha256": digest, "bytes": size}
    manifest = {"files": entries}
    text = json.dumps(manifest, indent=1, sort_keys=True)
    fs = _fs(folder)
    if fs is None:
        (Path(folder) / MANIFEST).write_text(text)
    else:
        with fs.GFile(f"{folder}/{MANIFEST}", "w") as f:
            f.write(text)
    return manifest


def has_manifest(folder: str | Path) -> bool:
    path = f"{str(folder).rstrip('/')}/{MANIFEST}"
    fs = _fs(path)
    return Path(path).is_file() if fs is None else fs.exists(path)


def verify_manifest(folder: str | Path, what: str, remedy: str = "", required: bool = True) -> bool:
    """Check every file listed in ``folder``/MANIFEST.json; raise IntegrityError naming the first
    file that is missing or differs. ``what`` names the artifact for the message ("tokenizer"),
    ``remedy`` says how to remake it (`dvc repro -f train_tokenizer`). Files not listed (added by
    hand beside the artifact) are not the artifact's and are ignored. Returns False when there is
    no manifest and ``required`` is False (an artifact from elsewhere, e.g. a user's checkpoint)."""
    folder = str(folder).rstrip("/")
    tail = f"; {remedy}" if remedy else ""
    if not has_manifest(folder):
        fs = _fs(folder)
        exists = Path(folder).is_dir() if fs is None else fs.isdir(folder)
        if not exists:
            raise IntegrityError(f"{what} {folder}: folder does not exist{tail}")
        if not required:
            return False
        raise IntegrityError(f"{what} {folder}: no {MANIFEST} (incomplete, or written by an older version){tail}")
    with _open(f"{folder}/{MANIFEST}") as f:
        try:
            listed = json.loads(f.read())["files"]
        except (ValueError, KeyError) as e:
            raise IntegrityError(f"{what} {folder}/{MANIFEST}: unreadable ({e}){tail}") from None
    present = set(_files(folder))
    for rel, want in sorted(listed.items()):
        path = f"{folder}/{rel}"
        if rel not in present:
            raise IntegrityError(f"{what} {path}: missing (listed in {MANIFEST}){tail}")
        digest, size = file_digest(path)
        if size != want["bytes"]:
            raise IntegrityError(f"{what} {path}: {size} bytes, {MANIFEST} says {want['bytes']}{tail}")
        if digest != want["sha256"]:
            raise IntegrityError(f"{what} {path}: SHA-256 {digest[:16]}... differs from {MANIFEST}'s "
                                 f"{want['sha256'][:16]}... (modified or corrupt){tail}")
    return True


def listed_files(folder: str | Path) -> dict:
    """{relative path: {"sha256", "bytes"}} of ``folder``'s manifest. After verify_manifest this
    is the folder's content hash, so callers that key caches on the files need not hash again."""
    with _open(f"{str(folder).rstrip('/')}/{MANIFEST}") as f:
        return json.loads(f.read())["files"]
