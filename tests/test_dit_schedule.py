"""Diffusion family maths (elt/families/dit/model.py noise process, sampler loop) against closed forms
computed independently in float64 numpy."""

import math

import jax
import numpy as np
import pytest

from elt.families.dit.model import alpha_sigma, cosine_logsnr, ddim_step, ddpm_moments, diffuse, elbo_factor, eps_from_v, sigmoid_weight_x, v_from_x_eps, x_from_v
from elt.families.dit.config import SampleConfig
from elt.families.dit.sampler import run_sampler


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def np_logsnr(t, lmin, lmax, shift=0.0):
    b0 = math.atan(math.exp(-lmax / 2))
    a = math.atan(math.exp(-lmin / 2)) - b0
    return -2.0 * np.log(np.tan(a * np.asarray(t, np.float64) + b0)) + shift


T = np.array([0.0, 0.01, 0.2, 0.5, 0.77, 0.99, 1.0])


def test_unclipped_limit_is_the_cosine_schedule():
    # With a very wide clip, a -> pi/2 and b0 -> 0: lam(t) = -2 log tan(pi t / 2) at interior t.
    t = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    ours = np.asarray(cosine_logsnr(t, -60.0, 60.0))
    np.testing.assert_allclose(ours, -2 * np.log(np.tan(np.pi * t / 2)), atol=2e-5)
    assert abs(ours[2]) < 1e-5  # the unshifted cosine crosses SNR = 1 at t = 1/2


@pytest.mark.parametrize("lmin, lmax, shift", [(-15.0, 15.0, 0.0), (-20.0, 20.0, 0.0), (-13.0, 5.0, 0.0),
                                               (-15.0, 15.0, 2 * math.log(64 / 256))])
def test_clipped_shifted_schedule_closed_form_and_endpoints(lmin, lmax, shift):
    ours = np.asarray(cosine_logsnr(T, lmin, lmax, shift))
    np.testing.assert_allclose(ours, np_logsnr(T, lmin, lmax, shift), rtol=1e-5, atol=1e-4)
    # The clip is exact at the ends (t = 0 data, t = 1 noise), then the shift moves both.
    np.testing.assert_allclose([ours[0], ours[-1]], [lmax + shift, lmin + shift], atol=2e-4)
    assert np.all(np.diff(ours) < 0)  # decreasing in t


def test_shift_is_simple_diffusions_snr_scaling():
    # simple diffusion: SNR_shifted(t) = SNR(t) * (base / size)^2, i.e. lam + 2 log(base/size).
    base, size = 64, 256
    plain = np.asarray(cosine_logsnr(T, -15.0, 15.0), np.float64)
    shifted = np.asarray(cosine_logsnr(T, -15.0, 15.0, 2 * math.log(base / size)), np.float64)
    np.testing.assert_allclose(np.exp(shifted), np.exp(plain) * (base / size) ** 2, rtol=1e-4)


def test_elbo_factor_is_minus_half_dlam_dt():
    t = np.array([0.05, 0.3, 0.5, 0.8, 0.95])
    h = 1e-6
    fd = -0.5 * (np_logsnr(t + h, -15, 15) - np_logsnr(t - h, -15, 15)) / (2 * h)
    np.testing.assert_allclose(np.asarray(elbo_factor(t, -15.0, 15.0)), fd, rtol=1e-4)
    # Unclipped cosine: -1/2 dlam/dt = pi / sin(pi t), pi at t = 1/2.
    np.testing.assert_allclose(float(elbo_factor(0.5, -60.0, 60.0)), math.pi, rtol=1e-5)


def test_conversions_round_trip_and_identities():
    r = np.random.default_rng(0)
    x, eps, v_hat = (r.normal(size=(6, 4, 4, 3)).astype(np.float32) for _ in range(3))
    lam = np.array([-14.0, -5.0, -0.3, 0.0, 2.5, 13.0], np.float32)
    z = diffuse(x, eps, lam)
    v = v_from_x_eps(x, eps, lam)
    np.testing.assert_allclose(x_from_v(z, v, lam), x, atol=2e-5)
    np.testing.assert_allclose(eps_from_v(z, v, lam), eps, atol=2e-5)
    alpha, sigma = (np.asarray(a, np.float64) for a in alpha_sigma(lam))
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    np.testing.assert_allclose(np.log(alpha**2 / sigma**2), lam, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(z, alpha[:, None, None, None] * x + sigma[:, None, None, None] * eps, atol=1e-6)
    # ||x - x_hat||^2 = sigma^2 ||v - v_hat||^2 and ||eps - eps_hat||^2 = e^lam ||x - x_hat||^2.
    x_hat, eps_hat = x_from_v(z, v_hat, lam), eps_from_v(z, v_hat, lam)
    sq = lambda a, b: np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2, axis=(1, 2, 3))  # noqa: E731
    np.testing.assert_allclose(sq(x, x_hat), sigma**2 * sq(v, v_hat), rtol=1e-4)
    mid = slice(1, 5)  # away from the clip ends, where e^lam amplifies float32 rounding
    np.testing.assert_allclose(sq(eps, eps_hat)[mid], np.exp(lam[mid]) * sq(x, x_hat)[mid], rtol=1e-3)


def test_sigmoid_weight_x_space_equals_eps_space_sigmoid():
    lam = np.linspace(-15, 15, 31).astype(np.float32)
    for b in (-3.0, 0.0, 2.0):
        w_x = np.asarray(sigmoid_weight_x(lam, b), np.float64)
        np.testing.assert_allclose(w_x, math.exp(b) * np_sigmoid(lam - b), rtol=1e-5)
        # x-space weight * ||x-x_hat||^2 = sigmoid(b - lam) * ||eps-eps_hat||^2 = sigmoid(b-lam) e^lam ||x-x_hat||^2
        np.testing.assert_allclose(w_x, np_sigmoid(b - lam) * np.exp(lam.astype(np.float64)), rtol=1e-5)


def _posterior(z_t, x, lam_t, lam_s):
    """q(z_s | z_t, x) in the alpha_{t|s} form (Kingma et al. 2021, VDM eq. 30-32), float64."""
    a_t, a_s = np.sqrt(np_sigmoid(lam_t)), np.sqrt(np_sigmoid(lam_s))
    s2_t, s2_s = np_sigmoid(-lam_t), np_sigmoid(-lam_s)
    a_ts = a_t / a_s
    s2_ts = s2_t - a_ts**2 * s2_s
    mean = (a_ts * s2_s / s2_t) * z_t + (a_s * s2_ts / s2_t) * x
    return mean, s2_ts * s2_s / s2_t


@pytest.mark.parametrize("lam_t, lam_s", [(-2.0, 1.0), (-17.7, -17.6), (0.3, 0.31), (9.0, 12.2), (-17.7, 12.2)])
def test_ddpm_step_is_the_gaussian_posterior(lam_t, lam_s):
    r = np.random.default_rng(1)
    z_t, x = r.normal(size=(2, 3, 4)), r.normal(size=(2, 3, 4))
    mean, var = ddpm_moments(z_t.astype(np.float32), x.astype(np.float32),
                                      np.full(2, lam_t, np.float32), np.full(2, lam_s, np.float32))
    ref_mean, ref_var = _posterior(z_t, x, np.float64(np.float32(lam_t)), np.float64(np.float32(lam_s)))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-5)
    # Relative accuracy of the variance even where 1 - r is tiny (float32-safe forms).
    np.testing.assert_allclose(var, np.full(2, ref_var), rtol=1e-3)


def test_ddim_step_closed_form():
    r = np.random.default_rng(2)
    x, eps = r.normal(size=(2, 3, 4)), r.normal(size=(2, 3, 4))
    lam_t, lam_s = np.array([-3.0, 0.5]), np.array([-1.0, 4.0])
    a_t, s_t = np.sqrt(np_sigmoid(lam_t))[:, None, None], np.sqrt(np_sigmoid(-lam_t))[:, None, None]
    a_s, s_s = np.sqrt(np_sigmoid(lam_s))[:, None, None], np.sqrt(np_sigmoid(-lam_s))[:, None, None]
    z_t = a_t * x + s_t * eps
    x_hat = x + 0.1 * r.normal(size=x.shape)  # an imperfect prediction
    eps_hat = (z_t - a_t * x_hat) / s_t  # the noise it implies
    ours = ddim_step(x_hat.astype(np.float32), eps_hat.astype(np.float32), lam_s.astype(np.float32))
    # z_s = alpha_s x_hat + sigma_s (z_t - alpha_t x_hat) / sigma_t (Song et al. 2021, eta = 0).
    np.testing.assert_allclose(ours, a_s * x_hat + s_s * (z_t - a_t * x_hat) / s_t, rtol=1e-5, atol=1e-5)


def _gaussian_oracle(std):
    """Exact v for data x ~ N(0, std^2 I): x_hat = E[x|z] = alpha std^2 z / (alpha^2 std^2 + sigma^2)."""
    def v_fn(z, lam):
        alpha, sigma = (a[:, None, None, None] for a in alpha_sigma(lam))
        x_hat = alpha * std**2 * z / (alpha**2 * std**2 + sigma**2)
        return (alpha * z - x_hat) / sigma
    return v_fn


def _chain_std(K, std, kind, sc):
    """Std of the sampler's output for N(0, std^2) data and the exact denoiser, by the variance
    recursion of the linear Gaussian chain (independent of the code under test): x_hat = k_t z, so
    each step is z_s = c_t z_t (+ noise of variance (1 - r) sigma_s^2 for DDPM)."""
    var = 1.0
    for k in range(K):
        lt = float(np_logsnr((K - k) / K, sc.lambda_min, sc.lambda_max, sc.shift))
        ls = float(np_logsnr((K - k - 1) / K, sc.lambda_min, sc.lambda_max, sc.shift))
        a_t, s_t = math.sqrt(np_sigmoid(lt)), math.sqrt(np_sigmoid(-lt))
        a_s, s_s = math.sqrt(np_sigmoid(ls)), math.sqrt(np_sigmoid(-ls))
        k_t = a_t * std**2 / (a_t**2 * std**2 + s_t**2)
        if k == K - 1:
            return k_t * math.sqrt(var)
        if kind == "ddpm":
            (m_z, noise), m_x = _posterior(1.0, 0.0, lt, ls), _posterior(0.0, 1.0, lt, ls)[0]
            var = (m_z + m_x * k_t) ** 2 * var + noise
        else:
            var = (a_s * k_t + s_s * (1 - a_t * k_t) / s_t) ** 2 * var


@pytest.mark.parametrize("sampler, expected", [("ddpm", 0.4144), ("ddim", 0.4519)])
def test_sampler_with_exact_denoiser_matches_the_gaussian_chain(sampler, expected):
    # The whole K-step chain (time grid, ancestral/DDIM update, last-step x_hat) with the exact
    # denoiser of N(0, 0.5^2) data. With K = 50 steps both samplers fall short of 0.5 by a known
    # amount (DDPM more: it plugs x_hat into q(z_s | z_t, x)); a wrong variance (sigma_t for
    # sigma_s), mean coefficient or grid gives another std. 16k values: ~0.6% standard error.
    sc = SampleConfig(steps=50, sampler=sampler)
    ref = _chain_std(50, 0.5, sampler, sc)
    assert abs(ref - expected) < 1e-3  # the recursion itself (and 1000 steps gives ~0.49-0.50)
    out = jax.jit(lambda rng: run_sampler(_gaussian_oracle(0.5), (512, 4, 4, 2), sc, rng))(jax.random.key(0))
    out = np.asarray(out, np.float64)
    assert abs(out.mean()) < 0.02
    assert abs(out.std() / ref - 1) < 0.02, (out.std(), ref)


def test_single_step_returns_x_hat_of_the_first_evaluation():
    sc = SampleConfig(steps=1)
    v_fn = lambda z, lam: 0.3 * z + 0.1  # noqa: E731
    rng = jax.random.key(3)
    out = jax.jit(lambda rng: run_sampler(v_fn, (2, 2, 2, 1), sc, rng))(rng)
    z1 = jax.random.normal(jax.random.split(rng)[0], (2, 2, 2, 1))
    lam1 = sc.lambda_min + sc.shift
    a, s = math.sqrt(np_sigmoid(lam1)), math.sqrt(np_sigmoid(-lam1))
    np.testing.assert_allclose(out, a * z1 - s * (0.3 * z1 + 0.1), rtol=1e-4, atol=1e-6)
