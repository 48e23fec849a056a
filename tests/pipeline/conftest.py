"""The tiny project every read-only pipeline test shares: one `dvc repro` for the session, not one a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import FULL_PARAMS, audited_repro, make_project


@pytest.fixture(scope="session")
def full_project(tmp_path_factory) -> tuple[Path, Path]:
    """(root, read log): the tiny project with every export format and the anomaly entry after one audited
    `dvc repro` (its output in ``root.parent / "repro.log"``). Tests read it; a test that changes it works on a
    copy (helpers.copy_project)."""
    root = make_project(tmp_path_factory.mktemp("full") / "project", FULL_PARAMS)
    log = root.parent / "reads.tsv"
    (root.parent / "repro.log").write_text(audited_repro(root, log))  # what ran (test_train_pipeline.py)
    return root, log
