"""Beam tokenization: equals in-process encoding, byte-identical reruns (int token grids and float
latents), folders, mocked tfds, atomic output."""

import json

import jax
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from elt.data import beam_tokenize, digits, shards
from elt.data.datasets import load_image_dataset
from elt.data.loader import LatentData
from elt.data.spec import LatentSpec
from elt.integrity import write_manifest
from elt.tokenizers import register_tokenizer, vq
from elt.tokenizers.train import fit

SIZE = 16

# A token is argmax_k <z, c_k> over unit vectors, z from the float32 encoder. Another compiled
# program (each batch is padded to its own power of two: Beam's to 128 or 64, the reference's to
# 256; another CPU's vector width; another XLA) gives latents that differ by up to ~2e-6 per
# component (measured 1.8e-6 over batch sizes 1..256, AVX2 and SSE4.2 codegen), so a similarity
# moves by <= sqrt(8) * 2e-6 ~ 6e-6 and an argmax can flip only where the two best codes are within
# ~1.2e-5. Such near-ties are not rare: 27 of the 28752 digit latents lie within 1e-4 (the closest
# 4e-6 apart), so exact token equality across batchings held on one machine by luck. TIE = 1e-4.
TIE = 1e-4


def top_two(tok, images):
    """The two best code ids [N, h*w, 2] and whether they are a near-tie [N, h*w] (float64
    similarities of the latents from yet another program: fine at TIE's 8x margin)."""
    model = vq.VQVAE(tok.cfg)
    latents = jax.jit(
        lambda p, x: model.apply({"params": p}, vq.to_float(x), method=vq.VQVAE.encode_latents)
    )
    z = np.asarray(latents(tok.params, images), np.float64)
    z = z.reshape(len(images), -1, tok.cfg.embed_dim)
    sims = z @ np.asarray(vq.l2_normalize(tok.params["codebook"]), np.float64).T
    top = np.argsort(-sims, axis=-1)[..., :2]
    best = np.take_along_axis(sims, top, axis=-1)
    return top, best[..., 0] - best[..., 1] < TIE


def assert_same_tokens(got, want, top, tie):
    """Equal tokens, except at near-ties, where each may be either of the two best codes."""
    got, want = np.asarray(got).reshape(tie.shape), np.asarray(want).reshape(tie.shape)
    assert tie.mean() < 2e-3, f"{tie.sum()} near-ties of {tie.size}: the check loses its teeth"
    np.testing.assert_array_equal(got[~tie], want[~tie])
    for tokens in (got, want):
        assert (tokens[tie][:, None] == top[tie]).any(-1).all()


@pytest.fixture(scope="module")
def setup_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("beam")
    cfg = vq.VQConfig(image_size=SIZE, downsample=4, codebook_size=32, embed_dim=8, channels=16)
    tok, _ = fit(
        cfg, digits.upscale(load_digits().images[:128], SIZE), steps=0, batch_size=8, lr=1e-3
    )
    tok.save(str(root / "tok"))
    return root, tok


def read_shards(out_dir):
    """(manifest, {latents, labels, index}) of a written directory, verified as training reads it."""
    data = LatentData(str(out_dir))
    return data.manifest, data.read()


def test_beam_equals_in_process_and_is_byte_identical(setup_dirs):
    root, tok = setup_dirs
    data_dir = str(root / "tfds")
    out1 = root / "tokens1"
    m1 = beam_tokenize.run(
        "digits",
        "train",
        data_dir,
        SIZE,
        str(root / "tok"),
        str(out1),
        batch_size=100,
        read_size=250,
        num_shards=3,
        direct_num_workers=2,
    )
    ds = load_image_dataset("digits", "train", data_dir, SIZE)
    images, labels = ds.read(0, ds.num_examples)
    ref = tok.encode(images)
    top, tie = top_two(tok, images)
    manifest, recs = read_shards(out1)
    assert manifest == m1
    assert manifest["total"] == 1797 == sum(s["count"] for s in manifest["shards"])
    assert [s["count"] for s in manifest["shards"]] == [599, 599, 599]
    assert manifest["spec"] == {"shape": [4, 4], "dtype": "int32", "vocab_size": 32}
    assert manifest["split"] == "train" and manifest["image_size"] == SIZE
    assert manifest["num_classes"] == 10 and manifest["tokenizer"] == tok.identity
    assert manifest["dataset"] == ds.identity
    idx = recs["index"]
    np.testing.assert_array_equal(idx, np.arange(1797))  # sorted within and across shards
    tokens1 = recs["latents"]
    assert tokens1.shape == (1797, 4, 4) and tokens1.dtype == np.int32
    assert_same_tokens(tokens1, ref, top, tie)
    np.testing.assert_array_equal(recs["labels"], labels)
    # Another run with other batching and parallelism writes the same records, and the very same
    # bytes for every shard whose tokens are the same (all, unless a near-tie flipped).
    out2 = root / "tokens2"
    m2 = beam_tokenize.run(
        "digits",
        "train",
        data_dir,
        SIZE,
        str(root / "tok"),
        str(out2),
        batch_size=37,
        read_size=64,
        num_shards=3,
        direct_num_workers=1,
        direct_running_mode="in_memory",
    )
    _, recs2 = read_shards(out2)
    np.testing.assert_array_equal(recs2["index"], idx)
    np.testing.assert_array_equal(recs2["labels"], labels)
    tokens2 = recs2["latents"]
    assert_same_tokens(tokens2, tokens1, top, tie)

    def without_sha(m):
        return {**m, "shards": [{**s, "sha256": None} for s in m["shards"]]}

    assert without_sha(m2) == without_sha(m1)
    start = 0
    for s1, s2 in zip(m1["shards"], m2["shards"]):
        stop = start + s1["count"]
        if np.array_equal(tokens1[start:stop], tokens2[start:stop]):
            assert s2 == s1
            assert (out1 / s1["file"]).read_bytes() == (out2 / s2["file"]).read_bytes()
        start = stop
    assert sorted(p.name for p in root.iterdir() if ".tmp-" in p.name) == []
    # Rerunning into a directory with more (stale) shards leaves only the new ones.
    beam_tokenize.run(
        "digits",
        "train",
        data_dir,
        SIZE,
        str(root / "tok"),
        str(out2),
        batch_size=512,
        num_shards=2,
        direct_num_workers=2,
    )
    assert sorted(p.name for p in out2.iterdir()) == [
        "manifest.json",
        shards.shard_name(0, 2),
        shards.shard_name(1, 2),
    ]


@pytest.mark.timeout(600)
def test_dask_runner_writes_the_direct_runners_bytes(setup_dirs, tmp_path):
    """Beam's DaskRunner on a local dask.distributed cluster (worker processes that import elt and
    load the data and tokenizer themselves) writes byte-identical shards and manifest."""
    root, _ = setup_dirs
    kw = dict(batch_size=100, read_size=250, num_shards=3)
    args = ("digits", "train", str(root / "tfds"), SIZE, str(root / "tok"))
    direct = beam_tokenize.run(*args, str(tmp_path / "direct"), runner="DirectRunner", **kw)
    dask = beam_tokenize.run(*args, str(tmp_path / "dask"), runner="DaskRunner", **kw)
    assert dask == direct
    names = sorted(p.name for p in (tmp_path / "direct").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask").iterdir()) and len(names) == 4
    for name in names:
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes(), name


def test_runner_alias_and_missing_runner_package_are_named():
    assert beam_tokenize.resolve_runner("DirectRunner") == "DirectRunner"  # Beam's own names pass through
    assert beam_tokenize.resolve_runner("DaskRunner").endswith("dask_runner.DaskRunner")
    old = dict(beam_tokenize.RUNNER_ALIASES)
    beam_tokenize.RUNNER_ALIASES["FakeRunner"] = ("no_such_pkg.runner.FakeRunner", "no-such-extra")
    try:
        with pytest.raises(ValueError, match=r"tokenize.runner FakeRunner needs `pip install no-such-extra`"):
            beam_tokenize.resolve_runner("FakeRunner")
    finally:
        beam_tokenize.RUNNER_ALIASES.clear()
        beam_tokenize.RUNNER_ALIASES.update(old)


def test_image_folder_and_mocked_tfds_through_beam(setup_dirs, tmp_path):
    root, tok = setup_dirs
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    m = beam_tokenize.run(
        str(tmp_path / "imgs"),
        "train",
        None,
        SIZE,
        str(root / "tok"),
        str(tmp_path / "out"),
        batch_size=4,
        num_shards=2,
    )
    ds = load_image_dataset(str(tmp_path / "imgs"), "train", None, SIZE)
    images, labels = ds.read(0, 10)
    _, recs = read_shards(tmp_path / "out")
    assert m["num_classes"] == 2 and m["total"] == 10
    assert_same_tokens(recs["latents"], tok.encode(images), *top_two(tok, images))
    np.testing.assert_array_equal(recs["labels"], [0, 1] * 5)  # a folder lists its classes in turn
    # A large tfds data set by name, its reader mocked. The mock patches tf.io.gfile globally
    # while reading (not thread-safe), so this run uses one in-process worker.
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=9):
        m = beam_tokenize.run(
            "cifar10",
            "train",
            str(tmp_path / "tfds"),
            SIZE,
            str(root / "tok"),
            str(tmp_path / "cifar"),
            batch_size=4,
            read_size=3,
            num_shards=2,
            direct_num_workers=1,
            direct_running_mode="in_memory",
        )
        images, labels = load_image_dataset("cifar10", "train", str(tmp_path / "tfds"), SIZE).read(
            0, 9
        )
    _, recs = read_shards(tmp_path / "cifar")
    assert m["total"] == 9 and m["num_classes"] == 10 and m["dataset"].startswith("tfds:cifar10")
    assert_same_tokens(recs["latents"], tok.encode(images), *top_two(tok, images))
    np.testing.assert_array_equal(recs["labels"], labels)


class CodeVectors:
    """Test-only tokenizer kind with continuous latents: a VQ tokenizer's quantised code vectors
    (float32 [h, w, D]), decoded by its decoder. Exercises the float path of the pipeline."""

    kind = "vq-code-vectors-test"

    def __init__(self, tok):
        self.vq = tok
        self.spec = LatentSpec((*tok.spec.shape, tok.cfg.embed_dim), "float32")
        self.image_size = tok.image_size
        self.identity = f"{self.kind}-{tok.identity}"

    def encode(self, images):
        return self.vq.latents_of(self.vq.encode(images))

    def decode(self, latents):
        return self.vq.decode_latents(latents)

    @classmethod
    def load(cls, path, meta):
        return cls(vq.VQTokenizer.load(path, meta))


register_tokenizer(CodeVectors.kind, CodeVectors.load)


def test_float_latents_through_beam_are_byte_identical(setup_dirs, tmp_path):
    root, tok = setup_dirs
    # The VQ checkpoint relabelled as the float kind (its file manifest rewritten to match).
    tok.save(str(tmp_path / "ftok"))
    meta = json.loads((tmp_path / "ftok" / "tokenizer.json").read_text())
    (tmp_path / "ftok" / "tokenizer.json").write_text(json.dumps({**meta, "kind": CodeVectors.kind}))
    write_manifest(tmp_path / "ftok")
    rng = np.random.default_rng(2)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    # Same batching (hence the same compiled programs), other parallelism: the same bytes.
    common = dict(batch_size=4, read_size=4, num_shards=2)
    runs = [
        beam_tokenize.run(str(tmp_path / "imgs"), "train", None, SIZE, str(tmp_path / "ftok"),
                          str(tmp_path / out), **common, **mode)
        for out, mode in [("f1", dict(direct_num_workers=2)),
                          ("f2", dict(direct_num_workers=1, direct_running_mode="in_memory"))]
    ]
    assert runs[0] == runs[1]
    assert runs[0]["spec"] == {"shape": [4, 4, 8], "dtype": "float32", "vocab_size": None}
    assert runs[0]["tokenizer"] == f"{CodeVectors.kind}-{tok.identity}"
    names = sorted(p.name for p in (tmp_path / "f1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "f2").iterdir())
    for name in names:
        assert (tmp_path / "f1" / name).read_bytes() == (tmp_path / "f2" / name).read_bytes(), name
    _, recs = read_shards(tmp_path / "f1")
    z = recs["latents"]
    assert z.shape == (12, 4, 4, 8) and z.dtype == np.float32
    np.testing.assert_array_equal(recs["labels"], [0, 1] * 6)  # a folder lists its classes in turn
    # Every latent is bit-exactly the code vector of the id the VQ tokenizer picks (up to near-ties).
    codes = tok.latents_of(np.arange(32, dtype=np.int32).reshape(2, 4, 4)).reshape(32, 8)  # [K, D]
    ids = np.argmax(z @ codes.T, axis=-1).astype(np.int32)
    np.testing.assert_array_equal(z, tok.latents_of(ids))
    images, _ = load_image_dataset(str(tmp_path / "imgs"), "train", None, SIZE).read(0, 12)
    assert_same_tokens(ids, tok.encode(images), *top_two(tok, images))


def test_work_items_cover_each_index_once():
    items = beam_tokenize.work_items(10, 3, 2)
    covered = [i for _, a, b in items for i in range(a, b)]
    assert covered == list(range(10))
    for s, a, b in items:
        assert (shards.shard_of(np.arange(a, b), 10, 3) == s).all()
    assert [shards.shard_bounds(s, 10, 3) for s in range(3)] == [(0, 4), (4, 7), (7, 10)]


def test_bad_arguments_fail_before_compute(setup_dirs, tmp_path):
    root, _ = setup_dirs
    with pytest.raises(ValueError, match="unknown dataset 'nope_nope'"):
        beam_tokenize.run("nope_nope", "train", None, SIZE, str(root / "tok"), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="direct_running_mode"):
        beam_tokenize.run(
            "digits",
            "train",
            None,
            SIZE,
            str(root / "tok"),
            str(tmp_path / "o"),
            direct_running_mode="fast",
        )
    with pytest.raises(ValueError, match="works on 16px images but data.image_size is 32"):
        beam_tokenize.run(
            "digits", "train", str(root / "tfds"), 32, str(root / "tok"), str(tmp_path / "o")
        )
    assert not (tmp_path / "o").exists()


def test_failed_run_leaves_no_manifest(setup_dirs, tmp_path):
    root, _ = setup_dirs
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    (tmp_path / "imgs" / "b" / "2.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    out.mkdir()
    (out / shards.MANIFEST).write_text("{}")  # a previous, complete-looking run
    with pytest.raises(Exception, match=r"unreadable image file .*b/2\.png"):
        beam_tokenize.run(
            str(tmp_path / "imgs"),
            "train",
            None,
            SIZE,
            str(root / "tok"),
            str(out),
            batch_size=2,
            num_shards=2,
        )
    # The old manifest is untouched (the failure happened before publishing) and nothing is staged.
    assert (out / shards.MANIFEST).read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_stage_script_does_not_shadow_stdlib_tokenize():
    import subprocess
    import sys
    from pathlib import Path

    stages = Path(__file__).resolve().parents[1] / "stages"
    code = (
        f"import sys; sys.path.insert(0, {str(stages)!r}); import inspect, tokenize; "
        "assert tokenize.generate_tokens and 'stages' not in tokenize.__file__"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
