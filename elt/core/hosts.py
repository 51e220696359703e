"""Multi-process set-up and hygiene: every process computes, only process 0 writes outputs (and
logs; see elt/tracking). Writes that follow collective work (an orbax save) wait at a barrier
first, so process 0 never publishes a folder another process is still writing into.

``initialize_distributed`` joins the processes of one job before any JAX computation:
- on a CPU or GPU cluster, from JAX_COORDINATOR_ADDRESS (host:port of process 0),
  JAX_NUM_PROCESSES and JAX_PROCESS_ID, set by the launcher on every process;
- on a Cloud TPU pod slice (several TPU workers), with no variables: JAX finds its peers itself.
A coordinator that never answers fails after ELT_DISTRIBUTED_TIMEOUT seconds (default 300).
"""

from __future__ import annotations

import os

import jax

COORDINATOR_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
DEFAULT_TIMEOUT_S = 300


class DistributedSetupError(RuntimeError):
    """The environment asks for a multi-process job that cannot be set up."""


def _multi_worker_tpu(env) -> bool:
    hosts = env.get("TPU_WORKER_HOSTNAMES", "")
    return len([h for h in hosts.split(",") if h.strip()]) > 1


def distributed_settings(env=None) -> dict | None:
    """The arguments of jax.distributed.initialize the environment asks for; None: one process."""
    env = os.environ if env is None else env
    given = [k for k in COORDINATOR_ENV if env.get(k)]
    timeout = env.get("ELT_DISTRIBUTED_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        timeout_s = int(timeout)
    except ValueError:
        raise DistributedSetupError(f"ELT_DISTRIBUTED_TIMEOUT={timeout!r} is not a whole number of seconds") from None
    if given:
        missing = [k for k in COORDINATOR_ENV if k not in given]
        if missing:
            raise DistributedSetupError(f"{', '.join(given)} set but {', '.join(missing)} not: a multi-process job "
                                        f"needs all of {', '.join(COORDINATOR_ENV)}")
        try:
            n, pid = int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"])
        except ValueError:
            raise DistributedSetupError(f"JAX_NUM_PROCESSES={env['JAX_NUM_PROCESSES']!r} and JAX_PROCESS_ID="
                                        f"{env['JAX_PROCESS_ID']!r} must be integers") from None
        if not 0 <= pid < n:
            raise DistributedSetupError(f"JAX_PROCESS_ID={pid} is not in [0, JAX_NUM_PROCESSES={n})")
        return {"coordinator_address": env["JAX_COORDINATOR_ADDRESS"], "num_processes": n, "process_id": pid,
                "initialization_timeout": timeout_s}
    if _multi_worker_tpu(env):
        return {"initialization_timeout": timeout_s}
    return None


def wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Return once something accepts TCP connections at ``address`` (host:port); raise after
    ``timeout_s``. JAX's own client aborts the whole process (a C++ fatal error) when the
    coordinator never answers, so processes other than 0 check first and fail with one line."""
    import socket  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedSetupError(f"JAX_COORDINATOR_ADDRESS={address!r} is not host:port")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise DistributedSetupError(f"the coordinator {address} did not answer within {timeout_s:g} s "
                                            f"({e.strerror or e}); is process 0 of the job running?") from None
            time.sleep(0.5)


def initialize_distributed(env=None) -> bool:
    """Join the job's processes when the environment says there are several. -> True if it did."""
    settings = distributed_settings(env)
    if settings is None:
        return False
    if settings.get("process_id", 0) != 0:  # process 0 runs the coordinator service itself
        wait_for_coordinator(settings["coordinator_address"], settings["initialization_timeout"])
    # Collectives of the CPU backend across processes (it only affects the CPU client; set before
    # the backends exist, as jax.distributed.initialize itself must be).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**settings)
    except Exception as e:  # noqa: BLE001  jax raises several types; one line names the coordinator
        where = settings.get("coordinator_address", "the TPU pod's coordinator")
        raise DistributedSetupError(f"could not join the job through {where} within "
                                    f"{settings['initialization_timeout']} s: {str(e).splitlines()[0]}") from None
    return True


def is_main() -> bool:
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """All processes reach ``name`` before any goes on (a no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

        multihost_utils.sync_global_devices(name)
