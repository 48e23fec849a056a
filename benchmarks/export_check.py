"""The exported champion, format by format: size, batch-1 latency through its own runtime, test accuracy
and ROC-AUC at the validation threshold, parity with the Keras model (max and mean |delta p| over the
whole test split), and whether each met its tolerance.

The export stage measures (``dvc repro export`` writes reports/export.json); this prints that file as a
table and copies it to benchmarks/results/export_check.json. ``--run`` runs the stage first.

    .venv/bin/python benchmarks/export_check.py [--run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RESULTS = Path("benchmarks/results/export_check.json")


def table(result: dict) -> str:
    lines = [f"champion {result['champion']} (TTA {result['tta']}), threshold {result['threshold']:.4f}, "
             f"{result['test_count']} test images, int8 calibrated on {result['calibration']['count']} training images",
             f"{'format':15s} {'precision':9s} {'MiB':>7s} {'b1 ms':>8s} {'accuracy':>8s} {'ROC-AUC':>8s} "
             f"{'max|dp|':>9s} {'mean|dp|':>9s}  check"]
    for fmt, r in result["formats"].items():
        if r["status"] != "ok":
            lines.append(f"{fmt:15s} {r['precision']:9s} {r['status'].upper()}: {r.get('error') or r.get('reason')}")
            continue
        size = f"{r['size_bytes'] / 2**20:7.1f}" if "size_bytes" in r else f"{'':7s}"
        parity = (f"{r['parity_max']:9.1e} {r['parity_mean']:9.1e}" if "parity_max" in r else f"{'':9s} {'':9s}")
        check = "reference" if fmt == "keras" else ("ok" if r["within_tolerance"] else "MISSED") + f": {r['check']}"
        lines.append(f"{fmt:15s} {r['precision']:9s} {size} {r['latency_b1_ms']:8.2f} {r['accuracy']:8.4f} "
                     f"{(r['roc_auc'] or 0):8.4f} {parity}  {check}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run the export stage first (dvc repro export)")
    args = parser.parse_args(argv)
    if args.run:
        subprocess.run(["dvc", "repro", "export"], check=True)
    from inspectcnn import artifacts

    result = artifacts.read_export(artifacts.EXPORT_METRICS, artifacts.EXPORT_RUN)  # checks and latencies
    if result is None:
        sys.exit(f"{artifacts.EXPORT_METRICS} not found: run dvc repro export (or this script with --run)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
