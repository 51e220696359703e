"""Read tensors out of a PyTorch zip file (TorchScript archive or torch.save state_dict) without torch.

Both formats are a zip holding ``<root>/data.pkl`` (a pickle whose tensors point, through
``persistent_load``, at raw little-endian storages ``<root>/data/<key>``). A restricted unpickler
rebuilds the tensors as numpy arrays and turns every scripted module (``__torch__.*`` classes) into
a plain :class:`ScriptModule` holding its attributes, so the module tree, including each conv's
``stride`` and ``padding``, can be walked as data. Any other global is refused: loading a weights
file must never run code from it.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # no numpy dtype: refused below with a clear error
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

_JIT_LIST_BUILDERS = {"build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"}


class TorchFileError(ValueError):
    """A file that is not a readable PyTorch zip of plain tensors."""


class ScriptModule:
    """Attributes of one scripted module (``__torch__.<module>.<name>``), e.g. weight, stride."""

    torch_type = "ScriptModule"  # set per scripted class by the unpickler

    def __init__(self, attrs: dict[str, Any] | None = None):
        self.attrs = dict(attrs or {})

    def __repr__(self):
        return f"ScriptModule({self.torch_type}, {sorted(self.attrs)})"

    def __setstate__(self, state):  # pickle BUILD: the module's attribute dict
        self.attrs = dict(state)

    def children(self) -> dict[str, ScriptModule]:
        return {k: v for k, v in self.attrs.items() if isinstance(v, ScriptModule)}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    itemsize = storage.dtype.itemsize
    if len(size) == 0:
        return storage[storage_offset].copy()
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=tuple(size),
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fileobj, archive: zipfile.ZipFile, root: str, source: Path):
        super().__init__(fileobj)
        self._archive = archive
        self._root = root
        self._source = source
        self._storages: dict[str, np.ndarray] = {}
        self._module_types: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            if key not in self._module_types:
                # NEWOBJ calls cls.__new__(cls) and BUILD calls __setstate__(attrs): one
                # ScriptModule subclass per scripted type keeps the type name.
                self._module_types[key] = type(name, (ScriptModule,), {"torch_type": key})
            return self._module_types[key]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch.jit._pickle" and name in _JIT_LIST_BUILDERS:
            return list  # typed-list markers of TorchScript (e.g. a conv padding [0, 1])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise TorchFileError(
            f"{self._source}: refusing to load global {module}.{name} (only plain tensors and "
            "scripted modules are allowed)"
        )

    def persistent_load(self, pid):
        # pid = ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise TorchFileError(f"{self._source}: unexpected persistent id {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])  # pid[3]: device, unused
        if isinstance(storage_type, _StorageType):
            type_name = storage_type.name
        else:  # newer torch.save writes a dtype object instead of a storage class
            raise TorchFileError(f"{self._source}: unsupported storage type {storage_type!r}")
        dtype = _STORAGE_DTYPES[type_name]
        if dtype is None:
            raise TorchFileError(f"{self._source}: storage type {type_name} has no numpy equivalent")
        if key not in self._storages:
            raw = self._archive.read(f"{self._root}/data/{key}")
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
            if arr.size != numel:
                raise TorchFileError(
                    f"{self._source}: storage {key} holds {arr.size} elements, pickle says {numel}"
                )
            self._storages[key] = arr.astype(dtype, copy=False)
        return self._storages[key]


def load_torch_zip(path: str | Path) -> Any:
    """Unpickle ``data.pkl`` of a PyTorch zip file; tensors come back as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise TorchFileError(f"{path}: not a zip file (expected a TorchScript or torch.save zip archive)")
    with zipfile.ZipFile(path) as archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise TorchFileError(f"{path}: expected exactly one <root>/data.pkl in the zip, found {pkls}")
        root = pkls[0].split("/")[0]
        with archive.open(pkls[0]) as f:
            return _RestrictedUnpickler(f, archive, root, path).load()
