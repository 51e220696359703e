"""Token shards: TFRecord files of tf.train.Example {tokens int64[h*w], label int64, index int64}
plus `manifest.json`. Paths may be local or gs:// (tf.io.gfile throughout).

manifest.json = {format, total, shards: [{file, count, bytes, sha256}], grid [h, w], vocab_size
(codebook size K), num_classes, tokenizer (identity), dataset (identity), split, image_size}.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "elt-tokens-tfrecord-v1"


def shard_name(i: int, num_shards: int) -> str:
    return f"tokens-{i:05d}-of-{num_shards:05d}.tfrecord"


def shard_of(index: np.ndarray | int, total: int, num_shards: int):
    """Contiguous, order-independent assignment: example i -> shard floor(i * S / total)."""
    return (np.asarray(index, np.int64) * num_shards) // max(total, 1)


def shard_bounds(shard: int, total: int, num_shards: int) -> tuple[int, int]:
    """[start, stop) of the example indices in `shard` (inverse of `shard_of`)."""
    lo = -(-shard * total // num_shards)  # ceil(shard * total / S)
    hi = -(-(shard + 1) * total // num_shards)
    return lo, hi


def serialize(tokens: np.ndarray, label: int, index: int) -> bytes:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    feats = {
        "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=tokens.ravel().tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    # deterministic=True sorts the feature map, so equal content gives equal bytes.
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(
        deterministic=True
    )


def write_shard(path: str, tokens: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> dict:
    """Write one shard sorted by example index; returns {file, count, bytes, sha256}."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    order = np.argsort(indices, kind="stable")
    with tf.io.TFRecordWriter(path) as w:
        for i in order:
            w.write(serialize(tokens[i], labels[i], indices[i]))
    return {"file": path.rsplit("/", 1)[-1], "count": int(len(indices)), **file_digest(path)}


def file_digest(path: str) -> dict:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    h, n = hashlib.sha256(), 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            n += len(chunk)
    return {"bytes": n, "sha256": h.hexdigest()}


def count_records(path: str) -> int:
    """Number of TFRecord frames (u64 length, u32 crc, data, u32 crc); raises on a torn frame."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    size = tf.io.gfile.stat(path).length
    n, pos = 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while pos < size:
            header = f.read(8)
            if len(header) < 8:
                raise ValueError(f"shard {path}: truncated record header at byte {pos}")
            (length,) = struct.unpack("<Q", header)
            pos += 8 + 4 + length + 4
            if pos > size:
                raise ValueError(f"shard {path}: truncated record at byte {pos - length - 16}")
            f.seek(pos)
            n += 1
    return n


def read_manifest(tokens_dir: str) -> dict:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    path = f"{tokens_dir.rstrip('/')}/{MANIFEST}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"no {MANIFEST} in {tokens_dir!r}: not a finished token directory "
            "(run the tokenize stage; an interrupted run leaves none)"
        )
    with tf.io.gfile.GFile(path) as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    for key in (
        "format",
        "total",
        "shards",
        "grid",
        "vocab_size",
        "num_classes",
        "tokenizer",
        "dataset",
    ):
        if key not in manifest:
            raise ValueError(f"{path}: missing key {key!r}")
    if manifest["format"] != FORMAT:
        raise ValueError(f"{path}: format {manifest['format']!r}, expected {FORMAT!r}")
    return manifest


def verify_shards(tokens_dir: str, manifest: dict, check_sha256: bool = True) -> None:
    """Each listed shard exists with the recorded size, sha256 and record count; else an error
    naming the shard."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    root = tokens_dir.rstrip("/")
    total = 0
    for entry in manifest["shards"]:
        path = f"{root}/{entry['file']}"
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"shard {path} listed in {MANIFEST} is missing")
        size = tf.io.gfile.stat(path).length
        if size != entry["bytes"]:
            raise ValueError(
                f"shard {path} has {size} bytes, manifest says {entry['bytes']} "
                "(truncated or replaced)"
            )
        if check_sha256:
            digest = file_digest(path)["sha256"]
            if digest != entry["sha256"]:
                raise ValueError(
                    f"shard {path}: sha256 {digest[:16]}... does not match the manifest "
                    f"({entry['sha256'][:16]}...): a foreign or altered shard"
                )
        n = count_records(path)
        if n != entry["count"]:
            raise ValueError(f"shard {path} holds {n} records, manifest says {entry['count']}")
        total += n
    if total != manifest["total"]:
        raise ValueError(
            f"{root}/{MANIFEST}: shards hold {total} records, manifest total {manifest['total']}"
        )


def parse_fn(num_tokens: int):
    """tf function: serialized Example -> {tokens int32 [h*w], label int32, index int64}."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    spec = {
        "tokens": tf.io.FixedLenFeature([num_tokens], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "index": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        return {
            "tokens": tf.cast(ex["tokens"], tf.int32),
            "labels": tf.cast(ex["label"], tf.int32),
            "index": ex["index"],
        }

    return parse
