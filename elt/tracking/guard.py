"""Best-effort calls to a tracking store: a deadline per call, then tracking off for the process.

A stage must finish with its DVC outputs whatever the tracking server does: refuse connections,
accept them and never answer, or answer slowly. Every MLflow call runs in a daemon thread joined
with a deadline (a hung socket cannot stall the stage, nor its exit); the first failure disables
tracking for that store in this process and warns once, so a dead server costs one deadline, not
one per call.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

from elt.tracking.scrub import scrub_value

T = TypeVar("T")

# Short HTTP timeouts for MLflow's REST client (its defaults: 120 s timeout, 7 retries with
# exponential backoff, i.e. minutes per call on a dead server). setdefault: a user's explicit
# setting wins. They only affect MLflow's HTTP client, which only tracking uses in our stages.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
}

_lock = threading.Lock()
_disabled: dict[str, str] = {}  # store URI -> why tracking was turned off for it


class TrackingUnavailableWarning(UserWarning):
    """The tracking store failed; the stage goes on and its results stay in the DVC outputs."""


def apply_http_defaults() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def is_disabled(uri: str) -> bool:
    with _lock:
        return uri in _disabled


def disable(uri: str, reason: str) -> None:
    """Turn tracking off for ``uri`` in this process; warn the first time only."""
    with _lock:
        first = uri not in _disabled
        if first:
            _disabled[uri] = reason
    if first:
        warnings.warn(
            f"MLflow tracking at {scrub_value(uri)} is unavailable ({scrub_value(reason)}); "
            "tracking is off for the rest of this process. The stage continues and its results "
            "are in the DVC outputs.",
            TrackingUnavailableWarning,
            stacklevel=3,
        )


def reset(uri: str | None = None) -> None:
    """Forget failures (all, or one store's): a retry in a long-lived process, and tests."""
    with _lock:
        if uri is None:
            _disabled.clear()
        else:
            _disabled.pop(uri, None)


def call_with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """``fn()`` in a daemon thread; TimeoutError after ``timeout_s`` (the thread is abandoned)."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = err

    worker = threading.Thread(target=target, name=f"elt-tracking:{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"{what} took longer than {timeout_s:g} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")  # type: ignore[return-value]
