"""MaskGIT any-time sampler: K decoding steps (static), L loops per network call (runtime value).

Step k of K (ratio = (k+1)/K), following google-research/maskgit's decoder:
  1. logits of every position after L loops (CFG: u + s*(c - u), second pass only if s != 1);
  2. sample each unknown token from softmax(logits / STemp), STemp = bias + scale*(1 - ratio)
     (the paper's "sampling temperature" applies here, to the token draw);
  3. confidence = log P(sampled token) under the *untempered* softmax (as MaskGIT), +inf for
     tokens already known, plus Gumbel noise * choice_temperature * (1 - ratio);
  4. keep masked the n = floor(S * cos(pi/2 * ratio)) least confident, n clamped as
     max(1, min(unknown - 1, n)) before the last step and 0 at the last step, so every position
     is filled after K steps (and at least one token is revealed per step while possible).
Positions are ranked (not thresholded), so exactly n stay masked even with tied confidences.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def masked_count_schedule(seq_len: int, steps: int) -> list[int]:
    """Unclamped number of tokens left masked after each step: floor(S cos(pi/2 (k+1)/K))."""
    return [int(math.floor(seq_len * math.cos(math.pi / 2 * (k + 1) / steps))) for k in range(steps)]


def _guided_logits(model, params, tokens, labels, L, cfg_scale: float):
    if cfg_scale == 1.0:
        return model.apply(params, tokens, labels, L)
    # Conditional and unconditional passes in one batch: one network call per step.
    B = tokens.shape[0]
    uncond = jnp.full_like(labels, model.uncond_label)
    logits = model.apply(
        params, jnp.concatenate([tokens, tokens]), jnp.concatenate([labels, uncond]), L
    )
    c, u = logits[:B], logits[B:]
    return u + cfg_scale * (c - u)


def make_sampler(model, sc, cfg_scale: float = 1.0, with_history: bool = False):
    """Jitted ``sample(params, labels[B], L, rng) -> tokens[B, h, w]`` int32 in [0, K).

    ``sc`` is the family's SampleConfig (steps, temperatures). L is a traced argument: one
    compilation serves every loop count. ``with_history=True`` also returns the number of
    still-masked tokens per row after each step, [B, K].
    """
    S, K, mask_id = model.seq_len, sc.steps, model.mask_id

    def sample(params, labels, L, rng):
        labels = jnp.asarray(labels, jnp.int32)
        B = labels.shape[0]
        L = jnp.asarray(L, jnp.int32)
        tokens0 = jnp.full((B, S), mask_id, jnp.int32)

        def step(k, carry):
            tokens, history = carry
            ratio = (k + 1).astype(jnp.float32) / K
            r_tok, r_choice = jax.random.split(jax.random.fold_in(rng, k))
            logits = _guided_logits(model, params, tokens, labels, L, cfg_scale)
            stemp = sc.temperature_bias + sc.temperature_scale * (1.0 - ratio)
            sampled = jax.random.categorical(r_tok, logits / stemp, axis=-1).astype(jnp.int32)
            unknown = tokens == mask_id
            sampled = jnp.where(unknown, sampled, tokens)

            logp = jax.nn.log_softmax(logits, axis=-1)
            conf = jnp.take_along_axis(logp, sampled[..., None], axis=-1)[..., 0]
            conf = conf + sc.choice_temperature * (1.0 - ratio) * jax.random.gumbel(r_choice, conf.shape)
            conf = jnp.where(unknown, conf, jnp.inf)

            n_unknown = jnp.sum(unknown, axis=-1)
            n = jnp.floor(S * jnp.cos(jnp.pi / 2 * ratio)).astype(jnp.int32)
            # MaskGIT's order: max(1, min(unknown - 1, n)). When K > S the interval is empty near
            # the end; the lower bound wins so one token stays masked until the last step.
            n = jnp.maximum(1, jnp.minimum(n_unknown - 1, n))
            n = jnp.where(k == K - 1, 0, n)
            # Exactly n lowest-confidence positions stay masked (known ones rank last: +inf).
            ranks = jnp.argsort(jnp.argsort(conf, axis=-1), axis=-1)
            remask = ranks < n[:, None]
            tokens = jnp.where(remask, mask_id, sampled)
            history = history.at[:, k].set(jnp.sum(remask, axis=-1).astype(jnp.int32))
            return tokens, history

        tokens, history = jax.lax.fori_loop(
            0, K, step, (tokens0, jnp.zeros((B, K), jnp.int32))
        )
        tokens = tokens.reshape(B, *model.cfg.grid)
        return (tokens, history) if with_history else tokens

    return jax.jit(sample)


def decode(tokenizer, latents):
    """uint8 images of sampled tokens [B, h, w]."""
    return tokenizer.decode(latents)
