"""Diffusion any-time sampler: K denoising steps (static), L loops per network call (runtime value).

Time grid t_k = (K - k)/K, k = 0..K-1, each step from t = t_k to s = t_{k+1} (uniform in t, so
the clipped, shifted cosine schedule sets the log-SNR spacing). z_1 ~ N(0, I). Per step:
  1. v_hat after L loops, guided (below);  x_hat = alpha_t z - sigma_t v_hat;
  2. ddpm: z_s ~ N(mean, var) of the ancestral step in log-SNR form (ddpm_moments):
           r = e^(lam_t - lam_s), mean = r (alpha_s/alpha_t) z_t + (1-r) alpha_s x_hat,
           var = (1-r) sigma_s^2  (google-research/diffusion_distillation dpm.py);
     ddim: z_s = alpha_s x_hat + sigma_s eps_hat, eps_hat = sigma_t z + alpha_t v_hat (eta = 0);
  3. the last step returns x_hat itself (no noise added at s = 0).
No clipping of x_hat: latents are unbounded.

Classifier-free guidance (the project's convention, as the masked family): u + s * (c - u) on the
network output (v), s = cfg_scale; s = 1 is the conditional model (one pass, no unconditional
batch), s = 0 the unconditional one. MAGVIT and Google's diffusion papers write c + w (c - u),
i.e. s = 1 + w: the paper's "CFG 3.0" is s = 3.0 here only if it uses DiT's form (unstated). Guidance
applies to ALL latent channels: DiT's sample code guides only the first 3 of 4 channels
(facebookresearch/DiT #41), a bug, not copied. v is linear in (x_hat, eps_hat) at fixed z, so
guiding v guides x_hat and eps_hat identically.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from elt.families.dit.model import cosine_logsnr, ddim_step, ddpm_moments, eps_from_v, x_from_v


def guided_v(model, params, z, labels, lam, L, cfg_scale: float) -> jax.Array:
    """u + s * (c - u) on v_hat; a single conditional pass when s == 1."""
    if cfg_scale == 1.0:
        return model.apply(params, z, labels, lam, L)
    # Conditional and unconditional halves in one batch: one network call per step.
    B = z.shape[0]
    uncond = jnp.full_like(labels, model.uncond_label)
    v = model.apply(
        params, jnp.concatenate([z, z]), jnp.concatenate([labels, uncond]), jnp.concatenate([lam, lam]), L
    )
    c, u = v[:B], v[B:]
    return u + cfg_scale * (c - u)


def run_sampler(v_fn, shape: tuple[int, ...], sc, rng: jax.Array) -> jax.Array:
    """The K-step loop for any ``v_fn(z, lam[B]) -> v_hat``; returns x_hat of the last step."""
    K = sc.steps
    if K < 1:
        raise ValueError(f"steps must be >= 1, got steps={K}")
    if sc.sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got sampler={sc.sampler!r}")
    B = shape[0]
    r_init, r_loop = jax.random.split(rng)

    def lam_at(t):
        return cosine_logsnr(t, sc.lambda_min, sc.lambda_max, sc.shift)

    def step(k, z):
        t = (K - k).astype(jnp.float32) / K
        s = (K - k - 1).astype(jnp.float32) / K
        lam_t, lam_s = lam_at(t), lam_at(s)
        v = v_fn(z, jnp.full((B,), lam_t))
        x_hat = x_from_v(z, v, lam_t)
        if sc.sampler == "ddpm":
            mean, var = ddpm_moments(z, x_hat, lam_t, lam_s)
            noise = jax.random.normal(jax.random.fold_in(r_loop, k), z.shape, jnp.float32)
            z_s = mean + jnp.sqrt(var) * noise
        else:
            z_s = ddim_step(x_hat, eps_from_v(z, v, lam_t), lam_s)
        return jnp.where(k == K - 1, x_hat, z_s)

    z1 = jax.random.normal(r_init, shape, jnp.float32)
    return jax.lax.fori_loop(0, K, step, z1)


def make_sampler(model, sc, cfg_scale: float = 1.0):
    """Jitted ``sample(params, labels[B], L, rng) -> latents [B, h, w, c]`` float32.

    ``sc`` is the family's SampleConfig (steps, sampler, sampling schedule). L is a traced
    argument: one compilation serves every loop count, L > L_max included. Same rng, same output.
    """
    if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, (int, float)) or not cfg_scale >= 0:
        raise ValueError(f"sample.cfg_scales: guidance scales must be numbers >= 0, got {cfg_scale!r}")
    cfg_scale = float(cfg_scale)

    def sample(params, labels, L, rng):
        labels = jnp.asarray(labels, jnp.int32)
        L = jnp.asarray(L, jnp.int32)
        shape = (labels.shape[0], *model.latent_shape)
        return run_sampler(lambda z, lam: guided_v(model, params, z, labels, lam, L, cfg_scale), shape, sc, rng)

    return jax.jit(sample)


def decode(tokenizer, latents):
    """uint8 images of sampled latents [B, h, w, c]. The vae tokenizer takes latents already
    multiplied by its scale factor, which is exactly what the model was trained on: no scaling here."""
    return tokenizer.decode(latents)
