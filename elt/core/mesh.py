"""Device mesh and shardings for data-parallel training.

One mesh axis "data" spans all devices: the batch is split on axis 0, params and optimizer state
are replicated. The axis names are a tuple so that an "fsdp"/"model" axis can be added later by
giving ``make_mesh`` a 2-D shape and param shardings that name it.
"""

from __future__ import annotations

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    n = mesh.shape[DATA_AXIS]
    if batch_size % n:
        raise ValueError(f"batch_size={batch_size} is not divisible by the {n} devices of the 'data' mesh axis")


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Place a host batch on the mesh, split along axis 0."""
    for key, value in batch.items():
        check_batch_divisible(value.shape[0], mesh)
    return jax.device_put(batch, batch_sharding(mesh))
