"""Training input: token shards -> shuffled, batched, repeated numpy batches (tf.data).

The manifest is verified first (shard present, size, sha256, record count), so a truncated or
foreign shard fails with its name before training starts. For multi-host training each process
keeps every `process_count`-th example (offset `process_index`) of the index-sorted stream, so
hosts see disjoint data whose union is the data set; with drop_remainder and an endless repeat
every host yields batches forever, so no host waits on another at an epoch end.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from elt.data import shards as shards_lib


class TokenData:
    """Verified token directory: the manifest plus a batch iterator factory."""

    def __init__(self, tokens_dir: str, verify: bool = True):
        self.tokens_dir = tokens_dir.rstrip("/")
        self.manifest = shards_lib.read_manifest(self.tokens_dir)
        if verify:
            shards_lib.verify_shards(self.tokens_dir, self.manifest)

    num_examples = property(lambda self: int(self.manifest["total"]))
    num_classes = property(lambda self: int(self.manifest["num_classes"]))
    codebook_size = property(lambda self: int(self.manifest["vocab_size"]))
    grid = property(lambda self: tuple(self.manifest["grid"]))
    num_tokens = property(lambda self: int(np.prod(self.manifest["grid"])))

    def files(self) -> list[str]:
        return [f"{self.tokens_dir}/{s['file']}" for s in self.manifest["shards"]]

    def batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        epochs: int | None = None,
        shuffle: bool = True,
        shuffle_buffer: int | None = None,
        drop_remainder: bool = True,
        process_index: int | None = None,
        process_count: int | None = None,
        include_index: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Batches {tokens int32 [B, h*w], labels int32 [B]} (+ index int64 [B] if asked).

        epochs=None repeats forever; each epoch is a fresh shuffle (seeded, reproducible). The
        shuffle buffer defaults to this process's whole share, i.e. a uniform shuffle per epoch.
        process_index/count default to jax.process_index()/process_count().
        """
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None (forever), got {epochs}")
        if process_index is None or process_count is None:
            import jax  # pylint: disable=import-outside-toplevel

            process_index, process_count = jax.process_index(), jax.process_count()
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        share = len(range(process_index, self.num_examples, process_count))
        if drop_remainder and share < batch_size:
            raise ValueError(
                f"process {process_index}/{process_count} holds {share} examples, fewer "
                f"than batch_size {batch_size}: no full batch"
            )
        # Files in manifest order, records in file order: the global index order. Sharding this
        # fixed stream per example is deterministic across hosts.
        ds = tf.data.TFRecordDataset(self.files(), num_parallel_reads=None)
        ds = ds.shard(process_count, process_index)
        ds = ds.map(shards_lib.parse_fn(self.num_tokens), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.cache()  # tokens are small: parse once, shuffle in memory on later epochs
        if shuffle:
            ds = ds.shuffle(
                shuffle_buffer or max(share, 1), seed=seed, reshuffle_each_iteration=True
            )
        ds = ds.repeat(epochs)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if not include_index:
            ds = ds.map(lambda b: {"tokens": b["tokens"], "labels": b["labels"]})
        ds = ds.prefetch(tf.data.AUTOTUNE)
        for batch in ds.as_numpy_iterator():
            yield batch


def load_tokens(tokens_dir: str, batch_size: int, **kwargs) -> Iterator[dict[str, np.ndarray]]:
    """Shorthand: verify `tokens_dir` and iterate batches (see TokenData.batches)."""
    return TokenData(tokens_dir).batches(batch_size, **kwargs)
