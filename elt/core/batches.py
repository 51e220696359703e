"""Training batches that are a pure function of the step number.

Resuming after a kill must give the parameters of an uninterrupted run, so the batch of step s
cannot depend on an iterator's hidden position. This process's share of the latents is held in
host memory and step s takes positions [s*B, (s+1)*B) of an endless stream of seeded per-epoch
permutations. Memory: int32 tokens are small (ImageNet at 16x16 is ~1.3 GB in all, split over the
hosts); float32 latents are not (ImageNet at 32x32x4 is ~21 GB in all).
"""

from __future__ import annotations

import numpy as np

from elt.data.loader import LatentData


class StepBatches:
    """Batches {"latents": [B, *spec.shape] of spec.dtype, "labels": int32 [B]}."""

    def __init__(self, data: LatentData, process_index: int = 0, process_count: int = 1):
        self.spec = data.spec
        share = data.read(process_index, process_count)
        if len(share["labels"]) < 1:
            raise ValueError(f"{data.latents_dir}: process {process_index}/{process_count} holds no examples")
        self.latents = share["latents"]
        self.labels = share["labels"]
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

    def batch_for_step(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        idx = self.indices_for_step(step, batch_size, seed)
        return {"latents": self.latents[idx], "labels": self.labels[idx]}

    def eval_batch(self, size: int, seed: int) -> dict[str, np.ndarray]:
        idx = np.random.default_rng(seed).permutation(self.num_examples)[:size]
        return {"latents": self.latents[idx], "labels": self.labels[idx]}
