"""Real local servers for tests: an MLflow tracking server and a GCS emulator, plus DVC-remote helpers.

Import from test files (this is not a conftest, so nothing here runs unless asked):

    from tests.servers import mlflow_server, gcs_emulator, configure_gcs_remote, gcs_env

Each server runs in its own process group on 127.0.0.1 and a free port, and is stopped (the
whole group: MLflow's uvicorn workers included) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent  # the mlflow / gcp-storage-emulator / dvc of this environment

# gcsfs otherwise first probes a gRPC (zonal/HNS bucket) API the emulator lacks and hangs.
GCS_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (it was started as a session leader)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Workers of the group may outlive the leader for a moment.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def mlflow_server(tmp_path: str | os.PathLike, start_timeout_s: float = 90.0) -> Iterator[str]:
    """A real ``mlflow server`` with a sqlite backend and served artifacts; yields its URI."""
    root = Path(tmp_path) / "mlflow-server"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--serve-artifacts", "--artifacts-destination", str(root / "artifacts")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{uri}/health", proc, log, start_timeout_s)
        yield uri
    finally:
        _stop(proc)


@contextlib.contextmanager
def gcs_emulator(tmp_path: str | os.PathLike, bucket: str | None = None,
                 start_timeout_s: float = 60.0) -> Iterator[str]:
    """A local in-memory GCS (gcp-storage-emulator); yields its endpoint URL.

    ``bucket`` is created when given (or call ``create_bucket``).
    """
    root = Path(tmp_path) / "gcs-emulator"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "emulator.log"
    cmd = [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
           "--in-memory"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{endpoint}/storage/v1/b?project=test", proc, log, start_timeout_s)
        if bucket:
            create_bucket(endpoint, bucket)
        yield endpoint
    finally:
        _stop(proc)


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket through the GCS JSON API (as ``gcloud storage buckets create`` would)."""
    req = urllib.request.Request(f"{endpoint}/storage/v1/b?project=test",
                                 data=json.dumps({"name": bucket}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise RuntimeError(f"creating bucket {bucket!r} failed: HTTP {resp.status}")


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung tracking server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)  # keep it open, read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        sock.close()


def closed_port_uri() -> str:
    """A URI on a port where nothing listens (a tracking server that is down)."""
    return f"http://127.0.0.1:{free_port()}"


# ------------------------------------------------------------------ DVC with a GCS remote
def gcs_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for dvc/gcsfs against the emulator."""
    return {**os.environ, **GCS_ENV, **(extra or {})}


def dvc(repo_dir: str | os.PathLike, *args: str, timeout_s: float = 180) -> str:
    """Run ``dvc ARGS`` in ``repo_dir``; raise with its output on failure."""
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=repo_dir, env=gcs_env(),
                         capture_output=True, text=True, timeout=timeout_s)
    if out.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed ({out.returncode}) in {repo_dir}:\n"
                           f"{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def add_gcs_remote(repo_dir: str | os.PathLike, bucket: str, name: str = "storage",
                   prefix: str = "cache") -> None:
    """The committed part: ``gs://BUCKET/PREFIX`` as the default remote in .dvc/config."""
    dvc(repo_dir, "remote", "add", "--force", "--default", name, f"gs://{bucket}/{prefix}")


def point_remote_at_emulator(repo_dir: str | os.PathLike, endpoint: str,
                             name: str = "storage") -> None:
    """The machine-local part (.dvc/config.local, not committed): emulator endpoint, no login."""
    dvc(repo_dir, "remote", "modify", "--local", name, "endpointurl", endpoint)
    dvc(repo_dir, "remote", "modify", "--local", name, "allow_anonymous_login", "true")


def configure_gcs_remote(repo_dir: str | os.PathLike, endpoint: str, bucket: str,
                         name: str = "storage", prefix: str = "cache") -> None:
    """Both parts: use on a fresh repo; a clone of it only needs ``point_remote_at_emulator``."""
    add_gcs_remote(repo_dir, bucket, name, prefix)
    point_remote_at_emulator(repo_dir, endpoint, name)
