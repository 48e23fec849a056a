"""CI's first step: the whole pipeline on tiny generated data, in the environment `make run` builds (run
requirements only, no test extra), with the default export formats. Fails when any stage fails, when any
default export format does not come out `ok`, or when the run log carries a Python warning or a converter's
chatter. It catches a package the pipeline needs at run time that only the test extras bring.

    .venv/bin/python .ci/smoke_pipeline.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

PARAMS = """
seed: 1
backend: tensorflow
data: {source: folder, path: images, classes: [ok, defect], image_size: 32, split: {train: 0.5, val: 0.25, test: 0.25}}
mlflow: {experiment: smoke}
train: {image_size: 32, batch_size: 8, epochs: 2, early_stopping_patience: 0}
models:
  lenet: {learning_rate: 0.001}
  simple_cnn: {learning_rate: 0.001}
transfer:
  tiny_hed: {weights: hed-vgg16, image_size: 32, head: [8], frozen_epochs: 1, finetune_epochs: 1}
anomaly:
  tiny_padim: {image_size: 32, dims: 16}
evaluate: {latency_runs: 2, latency_batch: 8, tta: dihedral, bootstrap: 50}
ensemble: {candidates: auto, max_members: 3}
report: {rank_by: roc_auc, gradcam_per_category: 1, error_gallery: 4}
register: {registry_name: inspectcnn-champion}
export: {formats: auto, calibration_size: 16, latency_runs: 3, on_failure: fail}
edge: {epochs: 1, learning_rate: 0.001}
health: {folds: 2, feature_size: 32}
"""

# What a run log must not hold: Python warnings (file:line: XWarning), and the converters' own lines
NOISE = [re.compile(p) for p in (r"\w+Warning: ", r"INFO:tensorflow:", r"fully_quantize: ", r"XNNPACK delegate",
                                 r"^W0000 ", r"^I0000 ", r"Downloading artifacts",
                                 r" INFO root: ", r"\r")]


def main() -> int:
    from helpers import make_project

    from inspectcnn.export import AUTO_FORMATS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # dvc of this environment
    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(args.keep or Path(scratch) / "project", PARAMS, images={"ok": 40, "defect": 24})
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PYTHONPATH"] = str(root / "src")
        start = time.monotonic()
        result = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
        log = result.stdout + result.stderr
        (root / "repro.log").write_text(log)
        print(f"smoke: dvc repro rc {result.returncode} in {time.monotonic() - start:.0f} s, "
              f"{len(log.splitlines())} log lines")
        failures = []
        if result.returncode != 0:
            failures.append(f"dvc repro failed ({result.returncode}); its last lines:\n" + "\n".join(log.splitlines()[-30:]))
        export_file = root / "reports" / "export.json"
        formats = json.loads(export_file.read_text())["formats"] if export_file.is_file() else {}
        for fmt in AUTO_FORMATS:
            row = formats.get(fmt, {"status": "missing", "reason": "not in reports/export.json"})
            print(f"smoke: export {fmt:15s} {row['status']}")
            if row["status"] != "ok":
                failures.append(f"default export format {fmt}: {row['status']}: {row.get('error') or row.get('reason')}")
        noise = [line for line in log.splitlines() if any(p.search(line) for p in NOISE)]
        if noise:
            failures.append(f"{len(noise)} noise line(s) in the run log, e.g.:\n  " + "\n  ".join(noise[:8]))
        for failure in failures:
            print(f"smoke: FAILED: {failure}", file=sys.stderr)
        if not failures:
            print(f"smoke: ok: every stage ran, all {len(AUTO_FORMATS)} default export formats ok, no warning or "
                  "converter line in the log")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
