"""Stable Diffusion v1.x VAE weights (diffusers' AutoencoderKL safetensors layout) -> VAETokenizer.

No pretrained VAE ships in any package here: the user gives the file (e.g. the
`vae/diffusion_pytorch_model.safetensors` of an SD v1.4/1.5 diffusers repository). The network is
elt/tokenizers/vae.py's AutoencoderKL, whose module names mirror diffusers' parameter names, so
loading is a renaming plus layout changes (conv OIHW -> HWIO, linear [out, in] -> [in, out]).
Both attention key styles diffusers has written are read: to_q/to_k/to_v/to_out.0 and the older
query/key/value/proj_attn (also as 1x1-conv-shaped [C, C, 1, 1] weights).

The architecture comes from the config.json that diffusers' save_pretrained writes beside the
weights, else SD v1.x's; latents are scaled by config's scaling_factor, else SD v1's 0.18215.
Every expected tensor is checked (present, right shape) before any compute.
safetensors is read with numpy (8-byte little-endian header length, JSON header, raw bytes): the
format is that simple, and neither torch nor the safetensors package is a project dependency.
"""

from __future__ import annotations

import json
import os
import re

import jax
import numpy as np

from elt.tokenizers.vae import VAETokenizer, init_params
from elt.tokenizers.vae_config import VAEConfig

SD_V1_SCALING_FACTOR = 0.18215  # CompVis stable-diffusion v1 configs (scale_factor)
# diffusers' AutoencoderKL config of SD v1.x, in VAEConfig's terms.
SD_V1 = dict(downsample=8, latent_channels=4, channels=128, channel_mult=(1, 2, 4, 4), num_res_blocks=2, norm_groups=32)

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
# Flax leaf name -> the diffusers names it may be stored under (newest first).
_ALIASES = {"to_q": ("to_q", "query"), "to_k": ("to_k", "key"), "to_v": ("to_v", "value"),
            "to_out.0": ("to_out.0", "proj_attn")}


# --------------------------------------------------------------------------------------------
# safetensors, read with numpy
# --------------------------------------------------------------------------------------------
def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a .safetensors file (BF16/F16 become float32)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(blob)} bytes)")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError(f"{path}: not a safetensors file (header length {n} > file size)")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a safetensors file (bad JSON header: {e})") from e
    data = memoryview(blob)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        if dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}; only float tensors are supported")
        raw = np.frombuffer(data[start:end], np.uint16 if dtype == "BF16" else _DTYPES[dtype])
        if dtype == "BF16":  # bfloat16 = the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        if raw.size != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} holds {raw.size} values, its shape {list(shape)} needs {int(np.prod(shape))}")
        out[name] = raw.reshape(shape).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
def config_from_diffusers(conf: dict, image_size: int, where: str = "config.json") -> tuple[VAEConfig, float]:
    """diffusers' AutoencoderKL config.json -> (VAEConfig, scaling_factor); unsupported variants
    (other block types, no quant convs, no mid attention, a latent shift) raise ValueError."""
    need = {"down_block_types": "DownEncoderBlock2D", "up_block_types": "UpDecoderBlock2D"}
    for key, block in need.items():
        if any(b != block for b in conf.get(key, [block])):
            raise ValueError(f"{where}: {key} {conf[key]} not supported (only {block})")
    for key, default, ok in (("in_channels", 3, 3), ("out_channels", 3, 3), ("act_fn", "silu", "silu"),
                             ("use_quant_conv", True, True), ("use_post_quant_conv", True, True),
                             ("mid_block_add_attention", True, True), ("shift_factor", None, None)):
        if conf.get(key, default) != ok:
            raise ValueError(f"{where}: {key}={conf[key]!r} not supported (SD v1.x has {ok!r})")
    chans = list(conf.get("block_out_channels", [64]))
    base = chans[0]
    if any(c % base for c in chans):
        raise ValueError(f"{where}: block_out_channels {chans} are not multiples of the first")
    cfg = VAEConfig(
        image_size=image_size,
        downsample=2 ** (len(chans) - 1),
        latent_channels=int(conf.get("latent_channels", 4)),
        channels=base,
        channel_mult=tuple(c // base for c in chans),
        num_res_blocks=int(conf.get("layers_per_block", 1)),
        norm_groups=int(conf.get("norm_num_groups", 32)),
    )
    return cfg.validate(), float(conf.get("scaling_factor") or SD_V1_SCALING_FACTOR)


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------
def diffusers_name(flax_path: tuple[str, ...]) -> tuple[str, str]:
    """("encoder", "down_blocks_0", "resnets_1", "conv1", "kernel") ->
    ("encoder.down_blocks.0.resnets.1.conv1", "weight"): module path and tensor name."""
    parts = [re.sub(r"_(\d+)$", r".\1", p) for p in flax_path[:-1]]
    return ".".join(parts), {"kernel": "weight", "scale": "weight", "bias": "bias"}[flax_path[-1]]


def _to_flax(w: np.ndarray, leaf: str, target_ndim: int) -> np.ndarray:
    if leaf != "kernel":
        return w
    if target_ndim == 4:  # conv OIHW -> HWIO
        return w.transpose(2, 3, 1, 0)
    if w.ndim == 4:  # old attention projections saved as 1x1 convs
        w = w[:, :, 0, 0]
    return w.T  # linear [out, in] -> Dense [in, out]


def convert_params(tensors: dict[str, np.ndarray], cfg: VAEConfig, where: str):
    """Flax params of AutoencoderKL(cfg) from diffusers-named tensors; ValueError naming the
    first missing or misshaped tensor (and how many more) before anything is computed."""
    abstract = jax.eval_shape(lambda: init_params(cfg, 0))
    flat = jax.tree_util.tree_flatten_with_path(abstract)
    leaves, problems = [], []
    for path, spec in flat[0]:
        keys = tuple(k.key for k in path)
        module, tensor = diffusers_name(keys)
        head, _, last = module.rpartition(".")
        if module.endswith("to_out.0"):
            head, last = module[: -len(".to_out.0")], "to_out.0"
        candidates = [".".join(filter(None, (head, a, tensor))) for a in _ALIASES.get(last, (last,))]
        name = next((c for c in candidates if c in tensors), None)
        if name is None:
            problems.append(f"missing tensor {candidates[0]!r}" + (f" (or {candidates[1]!r})" if len(candidates) > 1 else ""))
            leaves.append(None)
            continue
        w = _to_flax(tensors[name], keys[-1], len(spec.shape))
        if w.shape != spec.shape:
            torch_shape = tuple(tensors[name].shape)
            problems.append(f"tensor {name!r} has shape {list(torch_shape)}, the config needs "
                            f"{list(_torch_shape(spec.shape, keys[-1]))}")
        leaves.append(np.ascontiguousarray(w, np.float32))
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        hint = ""
        if any(k.startswith(("encoder.down.", "first_stage_model.")) for k in tensors):
            hint = "; its names look like the original CompVis/LDM layout: convert it to diffusers' layout first"
        raise ValueError(f"{where}: {problems[0]}{more}{hint}")
    return jax.tree_util.tree_unflatten(flat[1], leaves)


def _torch_shape(flax_shape: tuple[int, ...], leaf: str) -> tuple[int, ...]:
    if leaf == "kernel" and len(flax_shape) == 4:
        h, w, i, o = flax_shape
        return o, i, h, w
    if leaf == "kernel" and len(flax_shape) == 2:
        return flax_shape[::-1]
    return flax_shape


def load_sd_vae(path: str, image_size: int, config: dict | None = None) -> VAETokenizer:
    """A VAETokenizer with the weights of `path` (a diffusers AutoencoderKL .safetensors) at
    `image_size`. `config`: diffusers' config dict; default the config.json beside the file, else
    SD v1.x's architecture."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer.checkpoint: no SD VAE file at {path!r}")
    where = path
    if config is None:
        conf_path = os.path.join(os.path.dirname(path), "config.json")
        if os.path.isfile(conf_path):
            with open(conf_path) as f:
                config = json.load(f)
            where = conf_path
    if config is None:
        cfg, scale = VAEConfig(image_size=image_size, **SD_V1).validate(), SD_V1_SCALING_FACTOR
    else:
        cfg, scale = config_from_diffusers(config, image_size, where)
    params = convert_params(read_safetensors(path), cfg, path)
    return VAETokenizer(cfg, params, scale, source=os.path.abspath(path))
