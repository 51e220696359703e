"""Latent shards: TFRecord files of tf.train.Example {latent bytes, label int64, index int64} plus
`manifest.json`. Paths may be local or gs:// (tf.io.gfile throughout).

`latent` is the example's array as raw little-endian bytes of the manifest's spec (shape, dtype).
One bytes feature rather than int64/float lists because it is one code path for every dtype and
shape (int32 tokens, float32 latents, 2-D or 3-D), it is bit-exact for floats (no -0.0 or NaN
payload surprises), it has a fixed size per example that the reader checks, and the shape comes from
the manifest instead of being repeated in every record. (Varint int64 lists would be ~2x smaller
for 10-bit token ids; at 1 KB per ImageNet example that is not worth a second format.)

manifest.json = {format, total, shards: [{file, count, bytes, sha256}], spec {shape, dtype,
vocab_size}, num_classes, tokenizer (identity), dataset (identity), split, image_size}.
"""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

from elt.data.spec import LatentSpec

MANIFEST = "manifest.json"
FORMAT = "elt-latents-tfrecord-v2"
# Formats this code can no longer read: the fix is to rewrite the shards, not to convert them.
OLD_FORMATS = ("elt-tokens-tfrecord-v1",)
MANIFEST_KEYS = (
    "format", "total", "shards", "spec", "num_classes", "tokenizer", "dataset", "split", "image_size"
)


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


def serialize(latent: np.ndarray, label: int, index: int) -> bytes:
    """One example; `latent` must already have the spec's shape and little-endian dtype."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    feats = {
        "latent": tf.train.Feature(bytes_list=tf.train.BytesList(value=[latent.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    # deterministic=True sorts the feature map, so equal content gives equal bytes.
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString(
        deterministic=True
    )


def write_shard(
    path: str, latents: np.ndarray, labels: np.ndarray, indices: np.ndarray, *, spec: LatentSpec
) -> dict:
    """Write one shard of latents [n, *spec.shape] sorted by example index; returns
    {file, count, bytes, sha256}."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    latents = spec.check(latents, f"shard {path}")
    if not len(latents) == len(labels) == len(indices):
        raise ValueError(
            f"shard {path}: {len(latents)} latents, {len(labels)} labels, {len(indices)} indices"
        )
    # Little-endian whatever the host: the bytes, hence the sha256, are the same on every machine.
    latents = latents.astype(np.dtype(spec.dtype).newbyteorder("<"), copy=False)
    order = np.argsort(indices, kind="stable")
    with tf.io.TFRecordWriter(path) as w:
        for i in order:
            w.write(serialize(np.ascontiguousarray(latents[i]), labels[i], indices[i]))
    return {"file": path.rsplit("/", 1)[-1], "count": int(len(indices)), **file_digest(path)}


def make_manifest(
    spec: LatentSpec,
    shards: list[dict],
    *,
    num_classes: int,
    tokenizer: str,
    dataset: str,
    split: str,
    image_size: int,
) -> dict:
    """The manifest of a finished directory (`shards` as write_shard returned them, in order)."""
    return {
        "format": FORMAT,
        "total": int(sum(s["count"] for s in shards)),
        "shards": list(shards),
        "spec": spec.to_json(),
        "num_classes": int(num_classes),
        "tokenizer": tokenizer,
        "dataset": dataset,
        "split": split,
        "image_size": int(image_size),
    }


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


def read_manifest(latents_dir: str) -> dict:
    """The manifest of a finished directory, its keys and spec checked (manifest["spec"] stays the
    JSON dict; use spec_of(manifest) for the LatentSpec)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    path = f"{latents_dir.rstrip('/')}/{MANIFEST}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"no {MANIFEST} in {latents_dir!r}: not a finished token directory "
            "(run the tokenize stage; an interrupted run leaves none)"
        )
    with tf.io.gfile.GFile(path) as f:
        try:
            manifest = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise ValueError(f"{path}: missing key 'format'")
    if manifest["format"] in OLD_FORMATS:
        raise ValueError(
            f"{path}: shards of the old format {manifest['format']!r} (this code reads "
            f"{FORMAT!r}); rerun `dvc repro -f tokenize@FAMILY` to rewrite them"
        )
    if manifest["format"] != FORMAT:
        raise ValueError(f"{path}: format {manifest['format']!r}, expected {FORMAT!r}")
    for key in MANIFEST_KEYS:
        if key not in manifest:
            raise ValueError(f"{path}: missing key {key!r}")
    try:
        LatentSpec.from_json(manifest["spec"])
    except ValueError as e:
        raise ValueError(f"{path}: bad spec: {e}") from e
    return manifest


def spec_of(manifest: dict) -> LatentSpec:
    return LatentSpec.from_json(manifest["spec"])


def verify_shards(latents_dir: str, manifest: dict, check_sha256: bool = True) -> None:
    """Each listed shard exists with the recorded size, sha256 and record count; else an error
    naming the shard."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    root = latents_dir.rstrip("/")
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


def parse_fn(spec: LatentSpec):
    """tf function: a batch of serialized Examples [n] -> {latents [n, *spec.shape] of spec.dtype,
    labels int32 [n], index int64 [n]}."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    features = {
        "latent": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "index": tf.io.FixedLenFeature([], tf.int64),
    }
    dtype = tf.as_dtype(spec.dtype)

    def parse(records):
        ex = tf.io.parse_example(records, features)
        # Records of unequal sizes fail in decode_raw; equal but wrong sizes fail in ensure_shape
        # (a reshape alone could silently regroup the values).
        flat = tf.io.decode_raw(ex["latent"], dtype, little_endian=True)
        flat = tf.ensure_shape(flat, [None, spec.size])
        return {
            "latents": tf.reshape(flat, [-1, *spec.shape]),
            "labels": tf.cast(ex["label"], tf.int32),
            "index": ex["index"],
        }

    return parse
