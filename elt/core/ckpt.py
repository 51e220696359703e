"""Reading published parameters whatever topology wrote them.

The train stage saves sharded arrays (one piece per device of its mesh); orbax restores onto the
shardings of the target it is given, and without any it would try to rebuild the writer's device
layout ("topology mismatch" on a machine with other devices). Sampling and evaluation read the
parameters onto one device."""

from __future__ import annotations

from pathlib import Path

import jax


def restore_on_one_device(path: str | Path, abstract):
    """Restore an orbax checkpoint of the tree ``abstract`` (shapes/dtypes, e.g. jax.eval_shape)
    onto the first local device."""
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), abstract)
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(Path(path).resolve(), target)
