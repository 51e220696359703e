"""3-D VQ (video) tokenizer, kind vq3d: config and token grid (the paper's 16x128x128 -> 4x16x16 by
shape only), a short training run on moving digits, the Tokenizer contract, save/load through the
registry, and Beam tokenization of clips into 3-D token shards (byte-identical reruns)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt.config import ConfigError
from elt.data import beam_tokenize
from elt.data.datasets import ModalityError, load_video_dataset
from elt.data.loader import LatentData
from elt.data.spec import LatentSpec
from elt.tokenizers import load_tokenizer, tokenizer_kinds, vq, vq3d
from elt.tokenizers.vq3d_config import PAPER, VQ3DConfig
from elt.tokenizers.vq3d_train import train_vq3d

T, SIZE = 8, 16
# Tiny: 8x16x16 clips -> 4x8x8 ids of 32 codes (one 2x downsampling in time and space).
CFG = VQ3DConfig(
    image_size=SIZE, num_frames=T, channels=8, channel_mult=(1, 2), temporal_downsample=(True,),
    norm_groups=4, codebook_size=32, embed_dim=8, steps=80, batch_size=8, lr=2e-3,
)


def test_config_grids_and_errors():
    assert VQ3DConfig().validate().grid == (4, 8, 8)  # the CPU default: 16x32x32 -> 4x8x8
    assert CFG.validate().grid == (4, 8, 8)
    paper = VQ3DConfig(**PAPER).validate()
    assert paper.grid == (4, 16, 16) and paper.codebook_size == 1024
    assert (paper.spatial_factor, paper.temporal_factor) == (8, 4)
    # The paper's network maps 16x128x128 clips to a 4x16x16 grid and back: shapes only, no compute.
    params = jax.eval_shape(lambda: vq3d.init_params(paper, 0))
    assert params["codebook"].shape == (1024, 256)
    model = vq3d.VQVAE3D(paper)
    clips = jax.ShapeDtypeStruct((2, 16, 128, 128, 3), jnp.float32)
    ids = jax.eval_shape(
        lambda p, x: model.apply({"params": p}, x, method=vq3d.VQVAE3D.encode), params, clips
    )
    assert ids.shape == (2, 4, 16, 16) and ids.dtype == jnp.int32
    out = jax.eval_shape(
        lambda p, t: model.apply({"params": p}, t, method=vq3d.VQVAE3D.decode), params, ids
    )
    assert out.shape == (2, 16, 128, 128, 3)
    n = sum(x.size for x in jax.tree_util.tree_leaves(params))
    assert 140e6 < n < 160e6, n  # 151M
    with pytest.raises(ConfigError, match="temporal_downsample.*len\\(channel_mult\\) - 1 = 2, got 1"):
        VQ3DConfig(temporal_downsample=(True,)).validate()
    with pytest.raises(ConfigError, match="4x in time does not divide num_frames 6"):
        VQ3DConfig(num_frames=6).validate()
    with pytest.raises(ConfigError, match="does not divide the image size 36"):
        VQ3DConfig(image_size=36, channel_mult=(1, 2, 2, 2), temporal_downsample=(True, True, False)).validate()
    with pytest.raises(ConfigError, match="norm_groups"):
        VQ3DConfig(channels=12).validate()
    with pytest.raises(ConfigError, match="codebook_size"):
        VQ3DConfig(codebook_size=1).validate()


def test_conv3d_is_a_3d_convolution():
    """Conv3D (a 2-D convolution over frames stacked on channels) equals XLA's 3-D convolution."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 7, 3))
    for k in ((3, 3, 3), (2, 3, 1)):
        conv = vq3d.Conv3D(4, k)
        p = conv.init(jax.random.PRNGKey(1), x)
        assert p["params"]["kernel"].shape == (*k, 3, 4)
        ref = jax.lax.conv_general_dilated(
            x, p["params"]["kernel"], (1, 1, 1), "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
        ) + p["params"]["bias"]
        np.testing.assert_allclose(conv.apply(p, x), ref, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("vq3d")
    data_dir = str(root / "tfds")
    metrics = train_vq3d("moving_digits", "train[:512]", data_dir, str(root / "tok"), CFG, eval_examples=32)
    return root, data_dir, metrics


def test_a_given_vq3d_checkpoint_is_measured_on_clips_and_copied(trained, tmp_path):
    """families.magvit.tokenizer.checkpoint: the stage's use_pretrained reads video_data's clips."""
    from elt.tokenizers import load_tokenizer
    from elt.tokenizers.pretrained import use_pretrained
    from elt.tokenizers.train import evaluate

    root, data_dir, _ = trained
    key = "families.magvit.tokenizer.checkpoint"
    m = use_pretrained(str(root / "tok"), str(tmp_path / "out"), "moving_digits", "train[512:544]", data_dir, SIZE,
                       key=key, clips=(T, 1))
    tok = load_tokenizer(str(tmp_path / "out"), require_manifest=True)
    clips, _ = load_video_dataset("moving_digits", "train[512:544]", data_dir, SIZE, T).read(0, 32)
    assert m["num_images"] == 32 and m["psnr"] == pytest.approx(evaluate(tok, clips)["psnr"])
    assert m["identity"] == tok.identity == load_tokenizer(str(root / "tok")).identity
    with pytest.raises(ValueError, match=f"{key} .* was made for clips of num_frames {T}, video_data.num_frames is 16"):
        use_pretrained(str(root / "tok"), str(tmp_path / "o2"), "moving_digits", "train", data_dir, SIZE, key=key,
                       clips=(16, 1))
    with pytest.raises(ValueError, match="is a video tokenizer .*this family reads images"):
        use_pretrained(str(root / "tok"), str(tmp_path / "o3"), "digits", "train", data_dir, SIZE, key=key)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_training_on_moving_digits_improves_psnr_and_reports_usage(trained):
    root, data_dir, m = trained
    print(
        f"vq3d on moving_digits {T}x{SIZE}: PSNR {m['psnr_init']:.1f} -> {m['psnr']:.1f} dB in "
        f"{m['steps']} steps ({m['train_seconds']:.0f} s), codebook usage {m['codebook_usage']:.2f}, "
        f"perplexity {m['perplexity']:.1f}, {m['codes_restarted']} restarts"
    )
    assert m["psnr"] > m["psnr_init"] + 6.0, m
    assert 0.25 <= m["codebook_usage"] <= 1.0 and 2.0 <= m["perplexity"] <= 32, m
    assert m["num_clips"] == 512 and m["eval_clips"] == 32 and m["steps"] == 80
    assert m["dataset"].startswith("tfds:moving_digits/8x16/") and m["dataset"].endswith(":16:8f/1")
    saved = json.loads((root / "tok" / "metrics.json").read_text())
    assert saved == pytest.approx(m)
    meta = json.loads((root / "tok" / "tokenizer.json").read_text())
    assert meta["kind"] == "vq3d" and meta["identity"] == m["identity"]
    assert VQ3DConfig(**meta["config"]) == CFG  # lists in JSON read back as the same tuples


def test_tokenizer_contract_and_save_load(trained):
    root, data_dir, m = trained
    assert "vq3d" in tokenizer_kinds()
    tok = load_tokenizer(str(root / "tok"), require_manifest=True)
    assert isinstance(tok, vq3d.VQ3DTokenizer) and tok.identity == m["identity"]
    assert tok.spec == LatentSpec((4, 8, 8), "int32", 32)
    assert (tok.modality, tok.num_frames, tok.frame_stride, tok.image_size) == ("video", T, 1, SIZE)
    clips, _ = load_video_dataset("moving_digits", "train[:4]", data_dir, SIZE, T).read(0, 4)
    ids = tok.encode(clips)
    assert ids.shape == (4, 4, 8, 8) and ids.dtype == np.int32
    assert ids.min() >= 0 and ids.max() < 32
    rec = tok.decode(ids)
    assert rec.shape == clips.shape and rec.dtype == np.uint8
    np.testing.assert_array_equal(rec, tok.decode_latents(tok.latents_of(ids)))
    assert tok.latents_of(ids).shape == (4, 4, 8, 8, 8)
    # Save again: same identity, same ids and clips from the copy.
    tok.save(str(root / "copy"))
    copy = load_tokenizer(str(root / "copy"))
    assert copy.identity == tok.identity
    np.testing.assert_array_equal(copy.encode(clips), ids)
    np.testing.assert_array_equal(copy.decode(ids), rec)
    # Other weights, other identity.
    untrained = vq3d.VQ3DTokenizer(CFG, vq3d.init_params(CFG, 0))
    assert untrained.identity != tok.identity and untrained.identity.startswith("vq3d-")
    # Wrong inputs are named.
    with pytest.raises(ValueError, match=r"uint8 clips \[B, 8, 16, 16, 3\], got float32"):
        tok.encode(clips.astype(np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \[8, 16, 16, 3\]"):
        tok.encode(clips[0])
    with pytest.raises(ValueError, match=r"expected \[B, 4, 8, 8\]"):
        tok.decode(ids.reshape(4, -1))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        tok.decode(np.full((1, 4, 8, 8), 32))
    assert tok.encode(clips[:0]).shape == (0, 4, 8, 8)
    assert tok.decode(ids[:0]).shape == (0, T, SIZE, SIZE, 3)


def test_beam_tokenizes_clips_byte_identical(trained, tmp_path):
    root, data_dir, _ = trained
    tok = load_tokenizer(str(root / "tok"))
    split = "train[100:120]"
    # Same batching (hence the same compiled programs), other parallelism: the same bytes.
    common = dict(batch_size=4, read_size=4, num_shards=2)
    runs = [
        beam_tokenize.run("moving_digits", split, data_dir, SIZE, str(root / "tok"), str(tmp_path / out),
                          **common, **mode)
        for out, mode in [("t1", dict(direct_num_workers=2)),
                          ("t2", dict(direct_num_workers=1, direct_running_mode="in_memory"))]
    ]
    assert runs[0] == runs[1]
    m = runs[0]
    assert m["spec"] == {"shape": [4, 8, 8], "dtype": "int32", "vocab_size": 32}
    assert m["total"] == 20 and m["num_classes"] == 10 and m["tokenizer"] == tok.identity
    assert m["dataset"].endswith(":train[100:120]:20:16:8f/1") and m["split"] == split
    names = sorted(p.name for p in (tmp_path / "t1").iterdir())
    assert len(names) == 3 and names == sorted(p.name for p in (tmp_path / "t2").iterdir())
    for name in names:
        assert (tmp_path / "t1" / name).read_bytes() == (tmp_path / "t2" / name).read_bytes(), name
    recs = LatentData(str(tmp_path / "t1")).read()
    clips, labels = load_video_dataset("moving_digits", split, data_dir, SIZE, T).read(0, 20)
    want = np.concatenate([tok.encode(clips[a : a + 4]) for a in range(0, 20, 4)])  # Beam's batches
    np.testing.assert_array_equal(recs["latents"], want)
    np.testing.assert_array_equal(recs["labels"], labels)
    np.testing.assert_array_equal(recs["index"], np.arange(20))


def test_beam_refuses_a_tokenizer_of_the_other_modality(trained, tmp_path):
    root, data_dir, _ = trained
    image_cfg = vq.VQConfig(image_size=SIZE, downsample=4, codebook_size=8, embed_dim=4, channels=16)
    image_tok = vq.VQTokenizer(image_cfg, vq.init_params(image_cfg, 0))
    image_tok.save(str(tmp_path / "image_tok"))
    with pytest.raises(ModalityError, match="'moving_digits' holds videos, not images"):
        beam_tokenize.run("moving_digits", "train", data_dir, SIZE, str(tmp_path / "image_tok"),
                          str(tmp_path / "o"))
    with pytest.raises(ModalityError, match="'digits' holds images, not videos"):
        beam_tokenize.run("digits", "train", data_dir, SIZE, str(root / "tok"), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="works on 16px frames but video_data.image_size is 32"):
        beam_tokenize.run("moving_digits", "train", data_dir, 32, str(root / "tok"), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
