"""Structure rules that keep the code base easy to pick up: no module reaches into another's
private names, and every user-facing error shares one base that stages report without a traceback."""

from __future__ import annotations

import ast
import inspect

import pytest

from helpers import REPO

SOURCES = sorted(p for folder in ("src", "pipeline", "benchmarks") for p in (REPO / folder).rglob("*.py"))


def private_imports(path, root=REPO):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("inspectcnn", "pipeline"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    yield f"{path.relative_to(root)}:{node.lineno} imports {node.module}.{alias.name}"


def test_no_module_imports_another_modules_private_name():
    found = [line for path in SOURCES for line in private_imports(path)]
    assert not found, "make these public (or move them) instead:\n" + "\n".join(found)


def test_the_rule_sees_a_private_import(tmp_path):
    sample = tmp_path / "src" / "inspectcnn" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text("from inspectcnn.training import _hidden\n")
    expected = "src/inspectcnn/sample.py:1 imports inspectcnn.training._hidden"
    assert list(private_imports(sample, tmp_path)) == [expected]


def test_errors_module_imports_nothing():
    tree = ast.parse((REPO / "src" / "inspectcnn" / "errors.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("module", ["config", "data.images", "data.sources", "data.store", "models.registry",
                                    "models.saving", "tracking.runs", "training.runtime", "transfer.base", "champion",
                                    "ensemble", "export", "serving"])
def test_every_error_class_is_a_user_error(module):
    import importlib

    from inspectcnn.errors import UserError

    loaded = importlib.import_module(f"inspectcnn.{module}")
    errors = [obj for name, obj in inspect.getmembers(loaded, inspect.isclass)
              if name.endswith("Error") and obj.__module__ == loaded.__name__]
    assert errors, f"inspectcnn.{module} defines no error class"
    assert all(issubclass(error, UserError) for error in errors), errors


def test_only_the_config_module_reads_yaml():
    """params.yaml is parsed in one place (inspectcnn.config: read_raw, load_params): no other module of the
    library or the stage layer calls a YAML loader."""
    readers = []
    for path in sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "pipeline").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml"
                    and node.attr in ("safe_load", "load", "full_load", "unsafe_load")):
                readers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert readers and all(r.startswith("src/inspectcnn/config/") for r in readers), readers
