"""Training batches that are a pure function of the step number, whatever the device topology.

Resuming after a kill must give the parameters of an uninterrupted run, so the batch of step s
cannot depend on an iterator's hidden position; and a preempted job may resume on another slice
(other process and device counts), so it cannot depend on the topology either. The GLOBAL batch
of step s takes positions [s*B, (s+1)*B) of an endless stream of seeded per-epoch permutations of
all examples; each process then feeds only its rows of it (``rows``: the block its devices hold,
see ``process_rows``). Every process therefore holds the whole set in host memory: int32 tokens
are small (ImageNet at 16x16 is ~1.3 GB); float32 latents are not (ImageNet at 32x32x4 is ~21 GB
per host, within a TPU host's memory).
"""

from __future__ import annotations

import numpy as np

from elt.data.loader import LatentData


def process_rows(sharding, global_batch: int) -> slice:
    """The contiguous rows of a [global_batch, ...] array this process's devices hold under
    ``sharding`` (the batch sharding of the mesh)."""
    blocks = sharding.addressable_devices_indices_map((global_batch,)).values()
    starts = [b[0].start or 0 for b in blocks]
    stops = [global_batch if b[0].stop is None else b[0].stop for b in blocks]
    lo, hi = min(starts), max(stops)
    held = sum(e - s for s, e in {(s, e) for s, e in zip(starts, stops)})
    if held != hi - lo:  # a mesh whose device order interleaves processes along the batch
        raise ValueError(f"this process's devices hold rows {sorted(zip(starts, stops))} of the batch, "
                         "not one contiguous block: order the mesh's devices process by process")
    return slice(lo, hi)


class StepBatches:
    """Batches {"latents": [B, *spec.shape] of spec.dtype, "labels": int32 [B]}."""

    def __init__(self, data: LatentData):
        self.spec = data.spec
        every = data.read()
        if len(every["labels"]) < 1:
            raise ValueError(f"{data.latents_dir}: holds no examples")
        self.latents = every["latents"]
        self.labels = every["labels"]
        self.num_examples = len(self.labels)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if key not in self._perms:
            self._perms = {key: np.random.default_rng([seed, epoch]).permutation(self.num_examples)}
            self._perms[key].flags.writeable = False
        return self._perms[key]

    def indices_for_step(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        start = step * batch_size
        out = []
        while len(out) < batch_size:
            epoch, offset = divmod(start + len(out), self.num_examples)
            take = min(batch_size - len(out), self.num_examples - offset)
            out.extend(self._perm(seed, epoch)[offset : offset + take])
        return np.asarray(out)

    def batch_for_step(self, step: int, batch_size: int, seed: int, rows: slice = slice(None)) -> dict[str, np.ndarray]:
        """Rows ``rows`` of the global batch of ``step`` (``batch_size``: the global batch size)."""
        idx = self.indices_for_step(step, batch_size, seed)[rows]
        return {"latents": self.latents[idx], "labels": self.labels[idx]}

    def eval_batch(self, size: int, seed: int) -> dict[str, np.ndarray]:
        idx = np.random.default_rng(seed).permutation(self.num_examples)[:size]
        return {"latents": self.latents[idx], "labels": self.labels[idx]}
