"""Every stage of dvc.yaml declares every module of this project that its command can import.

The closure is computed, not kept by hand: from the stage's ``python -m <module>``, every
``import``/``from ... import`` inside the project (at module level or inside a function, since a
lazy import runs all the same), each package's ``__init__.py`` on the way. A module missing from
a stage's deps means that editing it does not rerun the stage, and `dvc repro` would call stale
results up to date.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from helpers import REPO

ROOTS = {"inspectcnn": REPO / "src", "pipeline": REPO}


def module_file(name: str) -> Path | None:
    """The file of a project module (``inspectcnn.x.y`` or ``pipeline.x``), or None if not ours."""
    top = name.split(".", 1)[0]
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def module_name(path: Path) -> str:
    root = ROOTS["pipeline"] if path.is_relative_to(ROOTS["pipeline"] / "pipeline") else ROOTS["inspectcnn"]
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Modules a file imports: ``from a.b import c`` yields a.b and, if it is a module, a.b.c."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def closure(entry: str) -> set[Path]:
    """Every project file that importing ``entry`` can import, parent packages included."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            path = module_file(".".join(parts[:depth]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_names(path))
    return seen


def stages() -> dict[str, tuple[str, list[str]]]:
    """{stage: (entry module, declared deps)} for every stage of dvc.yaml (foreach bodies once)."""
    config = yaml.safe_load((REPO / "dvc.yaml").read_text())
    found = {}
    for name, stage in config["stages"].items():
        body = stage.get("do", stage)
        entry = re.search(r"python -m (\S+)", body["cmd"]).group(1)
        found[name] = (entry, [str(dep) for dep in body.get("deps", [])])
    return found


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == dep.rstrip("/") or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_declares_every_module_it_imports(stage):
    entry, deps = stages()[stage]
    missing = sorted(p.relative_to(REPO).as_posix() for p in closure(entry) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage!r} imports these files but does not list them as deps: {missing}"


def test_the_closure_follows_lazy_and_package_imports():
    files = {p.relative_to(REPO).as_posix() for p in closure("pipeline.train")}
    assert "src/inspectcnn/__init__.py" in files  # a parent package
    assert "src/inspectcnn/interrupts.py" in files  # imported inside a function (stage_runner.run_stage)
    assert "src/inspectcnn/models/lenet.py" in files  # through the model registry


def test_a_removed_dependency_is_caught(tmp_path):
    entry, deps = stages()["train"]
    kept = [dep for dep in deps if dep != "src/inspectcnn/interrupts.py"]
    assert not covered(REPO / "src/inspectcnn/interrupts.py", kept)
    assert any(not covered(p, kept) for p in closure(entry))


def test_the_ensemble_stage_depends_on_every_validation_prediction_and_nothing_of_the_test_split():
    """The ensemble chooses on data/val_predictions (every entry's, each with its model's hash); it never
    depends on a test-split output, and no evaluate stage writes its own file where it would feed itself."""
    config = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    _, deps = stages()["ensemble"]
    data_deps = [dep for dep in deps if not dep.startswith(("src/", "pipeline/"))]
    assert data_deps == ["data/val_predictions"]
    assert "data/val_predictions/${key}.csv" in str(config["evaluate"]["do"]["outs"])
    assert "models/ensemble/val_predictions.csv" in str(config["evaluate_ensemble"]["outs"])


def test_every_stage_runs_a_pipeline_module_that_forwards_to_the_library():
    """One stage layer: dvc.yaml calls ``python -m pipeline.<module>`` for every stage, and each of those
    modules is an argument parser plus one call into inspectcnn (no stage imports another stage)."""
    for stage, (entry, _) in stages().items():
        assert entry.startswith("pipeline."), f"{stage} runs {entry}, not a pipeline/ module"
        path = module_file(entry)
        imports = imported_names(path)
        assert not any(name.startswith("pipeline.") for name in imports), f"{entry} imports another stage"
        tree = ast.parse(path.read_text())
        functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert functions == ["main"], f"{entry} defines {functions}: the work belongs in the library"
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and (node.module or "").startswith("inspectcnn.") and [a.name for a in node.names] == ["run"]]
        assert len(calls) == 1, f"{entry} does not call one library function named run"
        assert "run_stage(" in path.read_text() and "load_params" not in path.read_text(), \
            f"{entry}: params.yaml is parsed once, by run_stage"
    assert not (REPO / "src" / "inspectcnn" / "stages").exists()


def test_the_export_stage_does_not_depend_on_the_report():
    """The champion is read from reports/champion.json: editing the report, its figures or its templates
    does not rerun the (long) export stage."""
    _, deps = stages()["export"]
    assert "reports/champion.json" in deps
    for name in ("report.py", "gradcam.py", "model_card.py", "templates", "plots.py"):
        assert f"src/inspectcnn/{name}" not in deps
    _, report_deps = stages()["report"]
    assert "reports/champion.json" in report_deps and "reports/export.json" in report_deps
