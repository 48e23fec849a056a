"""Distillation settings of the edge student, each measured on VALIDATION only: the served champion (with its
test-time augmentation) distilled into one view by :func:`inspectcnn.distil.distil_student` with params.yaml's
``edge:`` section plus the overrides given, in the folders of the default pipeline run (``models/``,
``data/prepared``, ``reports/champion.json``). Prints the validation ROC-AUC (Keras' AUC, as history.csv) at
the start (the student's network, one view), after distillation, and whether that epoch would be kept, with the
wall time; the rows go to benchmarks/results/distil_levers.json (a row is replaced when measured again).

The test split is never opened. About 5 minutes per epoch on 2 cores with an 8-view teacher.

    python benchmarks/distil_levers.py learning_rate=2e-5 learning_rate=1e-4 [--work /tmp/inspectcnn-distil]
    python benchmarks/distil_levers.py learning_rate=2e-5,student_loss_weight=0.2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distil_levers.json"


def overrides(text: str) -> dict:
    """``key=value[,key=value]`` of the edge: section, values read as YAML (2e-5, 0.5, 3)."""
    import yaml

    found = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"{item!r}: give key=value of the edge: section, e.g. learning_rate=2e-5")
        found[key.strip()] = yaml.safe_load(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("levers", nargs="+", help="key=value[,key=value] overrides of the edge: section")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inspectcnn-distil"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import yaml

    from inspectcnn import champion as choice
    from inspectcnn.config import parse_params, read_raw
    from inspectcnn.distil import distil_student
    from inspectcnn.stage_runner import setup_logging

    setup_logging()
    record = choice.read(ROOT / "reports" / "champion.json")
    chosen = [(lever, overrides(lever)) for lever in args.levers]
    raw = read_raw(ROOT / "params.yaml")
    table = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": []}
    for lever, changes in chosen:
        params = parse_params({**raw, "edge": {**(raw.get("edge") or {}), **changes}})  # a bad key: an error first
        began = time.perf_counter()
        metrics = distil_student(params, record["champion"], ROOT / "models", ROOT / "data" / "prepared",
                                 args.work / lever.replace(",", "_").replace("=", "-"))
        row = {"lever": lever, "overrides": changes, "start_val_auc": metrics["start_val_auc"],
               "distilled_val_auc": metrics["distilled_val_auc"], "kept": metrics["distilled"],
               "minutes": round((time.perf_counter() - began) / 60, 1)}
        table["rows"] = [r for r in table["rows"] if r["lever"] != lever] + [row]
        table.update(champion=record["champion"], machine=platform.machine(), cores=2, edge=params.edge.model_dump())
        RESULTS.write_text(json.dumps(table, indent=2) + "\n")
    print("| lever | val ROC-AUC at the start | after distillation | kept | minutes |\n|---|---|---|---|---|")
    for row in table["rows"]:
        print(f"| {row['lever']} | {row['start_val_auc']:.4f} | {row['distilled_val_auc']:.4f} | "
              f"{'yes' if row['kept'] else 'no'} | {row['minutes']} |")


if __name__ == "__main__":
    main()
