"""LatentSpec: validation names the field, JSON round trip, batch checks."""

import json

import numpy as np
import pytest

from elt.data.spec import LatentSpec


def test_valid_specs_round_trip_through_json():
    for spec in (
        LatentSpec((8, 8), "int32", 128),
        LatentSpec((4, 8, 8), "int32", 1024),
        LatentSpec((8, 8, 4), "float32", None),
        LatentSpec((16,), "float32"),
    ):
        again = LatentSpec.from_json(json.loads(json.dumps(spec.to_json())))
        assert again == spec and hash(again) == hash(spec)
    s = LatentSpec([np.int64(4), 8, 8], "int32", np.int32(1024))  # JSON lists and numpy ints
    assert s.shape == (4, 8, 8) and type(s.shape[0]) is int and type(s.vocab_size) is int
    assert s.size == 256 and s.nbytes == 1024
    assert LatentSpec((8, 8, 4), "float32").size == 256
    assert s.to_json() == {"shape": [4, 8, 8], "dtype": "int32", "vocab_size": 1024}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(shape=(), dtype="int32", vocab_size=8), "shape"),
        (dict(shape=(4, 0), dtype="int32", vocab_size=8), "shape"),
        (dict(shape=(4, 2.0), dtype="int32", vocab_size=8), "shape"),
        (dict(shape=(4, True), dtype="int32", vocab_size=8), "shape"),
        (dict(shape=8, dtype="int32", vocab_size=8), "shape"),
        (dict(shape=(4, 4), dtype="float64", vocab_size=None), "dtype"),
        (dict(shape=(4, 4), dtype="int64", vocab_size=8), "dtype"),
        (dict(shape=(4, 4), dtype="int32", vocab_size=None), "vocab_size"),
        (dict(shape=(4, 4), dtype="int32", vocab_size=0), "vocab_size"),
        (dict(shape=(4, 4), dtype="float32", vocab_size=8), "vocab_size"),
    ],
)
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ValueError, match=rf"LatentSpec\.{field} "):
        LatentSpec(**kwargs)


def test_from_json_wants_exactly_the_three_keys():
    with pytest.raises(ValueError, match="shape, dtype, vocab_size"):
        LatentSpec.from_json({"shape": [4], "dtype": "float32"})
    with pytest.raises(ValueError, match="shape, dtype, vocab_size"):
        LatentSpec.from_json({"shape": [4], "dtype": "float32", "vocab_size": None, "x": 1})
    with pytest.raises(ValueError, match="LatentSpec.dtype"):
        LatentSpec.from_json({"shape": [4], "dtype": "bfloat16", "vocab_size": None})


def test_check_batches():
    ints = LatentSpec((2, 3), "int32", 5)
    got = ints.check(np.arange(12, dtype=np.int64).reshape(2, 2, 3) % 5)
    assert got.dtype == np.int32 and got.shape == (2, 2, 3)
    with pytest.raises(ValueError, match=r"tokens: expected \[B, 2, 3\], got \[2, 6\]"):
        ints.check(np.zeros((2, 6), np.int32), "tokens")
    with pytest.raises(ValueError, match=r"\[0, 5\), got \[0, 5\]"):
        ints.check(np.arange(6).reshape(1, 2, 3))
    with pytest.raises(ValueError, match="integer token ids"):
        ints.check(np.zeros((1, 2, 3), np.float32))
    floats = LatentSpec((2, 3), "float32")
    x = np.ones((4, 2, 3), np.float32)
    assert floats.check(x) is x
    with pytest.raises(ValueError, match="expected float32 latents, got float64"):
        floats.check(x.astype(np.float64))
    assert ints.check(np.zeros((0, 2, 3), np.int32)).shape == (0, 2, 3)
