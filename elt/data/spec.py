"""LatentSpec: what one example's latent array looks like, the contract between a tokenizer, the
shards it is written to, and the model family that trains on them.

  masked-token images  LatentSpec((16, 16), "int32", 1024)     VQ ids on an h x w grid
  masked-token video   LatentSpec((4, 16, 16), "int32", 1024)  VQ ids on a t x h x w grid
  diffusion            LatentSpec((32, 32, 4), "float32", None) autoencoder latents h x w x c

Plain data (numpy only, no jax / tensorflow), so reading a manifest stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
import operator

import numpy as np

DTYPES = ("int32", "float32")


@dataclasses.dataclass(frozen=True)
class LatentSpec:
    shape: tuple[int, ...]  # per example, without the batch axis
    dtype: str  # "int32" (token ids) or "float32" (continuous latents)
    vocab_size: int | None = None  # codebook size K for token ids; None for continuous latents

    def __post_init__(self):
        # Normalise lists and numpy ints (JSON and numpy give those) to a tuple of Python ints, so
        # that equal specs compare and hash equal whatever they were built from.
        try:
            shape = tuple(_as_int(d) for d in self.shape)
        except TypeError:
            raise ValueError(f"LatentSpec.shape must be a tuple of ints, got {self.shape!r}") from None
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"LatentSpec.shape must be one or more ints >= 1, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        if self.dtype not in DTYPES:
            raise ValueError(f"LatentSpec.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.dtype == "int32":
            try:
                vocab = _as_int(self.vocab_size)
            except TypeError:
                vocab = None
            if vocab is None or vocab < 1:
                raise ValueError(
                    f"LatentSpec.vocab_size must be an int >= 1 for int32 tokens (the codebook "
                    f"size), got {self.vocab_size!r}"
                )
            object.__setattr__(self, "vocab_size", vocab)
        elif self.vocab_size is not None:
            raise ValueError(
                f"LatentSpec.vocab_size must be None for {self.dtype} latents (no codebook), "
                f"got {self.vocab_size!r}"
            )

    @property
    def size(self) -> int:
        """Elements per example."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes per example as stored (little-endian raw array)."""
        return self.size * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict:
        """A JSON-ready dict (what manifest.json stores under "spec")."""
        return {"shape": list(self.shape), "dtype": self.dtype, "vocab_size": self.vocab_size}

    @classmethod
    def from_json(cls, obj: dict) -> "LatentSpec":
        if not isinstance(obj, dict) or set(obj) != {"shape", "dtype", "vocab_size"}:
            raise ValueError(
                f"a latent spec is {{shape, dtype, vocab_size}}, got {obj!r}"
            )
        return cls(obj["shape"], obj["dtype"], obj["vocab_size"])

    def check(self, batch, what: str = "latents") -> np.ndarray:
        """`batch` as a [B, *shape] array of this dtype, or a ValueError saying what differs.
        Integer batches must be ids in [0, vocab_size) and are cast to int32 (ids from int64
        sources are common); float batches must already be float32 (a silent cast from float64
        would hide a tokenizer that does not produce what its spec says)."""
        x = np.asarray(batch)
        if x.shape[1:] != self.shape or x.ndim != len(self.shape) + 1:
            raise ValueError(
                f"{what}: expected [B, {', '.join(map(str, self.shape))}], got {list(x.shape)}"
            )
        if self.dtype == "int32":
            if not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"{what}: expected integer token ids, got {x.dtype}")
            if x.size and (x.min() < 0 or x.max() >= self.vocab_size):
                raise ValueError(
                    f"{what}: token ids must lie in [0, {self.vocab_size}), got "
                    f"[{x.min()}, {x.max()}]"
                )
            return x.astype(np.int32, copy=False)
        if x.dtype != np.float32:
            raise ValueError(f"{what}: expected float32 latents, got {x.dtype}")
        return x


def _as_int(v) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("bool is not a size")
    return operator.index(v)
