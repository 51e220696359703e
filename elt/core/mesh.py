"""Device mesh and shardings: data parallel, plus FSDP (sharded parameters and optimizer state).

The mesh has two axes, ``data`` and ``fsdp`` (params.yaml `mesh`). The batch is split over both
(every device gets its own examples). Parameters, the EMA and the optimizer state are sharded over
``fsdp`` by rules (a regex over the leaf's path -> "fsdp" or "replicate", first match wins, as
big_vision's sharding rules): an "fsdp" leaf is split along its largest axis that the fsdp size
divides; leaves smaller than ``fsdp_min_size`` elements, scalars, and leaves with no divisible axis
stay replicated. XLA inserts the all-gathers (forward/backward) and reduce-scatters (gradients).
The state is created already sharded (jit with out_shardings from eval_shape), so a model whose
replicated state would not fit on one device still trains. With fsdp = 1 this is plain data
parallelism with replicated parameters.
"""

from __future__ import annotations

import re

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # the batch is split over every device


def mesh_shape(cfg, num_devices: int) -> tuple[int, int]:
    """(data, fsdp) sizes for ``num_devices``; -1 takes the devices the other axis leaves."""
    data, fsdp = (-1, 1) if cfg is None else (cfg.data, cfg.fsdp)
    if data == -1:
        if num_devices % fsdp:
            raise ValueError(f"mesh.fsdp={fsdp} does not divide the {num_devices} devices")
        data = num_devices // fsdp
    elif fsdp == -1:
        if num_devices % data:
            raise ValueError(f"mesh.data={data} does not divide the {num_devices} devices")
        fsdp = num_devices // data
    if data * fsdp != num_devices:
        raise ValueError(f"mesh.data x mesh.fsdp = {data} x {fsdp} = {data * fsdp}, but there are "
                         f"{num_devices} devices (set one axis to -1 to take the rest)")
    return data, fsdp


def make_mesh(cfg=None, devices=None) -> Mesh:
    """The (data, fsdp) mesh over ``devices`` (default: every device of every process).

    Device order is jax.devices()'s, process by process, so each process's devices hold a
    contiguous block of the batch and the fsdp axis stays within a host where it fits."""
    devices = jax.devices() if devices is None else list(devices)
    shape = mesh_shape(cfg, len(devices))
    return Mesh(np.asarray(devices).reshape(shape), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_devices(mesh: Mesh) -> int:
    return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    n = batch_devices(mesh)
    if batch_size % n:
        axes = " x ".join(f"{a} {mesh.shape[a]}" for a in BATCH_AXES)
        raise ValueError(f"batch_size={batch_size} is not divisible by the {n} devices of the mesh ({axes})")


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Place a host batch on the mesh, split along axis 0."""
    for value in batch.values():
        check_batch_divisible(value.shape[0], mesh)
    return jax.device_put(batch, batch_sharding(mesh))


def leaf_spec(path: str, shape: tuple[int, ...], fsdp: int, rules, min_size: int) -> P:
    """The PartitionSpec of one state leaf under the sharding rules."""
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    strategy = next((s for pattern, s in rules if re.search(pattern, path)), "replicate")
    if strategy == "replicate":
        return P()
    divisible = [i for i, n in enumerate(shape) if n % fsdp == 0]
    if not divisible:
        return P()
    axis = max(divisible, key=lambda i: (shape[i], i))  # the largest; ties: the last
    return P(*[FSDP_AXIS if i == axis else None for i in range(len(shape))])


def path_name(path) -> str:
    """"params/block_0/mlp/kernel" for a pytree key path (dict keys, attributes, indices)."""
    parts = []
    for k in path:
        parts.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
    return "/".join(parts)


def state_sharding(mesh: Mesh, abstract_state, cfg=None):
    """A NamedSharding per leaf of ``abstract_state`` (shapes, e.g. from jax.eval_shape)."""
    fsdp = mesh.shape[FSDP_AXIS]
    rules = (((".*", "fsdp"),) if cfg is None else cfg.rules)
    min_size = 0 if cfg is None else cfg.fsdp_min_size
    return jax.tree_util.tree_map_with_path(
        lambda p, x: NamedSharding(mesh, leaf_spec(path_name(p), tuple(x.shape), fsdp, rules, min_size)),
        abstract_state)


def split_over_local_devices(params, batch, devices=None):
    """(params replicated, batch split on axis 0) over ``devices`` (default: this process's), so a
    jitted function (a sampler, a feature network) runs the batch on all of them and gives what
    it gives on one. One device, or a batch they do not divide: returned as they are."""
    devices = jax.local_devices() if devices is None else list(devices)
    if len(devices) == 1 or batch.shape[0] % len(devices):
        return params, batch
    mesh = Mesh(np.asarray(devices), (DATA_AXIS,))
    return (jax.device_put(params, NamedSharding(mesh, P())),
            jax.device_put(batch, NamedSharding(mesh, P(DATA_AXIS))))
