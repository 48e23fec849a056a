"""Every file a stage reads is declared in its dvc.yaml entry, and each side effect has its own stage.

The shared tiny project (``full_project``, tests/pipeline/conftest.py) runs `dvc repro` with an audit hook in
every stage process (``INSPECTCNN_READ_LOG``, see tests/faults/sitecustomize.py) that records each file opened
for reading under data/, models/ and reports/.
A read is declared when it lies in one of the stage's deps or its own outputs, or in a folder the contract
(:data:`inspectcnn.artifacts.STAGE_FILES`) says the stage reads through a fingerprint of a declared dep.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from helpers import audited_repro, copy_project, project_env
from inspectcnn import artifacts

pytestmark = pytest.mark.slow


def declared(root, address: str) -> list[str]:
    """What the stage ``address`` (``train@lenet``, ``report``) may read: its deps and its own outputs (with
    the hidden ``.<name>.tmp*`` work files the atomic writers put beside them), the foreach key filled in,
    and the contract's fingerprinted folders."""
    name, _, key = address.partition("@")
    body = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][name]
    body = body.get("do", body)
    paths = []
    for section in ("deps", "outs", "metrics", "plots"):
        for entry in body.get(section) or []:
            path = str(next(iter(entry)) if isinstance(entry, dict) else entry).replace("${key}", key)
            paths.append(path)
            if section != "deps":
                parent, _, file = path.rpartition("/")
                paths.append(f"{parent}/.{file}.tmp" if parent else f".{file}.tmp")
    return paths + [p.as_posix() for p in artifacts.STAGE_FILES[name].fingerprinted]


def undeclared(root, log) -> list[tuple[str, str]]:
    found = []
    for line in log.read_text().splitlines():
        stage, path = line.split("\t")
        allowed = declared(root, stage)
        if not any(path == d or path.startswith((d + "/", d + "-")) if d.endswith(".tmp") else
                   path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in allowed):
            found.append((stage, path))
    return sorted(set(found))


def test_every_stage_reads_only_what_its_dvc_entry_declares(full_project):
    root, log = full_project
    stages = {line.split("\t")[0] for line in log.read_text().splitlines()}
    # every stage that reads pipeline files was watched (prepare reads only the source images)
    assert {"health", "train@lenet", "transfer@tiny_hed", "anomaly@tiny_padim", "evaluate@lenet",
            "evaluate_anomaly@tiny_padim", "ensemble", "evaluate_ensemble", "champion", "export", "distil",
            "evaluate_edge", "report", "register"} <= stages
    assert undeclared(root, log) == []


def stale_after_editing(root, relative: str, addition: str) -> set[str]:
    """The stages `dvc status` calls stale once ``addition`` is appended to the file ``relative`` (put back after)."""
    path = root / relative
    original = path.read_text()
    try:
        path.write_text(original + addition)
        return set(json.loads(subprocess.run(["dvc", "status", "--json"], cwd=root, env=project_env(root),
                                             capture_output=True, text=True, check=True).stdout))
    finally:
        path.write_text(original)


def test_editing_a_report_template_leaves_registration_up_to_date(full_project):
    root, _ = full_project
    assert stale_after_editing(root, "src/inspectcnn/templates/report.html.j2", "<!-- edited -->\n") == {"report"}


def test_editing_the_tracking_module_does_not_rerun_the_data_stages(full_project):
    root, _ = full_project
    stale = stale_after_editing(root, "src/inspectcnn/tracking/lifecycle.py", "# edited\n")
    assert not stale & {"health", "prepare", "champion"}
    assert {"train@lenet", "evaluate@lenet", "register"} <= stale


def test_a_planted_undeclared_read_is_caught(full_project, tmp_path):
    """The champion stage made to read data/health.json, which its dvc.yaml entry does not declare."""
    root = copy_project(full_project[0], tmp_path / "planted")
    stage = root / "pipeline" / "champion.py"
    stage.write_text(stage.read_text().replace(
        "    args = parser.parse_args(argv)\n",
        "    args = parser.parse_args(argv)\n    Path('data/health.json').read_text()  # planted\n", 1))
    log = tmp_path / "planted.tsv"
    audited_repro(root, log, "champion")
    assert undeclared(root, log) == [("champion", "data/health.json")]
