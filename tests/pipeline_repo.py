"""A real, temporary copy of this repository (git + DVC) with a tiny grid, for pipeline tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CODE = ["elt", "stages", "dvc.yaml", "pyproject.toml", ".dvcignore"]

# A grid that exercises every kind (ILSD, vanilla, unique) on two scales in a few minutes.
TOY_FAMILY = ROOT / "tests" / "toy_family"  # a test-only family, installed as elt/families/toy
TINY_TOKENIZER = {"steps": 60, "batch_size": 32, "codebook_size": 32, "channels": 32, "embed_dim": 16}
TINY_PARAMS_OVERRIDES = {
    "tokenize": {"num_shards": 2, "direct_num_workers": 2, "batch_size": 256},
    "scales": {
        "tiny": {"d_model": 32, "mlp_dim": 64, "num_heads": 2},
        "micro": {"d_model": 16, "mlp_dim": 32, "num_heads": 2},
    },
    "train": {"steps": 40, "batch_size": 32, "warmup_steps": 5, "checkpoint_every": 10, "log_every": 10},
    "grid": {
        "tiny-1x2-elt": {"family": "maskgit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": True},
        "tiny-1x2-vanilla": {"family": "maskgit", "scale": "tiny", "N": 1, "L_max": 2, "ilsd": False},
        "micro-2x1-unique": {"family": "maskgit", "scale": "micro", "N": 2, "L_max": 1, "ilsd": False},
    },
    "families": {"maskgit": {"tokenizer": TINY_TOKENIZER, "sample": {"steps": 4}}},
    # two guidance scales: the CFG sweep (maskgit runs; the toy family has no guidance)
    "sample": {"loops": [1, 2, 3], "num_samples": 20, "batch_size": 20, "cfg_scales": [1.0, 2.0]},
    "eval": {"batch_size": 32, "ref_num_images": 64},
}


def tiny_params(toy: bool = False) -> dict:
    """The tiny grid; ``toy=True`` adds a point of the toy family (continuous latents)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY_PARAMS_OVERRIDES.items():
        if section in ("scales", "grid"):
            raw[section] = dict(values)
        elif section == "families":
            raw[section] = {f: {**raw[section].get(f, {}), **{k: {**raw[section].get(f, {}).get(k, {}), **v} for k, v in fv.items()}}
                            for f, fv in values.items()}
        else:
            raw[section] = {**raw[section], **values}
    if toy:
        raw["grid"]["toy-1x2-elt"] = {"family": "toy", "scale": "micro", "N": 1, "L_max": 2, "ilsd": True}
        # its own tokenizer (another VQ: fewer steps, other seed), as every family has
        raw["families"]["toy"] = {"tokenizer": {**TINY_TOKENIZER, "kind": "vq", "steps": 30, "seed": 1},
                                  "train": {"noise": 0.5}, "sample": {"steps": 2}}
    return raw


def run(cmd, cwd, env=None, check=True, timeout=1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, shell=isinstance(cmd, str)
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode})\nSTDOUT:\n{proc.stdout[-6000:]}\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc


def make_repo(dest: Path, params: dict | None = None, toy: bool = False) -> Path:
    """Copy the code into ``dest``, write params.yaml, and make it a git + DVC repository.
    ``toy=True`` installs the toy family the way a user adds one: a package in elt/families/."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    if toy:
        shutil.copytree(TOY_FAMILY, dest / "elt" / "families" / "toy", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params or tiny_params(toy), sort_keys=False))
    (dest / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "test@elt.local"], dest)
    run(["git", "config", "user.name", "elt test"], dest)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "tiny pipeline"], dest)
    return dest


def env_for(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    # stages run `python ...`: make it this interpreter's venv
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("ELT_CACHE_DIR", str(Path.home() / ".cache" / "elt"))
    env.update(extra or {})
    return env


def dvc(repo: Path, *args, env=None, check=True, timeout=1800) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], repo, env=env or env_for(), check=check, timeout=timeout)


def stale_stages(repo: Path, env=None) -> set[str]:
    """Names of the stages `dvc status` reports as changed."""
    out = dvc(repo, "status", "--json", env=env).stdout.strip()
    return set(json.loads(out or "{}"))
