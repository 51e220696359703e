"""One MLflow run per grid point, found again by its tag ``elt.run_key``: train, sample and evaluate
are separate processes, maybe days apart, and each of them (and each rerun) logs into that run.
Every store call has a deadline; the first failure turns tracking off for that store in this process
with one warning, so a down or hung server costs one deadline, not one per call."""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from elt.tracking.scrub import scrub_mapping, scrub_value

EXPERIMENT, RUN_KEY_TAG, EXP_NAME_TAG = "elt", "elt.run_key", "dvc.exp_name"
_NAME = re.compile(r"^[A-Za-z0-9_\-./ :]{1,250}$")  # names MLflow accepts
_RUN_KEY = re.compile(r"^[A-Za-z0-9_\-.@:+=,]+$")  # goes into a search filter: no quotes
# MLflow's HTTP client defaults to 120 s and 7 retries with backoff, minutes per call on a dead
# server. setdefault: a user's own setting (a slow server far away) wins.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}
# Deadlines in seconds. A local store has no network; only its first schema migration is slow.
_LOCAL_TIMEOUTS = {"probe": 120.0, "call": 120.0, "artifact": 600.0}
_REMOTE_TIMEOUTS = {"probe": 5.0, "call": 15.0, "artifact": 120.0}
_disabled: set[str] = set()  # stores that failed in this process
_open: list[RunTracker] = []  # started runs; the exit handler ends those the stage did not


class TrackingUnavailableWarning(UserWarning):
    """The tracking store failed; the stage goes on and its results stay in the DVC outputs."""


def resolve_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the repository root: ``$DVC_ROOT`` (the original
    repository, also in ``dvc exp run --temp`` copies), else the nearest folder above the cwd with
    ``.dvc``, then ``.git``. MLflow's own default is relative to the cwd and would lose the runs of
    temp copies; the root's ``mlflow.db`` and ``mlruns/`` are what ``mlflow ui`` started there reads."""
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return os.environ["MLFLOW_TRACKING_URI"].strip()
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    if os.environ.get("DVC_ROOT") and not root.is_dir():
        raise ValueError(f"DVC_ROOT={os.environ['DVC_ROOT']!r} is not a directory")
    if not os.environ.get("DVC_ROOT"):
        root = next((f for m in (".dvc", ".git") for f in (root, *root.parents) if (f / m).is_dir()), root)
    return f"sqlite:///{root / 'mlflow.db'}"


def mark_failed(status: str | None = "FAILED") -> None:
    """Ends the open runs FAILED: the process ends on an error it reported itself (elt.errors).
    As the exit handler (status None): FAILED after an uncaught exception, which sets sys.last_value."""
    for tracker in _open:
        tracker.end(status or ("FAILED" if hasattr(sys, "last_value") else "FINISHED"))


class RunTracker:
    """The MLflow run of one grid point, or of the aggregate summary."""

    def __init__(self, run_key: str, *, stage: str | None = None, config: Mapping[str, object] | None = None,
                 params_hash: str | None = None, tracking_uri: str | None = None, **tags: object):
        """``stage``: the stage's name when $DVC_STAGE is unset (a script run by hand); ``config``: logged
        as params when the run opens; ``params_hash``: tag ``elt.params_hash``; other keywords become
        tags ``elt.<name>``. The run opens on first use; without ``with`` it ends at process exit."""
        if not isinstance(run_key, str) or not _RUN_KEY.match(run_key):
            raise ValueError(f"run_key must be letters, digits and _-.@:+=, got {run_key!r}")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self.run_key, self._config = run_key, config
        self.tracking_uri = uri = tracking_uri or resolve_tracking_uri()
        local = uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri
        self._timeouts = _LOCAL_TIMEOUTS if local else _REMOTE_TIMEOUTS
        exp_name = os.environ.get("DVC_EXP_NAME")  # set by `dvc exp run`, whose runs are their own
        self._identity = {RUN_KEY_TAG: run_key, **({EXP_NAME_TAG: exp_name} if exp_name else {})}
        self._run_name = f"{run_key} [{exp_name}]" if exp_name else run_key
        # Under multi-process JAX every process runs the stage and only process 0 logs; jax is
        # asked only when the stage imported it already, so importing tracking never imports jax.
        self._main = "jax" not in sys.modules or sys.modules["jax"].process_index() == 0
        commit = _git_commit() if self._main else None
        stage = os.environ.get("DVC_STAGE") or stage
        start = {f"elt.{k}": v for k, v in tags.items()}
        if params_hash is not None:
            start["elt.params_hash"] = params_hash
        if commit:
            start["mlflow.source.git.commit"] = commit  # shown by the MLflow UI
        if stage:  # the '@' of "train@key" is not allowed in a tag key
            start["dvc.stage"] = stage
            start[f"dvc.stage.{re.sub(r'[^A-Za-z0-9_./ -]', '_', stage)}.git_commit"] = commit or "unknown"
        self._start_tags = _tags(start)
        self._client = self.run_id = None
        self._started = self._ended = False

    @classmethod
    def for_grid_point(cls, run_key: str, **kwargs) -> RunTracker:
        return cls(run_key, **kwargs)

    @classmethod
    def for_aggregate(cls, **kwargs) -> RunTracker:
        return cls("aggregate", **kwargs)

    @property
    def enabled(self) -> bool:
        """False in JAX processes other than 0, and once the store failed in this process."""
        return self._main and self.tracking_uri not in _disabled

    def start(self) -> RunTracker:
        """Find or create the run and mark it RUNNING; safe to call twice."""
        if self._started or not self.enabled:
            return self
        self._started = True
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        # One cheap request under a short deadline first: a dead server costs seconds, once.
        exp = self._call("probe", lambda: self._client.get_experiment_by_name(EXPERIMENT), "probe")
        self.run_id = self._call("open run", lambda: self._open_run(exp))
        if self.run_id is not None:
            if not _open:  # registered after mlflow's own exit handlers, so it runs before them
                atexit.register(mark_failed, None)
            _open.append(self)
            self._call("set tags", lambda: self._set_tags(self._start_tags))
            if self._config is not None:
                self.log_params(self._config)
        return self

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED (or FAILED); the next stage reopens it."""
        if self.run_id is not None and not self._ended:
            self._ended = True
            self._call("end run", lambda: self._client.set_terminated(self.run_id, status))

    def __enter__(self) -> RunTracker:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")

    def log_params(self, params: Mapping[str, object]) -> None:
        """A nested config as flat params (``model.d``), secrets scrubbed. Params logged before with
        the same value are skipped; a changed value retires the run (see ``_log_params``)."""
        # Keys come from params.yaml: characters MLflow rejects become "_" rather than failing a stage.
        values = {re.sub(r"[^A-Za-z0-9_\-./ :]", "_", k)[:250]: str(v)[:6000]
                  for k, v in scrub_mapping(_flatten(params)).items()}
        if self._ready():
            self._call("log params", lambda: self._log_params(values))

    def log_metrics(self, metrics: Mapping[str, object], step: int | None = None) -> None:
        """Scalars at ``step``: a training curve, appended as is (one request per call)."""
        points = [_point(k, v, 0 if step is None else step) for k, v in metrics.items()]
        if self._ready():
            self._call("log metrics", lambda: self._log_points(points))

    def log_metric_history(self, name: str, values_by_step: Mapping[object, object]) -> None:
        """``name`` once per step, e.g. ``{L: fid}`` (keys may be digit strings), so MLflow charts
        FID against L. Points already in the run are skipped: a rerun does not double them."""
        points = [_point(name, v, s) for s, v in values_by_step.items()]
        if self._ready():
            self._call("log metric history", lambda: self._log_points(points, dedupe=True))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """A file, or a folder recursively, into the run's artifacts."""
        local = Path(path)
        if not local.exists():
            raise FileNotFoundError(f"artifact to log does not exist: {local}")
        if self._ready():
            upload = self._client.log_artifacts if local.is_dir() else self._client.log_artifact
            self._call(f"log {local.name}", lambda: upload(self.run_id, str(local), artifact_path), "artifact")

    def log_dict(self, obj: object, artifact_file: str) -> None:
        json.dumps(obj)  # an unserialisable object is the caller's bug, not a tracking failure
        if self._ready():
            self._call(f"log {artifact_file}",
                       lambda: self._client.log_dict(self.run_id, obj, artifact_file), "artifact")

    def set_tags(self, tags: Mapping[str, object]) -> None:
        values = _tags(tags)
        if self._ready():
            self._call("set tags", lambda: self._set_tags(values))

    def _ready(self) -> bool:
        self.start()
        return self.enabled and self.run_id is not None

    def _call(self, what: str, fn: Callable[[], object], deadline: str = "call") -> object:
        # In a daemon thread: a hung socket stalls neither the stage nor the interpreter's exit.
        if not self.enabled:
            return None
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["result"] = fn()
            except BaseException as err:  # noqa: BLE001 - reported in the caller's thread
                box["error"] = err

        worker = threading.Thread(target=target, name=f"elt-tracking:{what}", daemon=True)
        worker.start()
        worker.join(self._timeouts[deadline])
        if not worker.is_alive() and "error" not in box:
            return box.get("result")
        err = box.get("error") or TimeoutError(f"no answer within {self._timeouts[deadline]:g} s")
        _disabled.add(self.tracking_uri)
        warnings.warn(f"MLflow tracking at {scrub_value(self.tracking_uri)} is unavailable "
                      f"({scrub_value(f'{what}: {type(err).__name__}: {err}')[:400]}); tracking is off for "
                      "the rest of this process. The stage continues and its results are in the DVC outputs.",
                      TrackingUnavailableWarning, stacklevel=3)
        return None

    def _open_run(self, exp) -> str:
        from mlflow.exceptions import MlflowException

        client, uri = self._client, self.tracking_uri
        if exp is None:
            # A server picks the artifact location; a local store keeps artifacts next to its db.
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            location = f"{(db.parent / 'mlruns').as_uri()}/{EXPERIMENT}" if uri.startswith("sqlite:///") else None
            try:  # the kind tag opens the UI's model-training view (metric charts), not the GenAI one
                exp = client.get_experiment(client.create_experiment(
                    EXPERIMENT, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"}))
            except MlflowException:  # created meanwhile by a parallel stage, or a real failure
                if (exp := client.get_experiment_by_name(EXPERIMENT)) is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        runs = self._matching_runs(exp.experiment_id)
        if not runs:
            created = client.create_run(exp.experiment_id, tags=self._identity,
                                        run_name=self._run_name).info.run_id
            # Two stages of one grid point starting at once may both create a run: the oldest wins
            # and the younger deletes its own, so the key still names one run.
            runs = self._matching_runs(exp.experiment_id)
            if runs[0].info.run_id != created:
                client.delete_run(created)
        client.update_run(runs[0].info.run_id, status="RUNNING")
        return runs[0].info.run_id

    def _matching_runs(self, experiment_id: str) -> list:
        from mlflow.entities import ViewType

        runs = self._client.search_runs([experiment_id], f"tags.`{RUN_KEY_TAG}` = '{self.run_key}'",
                                        run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
        runs = [r for r in runs if r.data.tags.get(EXP_NAME_TAG) == self._identity.get(EXP_NAME_TAG)]
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _log_params(self, values: dict[str, str]) -> None:
        from mlflow.entities import Param

        run = self._client.get_run(self.run_id)
        existing = run.data.params
        changed = sorted(k for k, v in values.items() if existing.get(k, v) != v)
        if changed:
            # The grid point's config changed, so the metrics so far belong to the old config:
            # that run is kept but loses the key, and a new run takes it.
            new = self._client.create_run(run.info.experiment_id, tags=self._identity,
                                          run_name=run.info.run_name).info.run_id
            self._set_tags({RUN_KEY_TAG: f"{self.run_key}~superseded", "elt.superseded_by": new,
                            "elt.superseded_because": f"params changed: {', '.join(changed)}"[:8000]}, self.run_id)
            self._client.set_terminated(self.run_id, "FINISHED")
            self.run_id, existing = new, {}
            self._set_tags(self._start_tags)
        self._batch(params=[Param(k, v) for k, v in values.items() if k not in existing])

    def _log_points(self, points: list[tuple[str, float, int]], dedupe: bool = False) -> None:
        from mlflow.entities import Metric

        seen = set()
        if dedupe and points:
            seen = {(m.step, m.value) for m in self._client.get_metric_history(self.run_id, points[0][0])}
        now = int(time.time() * 1000)
        self._batch(metrics=[Metric(n, v, now, s) for n, v, s in points if (s, v) not in seen])

    def _set_tags(self, tags: Mapping[str, str], run_id: str | None = None) -> None:
        from mlflow.entities import RunTag

        self._batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def _batch(self, run_id: str | None = None, metrics=(), params=(), tags=()) -> None:
        # log_batch takes at most 100 params and 100 tags (1000 items in all) per request.
        for i in range(0, max(len(metrics), len(params), len(tags)), 100):
            self._client.log_batch(run_id or self.run_id, metrics=metrics[i:i + 100],
                                   params=params[i:i + 100], tags=tags[i:i + 100])


def _git_commit() -> str | None:
    # HEAD of the checkout the stage runs in (the temp copy under `dvc exp run --temp`).
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if re.fullmatch(r"[0-9a-f]{40,64}\s*", out.stdout) else None


def _flatten(config: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    # Lists stay one value: "sample.loops": "[1, 2, 4]" reads better than loops.0, loops.1, ...
    if not isinstance(config, Mapping):
        raise TypeError(f"params must be a mapping, got {type(config).__name__} at {prefix!r}")
    if not all(isinstance(k, str) and k for k in config):
        raise TypeError(f"param keys must be non-empty strings, got {list(config)!r} under {prefix!r}")
    flat: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = json.dumps(list(value), default=str) if isinstance(value, (list, tuple)) else value
    return flat


def _tags(tags: Mapping[str, object]) -> dict[str, str]:
    if bad := [k for k in tags if not isinstance(k, str) or not _NAME.match(k)]:
        raise ValueError(f"invalid MLflow tag names {bad!r}: use 1-250 letters, digits, spaces or _-./:")
    return {k: str(v)[:8000] for k, v in scrub_mapping(tags).items()}


def _point(name: object, value: object, step: object) -> tuple[str, float, int]:
    """A metric point; a caller's mistake raises here, before any store call."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid MLflow metric name {name!r}: use 1-250 letters, digits, spaces or _-./:")
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):  # numpy scalars have it
        raise TypeError(f"metric {name!r} must be a number, got {value!r}")
    # A step is an int (numpy's too) or a digit string: the keys of eval.json's "per_loop".
    if isinstance(step, bool) or not (hasattr(step, "__index__") or re.fullmatch(r"-?\d+", str(step))):
        raise TypeError(f"step must be an integer (e.g. a loop count L), got {step!r}")
    return name, float(value), int(step)
