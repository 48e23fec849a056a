"""The benchmark scripts stay runnable: each imports against the current package and has a CLI."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers import REPO

SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def test_every_benchmark_in_the_readme_exists():
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for script in SCRIPTS:
        assert f"`{script.name}`" in readme, f"{script.name} is not described in benchmarks/README.md"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_benchmark_imports_and_parses_its_arguments(script, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script.name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out
