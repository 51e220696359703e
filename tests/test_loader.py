"""Latent shards and the training loader: every example once with its values, for int and float
specs and 2-D and 3-D shapes; byte-identical rewrites; disjoint hosts; shard and manifest checks."""

import json

import numpy as np
import pytest

from elt.data import shards
from elt.data.loader import LatentData
from elt.data.spec import LatentSpec
from elt.core.batches import StepBatches

N, S = 53, 3  # examples, shards
SPEC = LatentSpec((2, 2), "int32", 32)


def expected_tokens(i):
    return ((i * 7 + np.arange(4)) % 32).reshape(2, 2)


def write_dir(root, spec, latents, labels, num_shards, reverse=False):
    """Shards + manifest as the tokenize stage writes them (index i -> shard floor(i*S/n))."""
    root.mkdir(parents=True, exist_ok=True)
    n, infos = len(latents), []
    for s in range(num_shards):
        lo, hi = shards.shard_bounds(s, n, num_shards)
        idx = np.arange(lo, hi)[::-1] if reverse else np.arange(lo, hi)  # write_shard sorts
        infos.append(
            shards.write_shard(
                str(root / shards.shard_name(s, num_shards)), latents[idx], labels[idx], idx, spec=spec
            )
        )
    manifest = shards.make_manifest(
        spec, infos, num_classes=10, tokenizer="test-tok", dataset="test", split="train", image_size=8
    )
    (root / shards.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


@pytest.fixture()
def tokens_dir(tmp_path):
    idx = np.arange(N)
    write_dir(tmp_path, SPEC, np.stack([expected_tokens(i) for i in idx]), idx % 10, S, reverse=True)
    return tmp_path


def test_every_example_once_with_right_values(tokens_dir):
    data = LatentData(str(tokens_dir))
    assert (data.num_examples, data.num_classes, data.spec) == (N, 10, SPEC)
    got = data.read()
    np.testing.assert_array_equal(got["index"], np.arange(N))  # index order across shards
    assert got["latents"].dtype == np.int32 and got["labels"].dtype == np.int32
    assert got["latents"].shape == (N, 2, 2)
    for i, tok, lab in zip(got["index"], got["latents"], got["labels"]):
        np.testing.assert_array_equal(tok, expected_tokens(i))
        assert lab == i % 10


def test_step_batches_over_shards_are_seeded_epochs(tokens_dir):
    sb = StepBatches(LatentData(str(tokens_dir)))
    assert sb.num_examples == N and sb.spec == SPEC
    # batch size N: each step is one epoch, a fresh seeded permutation of all examples
    epochs = [sb.indices_for_step(s, N, seed=3) for s in range(3)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(N))
    assert epochs[0].tolist() != list(range(N))  # shuffled
    assert epochs[0].tolist() != epochs[1].tolist()  # reshuffled per epoch
    np.testing.assert_array_equal(StepBatches(LatentData(str(tokens_dir))).indices_for_step(1, N, 3), epochs[1])
    assert sb.indices_for_step(0, N, seed=4).tolist() != epochs[0].tolist()
    b = sb.batch_for_step(2, 8, seed=3)
    assert set(b) == {"latents", "labels"}
    assert b["latents"].shape == (8, 2, 2) and b["latents"].dtype == np.int32
    for tok, i in zip(b["latents"], sb.indices_for_step(2, 8, seed=3)):
        np.testing.assert_array_equal(tok, expected_tokens(i))
    e = sb.eval_batch(5, seed=0)
    assert e["latents"].shape == (5, 2, 2) and e["labels"].shape == (5,)


def test_processes_split_the_data(tokens_dir):
    data = LatentData(str(tokens_dir))
    parts = [data.read(p, 3) for p in range(3)]
    assert sorted(np.concatenate([p["index"] for p in parts]).tolist()) == list(range(N))
    assert [len(p["index"]) for p in parts] == [18, 18, 17]
    for p in parts:
        for i, tok in zip(p["index"], p["latents"]):
            np.testing.assert_array_equal(tok, expected_tokens(i))
    # Training batches do not split the data per process: every process draws the same global
    # batch (topology-independent resumes) and feeds its rows of it.
    sb = StepBatches(data)
    assert sb.num_examples == N
    rows = [sb.batch_for_step(1, 12, seed=0, rows=slice(4 * p, 4 * p + 4)) for p in range(3)]
    whole = sb.batch_for_step(1, 12, seed=0)
    np.testing.assert_array_equal(np.concatenate([r["latents"] for r in rows]), whole["latents"])
    with pytest.raises(ValueError, match="process_index 3"):
        data.read(3, 3)


@pytest.mark.parametrize(
    "spec",
    [
        LatentSpec((2, 3), "int32", 1000),  # image tokens h x w
        LatentSpec((2, 3, 4), "int32", 1000),  # video tokens t x h x w
        LatentSpec((3, 2), "float32"),
        LatentSpec((3, 2, 4), "float32"),  # diffusion latents h x w x c
    ],
    ids=lambda s: f"{s.dtype}-{len(s.shape)}d",
)
def test_specs_round_trip_byte_identically(tmp_path, spec):
    n = 23
    rng = np.random.default_rng(0)
    if spec.dtype == "int32":
        latents = rng.integers(0, spec.vocab_size, (n, *spec.shape)).astype(np.int32)
    else:
        latents = rng.standard_normal((n, *spec.shape)).astype(np.float32)
        # values whose bits a text or float64 detour would change
        latents.flat[:5] = [-0.0, np.inf, 1e-45, np.float32(1) / 3, -np.inf]
    labels = rng.integers(0, 10, n)
    m1 = write_dir(tmp_path / "a", spec, latents, labels, 2)
    m2 = write_dir(tmp_path / "b", spec, latents, labels, 2, reverse=True)  # other write order
    assert m1 == m2 and m1["spec"] == spec.to_json() and m1["total"] == n
    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    data = LatentData(str(tmp_path / "b"))
    assert data.spec == spec
    got = data.read()
    assert got["latents"].dtype == np.dtype(spec.dtype) and got["latents"].shape == (n, *spec.shape)
    np.testing.assert_array_equal(got["latents"].view(np.uint32), latents.view(np.uint32))  # bits
    np.testing.assert_array_equal(got["labels"], labels)
    b = StepBatches(data).batch_for_step(0, 4, seed=0)
    assert b["latents"].dtype == np.dtype(spec.dtype) and b["latents"].shape == (4, *spec.shape)


def test_writer_refuses_arrays_off_spec(tmp_path):
    spec = LatentSpec((2, 2), "float32")
    with pytest.raises(ValueError, match=r"expected \[B, 2, 2\], got \[3, 4\]"):
        shards.write_shard(str(tmp_path / "x"), np.zeros((3, 4), np.float32), np.zeros(3), np.arange(3), spec=spec)
    with pytest.raises(ValueError, match="expected float32 latents, got float64"):
        shards.write_shard(str(tmp_path / "x"), np.zeros((3, 2, 2)), np.zeros(3), np.arange(3), spec=spec)
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        shards.write_shard(str(tmp_path / "x"), np.full((3, 2, 2), 32), np.zeros(3), np.arange(3), spec=SPEC)


def test_old_format_and_bad_spec_are_named(tokens_dir):
    path = tokens_dir / shards.MANIFEST
    good = json.loads(path.read_text())
    # What tokenize wrote before latent specs: int64 token lists, grid + vocab_size.
    v1 = {k: v for k, v in good.items() if k != "spec"}
    v1.update(format="elt-tokens-tfrecord-v1", grid=[2, 2], num_tokens=4, vocab_size=32)
    path.write_text(json.dumps(v1))
    with pytest.raises(ValueError, match=r"manifest\.json: .*old format .*rerun `dvc repro -f tokenize@FAMILY`"):
        LatentData(str(tokens_dir))
    path.write_text(json.dumps({**good, "spec": {**good["spec"], "dtype": "float64"}}))
    with pytest.raises(ValueError, match=r"manifest\.json: bad spec: LatentSpec\.dtype"):
        LatentData(str(tokens_dir))
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "spec"}))
    with pytest.raises(ValueError, match="missing key 'spec'"):
        LatentData(str(tokens_dir))
    # Shards that do not hold what the spec says (same files, manifest claims 3 values each).
    path.write_text(json.dumps({**good, "spec": {**good["spec"], "shape": [3]}}))
    with pytest.raises(ValueError, match=r"do not hold .*\[3\] int32"):
        LatentData(str(tokens_dir)).read()


def test_truncated_and_foreign_shards_are_named(tokens_dir, tmp_path_factory):
    victim = tokens_dir / shards.shard_name(1, S)
    original = victim.read_bytes()
    victim.write_bytes(original[:-5])
    with pytest.raises(ValueError, match=r"tokens-00001-of-00003\.tfrecord has \d+ bytes"):
        LatentData(str(tokens_dir))
    # Same size, other content (a shard of another run): the hash names it.
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"tokens-00001-of-00003\.tfrecord: sha256 .* foreign"):
        LatentData(str(tokens_dir))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="tokens-00001-of-00003.tfrecord .* missing"):
        LatentData(str(tokens_dir))
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        LatentData(str(tmp_path_factory.mktemp("empty")))


def test_record_count_checked(tokens_dir):
    manifest = json.loads((tokens_dir / shards.MANIFEST).read_text())
    assert shards.count_records(str(tokens_dir / shards.shard_name(0, S))) == 18
    manifest["shards"][0]["count"] = 17
    (tokens_dir / shards.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="tokens-00000-of-00003.tfrecord holds 18 records"):
        LatentData(str(tokens_dir))
