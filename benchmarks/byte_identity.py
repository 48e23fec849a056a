"""Behaviour kept across a refactor: the tiny test project, ``deterministic: true``, run by two checkouts;
the SHA-256 of every training summary, evaluation and prediction table of each, side by side.

    python benchmarks/byte_identity.py --repo /path/to/old/checkout --out /tmp/old.json
    python benchmarks/byte_identity.py --repo . --out /tmp/new.json --compare /tmp/old.json

Each run copies ``--repo`` into a fresh git + DVC project (tests/helpers.make_project of that checkout),
runs ``dvc repro`` there with its own src first on PYTHONPATH, and hashes the files listed in FILES.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMS = """
seed: 1
backend: tensorflow
data: {source: folder, path: images, classes: [ok, defect], image_size: 32, split: {train: 0.5, val: 0.25, test: 0.25}}
mlflow: {experiment: identity}
train: {image_size: 32, batch_size: 8, epochs: 2, early_stopping_patience: 0, deterministic: true}
models:
  lenet: {learning_rate: 0.001}
  simple_cnn: {learning_rate: 0.001}
transfer:
  tiny_hed: {weights: hed-vgg16, image_size: 32, head: [8], frozen_epochs: 1, finetune_epochs: 1, deterministic: true}
evaluate: {latency_runs: 1, latency_batch: 8, tta: flips, bootstrap: 50}
ensemble: {candidates: auto, max_members: 3}
report: {rank_by: roc_auc, gradcam_per_category: 1, error_gallery: 2}
export: {formats: [onnx], calibration_size: 16, latency_runs: 2}
edge: {epochs: 1, learning_rate: 0.001}
health: {folds: 2, feature_size: 32}
"""
FILES = ("metrics.json", "eval.json", "scores.json", "predictions.csv", "roc.csv", "pr.csv", "history.csv")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of each file; of a JSON file also each top-level key's value (``file#key``), so that a
    difference is named; of a validation-prediction table also the table without its model fingerprint
    column (``file#probabilities``), so that a checkout that hashed the ``.keras`` zip (which records when it
    was saved) compares with one that hashes the weights."""
    import csv
    import io

    found = {}
    for folder in sorted((root / "models").iterdir()):
        for name in FILES:
            path = folder / name
            if path.is_file():
                found[f"models/{folder.name}/{name}"] = _sha(path.read_bytes())
                if name.endswith(".json"):
                    for key, value in json.loads(path.read_text()).items():
                        found[f"models/{folder.name}/{name}#{key}"] = _sha(json.dumps(value, sort_keys=True).encode())
    for path in sorted((root / "data" / "val_predictions").glob("*.csv")):
        found[f"data/val_predictions/{path.name}"] = _sha(path.read_bytes())
        rows = [{k: v for k, v in row.items() if k not in ("model_sha256", "weights_sha256")}
                for row in csv.DictReader(io.StringIO(path.read_text()))]
        found[f"data/val_predictions/{path.name}#probabilities"] = _sha(json.dumps(rows).encode())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, help="an earlier --out to compare with")
    args = parser.parse_args()
    repo = args.repo.resolve()
    sys.path.insert(0, str(repo / "tests"))
    from helpers import make_project

    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory() as scratch:
        # a checkout with a register or anomaly stage needs its section (DVC requires every params key a stage
        # names, and the key every foreach iterates)
        stages = (repo / "dvc.yaml").read_text()
        root = make_project(Path(scratch) / "project",
                            PARAMS + ("register: {registry_name: inspectcnn-champion}\n" if "register:" in stages else "")
                            + ("anomaly: {}\n" if "${anomaly}" in stages else ""))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PYTHONPATH"] = f"{root / 'src'}:{root}"
        start = time.monotonic()
        result = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
        if result.returncode:
            print(result.stdout[-3000:], result.stderr[-3000:])
            return 1
        found = digests(root)
    args.out.write_text(json.dumps(found, indent=1) + "\n")
    print(f"byte_identity: {repo}: {len(found)} files hashed after dvc repro ({time.monotonic() - start:.0f} s)")
    if args.compare:
        before = json.loads(args.compare.read_text())
        same = sorted(k for k in found if before.get(k) == found[k])
        differ = sorted(k for k in found if k in before and before[k] != found[k])
        only = sorted(set(found) ^ set(before))
        print(f"byte_identity: {len(same)} identical, {len(differ)} differ, {len(only)} in one run only")
        for key in differ:
            print(f"  differs: {key}")
        for key in only:
            print(f"  only in {'this' if key in found else 'the earlier'} run: {key}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
