"""Sharing tokenized data through a gs:// DVC remote (real DVC and git, local GCS emulator).

Machine A tokenizes and pushes (outputs and run cache); machine B clones and pulls byte-identical
tokens without rerunning the stage; someone who only wants the tokens pulls just data/tokens.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

try:
    from tests.servers import configure_gcs_remote, dvc, gcs_emulator, point_remote_at_emulator
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from servers import configure_gcs_remote, dvc, gcs_emulator, point_remote_at_emulator

BUCKET = "elt-test"

# A stand-in for the tokenize stage: deterministic shards + manifest from a committed input, and
# a line in ../runs-<repo>.log each time it really runs (outside the repo, so untracked).
TOKENIZE = textwrap.dedent("""
    import hashlib, json, os
    from pathlib import Path
    raw = Path("data/raw.txt").read_bytes()
    out = Path("data/tokens")
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for i in range(3):
        body = hashlib.sha256(raw + bytes([i])).digest() * 64
        (out / f"shard-{i:05d}.bin").write_bytes(body)
        shards.append({"file": f"shard-{i:05d}.bin", "bytes": len(body)})
    (out / "manifest.json").write_text(json.dumps({"shards": shards}, indent=1))
    with open(Path("..") / f"runs-{Path.cwd().name}.log", "a") as log:
        log.write("tokenize ran\\n")
""")

DVC_YAML = textwrap.dedent("""
    stages:
      tokenize:
        cmd: python tokenize_stage.py
        deps:
          - tokenize_stage.py
          - data/raw.txt
        outs:
          - data/tokens
      summary:
        cmd: python -c "import json; print(json.load(open('data/tokens/manifest.json')))" > data/summary.txt
        deps:
          - data/tokens
        outs:
          - data/summary.txt
""")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}:\n{out.stdout}{out.stderr}")
    return out.stdout


def runs(repo: Path) -> int:
    log = repo.parent / f"runs-{repo.name}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def same_tree(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def clone(origin: Path, name: str, endpoint: str) -> Path:
    repo = origin.parent / name
    git(origin.parent, "clone", "-q", str(origin), name)
    point_remote_at_emulator(repo, endpoint)  # .dvc/config.local is not part of the clone
    return repo


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Repo A with tokens pushed to a gs:// remote on the emulator."""
    root = tmp_path_factory.mktemp("gcs")
    with gcs_emulator(root, bucket=BUCKET) as endpoint:
        repo = root / "A"
        repo.mkdir()
        git(repo, "init", "-q")
        git(repo, "config", "user.email", "a@example.com")
        git(repo, "config", "user.name", "A")
        dvc(repo, "init", "-q")
        (repo / "tokenize_stage.py").write_text(TOKENIZE)
        (repo / "data").mkdir()
        (repo / "data" / "raw.txt").write_text("digits 0 1 2 3\n")
        (repo / "dvc.yaml").write_text(DVC_YAML)
        configure_gcs_remote(repo, endpoint, BUCKET)
        dvc(repo, "repro")
        assert runs(repo) == 1
        dvc(repo, "push", "--run-cache")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "tokenize")
        assert "endpointurl" not in git(repo, "show", "HEAD:.dvc/config")  # machine-local only
        yield repo, endpoint


def test_pull_gives_identical_tokens_and_repro_skips(shared):
    origin, endpoint = shared
    repo = clone(origin, "B", endpoint)
    dvc(repo, "pull")
    assert same_tree(origin / "data" / "tokens", repo / "data" / "tokens")
    out = dvc(repo, "repro")
    assert runs(repo) == 0, out  # nothing reran on machine B
    assert "up to date" in dvc(repo, "status")


def test_repro_pull_restores_from_run_cache_without_lock(shared):
    # No dvc.lock: DVC can only know the result through the run cache pushed by machine A.
    origin, endpoint = shared
    repo = clone(origin, "C", endpoint)
    (repo / "dvc.lock").unlink()
    out = dvc(repo, "repro", "--pull", "tokenize")
    assert runs(repo) == 0, out
    assert "Stage 'tokenize' is cached - skipping run" in out, out
    assert same_tree(origin / "data" / "tokens", repo / "data" / "tokens")


def test_pull_only_the_tokens(shared):
    origin, endpoint = shared
    repo = clone(origin, "D", endpoint)
    dvc(repo, "pull", "data/tokens")
    assert same_tree(origin / "data" / "tokens", repo / "data" / "tokens")
    assert not (repo / "data" / "summary.txt").exists()  # other outputs were not fetched
    assert runs(repo) == 0
