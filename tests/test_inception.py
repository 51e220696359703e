"""The Flax FID Inception against the TorchScript network run by torch (golden features), and the
torch-free weights reader. Golden file: scripts/make_golden_inception.py."""
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from elt.evaluation.inception import InceptionFeatures, convert_params
from elt.evaluation.pytorch_fid_names import PYTORCH_FID_TO_TORCHSCRIPT
from elt.evaluation.torch_pickle import TorchFileError, load_torch_zip
from elt.evaluation.weights import (FID_WEIGHTS_SHA1, NUM_CONV_LAYERS, WeightsHashError, _from_pytorch_fid_state_dict,
                                    cached_fid_weights, load_fid_weights)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_golden_inception import golden_float_inputs  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "inception_golden.npz"


@pytest.fixture(scope="session")
def weights_path():
    return cached_fid_weights()  # the same fetch function as the stage; downloads once per cache


@pytest.fixture(scope="module")
def weights(weights_path):
    return load_fid_weights(weights_path)


@pytest.fixture(scope="module", params=["jax", "tf"])
def extractor(weights, request):
    # Both backends run the one topology; each must match the TorchScript network on its own.
    return InceptionFeatures(weights, batch_size=4, backend=request.param)


def test_reader_returns_all_376_tensors_with_geometry(weights_path, weights):
    root = load_torch_zip(weights_path)
    tensors = []

    def walk(module):
        for value in module.attrs.values():
            if hasattr(value, "attrs"):
                walk(value)
            elif isinstance(value, np.ndarray):
                tensors.append(value)

    walk(root)
    assert len(tensors) == 4 * NUM_CONV_LAYERS == 376
    first = weights.convs["conv"]
    assert first.weight.shape == (32, 3, 3, 3) and first.weight.dtype == np.float32
    assert first.stride == 2 and first.padding == (0, 0)
    assert weights.convs["mixed_4.tower.conv_1"].padding == (0, 3)  # a 1x7 conv
    assert weights.convs["mixed_8.tower_1.conv_3"].stride == 2
    assert (weights.convs["mixed_10.conv"].var > 0).all()
    assert not weights.has_classifier  # default_1.pt has no 1008-way head: no Inception Score
    # Storage offsets: beta of the first conv is its own 32-float storage, read exactly.
    with zipfile.ZipFile(weights_path) as z:
        raw = np.frombuffer(z.read("out_jit_module/data/1"), "<f4")
    np.testing.assert_array_equal(first.beta, raw)


def test_features_match_torchscript(extractor):
    golden = np.load(GOLDEN)
    inputs = golden_float_inputs(int(golden["seed"]))
    feats = extractor.features_from_preprocessed(inputs)
    assert feats.shape == (4, 2048)
    # Two independent float32 implementations (torch, XLA) differ by 8e-6 at features up to 5.4;
    # another CPU or XLA version only reorders sums again, the same order of error: 12x headroom.
    np.testing.assert_allclose(feats, golden["float_features"], atol=1e-4, rtol=0)


def test_uint8_pipeline_matches_tf1_resize_then_torch(extractor):
    golden = np.load(GOLDEN)
    feats = extractor(golden["uint8_images"])  # 2 images in a batch of 4: padding must not leak
    assert feats.dtype == np.float64
    np.testing.assert_allclose(feats, golden["uint8_features"], atol=1e-4, rtol=0)


def test_pytorch_fid_state_dict_names_map_onto_the_same_network(weights):
    assert set(PYTORCH_FID_TO_TORCHSCRIPT.values()) == set(weights.convs)
    assert len(PYTORCH_FID_TO_TORCHSCRIPT) == NUM_CONV_LAYERS
    inverse = {ours: theirs for theirs, ours in PYTORCH_FID_TO_TORCHSCRIPT.items()}
    state = {}
    for ours, c in weights.convs.items():
        t = inverse[ours]
        state.update({f"{t}.conv.weight": c.weight, f"{t}.bn.weight": np.ones_like(c.beta), f"{t}.bn.bias": c.beta,
                      f"{t}.bn.running_mean": c.mean, f"{t}.bn.running_var": c.var})
    state["fc.weight"] = np.zeros((1008, 2048), np.float32)
    state["fc.bias"] = np.zeros(1008, np.float32)
    mapped = _from_pytorch_fid_state_dict(state, "pytorch-fid")
    assert mapped.has_classifier
    a, b = convert_params(weights), convert_params(mapped)
    import jax
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    with pytest.raises(TorchFileError, match="Mixed_6b.branch7x7_2.conv.weight"):
        _from_pytorch_fid_state_dict(state, "pytorch-fid")


def test_wrong_hash_names_file_and_both_hashes(tmp_path):
    bad = tmp_path / "fake_inception.pt"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("m/code/__torch__/m.py", "")
    with pytest.raises(WeightsHashError) as e:
        load_fid_weights(bad)
    msg = str(e.value)
    assert str(bad) in msg and FID_WEIGHTS_SHA1 in msg
    import hashlib
    assert hashlib.sha1(bad.read_bytes()).hexdigest() in msg


def test_unpickler_refuses_arbitrary_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(TorchFileError, match="refusing to load global"):
        load_torch_zip(path)
    not_zip = tmp_path / "x.pt"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(TorchFileError, match="x.pt: not a zip"):
        load_fid_weights(not_zip)


def test_topology_uses_every_file_layer_once_and_names_a_missing_one(weights):
    from dataclasses import replace

    from elt.evaluation.inception import layer_names
    names = layer_names()
    assert len(names) == len(set(names)) == NUM_CONV_LAYERS
    assert set(names) == set(weights.convs)
    fewer = dict(weights.convs)
    del fewer["mixed_7.tower_1.conv_3"]
    with pytest.raises(ValueError, match=r"missing from the file \['mixed_7.tower_1.conv_3'\]"):
        convert_params(replace(weights, convs=fewer))


def test_backend_choice(weights):
    import jax

    from elt.evaluation.inception import resolve_backend
    # On a CPU-only JAX, auto picks TensorFlow's oneDNN convolutions; on an accelerator, JAX.
    assert resolve_backend("auto") == ("tf" if jax.default_backend() == "cpu" else "jax")
    with pytest.raises(ValueError, match="'torch'"):
        InceptionFeatures(weights, batch_size=2, backend="torch")


_EIGHT_DEVICES = """
import json, sys, numpy as np
import jax
import elt.core.mesh as mesh
from elt.evaluation.inception import InceptionFeatures
from elt.evaluation.weights import load_fid_weights
split, seen = mesh.split_over_local_devices, []
def recording(params, batch):
    params, batch = split(params, batch)
    seen.append(len(batch.sharding.device_set))
    return params, batch
mesh.split_over_local_devices = recording  # read when the network is built
ex = InceptionFeatures(load_fid_weights(sys.argv[1]), batch_size=8, backend="jax")
images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.uint8)
feats = ex(images)
print(json.dumps({"devices": jax.device_count(), "batch_devices": seen, "feats": feats.tolist()}))
"""


def test_jax_backend_splits_a_batch_over_eight_devices(weights_path, weights):
    import json
    import subprocess

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES, str(weights_path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["devices"] == 8 and r["batch_devices"] == [8]  # the batch really ran on all eight
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3)).astype(np.uint8)
    one = InceptionFeatures(weights, batch_size=8, backend="jax")(images)
    # The same per-image program on another device: equal up to float32 round-off.
    np.testing.assert_allclose(np.asarray(r["feats"]), one, atol=1e-4, rtol=0)
