"""Continuous latents: token t of the shards becomes the fixed unit vector E[t] (seeded), so the
model denoises float latents [B, h*w, C]; labels are added to every position."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from elt.core import looped


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    vocab: int
    num_classes: int
    grid: tuple
    channels: int
    d_model: int
    num_heads: int
    mlp_dim: int
    N: int
    unroll: bool = True


def codes(vocab, channels):
    e = jax.random.normal(jax.random.PRNGKey(0), (vocab, channels))
    return e / jnp.linalg.norm(e, axis=-1, keepdims=True)


class ToyModel:
    def __init__(self, cfg: ToyConfig):
        self.cfg, self.unroll, self.uncond_label = cfg, cfg.unroll, cfg.num_classes
        self.S = cfg.grid[0] * cfg.grid[1]
        self.codes = codes(cfg.vocab, cfg.channels)
        self._in, self._out = nn.Dense(cfg.d_model), nn.Dense(cfg.channels)
        self._label = nn.Embed(cfg.num_classes + 1, cfg.d_model)
        self._block = looped.LoopedBlock(cfg.N, cfg.d_model, cfg.num_heads, cfg.mlp_dim, unroll=cfg.unroll)

    def init(self, rng):
        r = jax.random.split(rng, 4)
        x, h = jnp.zeros((1, self.S, self.cfg.channels)), jnp.zeros((1, self.S, self.cfg.d_model))
        return {"embed": {"in": self._in.init(r[0], x)["params"], "label": self._label.init(r[1], jnp.zeros((1,), int))["params"]},
                "block": self._block.init(r[2], h)["params"], "head": self._out.init(r[3], h)["params"]}

    def num_params(self, params, block_only=False):
        return looped.num_params(params, block_only)

    def embed(self, params, x, labels):
        h = self._in.apply({"params": params["embed"]["in"]}, x)
        return h + self._label.apply({"params": params["embed"]["label"]}, labels)[:, None], None

    def block_fn(self, params, cond=None):
        return lambda h: self._block.apply({"params": params["block"]}, h, cond)

    def head(self, params, h, cond=None):
        return self._out.apply({"params": params["head"]}, h)


def build_model(spec, num_classes, scale, N, remat=False):
    return ToyModel(ToyConfig(spec.vocab_size, num_classes, tuple(spec.shape), 8, scale.d_model, scale.num_heads, scale.mlp_dim, N))


def model_from_config(config):
    return ToyModel(ToyConfig(**{**config, "grid": tuple(config["grid"])}))
