"""ILSD loss (the core's combination with the maskgit per-exit losses), masked CE, soft CE and the
lambda curriculum against direct numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt.core.ilsd import ilsd_loss, lam_schedule
from elt.families.maskgit.losses import masked_accuracy, masked_ce, soft_ce

# Two examples, three positions, vocabulary of 3: small enough to check by hand.
T_LOGITS = np.array(
    [[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [-1.0, 3.0, 0.0]],
     [[0.0, 1.0, 2.0], [1.0, -2.0, 0.0], [0.3, 0.1, -0.4]]], np.float32)
S_LOGITS = np.array(
    [[[1.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
     [[-1.0, 0.0, 1.0], [2.0, 0.0, -1.0], [0.0, 0.5, 1.5]]], np.float32)
TARGETS = np.array([[0, 2, 1], [2, 0, 1]], np.int32)
MASK = np.array([[True, False, True], [True, True, False]])

# float32 log-softmax of logits |x| <= 3 is off by a few ulp(lse ~ 3) ~ 5e-7 in absolute terms
# wherever the CE lands (rounding of the sum of exps; XLA's vector exp/log differ between CPUs and
# XLA versions): up to 3e-6 relative for the 0.17 CE below, so rtol alone is too tight. A wrong
# smoothing, mask or normalisation moves these losses by > 1e-2.
TOL = dict(rtol=1e-6, atol=1e-6)


def maskgit_ilsd(t_logits, s_logits, lam, eps):
    """The core's ILSD combination with the maskgit GT (label-smoothed masked CE) and D (soft CE)."""
    return ilsd_loss(
        lambda o: masked_ce(o, TARGETS, MASK, eps), lambda s, t: soft_ce(s, t, MASK), t_logits, s_logits, lam
    )


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_masked_ce(logits, targets, mask, eps):
    K = logits.shape[-1]
    q = np.full(logits.shape, eps / K)
    q[np.arange(2)[:, None], np.arange(3)[None], targets] += 1 - eps
    per = -(q * np_log_softmax(logits)).sum(-1)
    return per[mask].mean()


def np_soft_ce(student, teacher, mask):
    p_t = np.exp(np_log_softmax(teacher))
    return (-(p_t * np_log_softmax(student)).sum(-1))[mask].mean()


def test_masked_ce_hand_value():
    # Example 0 position 0, no smoothing: -log softmax([2,0,-1])[0] = log(1 + e^-2 + e^-3).
    one = masked_ce(T_LOGITS[:1, :1], TARGETS[:1, :1], MASK[:1, :1], 0.0)
    np.testing.assert_allclose(one, np.log(1 + np.exp(-2) + np.exp(-3)), **TOL)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_masked_ce_matches_numpy(eps):
    np.testing.assert_allclose(
        masked_ce(T_LOGITS, TARGETS, MASK, eps), np_masked_ce(T_LOGITS, TARGETS, MASK, eps), **TOL
    )


def test_unmasked_positions_do_not_count():
    changed = T_LOGITS.copy()
    changed[~MASK] = 100.0 * np.random.default_rng(0).normal(size=changed[~MASK].shape)
    # Same program, bit-identical masked terms, exact zeros elsewhere: equal to the last bit.
    np.testing.assert_allclose(masked_ce(changed, TARGETS, MASK, 0.1), masked_ce(T_LOGITS, TARGETS, MASK, 0.1), rtol=1e-6)


def test_soft_ce_matches_numpy_and_is_ce_for_onehot_teacher():
    np.testing.assert_allclose(soft_ce(S_LOGITS, T_LOGITS, MASK), np_soft_ce(S_LOGITS, T_LOGITS, MASK), **TOL)
    # A very peaked teacher turns soft CE into the hard CE on its argmax.
    peaked = 1e4 * jax.nn.one_hot(TARGETS, 3)
    np.testing.assert_allclose(soft_ce(S_LOGITS, peaked, MASK), np_masked_ce(S_LOGITS, TARGETS, MASK, 0.0), rtol=1e-5)


@pytest.mark.parametrize("lam", [1.0, 0.3, 0.0])
def test_ilsd_loss_matches_numpy(lam):
    eps = 0.1
    loss, m = maskgit_ilsd(T_LOGITS, S_LOGITS, lam, eps)
    gt_t = np_masked_ce(T_LOGITS, TARGETS, MASK, eps)
    gt_s = np_masked_ce(S_LOGITS, TARGETS, MASK, eps)
    dist = np_soft_ce(S_LOGITS, T_LOGITS, MASK)
    np.testing.assert_allclose(loss, gt_t + lam * gt_s + (1 - lam) * dist, **TOL)
    np.testing.assert_allclose([m["gt_teacher"], m["gt_student"], m["distill"]], [gt_t, gt_s, dist], **TOL)
    np.testing.assert_allclose(m["loss"], loss, rtol=0)


def test_vanilla_is_teacher_gt_only():
    loss, m = maskgit_ilsd(T_LOGITS, None, 0.5, 0.1)
    np.testing.assert_allclose(loss, np_masked_ce(T_LOGITS, TARGETS, MASK, 0.1), **TOL)
    assert float(m["distill"]) == 0.0 and float(m["gt_student"]) == 0.0


def test_distillation_stops_gradient_to_teacher():
    # lam = 0: the student's GT term is off, so the teacher's gradient must be that of GT(teacher) only.
    def total(t, s):
        return maskgit_ilsd(t, s, 0.0, 0.1)[0]

    g_teacher, g_student = jax.grad(total, argnums=(0, 1))(jnp.asarray(T_LOGITS), jnp.asarray(S_LOGITS))
    g_gt_only = jax.grad(lambda t: masked_ce(t, TARGETS, MASK, 0.1))(jnp.asarray(T_LOGITS))
    np.testing.assert_allclose(g_teacher, g_gt_only, atol=1e-7)
    assert jnp.all(jax.grad(lambda t: soft_ce(S_LOGITS, t, MASK))(jnp.asarray(T_LOGITS)) == 0)
    # The student does receive the distillation gradient: p_S - p_T on masked positions / count.
    p_s, p_t = np.exp(np_log_softmax(S_LOGITS)), np.exp(np_log_softmax(T_LOGITS))
    expected = (p_s - p_t) * MASK[..., None] / MASK.sum()
    np.testing.assert_allclose(g_student, expected, atol=1e-6)


def test_core_stops_gradient_to_teacher_whatever_the_family_loss():
    # A distillation loss that does NOT stop the gradient itself (maskgit's soft_ce does too): the
    # core's stop_gradient on the teacher exit must still cut it. GT is zero, lam = 0: every
    # gradient comes from D, so the teacher's must be exactly zero.
    def distill(s, t):  # soft CE written without stop_gradient
        p_t = jax.nn.softmax(t, axis=-1)
        per = -jnp.sum(p_t * jax.nn.log_softmax(s, axis=-1), axis=-1)
        return jnp.sum(per * MASK) / MASK.sum()

    def total(t, s):
        return ilsd_loss(lambda o: 0.0 * jnp.sum(o), distill, t, s, 0.0)[0]

    # Sanity: without the core the teacher does get a gradient through this D.
    assert np.abs(jax.grad(distill, argnums=1)(jnp.asarray(S_LOGITS), jnp.asarray(T_LOGITS))).max() > 1e-3
    g_teacher, g_student = jax.grad(total, argnums=(0, 1))(jnp.asarray(T_LOGITS), jnp.asarray(S_LOGITS))
    assert jnp.all(g_teacher == 0)
    p_s, p_t = np.exp(np_log_softmax(S_LOGITS)), np.exp(np_log_softmax(T_LOGITS))
    np.testing.assert_allclose(g_student, (p_s - p_t) * MASK[..., None] / MASK.sum(), atol=1e-6)


def test_lam_schedule_linear_one_to_zero():
    np.testing.assert_allclose([lam_schedule(s, 200) for s in (0, 50, 100, 200, 300)], [1.0, 0.75, 0.5, 0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="total_steps=0"):
        lam_schedule(0, 0)


def test_masked_accuracy_by_hand():
    # Masked: (0,0) argmax 0 == 0 ok, (0,2) argmax 1 == 1 ok, (1,0) argmax 2 == 2 ok, (1,1) argmax 0 == 0 ok.
    assert float(masked_accuracy(T_LOGITS, TARGETS, MASK)) == 1.0
    np.testing.assert_allclose(masked_accuracy(S_LOGITS, TARGETS, MASK), 3 / 4)  # (0,2) argmax 0 != 1
