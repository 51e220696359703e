"""dvc.yaml's deps cannot drift from the code: for every stage, the project modules its script
imports (transitively, including imports inside functions) are all covered by a dep, so editing
any of them reruns the stage. Exempt, as they cannot change an output: tracking, the printing of
errors, and the package's __init__ (it only quiets TensorFlow's start-up log).

Families are imported by name (elt.families.module), which no static reader sees: a grid stage's
family modules (its `elt/families/${item.family}/*.py` deps) are followed too, for every family
the grid uses, so whatever they import must be covered as well."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXEMPT = ("elt/tracking/", "elt/errors.py", "elt/__init__.py")


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def _imported_modules(path: Path) -> set[str]:
    out = set()
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return out


def project_files(script: Path, extra_roots=()) -> set[str]:
    """Every project file that running ``script`` may execute (packages' __init__ included)."""
    seen, todo = set(), [script, *extra_roots]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] != "elt":
                continue
            for i in range(1, len(parts) + 1):
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return {p.relative_to(ROOT).as_posix() for p in seen}


def _families() -> set[str]:
    """The families every params file of the repository uses (the default and the presets)."""
    return {
        g.get("family", "maskgit")
        for f in ROOT.glob("params*.yaml")
        for g in yaml.safe_load(f.read_text())["grid"].values()
    }


def _stages():
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        stage = stage.get("do", stage)  # foreach stages
        script = next(t for t in stage["cmd"].split() if t.startswith("stages/"))
        deps = [str(d) for d in stage.get("deps", [])]
        if not any("${item.family}" in d for d in deps):
            yield name, script, deps, ()
            continue
        for family in sorted(_families()):
            deps_f = [d.replace("${item.family}", family) for d in deps]
            roots = [ROOT / d for d in deps_f if d.startswith(f"elt/families/{family}/")]
            yield f"{name}@{family}", script, deps_f, roots


def test_the_import_follower_sees_function_level_and_package_imports():
    files = project_files(ROOT / "stages" / "evaluate.py")
    # evaluate imports elt.config at the top and elt.evaluation.fid inside main()
    assert {"stages/evaluate.py", "elt/config.py", "elt/evaluation/fid.py", "elt/evaluation/__init__.py"} <= files
    assert not any(f.startswith("elt/aggregate/") for f in files)


def test_a_family_is_followed_from_its_modules():
    files = project_files(ROOT / "stages" / "train.py", [ROOT / "elt/families/maskgit/losses.py",
                                                          ROOT / "elt/families/maskgit/model.py"])
    assert {"elt/families/maskgit/model.py", "elt/core/looped.py", "elt/core/train_step.py"} <= files
    # the sampler is not a training dependency: editing it must not rerun training
    assert "elt/families/maskgit/sampler.py" not in files


@pytest.mark.parametrize("name,script,deps,roots", list(_stages()), ids=lambda v: v if isinstance(v, str) else "")
def test_deps_cover_every_imported_project_file(name, script, deps, roots):
    def covered(f: str) -> bool:
        return any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)

    missing = sorted(f for f in project_files(ROOT / script, roots) if not f.startswith(EXEMPT) and not covered(f))
    assert not missing, f"stage {name}: add to its deps in dvc.yaml: {missing}"
