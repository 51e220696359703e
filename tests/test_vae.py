"""KL autoencoder tokenizer (kind "vae"): the Flax AutoencoderKL against diffusers (golden values from
scripts/make_golden_vae.py), the SD safetensors loader's errors, the latent scale, determinism,
save/load, and that a short training on digits learns."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from elt.config import ConfigError
from elt.data import digits
from elt.data.spec import LatentSpec
from elt.tokenizers import load_tokenizer, tokenizer_kinds
from elt.tokenizers.sd_vae import config_from_diffusers, convert_params, load_sd_vae, read_safetensors
from elt.tokenizers.vae import AutoencoderKL, to_float
from elt.tokenizers.vae_config import VAEConfig
from elt.tokenizers.vae_train import evaluate, fit, mean_image_psnr

GOLDEN = Path(__file__).parent / "data" / "vae_golden"
WEIGHTS = GOLDEN / "diffusion_pytorch_model.safetensors"
# 16x16 -> 4x4x4, widths (8, 16, 32): the default architecture at a quarter of the pixels.
CFG = VAEConfig(image_size=16, downsample=4, channels=8, norm_groups=4, kl_weight=1e-4)


def write_safetensors(path: Path, tensors: dict) -> None:
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        raw = np.ascontiguousarray(value, np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def apply(cfg, params, x, method):
    return np.asarray(jax.jit(lambda p, v: AutoencoderKL(cfg).apply({"params": p}, v, method=method))(params, x))


# --------------------------------------------------------------------------------------------
# SD VAE: golden values and the loader
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden_tok():
    return load_sd_vae(str(WEIGHTS), 32)


def test_flax_autoencoder_matches_diffusers(golden_tok):
    g = np.load(GOLDEN / "golden.npz")
    cfg, params = golden_tok.cfg, golden_tok.params
    assert cfg.block_out_channels == (16, 32) and cfg.norm_groups == 8 and golden_tok.scale_factor == 0.18215
    mean, logvar = jax.jit(lambda p, x: AutoencoderKL(cfg).apply({"params": p}, x, method=AutoencoderKL.encode))(
        params, g["images"]
    )
    np.testing.assert_allclose(mean, g["mean"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logvar, g["logvar"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(apply(cfg, params, g["latents"], AutoencoderKL.decode), g["decoded"], atol=1e-4, rtol=0)
    # The tokenizer's latents are the posterior mean times the scale factor.
    images = np.clip(np.round((g["images"] + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(
        golden_tok.encode(images), apply(cfg, params, to_float(images), AutoencoderKL.encode)[0] * 0.18215, atol=1e-6
    )


def test_old_attention_key_style_loads_the_same(golden_tok):
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for name, value in read_safetensors(str(WEIGHTS)).items():
        for new, before in renames.items():
            name = name.replace(f".attentions.0.{new}.", f".attentions.0.{before}.")
        # the oldest files stored the projections as 1x1 convs
        old[name] = value[..., None, None] if ".attentions.0." in name and value.ndim == 2 else value
    assert "encoder.mid_block.attentions.0.query.weight" in old
    params = convert_params(old, golden_tok.cfg, "old-style")
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, golden_tok.params)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("decoder.mid_block.attentions.0.to_q.weight"),
         r"missing tensor 'decoder\.mid_block\.attentions\.0\.to_q\.weight'"),
        (lambda t: t.update({"encoder.conv_in.weight": np.zeros((16, 3, 1, 1), np.float32)}),
         r"tensor 'encoder\.conv_in\.weight' has shape \[16, 3, 1, 1\], the config needs \[16, 3, 3, 3\]"),
    ],
    ids=["missing", "misshaped"],
)
def test_bad_safetensors_name_the_tensor_and_file(tmp_path, edit, message):
    tensors = read_safetensors(str(WEIGHTS))
    edit(tensors)
    bad = tmp_path / "vae.safetensors"
    write_safetensors(bad, tensors)
    shutil.copy(GOLDEN / "config.json", tmp_path / "config.json")
    with pytest.raises(ValueError, match=f"{tmp_path}/vae.safetensors: {message}"):
        load_sd_vae(str(bad), 32)


def test_unsupported_diffusers_configs_and_bad_files_are_refused(tmp_path):
    conf = json.loads((GOLDEN / "config.json").read_text())
    with pytest.raises(ValueError, match="mid_block_add_attention=False not supported"):
        config_from_diffusers({**conf, "mid_block_add_attention": False}, 32)
    with pytest.raises(ValueError, match="shift_factor"):
        config_from_diffusers({**conf, "shift_factor": 0.1159}, 32)
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 20)
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(str(tmp_path / "junk.safetensors"))


def test_sd_vae_saves_as_a_vae_tokenizer(golden_tok, tmp_path):
    golden_tok.save(str(tmp_path / "sd"))
    loaded = load_tokenizer(str(tmp_path / "sd"), require_manifest=True)
    assert loaded.identity == golden_tok.identity and loaded.scale_factor == 0.18215
    assert loaded.spec == LatentSpec((16, 16, 4), "float32", None)
    assert json.loads((tmp_path / "sd" / "tokenizer.json").read_text())["source"] == str(WEIGHTS.resolve())


def test_config_errors_name_the_key():
    assert "vae" in tokenizer_kinds()
    with pytest.raises(ConfigError, match=r"^tokenizer\.channel_mult: must be 3 ints"):
        VAEConfig(channel_mult=(1, 2)).check()
    with pytest.raises(ConfigError, match=r"^tokenizer\.norm_groups: 3 does not divide"):
        VAEConfig(norm_groups=3).check()
    with pytest.raises(ConfigError, match=r"^tokenizer\.kl_weight"):
        VAEConfig(kl_weight=-1.0).check()
    assert VAEConfig(channel_mult=[1, 2, 4]) == VAEConfig(channel_mult=(1, 2, 4))  # as read from JSON


# --------------------------------------------------------------------------------------------
# A short training on digits
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images():
    return digits.upscale(load_digits().images[:256], 16)


@pytest.fixture(scope="module")
def trained(images):
    return fit(CFG, images, steps=150, batch_size=32, lr=2e-3, seed=0, log_every=10)


def test_training_learns(images, trained):
    tok, info = trained
    m = evaluate(tok, images)
    baseline = mean_image_psnr(images)
    assert m["psnr"] > baseline + 5.0, (m["psnr"], baseline)
    first, last = info["history"][0], info["history"][-1]
    assert last["loss"] < 0.3 * first["loss"] and last["rec"] < 0.3 * first["rec"], (first, last)
    assert np.isfinite(last["kl"]) and last["kl"] > 0


def test_scale_factor_is_one_over_training_latent_std(images, trained):
    tok, _ = trained
    mean, _ = jax.jit(lambda p, x: AutoencoderKL(CFG).apply({"params": p}, x, method=AutoencoderKL.encode))(
        tok.params, to_float(images)
    )
    assert tok.scale_factor == pytest.approx(1.0 / np.std(np.asarray(mean, np.float64)), rel=1e-5)
    assert evaluate(tok, images)["latent_std"] == pytest.approx(1.0, rel=1e-4)


def test_encode_is_deterministic_and_save_load_round_trips(images, trained, tmp_path):
    tok, _ = trained
    z = tok.encode(images[:20])
    assert z.dtype == np.float32 and tok.spec == LatentSpec((4, 4, 4), "float32", None)
    assert z.tobytes() == tok.encode(images[:20]).tobytes()
    recon = tok.decode(z)
    assert recon.dtype == np.uint8 and recon.shape == (20, 16, 16, 3)
    tok.save(str(tmp_path / "tok"))
    loaded = load_tokenizer(str(tmp_path / "tok"), require_manifest=True)
    assert loaded.identity == tok.identity and loaded.scale_factor == tok.scale_factor
    assert loaded.encode(images[:20]).tobytes() == z.tobytes()
    np.testing.assert_array_equal(loaded.decode(z), recon)
    with pytest.raises(ValueError, match="uint8"):
        loaded.encode(images[:2].astype(np.float32))
    with pytest.raises(ValueError, match="expected float32 latents"):
        loaded.decode(z.astype(np.float64))
    # A checkpoint whose weights differ from its recorded identity is refused.
    (tmp_path / "tok" / "MANIFEST.json").unlink()
    meta = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    (tmp_path / "tok" / "tokenizer.json").write_text(json.dumps({**meta, "scale_factor": 1.0}))
    with pytest.raises(ValueError, match="do not match the identity"):
        load_tokenizer(str(tmp_path / "tok"))
