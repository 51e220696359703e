"""User-facing errors: one clear line on stderr and a non-zero exit, no traceback.

Every stage script and the ``elt`` console script end with ``sys.exit(run_main(main))``. An error
that is the user's to fix (a bad params value, a missing or corrupt input file, a diverged run)
prints as ``error: <message>``: the message already names the key, the file or the step, and a
traceback above it would only push it out of sight. Any other exception is a bug and keeps its
traceback. ``ELT_DEBUG=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import os
import sys
from typing import Callable


class EltError(Exception):
    """An error the user can act on, stated in one line (the stage or input it concerns first)."""


class NonFiniteError(EltError):
    """Training produced a NaN/inf loss or parameter: the run diverged."""


# The conventions of this code base: input and configuration problems are raised as ValueError
# (ConfigError is one) or as the file errors below, with a message that names the key or file.
USER_ERRORS = (EltError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
DEBUG_ENV = "ELT_DEBUG"


def run_main(main: Callable[[], object], prog: str | None = None) -> int:
    """Call ``main()``; turn user errors into one line on stderr and exit status 1."""
    try:
        result = main()
    except USER_ERRORS as e:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        _mark_tracking_failed()
        name = prog or os.path.splitext(os.path.basename(sys.argv[0]))[0] or "elt"
        print(f"error: {name}: {one_line(e)}  (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr, flush=True)
        return 1
    return result if isinstance(result, int) else 0


def one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return " ".join(text.split())


def _mark_tracking_failed() -> None:
    # An open MLflow run of this process ends as FAILED, as after an uncaught exception; tracking
    # is imported only by stages that use it, so look it up rather than import it here.
    tracker = sys.modules.get("elt.tracking.run_tracker")
    if tracker is not None:
        tracker.mark_failed()
