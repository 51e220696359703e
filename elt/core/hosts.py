"""Multi-process hygiene: every process computes, only process 0 writes outputs (and logs; see
elt/tracking). Writes that follow collective work (an orbax save) wait at a barrier first, so
process 0 never publishes a folder another process is still writing into."""

from __future__ import annotations

import jax


def is_main() -> bool:
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """All processes reach ``name`` before any goes on (a no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

        multihost_utils.sync_global_devices(name)
