"""Pure maths of the diffusion family, in log-SNR form (lam = log alpha^2 / sigma^2).

    z = alpha x + sigma eps,  alpha^2 = sigmoid(lam),  sigma^2 = sigmoid(-lam)   (variance preserving)
    v = alpha eps - sigma x;  x = alpha z - sigma v;  eps = sigma z + alpha v

Schedule: the cosine schedule lam(t) = -2 log tan(pi t / 2), clipped to [lambda_min, lambda_max]
the way google-research/diffusion_distillation (schedules.py) does it, -2 log tan(a t + b0) with
b0 = arctan(e^(-lambda_max/2)), a = arctan(e^(-lambda_min/2)) - b0, then shifted by ``shift``
(simple diffusion's + 2 log(base/size)). t = 0 is data, t = 1 is noise.

Loss weight (VDM++ sigmoid weighting): eps-space w_eps = sigmoid(b - lam). Since
||eps - eps_hat||^2 = e^lam ||x - x_hat||^2, the same weight on x-space errors is
w_x = e^lam sigmoid(b - lam) = e^b sigmoid(lam - b), which is what the losses use (the paper writes
its GT and distillation losses on x-predictions). Optionally times -1/2 dlam/dt (the ELBO factor).

Samplers step from t to s < t: ancestral DDPM (diffusion_distillation dpm.py form) and DDIM
(eta = 0). Everything is float32-safe near the clip ends (expm1, log-sigmoid), no jax.jit here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _angles(t, lambda_min: float, lambda_max: float):
    """(a, u = a t + b0, pi/2 - u) in float32, the complement computed without cancellation.

    With c = arctan(e^(lambda_min/2)) = pi/2 - arctan(e^(-lambda_min/2)): a = pi/2 - c - b0 and
    pi/2 - u = (1 - t)(pi/2 - b0) + t c. Near t = 1, u -> pi/2 and float32 pi/2 - u would keep
    only ~1e-7 of an angle ~1e-4: lam would be off by 1e-3 at lambda_min = -20.
    """
    b0 = math.atan(math.exp(-0.5 * lambda_max))  # python floats: constants in float64
    c = math.atan(math.exp(0.5 * lambda_min))
    a = math.pi / 2 - c - b0
    t = jnp.asarray(t, jnp.float32)
    u = a * t + b0
    comp = (1.0 - t) * (math.pi / 2 - b0) + t * c
    return jnp.float32(a), u, comp


def cosine_logsnr(t, lambda_min: float, lambda_max: float, shift: float = 0.0) -> jax.Array:
    """Clipped, shifted cosine log-SNR at t in [0, 1]: lam(0) = lambda_max + shift,
    lam(1) = lambda_min + shift, decreasing in t. -2 log tan(u) = 2 log tan(pi/2 - u): each form
    is used where its angle is the small, accurate one."""
    _, u, comp = _angles(t, lambda_min, lambda_max)
    lam = jnp.where(u < math.pi / 4, -2.0 * jnp.log(jnp.tan(u)), 2.0 * jnp.log(jnp.tan(comp)))
    return lam + jnp.float32(shift)


def elbo_factor(t, lambda_min: float, lambda_max: float) -> jax.Array:
    """-1/2 dlam/dt of ``cosine_logsnr`` (the shift is a constant): a / (sin(u) cos(u)) =
    2a / sin(2u), u = a t + b0, and sin(2u) = sin(2 (pi/2 - u)). Positive: lam decreases in t."""
    a, u, comp = _angles(t, lambda_min, lambda_max)
    return 2.0 * a / jnp.sin(2.0 * jnp.minimum(u, comp))


def alpha_sigma(lam) -> tuple[jax.Array, jax.Array]:
    lam = jnp.asarray(lam, jnp.float32)
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))


def _bcast(a: jax.Array, like: jax.Array) -> jax.Array:
    """A per-example [B] scalar broadcast against a [B, ...] array."""
    a = jnp.asarray(a, jnp.float32)
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def diffuse(x, eps, lam) -> jax.Array:
    """z = alpha x + sigma eps (lam per example, [B])."""
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, x) * x + _bcast(sigma, x) * eps


def v_from_x_eps(x, eps, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, x) * eps - _bcast(sigma, x) * x


def x_from_v(z, v, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(alpha, z) * z - _bcast(sigma, z) * v


def eps_from_v(z, v, lam) -> jax.Array:
    alpha, sigma = alpha_sigma(lam)
    return _bcast(sigma, z) * z + _bcast(alpha, z) * v


def sigmoid_weight_x(lam, bias: float) -> jax.Array:
    """x-space weight e^b sigmoid(lam - b) (= e^lam sigmoid(b - lam), the eps-space sigmoid(b - lam))."""
    lam = jnp.asarray(lam, jnp.float32)
    return jnp.exp(jnp.float32(bias)) * jax.nn.sigmoid(lam - bias)


def ddpm_moments(z_t, x_hat, lam_t, lam_s) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the ancestral step q(z_s | z_t, x = x_hat), s < t (lam_s > lam_t):
        r = e^(lam_t - lam_s),  mean = r (alpha_s / alpha_t) z_t + (1 - r) alpha_s x_hat,
        var = (1 - r) sigma_s^2.
    1 - r = -expm1(lam_t - lam_s) and alpha_s / alpha_t from log-sigmoids: exact near r -> 1 and
    at the clip ends, where the naive forms lose every digit in float32."""
    lam_t = jnp.asarray(lam_t, jnp.float32)
    lam_s = jnp.asarray(lam_s, jnp.float32)
    r = jnp.exp(lam_t - lam_s)
    one_minus_r = -jnp.expm1(lam_t - lam_s)
    ratio = jnp.exp(0.5 * (jax.nn.log_sigmoid(lam_s) - jax.nn.log_sigmoid(lam_t)))  # alpha_s / alpha_t
    alpha_s = jnp.sqrt(jax.nn.sigmoid(lam_s))
    mean = _bcast(r * ratio, z_t) * z_t + _bcast(one_minus_r * alpha_s, z_t) * x_hat
    var = one_minus_r * jax.nn.sigmoid(-lam_s)
    return mean, var


def ddim_step(x_hat, eps_hat, lam_s) -> jax.Array:
    """DDIM with eta = 0: z_s = alpha_s x_hat + sigma_s eps_hat (the noise estimate is kept)."""
    alpha_s, sigma_s = alpha_sigma(lam_s)
    return _bcast(alpha_s, x_hat) * x_hat + _bcast(sigma_s, x_hat) * eps_hat
