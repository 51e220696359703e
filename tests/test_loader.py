"""Training loader: every example once per epoch, seeded shuffles, disjoint hosts, shard checks."""

import json

import numpy as np
import pytest

from elt.data import shards
from elt.data.loader import TokenData, load_tokens

N, T, S = 53, 4, 3  # examples, tokens per example, shards


def expected_tokens(i):
    return (i * 7 + np.arange(T)) % 32


@pytest.fixture()
def tokens_dir(tmp_path):
    infos = []
    for s in range(S):
        lo, hi = shards.shard_bounds(s, N, S)
        idx = np.arange(lo, hi)[::-1]  # written unsorted on purpose: write_shard sorts by index
        toks = np.stack([expected_tokens(i) for i in idx])
        infos.append(
            shards.write_shard(str(tmp_path / shards.shard_name(s, S)), toks, idx % 10, idx)
        )
    manifest = {
        "format": shards.FORMAT,
        "total": N,
        "shards": infos,
        "grid": [2, 2],
        "num_tokens": T,
        "vocab_size": 32,
        "num_classes": 10,
        "tokenizer": "vq-test",
        "dataset": "test",
        "split": "train",
        "image_size": 8,
    }
    (tmp_path / shards.MANIFEST).write_text(json.dumps(manifest))
    return tmp_path


def _epoch(tokens_dir, **kw):
    batches = list(
        load_tokens(
            str(tokens_dir),
            8,
            epochs=1,
            drop_remainder=False,
            include_index=True,
            process_index=kw.pop("process_index", 0),
            process_count=kw.pop("process_count", 1),
            **kw,
        )
    )
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}, batches


def test_every_example_once_per_epoch_with_right_values(tokens_dir):
    got, batches = _epoch(tokens_dir, seed=3)
    assert sorted(got["index"].tolist()) == list(range(N))
    assert got["index"].tolist() != list(range(N))  # shuffled
    for i, tok, lab in zip(got["index"], got["tokens"], got["labels"]):
        np.testing.assert_array_equal(tok, expected_tokens(i))
        assert lab == i % 10
    assert batches[0]["tokens"].dtype == np.int32 and batches[0]["labels"].dtype == np.int32
    assert batches[0]["tokens"].shape == (8, T)
    again, _ = _epoch(tokens_dir, seed=3)
    other, _ = _epoch(tokens_dir, seed=4)
    np.testing.assert_array_equal(again["index"], got["index"])  # seeded
    assert other["index"].tolist() != got["index"].tolist()


def test_epochs_repeat_and_reshuffle(tokens_dir):
    data = TokenData(str(tokens_dir))
    assert (data.num_examples, data.num_classes, data.codebook_size, data.grid) == (
        N,
        10,
        32,
        (2, 2),
    )
    batches = list(
        data.batches(N, seed=0, epochs=3, process_index=0, process_count=1, include_index=True)
    )
    assert len(batches) == 3
    for b in batches:
        assert sorted(b["index"].tolist()) == list(range(N))
    assert batches[0]["index"].tolist() != batches[1]["index"].tolist()
    plain = next(data.batches(4, process_index=0, process_count=1))
    assert set(plain) == {"tokens", "labels"}


def test_processes_split_the_data(tokens_dir):
    parts = [_epoch(tokens_dir, process_index=p, process_count=3)[0]["index"] for p in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(N))
    assert [len(p) for p in parts] == [18, 18, 17]
    with pytest.raises(ValueError, match="process_index 3"):
        next(load_tokens(str(tokens_dir), 8, process_index=3, process_count=3))


def test_truncated_and_foreign_shards_are_named(tokens_dir, tmp_path_factory):
    victim = tokens_dir / shards.shard_name(1, S)
    original = victim.read_bytes()
    victim.write_bytes(original[:-5])
    with pytest.raises(ValueError, match=r"tokens-00001-of-00003\.tfrecord has \d+ bytes"):
        TokenData(str(tokens_dir))
    # Same size, other content (a shard of another run): the hash names it.
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"tokens-00001-of-00003\.tfrecord: sha256 .* foreign"):
        TokenData(str(tokens_dir))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="tokens-00001-of-00003.tfrecord .* missing"):
        TokenData(str(tokens_dir))
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        TokenData(str(tmp_path_factory.mktemp("empty")))


def test_record_count_checked(tokens_dir):
    manifest = json.loads((tokens_dir / shards.MANIFEST).read_text())
    assert shards.count_records(str(tokens_dir / shards.shard_name(0, S))) == 18
    manifest["shards"][0]["count"] = 17
    (tokens_dir / shards.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="tokens-00000-of-00003.tfrecord holds 18 records"):
        TokenData(str(tokens_dir))
