"""One MLflow run per grid point, reopened by every stage that works on it.

The train, sample and evaluate stages of grid point ``tiny-2x2-ilsd`` are separate processes
(separate DVC stages, maybe on separate days). Each opens ``RunTracker.for_grid_point(key)``: the
run is found again by the tag ``elt.run_key`` (plus the DVC experiment name under ``dvc exp run``)
in the MLflow experiment, created only when missing, so a rerun never duplicates it. Metrics over
loop counts are logged with ``step = L`` so the MLflow UI charts FID against L.

Usage (in a stage)::

    with RunTracker.for_grid_point("tiny-2x2-ilsd", dataset="digits", tokenizer=tok_id) as run:
        run.log_params(resolved_config)               # nested dicts are flattened
        run.log_metric_history("fid", {1: 80.2, 2: 61.0})
        run.log_artifact("runs/tiny-2x2-ilsd/eval.json")

Without ``with`` (``tracker = RunTracker.for_grid_point(key, stage="train", config=cfg)``) the
run opens on first use and is ended at process exit (FAILED after an uncaught exception).

Every call is best effort (``guard.py``): on the first failure tracking is off for the process,
one warning is emitted and the stage carries on. Caller mistakes (bad names, non-numeric metrics,
missing artifact files) raise ValueError/TypeError/FileNotFoundError before any MLflow call.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from elt.tracking import guard, provenance
from elt.tracking.guard import TrackingUnavailableWarning
from elt.tracking.params import flatten_params, params_hash
from elt.tracking.scrub import scrub_mapping
from elt.tracking.store import artifact_root_for, is_local_store, resolve_tracking_uri

__all__ = ["RunTracker", "TrackingUnavailableWarning"]

T = TypeVar("T")

RUN_KEY_TAG = "elt.run_key"
EXP_NAME_TAG = "dvc.exp_name"
AGGREGATE_KEY = "aggregate"

# MLflow's limits (mlflow/utils/validation.py): longer values are rejected, not truncated.
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
_MAX_KEY_LEN = 250
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
# Names MLflow accepts for metrics, params and tags.
_NAME = re.compile(r"^[A-Za-z0-9_\-./ :]+$")
# Run keys go into a search filter string: no quotes or backticks.
_RUN_KEY = re.compile(r"^[A-Za-z0-9_\-.@:+=,]+$")

# Deadlines in seconds. A local sqlite store has no network: only its first-use schema migration
# is slow. A server gets a short probe (the first request), then a few seconds per call.
_LOCAL_TIMEOUTS = {"probe": 120.0, "call": 120.0, "artifact": 600.0}
_REMOTE_TIMEOUTS = {"probe": 5.0, "call": 15.0, "artifact": 120.0}


class RunTracker:
    """The MLflow run of one grid point (or of the aggregate summary)."""

    def __init__(self, run_key: str, experiment: str = "elt", *, stage: str | None = None,
                 config: Mapping[str, object] | None = None, params_hash: str | None = None,
                 dataset: str | None = None, tokenizer: str | None = None,
                 tags: Mapping[str, object] | None = None, tracking_uri: str | None = None,
                 probe_timeout_s: float | None = None, call_timeout_s: float | None = None,
                 artifact_timeout_s: float | None = None):
        """``stage``: this stage's name when DVC_STAGE is not set (running a script by hand);
        ``config``: the resolved config, logged as params when the run opens; ``params_hash``:
        the project's config hash (tag ``elt.params_hash``; ``elt.logged_params_hash`` is
        always set to a hash of every param in the run). Without ``with``, the run is ended when
        the process exits."""
        if not isinstance(run_key, str) or not _RUN_KEY.match(run_key):
            raise ValueError(f"run_key must be a non-empty name of letters, digits and _-.@:+=, "
                             f"got {run_key!r}")
        if not isinstance(experiment, str) or not experiment.strip():
            raise ValueError(f"experiment must be a non-empty string, got {experiment!r}")
        self.run_key = run_key
        self.experiment = experiment
        self.tracking_uri = tracking_uri or resolve_tracking_uri()
        defaults = _LOCAL_TIMEOUTS if is_local_store(self.tracking_uri) else _REMOTE_TIMEOUTS
        self._timeouts = {
            "probe": probe_timeout_s or defaults["probe"],
            "call": call_timeout_s or defaults["call"],
            "artifact": artifact_timeout_s or defaults["artifact"],
        }
        self.exp_name = provenance.dvc_exp_name()
        self._start_tags = _provenance_tags(stage, dataset, tokenizer)
        self._params_hash = params_hash
        if params_hash is not None:
            self._start_tags["elt.params_hash"] = str(params_hash)
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self._config = config
        if tags:
            self._start_tags.update(_validated_tags(tags))
        self._client = None
        self._run_id: str | None = None
        self._started = False
        self._in_context = False
        self._ended = False

    # ---------------------------------------------------------------- construction
    @classmethod
    def for_grid_point(cls, run_key: str, experiment: str = "elt", **kwargs) -> RunTracker:
        """The run of grid point ``run_key`` (e.g. "tiny-2x2-ilsd"); see __init__ for kwargs."""
        return cls(run_key, experiment, **kwargs)

    @classmethod
    def for_aggregate(cls, experiment: str = "elt", **kwargs) -> RunTracker:
        """The summary run of the aggregate stage (Pareto table, figures)."""
        return cls(AGGREGATE_KEY, experiment, **kwargs)

    # ---------------------------------------------------------------- state
    @property
    def enabled(self) -> bool:
        """False once the store failed in this process (everything is then a no-op)."""
        return not guard.is_disabled(self.tracking_uri)

    @property
    def run_id(self) -> str | None:
        return self._run_id

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> RunTracker:
        """Find or create the run and mark it RUNNING. Safe to call twice."""
        if self._started:
            return self
        self._started = True
        guard.apply_http_defaults()
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        # The probe: one cheap request under a short deadline, so a dead server costs seconds.
        exp = self._guarded("probe", lambda: self._client.get_experiment_by_name(self.experiment),
                            self._timeouts["probe"])
        if not self.enabled:
            return self
        self._run_id = self._guarded("open run", lambda: self._open_run(exp))
        if self._run_id is not None:
            self._log_tags(self._start_tags)
            if self._config is not None:
                self.log_params(self._config)
            if not self._in_context:
                _close_at_exit(self)
        return self

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED (or FAILED/KILLED); it is reopened by the next stage."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        if self._run_id is not None and not self._ended:
            self._ended = True
            self._guarded("end run", lambda: self._client.set_terminated(self._run_id, status))

    def __enter__(self) -> RunTracker:
        self._in_context = True
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.end("FAILED" if exc_type is not None else "FINISHED")
        return False

    # ---------------------------------------------------------------- logging
    def log_params(self, params: Mapping[str, object] | object, prefix: str = "") -> None:
        """Log a (nested) resolved config as flat params, secrets scrubbed.

        Params already in the run with the same value are skipped, so a rerun is a no-op. A
        different value means the grid point's config changed: earlier metrics belong to the old
        config, so the old run is retired (its key tag renamed, ``elt.superseded_by`` set) and a
        new run takes the key. Log params before metrics in each stage.
        """
        flat = flatten_params(params, prefix) if prefix else flatten_params(params)
        # Keys come from params.yaml, not from code: characters MLflow rejects become "_"
        # rather than failing a training stage over a param name.
        values = {_check_name(re.sub(r"[^A-Za-z0-9_\-./ :]", "_", k)[:_MAX_KEY_LEN], "param"):
                  _truncate(str(v), _MAX_PARAM_LEN) for k, v in scrub_mapping(flat).items()}
        if self._ready():
            self._guarded("log params", lambda: self._log_params(values))

    def log_metrics(self, metrics: Mapping[str, object], step: int = 0) -> None:
        """Log scalar metrics at ``step`` (a training curve: appended, no duplicate check, so a
        long curve costs one request per call)."""
        step = _check_step(step)
        points = [(_check_name(k, "metric"), _check_number(k, v), step) for k, v in metrics.items()]
        if self._ready():
            self._guarded("log metrics", lambda: self._log_points(points, dedupe=False))

    def log_metric_history(self, name: str, values_by_step: Mapping[object, object]) -> None:
        """Log ``name`` once per step, e.g. ``{L: fid}`` so the UI charts FID against L.

        Keys may be ints or digit strings (the keys of eval.json's "per_loop"). Points already
        logged with the same value are skipped, so a rerun does not double the history.
        """
        _check_name(name, "metric")
        points = [(name, _check_number(f"{name}[{s}]", v), _check_step(s))
                  for s, v in values_by_step.items()]
        if self._ready():
            self._guarded("log metric history", lambda: self._log_points(points, dedupe=True))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Upload a file or a folder (recursively) into the run's artifacts."""
        local = Path(path)
        if not local.exists():
            raise FileNotFoundError(f"artifact to log does not exist: {local}")
        if not self._ready():
            return
        if local.is_dir():
            fn = lambda: self._client.log_artifacts(self._run_id, str(local), artifact_path)  # noqa: E731
        else:
            fn = lambda: self._client.log_artifact(self._run_id, str(local), artifact_path)  # noqa: E731
        self._guarded(f"log artifact {local.name}", fn, self._timeouts["artifact"])

    def log_dict(self, obj: object, artifact_file: str) -> None:
        """Store a JSON-serialisable object as an artifact (e.g. "pareto.json")."""
        json.dumps(obj)  # a caller's bug (unserialisable object) raises here, not in the guard
        if self._ready():
            self._guarded(f"log {artifact_file}",
                          lambda: self._client.log_dict(self._run_id, obj, artifact_file),
                          self._timeouts["artifact"])

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set run tags (secrets scrubbed)."""
        values = _validated_tags(tags)
        if self._ready():
            self._log_tags(values)

    # ---------------------------------------------------------------- internals
    def _ready(self) -> bool:
        if not self._started:
            self.start()
        return self.enabled and self._run_id is not None

    def _guarded(self, what: str, fn: Callable[[], T], timeout_s: float | None = None) -> T | None:
        if not self.enabled:
            return None
        try:
            return guard.call_with_deadline(fn, timeout_s or self._timeouts["call"], what)
        except Exception as err:  # noqa: BLE001 - any store failure: warn once, carry on
            guard.disable(self.tracking_uri, _truncate(f"{what}: {type(err).__name__}: {err}", 400))
            return None

    def _identity_tags(self) -> dict[str, str]:
        tags = {RUN_KEY_TAG: self.run_key}
        if self.exp_name:
            tags[EXP_NAME_TAG] = self.exp_name
        return tags

    def _experiment_id(self, exp) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client
        if exp is None:
            root = artifact_root_for(self.tracking_uri)
            location = f"{root}/{self.experiment}" if root else None
            try:
                # The kind tag makes the MLflow UI open the experiment in its model-training view
                # (metric charts) rather than the GenAI one.
                return client.create_experiment(
                    self.experiment, artifact_location=location,
                    tags={"mlflow.experimentKind": "custom_model_development"})
            except MlflowException:  # created meanwhile by a parallel stage
                exp = client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    def _matching_runs(self, experiment_id: str) -> list:
        from mlflow.entities import ViewType

        runs = self._client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{self.run_key}'",
            run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
        runs = [r for r in runs if r.data.tags.get(EXP_NAME_TAG) == self.exp_name]
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _open_run(self, exp) -> str:
        experiment_id = self._experiment_id(exp)
        runs = self._matching_runs(experiment_id)
        if runs:
            run_id = runs[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
            return run_id
        return self._create_run(experiment_id)

    def _create_run(self, experiment_id: str) -> str:
        name = self.run_key if not self.exp_name else f"{self.run_key} [{self.exp_name}]"
        created = self._client.create_run(experiment_id, tags=self._identity_tags(), run_name=name)
        # Two stages of one grid point starting at once may both create a run: the oldest wins,
        # the younger deletes its own, so the key still names exactly one run.
        oldest = self._matching_runs(experiment_id)[0].info.run_id
        if oldest != created.info.run_id:
            self._client.delete_run(created.info.run_id)
            self._client.update_run(oldest, status="RUNNING")
        return oldest

    def _log_params(self, values: dict[str, str]) -> None:
        from mlflow.entities import Param

        existing = self._client.get_run(self._run_id).data.params
        changed = sorted(k for k, v in values.items() if k in existing and existing[k] != v)
        if changed:
            self._supersede(changed)
            existing = {}
        new = {k: v for k, v in values.items() if k not in existing}
        items = [Param(k, v) for k, v in new.items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, params=items[i:i + _PARAMS_PER_BATCH])
        # Hash of everything logged so far (all stages); the caller's own config hash, when
        # given, is the tag elt.params_hash.
        self._set_tags_now({"elt.logged_params_hash": params_hash({**existing, **new})})

    def _supersede(self, changed: list[str]) -> None:
        old = self._run_id
        experiment_id = self._client.get_run(old).info.experiment_id
        new = self._client.create_run(experiment_id, tags=self._identity_tags(),
                                      run_name=self._client.get_run(old).info.run_name)
        self._set_tags_now({RUN_KEY_TAG: f"{self.run_key}~superseded",
                            "elt.superseded_by": new.info.run_id,
                            "elt.superseded_because": _truncate(
                                "params changed: " + ", ".join(changed), _MAX_TAG_LEN)}, old)
        self._client.set_terminated(old, "FINISHED")
        self._run_id = new.info.run_id
        self._set_tags_now(self._start_tags)

    def _log_points(self, points: list[tuple[str, float, int]], dedupe: bool) -> None:
        from mlflow.entities import Metric

        seen: dict[str, set[tuple[int, float]]] = {p[0]: set() for p in points}
        for name in seen if dedupe else ():
            history = self._client.get_metric_history(self._run_id, name)
            seen[name] = {(m.step, m.value) for m in history}
        now = int(time.time() * 1000)
        todo = [Metric(n, v, now, s) for n, v, s in points if (s, v) not in seen[n]]
        for i in range(0, len(todo), _METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=todo[i:i + _METRICS_PER_BATCH])

    def _log_tags(self, tags: Mapping[str, str]) -> None:
        self._guarded("set tags", lambda: self._set_tags_now(tags))

    def _set_tags_now(self, tags: Mapping[str, str], run_id: str | None = None) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, len(items), _PARAMS_PER_BATCH):
            self._client.log_batch(run_id or self._run_id, tags=items[i:i + _PARAMS_PER_BATCH])


def _provenance_tags(stage: str | None, dataset: str | None,
                     tokenizer: str | None) -> dict[str, str]:
    tags: dict[str, object] = {}
    commit = provenance.git_commit()
    stage = provenance.dvc_stage() or stage
    if commit:
        tags["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
    if stage:
        tags["dvc.stage"] = stage  # the stage that logged last
        tags[f"dvc.stage.{provenance.tag_safe(stage)}.git_commit"] = commit or "unknown"
    if dataset is not None:
        tags["elt.dataset"] = dataset
    if tokenizer is not None:
        tags["elt.tokenizer"] = tokenizer
    return _validated_tags(tags)


_open_trackers: list[RunTracker] = []
_failed = False


def _close_at_exit(tracker: RunTracker) -> None:
    """Runs used without ``with`` are ended when the process exits: FAILED after an uncaught
    exception, else FINISHED (as MLflow's fluent API does), so the UI shows no stale RUNNING."""
    if not _open_trackers:
        previous = sys.excepthook

        def hook(*exc_info):
            global _failed
            _failed = True
            previous(*exc_info)

        sys.excepthook = hook
        atexit.register(_end_open_trackers)
    _open_trackers.append(tracker)


def mark_failed() -> None:
    """The process is ending on an error it reported itself (elt.errors.run_main): open runs end FAILED."""
    global _failed
    _failed = True


def _end_open_trackers() -> None:
    for tracker in _open_trackers:
        tracker.end("FAILED" if _failed else "FINISHED")


def _validated_tags(tags: Mapping[str, object]) -> dict[str, str]:
    for key in tags:
        _check_name(key, "tag")
    return {k: _truncate(str(v), _MAX_TAG_LEN) for k, v in scrub_mapping(tags).items()}


def _check_name(name: object, kind: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > _MAX_KEY_LEN:
        raise ValueError(f"invalid MLflow {kind} name {name!r}: use at most {_MAX_KEY_LEN} "
                         "letters, digits, '_', '-', '.', '/', ':' or spaces")
    return name


def _check_number(name: str, value: object) -> float:
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"metric {name!r} must be a number, got {value!r}")
    return float(value)  # numpy scalars and 0-d arrays included; MLflow stores nan/inf as is


def _check_step(step: object) -> int:
    if isinstance(step, bool):
        raise TypeError(f"step must be an integer, got {step!r}")
    if isinstance(step, str) and step.strip().lstrip("-").isdigit():
        return int(step)
    if isinstance(step, int) or (hasattr(step, "__index__")):
        return int(step.__index__())
    raise TypeError(f"step must be an integer (e.g. a loop count L), got {step!r}")


def _truncate(text: str, limit: int) -> str:
    marker = "...[truncated]"
    return text if len(text) <= limit else text[: limit - len(marker)] + marker

