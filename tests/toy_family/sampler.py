import jax
import numpy as np

from elt.core.looped import apply
from elt.families.toy.model import codes


def make_sampler(model, sc, cfg_scale=1.0):
    @jax.jit
    def sample(params, labels, L, rng):
        x = sc.start_noise * jax.random.normal(rng, (labels.shape[0], model.S, model.cfg.channels))
        for _ in range(sc.steps):  # each pass denoises its own estimate again
            x = apply(model, params, (x, labels), L)
        return x.reshape(labels.shape[0], *model.cfg.grid, model.cfg.channels)

    return sample


def decode(tokenizer, latents):
    """Nearest code of each latent -> tokens -> the tokenizer's images."""
    e = np.asarray(codes(tokenizer.spec.vocab_size, latents.shape[-1]))
    return tokenizer.decode(np.argmax(np.asarray(latents) @ e.T, axis=-1).astype(np.int32))
