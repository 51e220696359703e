"""Tokenizers by kind. A tokenizer directory holds `tokenizer.json` ({"kind": ..., "config": ...})
plus the kind's weights; `load_tokenizer(path)` dispatches on `kind`, so a pretrained checkpoint
with the same layout (or a new kind registered with `register_tokenizer`) plugs in unchanged.

A Tokenizer describes its output by a LatentSpec (elt/data/spec.py): encode(uint8 [B, H, W, 3])
-> [B, *spec.shape] of spec.dtype (int32 ids for VQ, float32 for continuous latents);
decode([B, *spec.shape]) -> uint8 [B, H, W, 3]; image_size; identity (hash of config + weights).
Shards, the loader and the model family read the spec, never a kind's own attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from elt.data.spec import LatentSpec
from elt.integrity import verify_manifest


class Tokenizer(Protocol):
    spec: LatentSpec
    image_size: int
    identity: str

    def encode(self, images: np.ndarray) -> np.ndarray: ...

    def decode(self, latents: np.ndarray) -> np.ndarray: ...


# kind -> loader(path, meta_from_tokenizer_json) -> Tokenizer
_LOADERS: dict[str, Callable[[str, dict], Tokenizer]] = {}


def register_tokenizer(kind: str, loader: Callable[[str, dict], Tokenizer]) -> None:
    if kind in _LOADERS and _LOADERS[kind] is not loader:
        raise ValueError(f"tokenizer kind {kind!r} is already registered")
    _LOADERS[kind] = loader


def tokenizer_kinds() -> list[str]:
    _register_builtin()
    return sorted(_LOADERS)


def load_tokenizer(path: str, require_manifest: bool = False) -> Tokenizer:
    """Load the tokenizer saved in directory `path` (local or gs://), after checking its files
    against MANIFEST.json (required for the pipeline's own data/tokenizer)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (gfile: local and gs://)

    meta_path = f"{path.rstrip('/')}/tokenizer.json"
    if not tf.io.gfile.exists(meta_path):
        raise FileNotFoundError(f"no tokenizer at {path!r}: {meta_path} does not exist")
    with tf.io.gfile.GFile(meta_path) as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path} is not valid JSON: {e}") from e
    kind = meta.get("kind")
    _register_builtin()
    if kind not in _LOADERS:
        raise ValueError(
            f"{meta_path}: unknown tokenizer kind {kind!r} (known: {tokenizer_kinds()})"
        )
    # Files first (names the bad one), then the kind's own identity check of the restored weights.
    # A checkpoint from elsewhere may have no manifest: its identity check still applies.
    # the stages keep family F's tokenizer in data/tokenizer/F (elt.config.family_paths)
    family = Path(str(path).rstrip("/")).name or "FAMILY"
    verify_manifest(path, "tokenizer", f"retrain it (`dvc repro -f train_tokenizer@{family}`) or fix "
                    f"families.{family}.tokenizer.checkpoint", required=require_manifest)
    return _LOADERS[kind](path, meta)


def _register_builtin() -> None:
    """The built-in kinds, registered on first use: importing the package (for a kind's typed
    config, read when params are parsed) must not import flax."""
    if "vq" not in _LOADERS:
        from elt.tokenizers.vq import VQTokenizer  # pylint: disable=import-outside-toplevel

        register_tokenizer("vq", VQTokenizer.load)
    if "vae" not in _LOADERS:
        from elt.tokenizers.vae import VAETokenizer  # pylint: disable=import-outside-toplevel

        register_tokenizer("vae", VAETokenizer.load)
    if "vq3d" not in _LOADERS:
        from elt.tokenizers.vq3d import VQ3DTokenizer  # pylint: disable=import-outside-toplevel

        register_tokenizer("vq3d", VQ3DTokenizer.load)
