"""Training side of the diffusion family: noising and the per-exit losses (GT and D of the ILSD
combination in elt/core/ilsd.py), with v-prediction in log-SNR form (the noise process in model.py).

Per example: t ~ U(0, 1), lam = lam(t) (clipped, shifted cosine), eps ~ N(0, I),
z = alpha x + sigma eps. The network predicts v; its x-prediction is x_hat = alpha z - sigma v_hat.
  GT = mean_B[ w * mean_D (x_hat - x)^2 ]                         (paper: w(t) ||F(x_t) - x_0||^2)
  D  = mean_B[ w * mean_D (x_hat_T - x_hat_S)^2 ]                 (paper: w(t) ||F_T - F_S||^2)
     = mean_B[ w * sigma^2 * mean_D (v_T - v_S)^2 ]; the teacher arrives stop-gradiented.
  w  = e^b sigmoid(lam - b)  [x-space form of the eps-space sigmoid(b - lam)]
       * (-1/2 dlam/dt if train.elbo_weight: the "SigmoidELBO" of Table 5).
Means over the D latent elements (not sums): the loss scale does not depend on the latent size.
The weight is computed once in ``training_inputs`` and travels in the targets, so the held-out
``eval_loss`` (which gets no train config) is the same objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from elt.families.dit.model import cosine_logsnr, diffuse, elbo_factor, sigmoid_weight_x, v_from_x_eps, x_from_v
from elt.families.dit.config import PATCH_SIZE, TrainConfig


def _per_example_mse(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(a - b), axis=tuple(range(1, a.ndim)))


def loss_weight(t, lam, cfg: TrainConfig) -> jax.Array:
    """The per-example x-space weight w (see the module docstring)."""
    w = sigmoid_weight_x(lam, cfg.sigmoid_bias)
    if cfg.elbo_weight:
        w = w * elbo_factor(t, cfg.lambda_min, cfg.lambda_max)
    return w


# ---------------------------------------------------------------- the family contract (training)


def check_latents(spec) -> None:
    """The shards must hold float32 latents [h, w, c] with h and w divisible by the patch size."""
    if spec.dtype != "float32" or spec.vocab_size is not None or len(spec.shape) != 3:
        raise ValueError(f"family dit needs float32 latents of shape [h, w, c] (a vae tokenizer), got latents {spec}")
    h, w, _ = spec.shape
    if h % PATCH_SIZE or w % PATCH_SIZE:
        raise ValueError(
            f"family dit: latent shape {tuple(spec.shape)} is not divisible by the patch size {PATCH_SIZE} (h and w)"
        )


def training_inputs(model, batch: dict, rng, cfg: TrainConfig | None = None):
    """((z, labels, lam), targets): the batch noised at t ~ U(0, 1)."""
    cfg = TrainConfig() if cfg is None else cfg
    x = batch["latents"].astype(jnp.float32)
    r_t, r_eps = jax.random.split(rng)
    t = jax.random.uniform(r_t, (x.shape[0],), jnp.float32)
    lam = cosine_logsnr(t, cfg.lambda_min, cfg.lambda_max, cfg.shift)
    eps = jax.random.normal(r_eps, x.shape, jnp.float32)
    z = diffuse(x, eps, lam)
    targets = {"x": x, "z": z, "lam": lam, "v": v_from_x_eps(x, eps, lam), "weight": loss_weight(t, lam, cfg)}
    return (z, batch["labels"], lam), targets


def gt_loss(v_hat, targets, cfg=None) -> jax.Array:
    """w * ||x_hat - x||^2 (cfg unused: the weight was fixed by ``training_inputs``)."""
    x_hat = x_from_v(targets["z"], v_hat, targets["lam"])
    return jnp.mean(targets["weight"] * _per_example_mse(x_hat, targets["x"]))


def distill_loss(student_v, teacher_v, targets) -> jax.Array:
    """w * ||x_hat_T - x_hat_S||^2 on the x-predictions of the two exits."""
    x_student = x_from_v(targets["z"], student_v, targets["lam"])
    x_teacher = x_from_v(targets["z"], teacher_v, targets["lam"])
    return jnp.mean(targets["weight"] * _per_example_mse(x_student, x_teacher))


def eval_loss(v_hat, targets) -> jax.Array:
    """Held-out loss of one exit: the training objective (same weight), so curves compare."""
    return gt_loss(v_hat, targets)


def exit_metrics(v_hat, targets) -> dict:
    """Unweighted errors of one exit: x-space MSE (what the sampler's x_hat misses) and v-space MSE."""
    x_hat = x_from_v(targets["z"], v_hat, targets["lam"])
    return {
        "mse_x": jnp.mean(_per_example_mse(x_hat, targets["x"])),
        "mse_v": jnp.mean(_per_example_mse(v_hat, targets["v"])),
    }
