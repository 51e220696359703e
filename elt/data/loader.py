"""Training input: a verified latent directory -> this process's share of its examples as arrays.

The manifest is verified first (shard present, size, sha256, record count), so a truncated or
foreign shard fails with its name before training starts. For multi-host training each process
keeps every `process_count`-th example (offset `process_index`) of the index-sorted stream, so
hosts see disjoint data whose union is the data set. Shuffling and batching are the trainer's
(elt/core/batches.py: batches as a pure function of the step, for exact resumes).
"""

from __future__ import annotations

import numpy as np

from elt.data import shards as shards_lib
from elt.data.spec import LatentSpec


class LatentData:
    """Verified latent directory: its manifest, its spec, and a reader of one process's share."""

    def __init__(self, latents_dir: str, verify: bool = True):
        self.latents_dir = latents_dir.rstrip("/")
        self.manifest = shards_lib.read_manifest(self.latents_dir)
        self.spec: LatentSpec = shards_lib.spec_of(self.manifest)
        if verify:
            shards_lib.verify_shards(self.latents_dir, self.manifest)

    num_examples = property(lambda self: int(self.manifest["total"]))
    num_classes = property(lambda self: int(self.manifest["num_classes"]))

    def files(self) -> list[str]:
        return [f"{self.latents_dir}/{s['file']}" for s in self.manifest["shards"]]

    def read(self, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        """This process's share in index order: {latents [n, *spec.shape] of spec.dtype,
        labels int32 [n], index int64 [n]} with index = process_index, +process_count, ..."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        # Files in manifest order, records in file order: the global index order. Sharding this
        # fixed stream per record is deterministic across hosts, and each host parses only its own.
        ds = tf.data.TFRecordDataset(self.files())
        ds = ds.shard(process_count, process_index)
        ds = ds.batch(4096).map(shards_lib.parse_fn(self.spec))
        try:
            parts = list(ds.as_numpy_iterator())
        except tf.errors.InvalidArgumentError as e:  # a record of another size or feature set
            why = e.message.splitlines()[0].rsplit(": ", 1)[-1]  # tf's own words, less its prefix
            raise ValueError(
                f"{self.latents_dir}: shards do not hold examples of the manifest's spec "
                f"{list(self.spec.shape)} {self.spec.dtype} ({why})"
            ) from None
        want = np.arange(process_index, self.num_examples, process_count)
        if not parts:
            return {
                "latents": np.zeros((0, *self.spec.shape), self.spec.dtype),
                "labels": np.zeros((0,), np.int32),
                "index": want,
            }
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        # Shards written by write_shard are index-sorted and contiguous; anything else (shards of
        # another writer, reordered files) would silently pair the wrong hosts' data.
        if not np.array_equal(out["index"], want):
            raise ValueError(
                f"{self.latents_dir}: records are not the examples 0..{self.num_examples - 1} in "
                "index order (shards not written by elt.data.shards.write_shard?)"
            )
        return out
