"""What MLflow tracking costs a stage, and how fast a stage gives up on a broken server.

    python benchmarks/tracking_overhead.py [--points 200]

Measures, each in a fresh store:
  * embedded sqlite store (the default): first open (creates the schema), reopen, and
    per-call latency of log_metrics / log_metric_history / log_params / log_artifact;
  * a real `mlflow server` on 127.0.0.1: the same calls over HTTP;
  * time until a stage is free again when the server is down (closed port) or hung (accepts
    TCP, never answers): the probe's deadline.
Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Not benchmarks/ itself: its tokenize.py would shadow the standard library's (imported by mlflow).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks"]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from elt.tracking import RunTracker, run_tracker  # noqa: E402
from servers import closed_port_uri, mlflow_server, silent_server  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def per_call_ms(run: RunTracker, points: int, scratch: Path) -> dict[str, float]:
    loss = [timed(lambda i=i: run.log_metrics({"train/loss": 1.0 / (i + 1)}, step=i))
            for i in range(points)]
    history = [timed(lambda i=i: run.log_metric_history(f"fid_{i}", {1: 80.0, 2: 60.0, 4: 55.0}))
               for i in range(20)]
    params = timed(lambda: run.log_params({f"group{g}": {f"p{j}": j for j in range(20)}
                                           for g in range(10)}))  # 200 params
    artifact = scratch / "eval.json"
    artifact.write_text(json.dumps({"per_loop": {str(L): {"fid": 1.0} for L in range(8)}}))
    art = [timed(lambda: run.log_artifact(artifact)) for _ in range(5)]
    return {
        "log_metrics_ms_median": 1e3 * statistics.median(loss),
        "log_metric_history_ms_median": 1e3 * statistics.median(history),
        "log_params_200_ms": 1e3 * params,
        "log_artifact_ms_median": 1e3 * statistics.median(art),
    }


def bench_store(uri: str, points: int, scratch: Path) -> dict[str, float]:
    first = RunTracker.for_grid_point("bench-first", tracking_uri=uri)
    t_first = timed(first.start)
    first.end()
    run = RunTracker.for_grid_point("bench-first", tracking_uri=uri)
    t_reopen = timed(run.start)
    figures = {"first_open_s": t_first, "reopen_s": t_reopen, **per_call_ms(run, points, scratch)}
    run.end()
    assert run.enabled, "tracking failed during the benchmark"
    return figures


def give_up_s(uri: str, scratch: Path) -> float:
    run_tracker._disabled.clear()  # each broken server is a fresh process's first failure
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        with RunTracker.for_grid_point("bench-broken", tracking_uri=uri) as run:
            run.log_params({"a": 1})
            run.log_metric_history("fid", {1: 1.0})
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200, help="log_metrics calls per store")
    args = ap.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        local_uri = f"sqlite:///{tmp / 'local' / 'mlflow.db'}"
        (tmp / "local").mkdir()
        results["sqlite"] = bench_store(local_uri, args.points, tmp)
        with mlflow_server(tmp / "srv") as uri:
            results["server"] = bench_store(uri, args.points, tmp)
        results["give_up_down_s"] = give_up_s(closed_port_uri(), tmp)
        with silent_server() as uri:
            results["give_up_hung_s"] = give_up_s(uri, tmp)

    print(f"{'':32s}{'sqlite (default)':>18s}{'mlflow server':>16s}")
    for key in results["sqlite"]:
        print(f"{key:32s}{results['sqlite'][key]:18.3f}{results['server'][key]:16.3f}")
    print(f"stage free again, server down  : {results['give_up_down_s']:.2f} s")
    print(f"stage free again, server hung  : {results['give_up_hung_s']:.2f} s")
    print(json.dumps({"benchmark": "tracking_overhead", **results}))


if __name__ == "__main__":
    main()
