"""What the defect labels buy: the champion recipe trained with a share of the training split's defective
cells, beside the anomaly detector that sees none.

For each fraction (default 10 % and 25 %), a seeded draw of the training split's defective cells is kept with
every good cell (a prepared folder of its own, :func:`inspectcnn.data.store.write_subset`; validation and
test untouched), and the transfer entry (default ``lite0``, its params.yaml recipe unchanged) is trained and
evaluated by the pipeline's own stages (``python -m pipeline.transfer``, ``python -m pipeline.evaluate``):
threshold chosen on validation, test metrics with bootstrap intervals. The 0 % row is the anomaly entry
(``models/padim``: good cells only) and the 100 % row the entry itself (``models/lite0``), both as the
default run left them. A fraction already trained under ``--work`` is not trained again.

Costs about two training runs of the entry (25 minutes on 2 cores): it is not part of ``dvc repro``;
benchmarks/results/label_efficiency.txt holds one run's output.

    python benchmarks/label_efficiency.py [--entry lite0] [--anomaly padim] [--fractions 0.1 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def subset_ids(prepared: Path, fraction: float, seed: int) -> set[str]:
    """Every good training cell and a seeded draw of ``fraction`` of the defective ones."""
    from inspectcnn.data.store import read_index

    ids, labels, _ = read_index(prepared, "train")
    positives = [i for i, label in zip(ids, labels) if label == 1]
    drawn = np.random.default_rng(seed).choice(len(positives), size=max(1, round(fraction * len(positives))),
                                               replace=False)
    return {i for i, label in zip(ids, labels) if label == 0} | {positives[k] for k in sorted(drawn)}


def train_and_evaluate(entry: str, fraction: float, prepared: Path, work: Path, params: Path, seed: int) -> Path:
    """models/<entry>_<percent> under ``work``, trained and evaluated by the pipeline's stages; its eval.json."""
    from inspectcnn.data.store import write_subset

    tag = f"{entry}_{round(fraction * 100)}pct"
    folder = work / "models" / tag
    if (folder / "eval.json").is_file():
        return folder / "eval.json"
    subset = work / f"prepared_{tag}"
    if not (subset / "meta.json").is_file():
        write_subset(prepared, subset, "train", subset_ids(prepared, fraction, seed))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    for command in (["pipeline.transfer", "--name", entry, "--prepared", subset, "--out", folder],
                    ["pipeline.evaluate", "--name", entry, "--prepared", subset, "--model-dir", folder,
                     "--val-predictions", work / "val_predictions" / f"{tag}.csv"]):
        subprocess.run([sys.executable, "-m", *map(str, command), "--params", str(params)], cwd=ROOT, env=env,
                       check=True)
    return folder / "eval.json"


def row(share: str, defects: int | str, evaluation: dict) -> str:
    ci = evaluation.get("ci95") or {}
    low, high = ci.get("roc_auc") or (float("nan"), float("nan"))
    alow, ahigh = ci.get("accuracy") or (float("nan"), float("nan"))
    return (f"| {share} | {defects} | {evaluation['roc_auc']:.3f} [{low:.3f}, {high:.3f}] | "
            f"{evaluation['accuracy']:.3f} [{alow:.3f}, {ahigh:.3f}] | {evaluation['val']['roc_auc']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entry", default="lite0")
    parser.add_argument("--anomaly", default="padim")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25])
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inspectcnn-label-efficiency"))
    args = parser.parse_args()
    from inspectcnn.config import load_params
    from inspectcnn.data.store import read_index

    params = load_params(args.params)
    params.transfer_config(args.entry)
    positives = sum(read_index(args.prepared, "train")[1])
    results = {f: json.loads(train_and_evaluate(args.entry, f, args.prepared, args.work.resolve(), args.params.resolve(),
                                                params.seed).read_text()) for f in args.fractions}
    print(f"Label efficiency on {args.prepared} (training split: {positives} defective cells; every good cell kept "
          f"in every row; test ROC-AUC and accuracy at the validation threshold, 95 % bootstrap intervals)\n")
    print("| defective training cells | count | test ROC-AUC [95 % CI] | test accuracy [95 % CI] | val ROC-AUC |")
    print("|---|---|---|---|---|")
    anomaly = args.models / args.anomaly / "eval.json"
    if anomaly.is_file():
        print(row(f"0 % ({args.anomaly}, no defect labels)", 0, json.loads(anomaly.read_text())))
    for fraction, evaluation in results.items():
        print(row(f"{100 * fraction:.0f} % ({args.entry} recipe)", round(fraction * positives), evaluation))
    full = args.models / args.entry / "eval.json"
    if full.is_file():
        print(row(f"100 % ({args.entry}, the default run)", positives, json.loads(full.read_text())))


if __name__ == "__main__":
    main()
