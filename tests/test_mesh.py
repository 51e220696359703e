"""The mesh config, the FSDP sharding rules and the multi-process settings, by hand."""
import pytest
from jax.sharding import PartitionSpec as P

from elt.config import ConfigError, MeshConfig, parse_section
from elt.core.hosts import DistributedSetupError, distributed_settings
from elt.core.mesh import leaf_spec, mesh_shape


def test_mesh_shape_fills_the_minus_one_axis_and_names_a_mismatch():
    assert mesh_shape(None, 8) == (8, 1)
    assert mesh_shape(MeshConfig(data=-1, fsdp=4), 8) == (2, 4)
    assert mesh_shape(MeshConfig(data=2, fsdp=-1), 8) == (2, 4)
    assert mesh_shape(MeshConfig(data=2, fsdp=4), 8) == (2, 4)
    with pytest.raises(ValueError, match=r"mesh.data x mesh.fsdp = 2 x 2 = 4, but there are 8 devices"):
        mesh_shape(MeshConfig(data=2, fsdp=2), 8)
    with pytest.raises(ValueError, match="mesh.fsdp=3 does not divide the 8 devices"):
        mesh_shape(MeshConfig(fsdp=3), 8)


def test_fsdp_rules_pick_the_largest_divisible_axis():
    rules = (("embed", "replicate"), ("attn/.*bias", "replicate"), (".*", "fsdp"))
    spec = lambda path, shape, fsdp=4, min_size=0: leaf_spec(path, shape, fsdp, rules, min_size)  # noqa: E731
    assert spec("params/mlp/kernel", (2, 64, 256)) == P(None, None, "fsdp")
    assert spec("params/mlp/kernel", (2, 256, 64)) == P(None, "fsdp", None)
    assert spec("params/x", (8, 8)) == P(None, "fsdp")  # a tie: the last axis
    assert spec("params/x", (6, 10)) == P()  # no axis divisible by 4
    assert spec("params/token_embed/embedding", (128, 64)) == P()  # first matching rule: replicate
    assert spec("params/attn/key/bias", (4, 8)) == P()
    assert spec("params/mlp/kernel", (64, 256), min_size=64 * 256 + 1) == P()  # below the size floor
    assert spec("params/mlp/kernel", (64, 256), fsdp=1) == P()
    assert spec("step", ()) == P()
    assert leaf_spec("params/other", (8, 8), 4, (("mlp", "fsdp"),), 0) == P()  # no rule matches: replicate


@pytest.mark.parametrize("raw, key, words", [
    ({"data": 0}, "mesh.data", "must be >= 1 or -1"),
    ({"data": -1, "fsdp": -1}, "mesh.data", "only one of"),
    ({"rules": [[".*", "shard"]]}, "mesh.rules[0]", "'fsdp' or 'replicate'"),
    ({"rules": [["(", "fsdp"]]}, "mesh.rules[0]", "bad regex"),
    ({"rules": [".*"]}, "mesh.rules[0]", "expected [regex, strategy]"),
    ({"axes": 2}, "mesh.axes", "unknown key"),
])
def test_mesh_config_errors_name_the_key(raw, key, words):
    with pytest.raises(ConfigError) as e:
        parse_section(MeshConfig, raw, "mesh")
    assert key in str(e.value) and words in str(e.value)


def test_distributed_settings_from_the_environment():
    assert distributed_settings({}) is None
    assert distributed_settings({"TPU_WORKER_HOSTNAMES": "localhost"}) is None  # one TPU worker
    assert distributed_settings({"TPU_WORKER_HOSTNAMES": "w0,w1"}) == {"initialization_timeout": 300}
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3",
           "ELT_DISTRIBUTED_TIMEOUT": "20"}
    assert distributed_settings(env) == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                                         "process_id": 3, "initialization_timeout": 20}
    with pytest.raises(DistributedSetupError, match="JAX_NUM_PROCESSES, JAX_PROCESS_ID not"):
        distributed_settings({"JAX_COORDINATOR_ADDRESS": "h:1"})
    with pytest.raises(DistributedSetupError, match=r"JAX_PROCESS_ID=4 is not in \[0, JAX_NUM_PROCESSES=4\)"):
        distributed_settings({**env, "JAX_PROCESS_ID": "4"})


def test_a_coordinator_that_never_answers_fails_in_bounded_time_with_one_line():
    import subprocess
    import sys
    import time

    from test_multihost import _free_port

    port = _free_port()  # nothing listens there
    code = ("from elt.core.hosts import initialize_distributed; initialize_distributed({"
            f"'JAX_COORDINATOR_ADDRESS': '127.0.0.1:{port}', 'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '1', "
            "'ELT_DISTRIBUTED_TIMEOUT': '3'})")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    # JAX's own client would abort the process (a C++ fatal error, exit 134) after its deadline.
    assert out.returncode == 1 and elapsed < 60, (out.returncode, out.stderr[-2000:])
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("elt.core.hosts.DistributedSetupError: the coordinator 127.0.0.1:") and "within 3 s" in last
