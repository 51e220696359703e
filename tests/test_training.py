"""Masking schedule, label drop, optimizer, TrainConfig validation, train step and data-parallel mesh."""

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from elt import families
from elt.config import ConfigError, TrainConfig
from elt.core.optim import lr_schedule, weight_decay_mask
from elt.core.train_step import create_train_state, drop_labels, loss_and_metrics, make_eval_loss, make_train_step
from elt.families.maskgit.config import TrainConfig as MaskGITTrainConfig
from elt.families.maskgit.losses import cosine_mask, cosine_mask_count, masked_ce
from elt.families.maskgit.model import MaskedImageELT, MaskGITConfig

REPO = Path(__file__).resolve().parents[1]
TINY = dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2)
LOSSES = families.module("maskgit", "losses")  # the family's training contract
FAMILY_TRAIN = MaskGITTrainConfig()  # label_smoothing 0.1, as the old TrainConfig's default


def build_model(**kw):
    return MaskedImageELT(MaskGITConfig(**kw))


# ---- masking --------------------------------------------------------------------------------
def test_cosine_mask_count_by_hand():
    r = jnp.array([0.0, 0.5, 1 / 3, 0.999])
    # floor(16 cos(0)) = 16; floor(16 cos(pi/4)) = floor(11.31) = 11;
    # floor(16 cos(pi/6)) = floor(13.86) = 13; floor(16 cos(0.4995 pi)) = 0 -> at least 1.
    assert cosine_mask_count(r, 16).tolist() == [16, 11, 13, 1]


def test_cosine_mask_exact_counts_and_mask_id():
    tokens = jax.random.randint(jax.random.key(0), (64, 16), 0, 16)
    masked, mask = cosine_mask(jax.random.key(1), tokens, 16)
    r_ratio, _ = jax.random.split(jax.random.key(1))
    expected = cosine_mask_count(jax.random.uniform(r_ratio, (64,)), 16)
    np.testing.assert_array_equal(mask.sum(1), expected)
    np.testing.assert_array_equal(np.where(mask, 16, tokens), masked)
    assert not np.any(np.asarray(tokens)[np.asarray(mask)] == 16)  # codebook ids never collide with mask_id


def test_cosine_mask_mean_fraction():
    # E[cos(pi r / 2)] = 2/pi for r ~ U[0,1); the floor lowers it by about 0.5/S.
    S = 256
    _, mask = cosine_mask(jax.random.key(3), jnp.zeros((4000, S), jnp.int32), 1024)
    assert abs(float(mask.mean()) - (2 / math.pi - 0.5 / S)) < 0.01


def test_drop_labels_rate_and_value():
    labels = jnp.zeros((20000,), jnp.int32)
    dropped = drop_labels(jax.random.key(0), labels, 0.1, 7)
    assert set(np.unique(dropped).tolist()) == {0, 7}
    assert abs(float((dropped == 7).mean()) - 0.1) < 0.01
    np.testing.assert_array_equal(drop_labels(jax.random.key(0), labels, 0.0, 7), labels)


# ---- optimizer ------------------------------------------------------------------------------
def test_lr_schedule_values():
    s = lr_schedule(1e-3, 10, 110, "cosine")
    np.testing.assert_allclose([s(0), s(5), s(10), s(60), s(110)], [0, 5e-4, 1e-3, 5e-4, 0], atol=1e-9)
    c = lr_schedule(1e-3, 10, 110, "constant")
    np.testing.assert_allclose([c(5), c(100)], [5e-4, 1e-3], atol=1e-9)
    with pytest.raises(ValueError, match="linear"):
        lr_schedule(1e-3, 10, 110, "linear")


def test_weight_decay_only_on_matrices():
    model = build_model(**TINY)
    mask = weight_decay_mask(jax.eval_shape(model.init, jax.random.key(0)))
    layer = mask["block"]["layers"]["layer"]
    assert layer["mlp_in"]["kernel"] and layer["attn"]["query"]["kernel"] and mask["embed"]["tok"]["embedding"]
    assert not layer["mlp_in"]["bias"] and not layer["ln_attn"]["scale"] and not layer["ln_mlp"]["bias"]
    assert not mask["head"]["ln_final"]["scale"] and not mask["embed"]["pos_embedding"]


# ---- config validation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "override,key,value",
    [({"L_min": 0}, "L_min", "0"), ({"label_drop": 1.5}, "label_drop", "1.5"), ({"batch_size": 0}, "batch_size", "0")],
)
def test_train_config_validation(override, key, value):
    hyper = TrainConfig(**dict(dict(batch_size=8, steps=10), **override))
    with pytest.raises(ConfigError, match=rf"^train\.{key}: .*got {value}$") as err:
        hyper.check("train")
    assert err.value.key == f"train.{key}"
    TrainConfig(batch_size=8, steps=10).check("train")


def test_make_train_step_needs_L_min_below_L_max_for_ilsd():
    model = build_model(**TINY)
    with pytest.raises(ValueError, match=r"L_min=3, L_max=3"):
        make_train_step(LOSSES, model, TrainConfig(batch_size=8, steps=10, L_min=3), 3, True, FAMILY_TRAIN)
    # The unique-depth baseline (L_max = 1, no ILSD) is valid.
    make_train_step(LOSSES, model, TrainConfig(batch_size=8, steps=10), 1, False, FAMILY_TRAIN)


# ---- train step -----------------------------------------------------------------------------
def _batch(B=8, seed=0):
    r1, r2 = jax.random.split(jax.random.key(seed))
    tokens = jax.random.randint(r1, (B, 16), 0, 16)  # the same values as before, on the 4x4 grid
    return {"latents": tokens.reshape(B, 4, 4), "labels": jax.random.randint(r2, (B,), 0, 4)}


def test_train_step_metrics_and_L_int_range():
    model = build_model(**TINY)
    tc = TrainConfig(batch_size=8, steps=40, L_min=2, lr=3e-3, warmup_steps=2)
    state = create_train_state(model, tc, jax.random.key(0))
    step = make_train_step(LOSSES, model, tc, 4, True, FAMILY_TRAIN)
    batch = _batch()
    seen, losses = set(), []
    for s in range(40):
        state, m = step(state, batch, jax.random.key(s))
        assert set(m) == {"loss", "gt_teacher", "gt_student", "distill", "lam", "L_int", "accuracy"}
        np.testing.assert_allclose(m["lam"], 1 - s / 40, atol=1e-6)
        lam = float(m["lam"])
        # Only that the logged parts add up; the loss itself (teacher = L_max exit) is checked against a
        # hand computation in test_train_loss_is_teacher_Lmax_student_Lint.
        np.testing.assert_allclose(m["loss"], m["gt_teacher"] + lam * m["gt_student"] + (1 - lam) * m["distill"], rtol=1e-5)
        seen.add(int(m["L_int"]))
        losses.append(float(m["gt_teacher"]))
    assert seen == {2, 3}  # U{L_min .. L_max-1}
    assert int(state.step) == 40
    # It learns the fixed batch. Measured drop 0.318: tight, but the 40 steps are not chaotic (a 1e-6
    # relative kick to the init, or SSE4.2 instead of AVX2 codegen, moves the drop by < 1e-5).
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def _np_log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_ilsd_loss(teacher, student, tokens, mask, lam, eps):
    """Hand ILSD loss: CE_eps(teacher) + lam CE_eps(student) + (1-lam) H(p_teacher, p_student),
    cross-entropies averaged over the masked positions."""
    V = teacher.shape[-1]
    soft = (1 - eps) * np.eye(V)[tokens] + eps / V
    m = np.asarray(mask, np.float64)

    def mean(x):
        return (x * m).sum() / m.sum()

    lt, ls = _np_log_softmax(teacher), _np_log_softmax(student)
    gt_t, gt_s = mean(-(soft * lt).sum(-1)), mean(-(soft * ls).sum(-1))
    distill = mean(-(np.exp(lt) * ls).sum(-1))
    return gt_t + lam * gt_s + (1 - lam) * distill, (gt_t, gt_s, distill)


@pytest.mark.parametrize("seed", [0, 3])
def test_train_loss_is_teacher_Lmax_student_Lint(seed):
    """loss_and_metrics (and the train step) equal the ILSD loss built by hand from the model's two
    exits with teacher = L_max exit, student = L_int exit, and differ from the swapped assignment."""
    model = build_model(**TINY)
    params = jax.jit(model.init)(jax.random.key(0))
    L_max, steps, step = 4, 40, 30  # lam = 0.25: every term counts, lam and 1 - lam differ
    tc = TrainConfig(batch_size=8, steps=steps, L_min=1, label_drop=0.5)
    batch, rng = _batch(), jax.random.key(seed)
    # The same derivation as the train step, written out.
    r_inputs, r_drop, r_L = jax.random.split(rng, 3)
    drop = np.asarray(jax.random.uniform(r_drop, (8,))) < 0.5
    labels = np.where(drop, model.uncond_label, np.asarray(batch["labels"]))
    assert 0 < drop.sum() < 8  # the label drop is exercised
    tokens = np.asarray(batch["latents"]).reshape(8, 16)
    inputs, mask = cosine_mask(r_inputs, jnp.asarray(tokens), model.mask_id)
    L_int = int(jax.random.randint(r_L, (), 1, L_max))
    assert 1 <= L_int < L_max
    apply = jax.jit(model.apply, static_argnums=3)
    out_max = apply(params, inputs, jnp.asarray(labels, jnp.int32), L_max)
    out_int = apply(params, inputs, jnp.asarray(labels, jnp.int32), L_int)
    lam, eps = 1 - step / steps, FAMILY_TRAIN.label_smoothing
    expected, parts = _np_ilsd_loss(out_max, out_int, tokens, mask, lam, eps)
    swapped, _ = _np_ilsd_loss(out_int, out_max, tokens, mask, lam, eps)

    fn = jax.jit(functools.partial(loss_and_metrics, LOSSES, model, tc, L_max, True, FAMILY_TRAIN))
    loss, m = fn(params, batch, rng, jnp.asarray(step, jnp.int32))
    assert int(m["L_int"]) == L_int
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose([m["gt_teacher"], m["gt_student"], m["distill"]], parts, rtol=1e-5)
    # Measured |swapped - expected| = 0.016 and 0.043 on these seeds, > 100 x the tolerance above.
    assert abs(swapped - expected) > 5e-3
    assert abs(float(loss) - swapped) > 5e-3
    # The jitted train step logs the same loss for the same (state.step, batch, rng).
    state = create_train_state(model, tc, jax.random.key(0)).replace(step=jnp.asarray(step, jnp.int32))
    _, m_step = make_train_step(LOSSES, model, tc, L_max, True, FAMILY_TRAIN)(state, batch, rng)
    np.testing.assert_allclose(float(m_step["loss"]), expected, rtol=1e-5)


def test_eval_loss_matches_direct_computation():
    model = build_model(**TINY)
    params = jax.jit(model.init)(jax.random.key(0))
    batch, rng = _batch(), jax.random.key(5)
    tokens = batch["latents"].reshape(8, 16)
    inputs, mask = cosine_mask(rng, tokens, model.mask_id)
    eval_loss = make_eval_loss(LOSSES, model, FAMILY_TRAIN)
    for L in (1, 3):
        direct = masked_ce(jax.jit(model.apply)(params, inputs, batch["labels"], L), tokens, mask)
        np.testing.assert_allclose(eval_loss(params, batch, rng, L), direct, rtol=1e-5)


def test_eval_loss_rejects_L_below_one():
    model = build_model(**TINY)
    params = jax.jit(model.init)(jax.random.key(0))
    eval_loss = make_eval_loss(LOSSES, model, FAMILY_TRAIN)
    with pytest.raises(ValueError, match="L=0"):
        eval_loss(params, _batch(), jax.random.key(5), 0)


_MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp
    from elt import families
    from elt.config import TrainConfig
    from elt.config import MeshConfig
    from elt.core.mesh import make_mesh, shard_batch
    from elt.core.train_step import create_train_state, make_train_step
    from elt.families.maskgit.config import TrainConfig as MaskGITTrainConfig
    TINY = dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2)
    model = families.module("maskgit", "model").model_from_config(TINY)
    losses = families.module("maskgit", "losses")
    tc = TrainConfig(batch_size=16, steps=10, lr=1e-3, warmup_steps=1)
    r1, r2 = jax.random.split(jax.random.key(9))
    host_batch = {"latents": jax.random.randint(r1, (16, 16), 0, 16).reshape(16, 4, 4),
                  "labels": jax.random.randint(r2, (16,), 0, 4)}
    result = {"devices": jax.device_count()}
    # mesh=None: plain jit on the default (single) device; "mesh": data-parallel over all devices;
    # "fsdp": 2 x 4, every leaf of >= 256 elements sharded 4 ways except the embeddings.
    fsdp_cfg = MeshConfig(data=2, fsdp=4, fsdp_min_size=256, rules=(("embed", "replicate"), (".*", "fsdp")))
    modes = [("single", None, None), ("mesh", make_mesh(), None)]
    if jax.device_count() == 8:
        modes.append(("fsdp", make_mesh(fsdp_cfg), fsdp_cfg))
    for mode, mesh, cfg in modes:
        state = create_train_state(model, tc, jax.random.key(0), mesh, cfg)
        step = make_train_step(losses, model, tc, 3, True, MaskGITTrainConfig(), mesh, cfg)
        batch = host_batch if mesh is None else shard_batch(host_batch, mesh)
        if mesh is not None:
            assert len(batch["latents"].sharding.device_set) == jax.device_count()
        out = []
        for s in range(3):
            state, m = step(state, batch, jax.random.key(s))
            out.append({k: float(v) for k, v in m.items()})
        from elt.core.mesh import path_name
        shards = {path_name(p): [list(x.shape), list(x.addressable_shards[0].data.shape)]
                  for p, x in jax.tree_util.tree_leaves_with_path(state)}
        result[mode] = {"metrics": out, "param_sum": float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(state.params))),
                        "param_devices": len(jax.tree.leaves(state.params)[0].sharding.device_set), "shards": shards}
    print(json.dumps(result))
    """
)


def _run_mesh_script(devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", _MESH_SCRIPT], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_loss_on_one_and_eight_devices():
    result = _run_mesh_script(8)
    single, sharded = result["single"], result["mesh"]
    assert (result["devices"], single["param_devices"], sharded["param_devices"]) == (8, 1, 8)
    # Measured |diff| <= 0.008 of these tolerances. "accuracy" is an argmax count, hence exact: the
    # smallest top-2 logit gap on masked positions in these 3 steps is 2.2e-3, ~1e3 x the logit
    # differences between the two programs, so no argmax can flip.
    for a, b in zip(single["metrics"], sharded["metrics"]):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=1e-6, err_msg=key)
    # Adam turns last-bit gradient differences on near-zero entries into lr-sized steps: looser.
    np.testing.assert_allclose(sharded["param_sum"], single["param_sum"], rtol=1e-4)
    fsdp = result["fsdp"]
    for a, b in zip(single["metrics"], fsdp["metrics"]):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(fsdp["param_sum"], single["param_sum"], rtol=1e-4)
    # What each device holds: an MLP kernel [N=2, 32, 64] split on its largest axis, its Adam moments
    # alike; the embeddings (rule "replicate"), biases (< 256 elements) and the step replicated.
    shards = fsdp["shards"]
    mlp = [k for k in shards if k.startswith("params/") and k.endswith("kernel") and shards[k][0] == [2, 32, 64]]
    assert mlp, {k: v for k, v in shards.items() if k.startswith("params")}
    for k in mlp:
        assert shards[k][1] == [2, 32, 16], (k, shards[k])
        moments = [m for m in shards if m.startswith("opt_state") and m.endswith(k[len("params"):])]
        assert moments and all(shards[m][1] == [2, 32, 16] for m in moments), (k, moments)
    embeds = [k for k in shards if "embed" in k]
    assert embeds and all(s[0] == s[1] for k, s in shards.items() if k in embeds or k == "step")


def test_mesh_rejects_indivisible_batch():
    code = textwrap.dedent(
        """
        import jax
        from elt import families
        from elt.config import TrainConfig
        from elt.core.mesh import make_mesh
        from elt.core.train_step import make_train_step
        from elt.families.maskgit.config import TrainConfig as MaskGITTrainConfig
        model = families.module("maskgit", "model").model_from_config(
            dict(codebook_size=16, num_classes=4, grid=(4, 4), d_model=32, num_heads=4, mlp_dim=64, N=2))
        try:
            make_train_step(families.module("maskgit", "losses"), model, TrainConfig(batch_size=6, steps=2), 2, True,
                            MaskGITTrainConfig(), make_mesh())
        except ValueError as e:
            print("ERR", e)
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "ERR batch_size=6 is not divisible by the 4 devices" in out.stdout, out.stderr[-2000:]


# ---- EMA of the parameters (train.ema_decay) ------------------------------------------------
def test_ema_decay_ramp_by_hand():
    from elt.core.train_step import ema_decay_at

    # min(decay, (1 + step) / (10 + step)): 0.1 at step 0, 0.5 at step 8, capped at the decay.
    np.testing.assert_allclose([float(ema_decay_at(s, 0.99)) for s in (0, 8, 80, 10_000)], [0.1, 0.5, 0.9, 0.99], rtol=1e-6)
    with pytest.raises(ConfigError, match=r"^train\.ema_decay: must be in \(0, 1\) or null, got 1.0$"):
        TrainConfig(ema_decay=1.0).check("train")


def test_ema_follows_the_recursion_and_survives_a_checkpoint_restore(tmp_path):
    import orbax.checkpoint as ocp

    model = build_model(**TINY)
    tc = TrainConfig(batch_size=8, steps=12, lr=3e-3, warmup_steps=2, ema_decay=0.9)
    step = make_train_step(LOSSES, model, tc, 2, True, FAMILY_TRAIN)
    batch = _batch()
    state = create_train_state(model, tc, jax.random.key(0))
    leaf = lambda tree: np.asarray(jax.tree_util.tree_leaves(tree)[0], np.float64)  # noqa: E731
    ema = leaf(state.params)  # the EMA starts at the initial parameters
    for s in range(6):
        state, _ = step(state, batch, jax.random.key(s))
        d = min(0.9, (1 + s) / (10 + s))  # independent of elt's ramp helper
        ema = d * ema + (1 - d) * leaf(state.params)
    np.testing.assert_allclose(leaf(state.ema_params), ema, rtol=1e-5, atol=1e-7)
    assert not np.allclose(leaf(state.ema_params), leaf(state.params))  # it really averages
    assert state.eval_params() is state.ema_params

    # A run checkpointed at step 6 and resumed ends with the EMA of an uninterrupted run.
    with ocp.StandardCheckpointer() as ck:
        ck.save(tmp_path / "ckpt", state)
        ck.wait_until_finished()
        abstract = create_train_state(model, tc, jax.random.key(1))
        resumed = ck.restore(tmp_path / "ckpt", abstract)
    for s in range(6, 12):
        state, _ = step(state, batch, jax.random.key(s))
        resumed, _ = step(resumed, batch, jax.random.key(s))
    np.testing.assert_array_equal(leaf(resumed.ema_params), leaf(state.ema_params))
    # Without ema_decay there is no EMA and the raw parameters are published.
    plain = create_train_state(model, TrainConfig(batch_size=8, steps=12), jax.random.key(0))
    assert plain.ema_params is None and plain.eval_params() is plain.params
