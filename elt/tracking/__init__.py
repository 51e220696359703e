"""Experiment tracking: one MLflow run per grid point, shared by its train, sample and evaluate stages.

Best effort: the DVC outputs are the record and MLflow a browsable view of them, so a tracking
store that is down or hung never fails or stalls a stage.
"""

from elt.tracking.run_tracker import RunTracker, TrackingUnavailableWarning

__all__ = ["RunTracker", "TrackingUnavailableWarning"]
