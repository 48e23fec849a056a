"""Results that diff only when results change: the tiny project (``deterministic: true``) run by ``dvc repro``,
then again by ``dvc repro -f`` (every stage, nothing changed); every result file (JSON, CSV, Markdown under
models/, data/ and reports/) hashed after each, and the ones that differ listed.

    python benchmarks/rerun_identity.py [--repo .]

Expected to differ: the run records (models/*/run.json, eval_run.json, reports/export_run.json: timings and
MLflow run ids) and the two pages that show measured latencies (reports/report.md, reports/model_card.md).
Every table and metrics file should be byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RUN_RECORDS = ("run.json", "eval_run.json", "export_run.json", "registered.json")
PAGES = ("report.md", "model_card.md")


def snapshot(root: Path) -> dict[str, str]:
    found = {}
    for folder in ("models", "data", "reports"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "prepared" not in path.parts and path.suffix in (".json", ".csv", ".md"):
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    repo = parser.parse_args().repo.resolve()
    sys.path[:0] = [str(repo / "tests"), str(repo / "benchmarks")]
    from byte_identity import PARAMS
    from helpers import make_project

    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    root = make_project(Path(tempfile.mkdtemp()) / "project", PARAMS + "register: {registry_name: inspectcnn-champion}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = f"{root / 'src'}:{root}"
    hashes = []
    for command in (["dvc", "repro"], ["dvc", "repro", "-f"]):
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if done.returncode:
            print(done.stdout[-2000:], done.stderr[-2000:])
            return 1
        hashes.append(snapshot(root))
    first, second = hashes
    differ = sorted(k for k in second if first.get(k) != second[k])
    unexpected = [k for k in differ if not k.endswith(RUN_RECORDS + PAGES)]
    print(f"rerun_identity: {len(second)} result files, {len(differ)} differ after dvc repro -f "
          f"({len(unexpected)} of them tables or metrics files):")
    for key in differ:
        print(f"  {'UNEXPECTED ' if key in unexpected else ''}{key}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
