"""Experiment tracking: one MLflow run per grid point, shared by the train, sample and evaluate stages.

Tracking is best effort: the DVC outputs are the record; MLflow is a browsable view of them. A
tracking store that is down or slow never fails or stalls a stage (see ``guard.py``).
"""

from elt.tracking.params import flatten_params, params_hash
from elt.tracking.run_tracker import RunTracker, TrackingUnavailableWarning
from elt.tracking.scrub import REDACTED, is_sensitive_key, scrub_mapping, scrub_value
from elt.tracking.store import (
    artifact_root_for,
    default_tracking_uri,
    find_repo_root,
    is_local_store,
    resolve_tracking_uri,
)

__all__ = [
    "REDACTED",
    "RunTracker",
    "TrackingUnavailableWarning",
    "artifact_root_for",
    "default_tracking_uri",
    "find_repo_root",
    "flatten_params",
    "is_local_store",
    "is_sensitive_key",
    "params_hash",
    "resolve_tracking_uri",
    "scrub_mapping",
    "scrub_value",
]
