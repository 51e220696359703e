"""Apache Beam pipeline: images or clips of a data set split -> latent shards + manifest.json,
stored by the tokenizer's LatentSpec (int32 token grids, float32 latents, any shape; see
elt/data/shards.py).

* Images or videos: the pipeline depends on the tokenizer's spec and on a data set that reads
  (array, label) ranges, nothing else. Which data set reader it opens follows the tokenizer
  (`reader_args`): an image tokenizer reads images (`load_image_dataset`), a video tokenizer
  (`tok.modality == "video"`, e.g. kind vq3d) reads clips by the clip rule with its own
  `num_frames` / `frame_stride` (`load_video_dataset`). A data set of the other modality fails in
  the driver with a ModalityError before any work starts. For 16x128x128 clips (768 kB each) keep
  `read_size` small (e.g. 64): a work item holds read_size clips in memory.

  Create(index ranges) -> Reshuffle -> ParDo(EncodeRange) -> GroupByKey(shard) -> ParDo(WriteShard)

* Work items are index ranges, not images: each worker reads its own slice of the split
  (tfds slice or image files) and encodes it as one batch, so only small arrays cross Beam's
  coders (no per-image pickling). The tokenizer (jit-compiled) and the data set reader are
  loaded once per worker process in DoFn.setup and shared by its threads.
* Deterministic: example i goes to shard floor(i * S / n) and shards are written sorted by index,
  so the same input and tokenizer give byte-identical shards whatever order Beam runs things in.
* Atomic: shards go to `<out_dir>.tmp-<host>-<pid>-<random>/`, are moved into `out_dir` after the
  pipeline finished, and manifest.json is written last (an interrupted run never looks complete).
  A run first removes the temp folders of `out_dir` left by killed runs (see _remove_stale_tmp).
* Locally: DirectRunner, `direct_running_mode` multi_threading by default (JAX, tf.data and PIL
  release the GIL, so threads scale and nothing is re-imported or re-compiled per process; see
  benchmarks/RESULTS_data.md); `pipeline_options` flags pass through for Dataflow/Flink/Spark, and
  paths may be gs:// URLs (tf.io.gfile / TFRecordWriter handle both).
"""

from __future__ import annotations

import json
import threading
from typing import Iterable, Sequence

import apache_beam as beam
import numpy as np

from elt import workdir
from elt.data import shards as shards_lib
from elt.data.spec import LatentSpec

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _cached(key, make):
    """One tokenizer / data set reader per worker process, whatever the number of DoFn threads."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


class EncodeRange(beam.DoFn):
    """(shard, start, stop) -> (shard, (start, latents [n, *spec.shape], labels int32 [n]))."""

    def __init__(
        self,
        dataset: str,
        split: str,
        data_dir: str | None,
        image_size: int,
        tokenizer_path: str,
        dataset_identity: str,
        tokenizer_identity: str,
        batch_size: int,
        reader: tuple = (("modality", "image"),),
    ):
        self._args = (dataset, split, data_dir, image_size)
        self._reader = reader  # keyword arguments of load_dataset, as sorted (key, value) pairs
        self._batch_size = batch_size
        self._tokenizer_path = tokenizer_path
        self._identities = (dataset_identity, tokenizer_identity)

    def setup(self):
        from elt.data.datasets import load_dataset  # pylint: disable=import-outside-toplevel
        from elt.tokenizers import load_tokenizer  # pylint: disable=import-outside-toplevel

        data_id, tok_id = self._identities
        self._data = _cached(
            ("data", self._args, self._reader, data_id),
            lambda: load_dataset(*self._args, **dict(self._reader)),
        )
        self._tok = _cached(
            ("tok", self._tokenizer_path, tok_id), lambda: load_tokenizer(self._tokenizer_path)
        )
        # A worker must see what the driver saw (same files, same weights), or shards would mix.
        if (self._data.identity, self._tok.identity) != self._identities:
            raise RuntimeError(
                f"worker sees dataset {self._data.identity} / tokenizer "
                f"{self._tok.identity}, driver saw {self._identities}"
            )

    def process(self, element):
        shard, start, stop = element
        images, labels = self._data.read(start, stop)
        latents = np.concatenate(
            [
                self._tok.encode(images[a : a + self._batch_size])
                for a in range(0, len(images), self._batch_size)
            ]
        )
        # A tokenizer that breaks its own spec fails here, naming itself, not in a later stage.
        latents = self._tok.spec.check(latents, f"tokenizer {self._tokenizer_path} encode output")
        yield shard, (start, latents, labels.astype(np.int32))


class WriteShard(beam.DoFn):
    """(shard, [(start, latents, labels)...]) -> shard file + `<shard>.json` info in tmp_dir."""

    def __init__(self, tmp_dir: str, num_shards: int, spec: LatentSpec):
        self._tmp_dir, self._num_shards, self._spec = tmp_dir, num_shards, spec

    def process(self, element):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        shard, batches = element
        batches = sorted(batches, key=lambda b: b[0])
        latents = np.concatenate([b[1] for b in batches])
        labels = np.concatenate([b[2] for b in batches])
        indices = np.concatenate([np.arange(b[0], b[0] + len(b[1])) for b in batches])
        path = f"{self._tmp_dir}/{shards_lib.shard_name(shard, self._num_shards)}"
        info = shards_lib.write_shard(path, latents, labels, indices, spec=self._spec)
        with tf.io.gfile.GFile(path + ".json", "w") as f:
            json.dump(info, f)
        yield info


def reader_args(tok) -> tuple:
    """How the data set is read for tokenizer `tok`: load_dataset's keyword arguments as sorted
    (key, value) pairs. Image tokenizers (no `modality` attribute, or "image"): images. Video
    tokenizers: clips of the tokenizer's num_frames at its frame_stride (default 1)."""
    modality = getattr(tok, "modality", "image")
    if modality == "video":
        return (
            ("frame_stride", int(getattr(tok, "frame_stride", 1))),
            ("modality", "video"),
            ("num_frames", int(tok.num_frames)),
        )
    if modality != "image":
        raise ValueError(f"tokenizer {tok.identity}: unknown modality {modality!r}")
    return (("modality", "image"),)


def work_items(total: int, num_shards: int, read_size: int) -> list[tuple[int, int, int]]:
    """(shard, start, stop) ranges of at most read_size that never straddle a shard boundary."""
    items = []
    for s in range(num_shards):
        lo, hi = shards_lib.shard_bounds(s, total, num_shards)
        items.extend((s, a, min(a + read_size, hi)) for a in range(lo, hi, read_size))
    return items


# Runners Beam does not register by short name: the short name users write -> (class, pip extra).
RUNNER_ALIASES = {"DaskRunner": ("apache_beam.runners.dask.dask_runner.DaskRunner", "apache-beam[dask]")}


def resolve_runner(runner: str) -> str:
    """The name Beam's --runner takes; a runner whose package is missing fails here, in the driver."""
    if runner not in RUNNER_ALIASES:
        return runner
    qualified, extra = RUNNER_ALIASES[runner]
    import importlib  # pylint: disable=import-outside-toplevel

    try:
        importlib.import_module(qualified.rsplit(".", 1)[0])
    except ImportError as e:
        raise ValueError(f"tokenize.runner {runner} needs `pip install {extra}` ({e})") from None
    return qualified


def pipeline_options(
    runner: str, direct_num_workers: int, direct_running_mode: str, flags: Sequence[str]
):
    """Beam options. DaskRunner: a local cluster of worker processes, or the scheduler given by
    `--dask_client_address=tcp://HOST:8786` in tokenize.pipeline_options."""
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel

    if direct_running_mode not in ("in_memory", "multi_threading", "multi_processing"):
        raise ValueError(
            f"tokenize.direct_running_mode must be in_memory, multi_threading or "
            f"multi_processing, got {direct_running_mode!r}"
        )
    if not isinstance(direct_num_workers, int) or direct_num_workers < 1:
        raise ValueError(
            f"tokenize.direct_num_workers must be an int >= 1, got {direct_num_workers!r}"
        )
    # Flags given by the user come last so they win over the local defaults.
    return PipelineOptions(
        flags=[
            f"--runner={resolve_runner(runner)}",
            f"--direct_num_workers={direct_num_workers}",
            f"--direct_running_mode={direct_running_mode}",
            *flags,
        ]
    )


def run(
    dataset: str,
    split: str,
    data_dir: str | None,
    image_size: int,
    tokenizer_path: str,
    out_dir: str,
    *,
    batch_size: int = 128,
    num_shards: int = 4,
    read_size: int = 1024,
    runner: str = "DirectRunner",
    direct_num_workers: int = 2,
    direct_running_mode: str = "multi_threading",
    pipeline_flags: Iterable[str] = (),
) -> dict:
    """Encode `dataset`/`split` with the tokenizer at `tokenizer_path` into `out_dir`, stored by
    the tokenizer's spec (images, or clips for a video tokenizer: see `reader_args`).
    Returns the manifest (also written to `out_dir/manifest.json`).

    A work item reads `read_size` examples at once (opening a tfds slice costs ~50-100 ms, so
    small reads would dominate) and encodes them `batch_size` at a time."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from elt.data.datasets import load_dataset  # pylint: disable=import-outside-toplevel
    from elt.tokenizers import load_tokenizer  # pylint: disable=import-outside-toplevel

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"tokenize.batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(read_size, int) or read_size < 1:
        raise ValueError(f"tokenize.read_size must be an int >= 1, got {read_size!r}")
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"tokenize.num_shards must be an int >= 1, got {num_shards!r}")
    options = pipeline_options(
        runner, direct_num_workers, direct_running_mode, list(pipeline_flags)
    )
    # Validate everything in the driver before any worker starts (and build digits once here).
    tok = load_tokenizer(tokenizer_path, require_manifest=True)  # files checked before any work
    reader = reader_args(tok)
    if tok.image_size != image_size:
        video = dict(reader)["modality"] == "video"
        raise ValueError(
            f"tokenizer {tokenizer_path!r} works on {tok.image_size}px {'frames' if video else 'images'} but "
            f"{'video_data' if video else 'data'}.image_size is {image_size}"
        )
    data = load_dataset(dataset, split, data_dir, image_size, **dict(reader))
    total = data.num_examples
    if total == 0:
        raise ValueError(f"dataset {dataset!r} split {split!r} is empty")
    num_shards = min(num_shards, total)  # no empty shards

    out_dir = out_dir.rstrip("/")
    _remove_stale_tmp(out_dir)
    tmp_dir = f"{out_dir}.{workdir.tmp_tag()}"
    tf.io.gfile.makedirs(tmp_dir)
    # Workers running in this process (DirectRunner threads) reuse what the driver just loaded;
    # remote workers load their own in DoFn.setup.
    keys = [
        ("data", (dataset, split, data_dir, image_size), reader, data.identity),
        ("tok", tokenizer_path, tok.identity),
    ]
    with _CACHE_LOCK:
        _CACHE.update(zip(keys, (data, tok)))
    try:
        with beam.Pipeline(options=options) as p:
            _ = (
                p
                | "Ranges" >> beam.Create(work_items(total, num_shards, read_size))
                | "Spread" >> beam.Reshuffle()
                | "Encode"
                >> beam.ParDo(
                    EncodeRange(
                        dataset,
                        split,
                        data_dir,
                        image_size,
                        tokenizer_path,
                        data.identity,
                        tok.identity,
                        batch_size,
                        reader,
                    )
                )
                | "ByShard" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(WriteShard(tmp_dir, num_shards, tok.spec))
            )
        infos = []
        for s in range(num_shards):
            info_path = f"{tmp_dir}/{shards_lib.shard_name(s, num_shards)}.json"
            if not tf.io.gfile.exists(info_path):
                raise RuntimeError(f"pipeline finished without writing shard {s} ({info_path})")
            with tf.io.gfile.GFile(info_path) as f:
                infos.append(json.load(f))
        if sum(i["count"] for i in infos) != total:
            raise RuntimeError(
                f"shards hold {sum(i['count'] for i in infos)} examples, expected {total}"
            )
        manifest = shards_lib.make_manifest(
            tok.spec,
            infos,
            num_classes=data.num_classes,
            tokenizer=tok.identity,
            dataset=data.identity,
            split=split,
            image_size=image_size,
        )
        _publish(tmp_dir, out_dir, infos, manifest)
    finally:
        with _CACHE_LOCK:
            for key in keys:
                _CACHE.pop(key, None)
        if tf.io.gfile.exists(tmp_dir):
            tf.io.gfile.rmtree(tmp_dir)
    return manifest


def write_empty(
    out_dir: str, spec: LatentSpec, *, num_classes: int, tokenizer: str, dataset: str, image_size: int
) -> dict:
    """A valid latent directory of no examples: no shards, a manifest with total 0 and split None
    (what `tokenize` writes to data/tokens_heldout when data.heldout_split is null, so that the
    output DVC declares always exists). Atomic and stale-shard-removing like `run`."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    manifest = shards_lib.make_manifest(
        spec, [], num_classes=num_classes, tokenizer=tokenizer, dataset=dataset, split=None,
        image_size=image_size,
    )
    out_dir = out_dir.rstrip("/")
    _remove_stale_tmp(out_dir)
    tmp_dir = f"{out_dir}.{workdir.tmp_tag()}"
    tf.io.gfile.makedirs(tmp_dir)
    try:
        _publish(tmp_dir, out_dir, [], manifest)
    finally:
        if tf.io.gfile.exists(tmp_dir):
            tf.io.gfile.rmtree(tmp_dir)
    return manifest


def _remove_stale_tmp(out_dir: str) -> list[str]:
    """Remove `<out_dir>.tmp-*` folders of runs that were killed before their cleanup ran.

    Which ones: the temp folder's name records its writer (a hash of the host name and the pid of
    the driver process, elt.workdir.tmp_tag), so a folder is removed only when it was written on
    this host by a process that no longer runs, or when it has the owner-less name of versions
    before this rule. A live concurrent run's folder, and any folder written from another host
    (a shared or gs:// output: we cannot see its processes), is left alone. (A lock file was the
    other option; it would not work for gs:// outputs and would leave a file next to the output.)
    A dead run's pid reused by an unrelated process only delays the cleanup to a later run.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    base = out_dir.rsplit("/", 1)[-1]
    removed = []
    for path in sorted(tf.io.gfile.glob(f"{out_dir}.tmp-*")):
        path = path.rstrip("/")
        name = path.rsplit("/", 1)[-1]
        if name.startswith(f"{base}.") and workdir.tmp_owner_state(name[len(base) :]) == "stale":
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)
            removed.append(path)
    if removed:
        print(
            f"tokenize: removed {len(removed)} temp folder(s) of killed runs: {', '.join(removed)}",
            flush=True,
        )
    return removed


def _publish(tmp_dir: str, out_dir: str, infos: list[dict], manifest: dict) -> None:
    """Move shards into out_dir, drop stale ones, write the manifest last."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.io.gfile.makedirs(out_dir)
    manifest_path = f"{out_dir}/{shards_lib.MANIFEST}"
    if tf.io.gfile.exists(manifest_path):
        tf.io.gfile.remove(manifest_path)  # from here on the directory is visibly incomplete
    keep = {i["file"] for i in infos}
    for name in tf.io.gfile.listdir(out_dir):
        if name.startswith("tokens-") and name.endswith(".tfrecord") and name not in keep:
            tf.io.gfile.remove(f"{out_dir}/{name}")
    for name in sorted(keep):
        tf.io.gfile.rename(f"{tmp_dir}/{name}", f"{out_dir}/{name}", overwrite=True)
    staged = f"{tmp_dir}/{shards_lib.MANIFEST}"
    with tf.io.gfile.GFile(staged, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(staged, manifest_path, overwrite=True)
