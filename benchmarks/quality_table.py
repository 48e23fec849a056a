"""Quality: the default `dvc repro` results on ELPV beside the published numbers.

    python benchmarks/quality_table.py            # after `dvc repro` (reads models/*/)

One row per trained model (params.yaml models: and transfer: entries): test accuracy, F1 and
ROC-AUC from eval.json, best validation AUC and epochs from metrics.json, training wall time and
images/s from run.json, the cost (parameters, MACs) from eval.json; then the published ELPV
results of `inspectcnn.reference` (published ELPV results and recipes measured on a GPU). Checks the target on the
CHAMPION (reports/champion.json: chosen on validation by the champion stage; never the best test score,
which would be selection on test) and prints every model's validation - test gap.
Writes benchmarks/results/quality.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inspectcnn import artifacts
from inspectcnn.config import load_params
from inspectcnn.reference import ELPV_TASK, PUBLISHED, RECIPES

TARGET = {"accuracy": 0.90, "roc_auc": 0.95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/quality.json")
    args = parser.parse_args()

    params = load_params()
    rows = []
    for name in params.entries():
        folder = artifacts.model_folder(name)
        if not folder.evaluation.is_file():
            raise SystemExit(f"{folder.evaluation} is missing: run `dvc repro` first")
        evaluation, training = folder.read_evaluation(), folder.read_training()
        rows.append({
            "model": name, "kind": {"train": "from scratch"}.get(params.kind(name), params.kind(name)),
            "image_size": training.get("image_size"),
            "test_accuracy": round(evaluation["accuracy"], 4), "test_f1": round(evaluation["f1"], 4),
            "test_roc_auc": round(evaluation["roc_auc"], 4),
            "accuracy_ci95": (evaluation.get("ci95") or {}).get("accuracy"),
            "roc_auc_ci95": (evaluation.get("ci95") or {}).get("roc_auc"), "tta": evaluation.get("tta", "none"),
            "val_roc_auc": (evaluation.get("val") or {}).get("roc_auc"),
            "best_val_auc": training.get("best_val_auc"),
            "epochs_run": training.get("epochs_run"), "train_wall_s": training.get("wall_time_s"),
            "train_images_per_s": training.get("train_images_per_s", training.get("finetune_images_per_s")),
            "params": evaluation["cost"]["params"], "macs": evaluation["cost"]["macs"],
        })
    rows.sort(key=lambda r: r["test_roc_auc"], reverse=True)
    record = artifacts.read_json(artifacts.CHAMPION)
    best = next(r for r in rows if r["model"] == record["champion"])
    met = best["test_accuracy"] >= TARGET["accuracy"] and best["test_roc_auc"] >= TARGET["roc_auc"]

    print(f"Task: {ELPV_TASK}\n")
    def interval(value):
        return f" [{value[0]:.3f}, {value[1]:.3f}]" if value else ""

    def number(value, form="{:.3f}"):
        return form.format(value) if value is not None else "-"

    print("| model | kind | px | epochs | train wall (s) | test acc [95 % CI] | test F1 | test ROC-AUC [95 % CI] "
          "| val ROC-AUC (TTA) | params | MMACs (all views) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kind']} | {r['image_size']} | {number(r['epochs_run'], '{}')} | "
              f"{number(r['train_wall_s'], '{:.0f}')} | {r['test_accuracy']:.3f}{interval(r['accuracy_ci95'])} | "
              f"{r['test_f1']:.3f} | {r['test_roc_auc']:.3f}{interval(r['roc_auc_ci95'])} | "
              f"{number(r['val_roc_auc'])} | {r['params']:,} | {r['macs'] / 1e6:,.1f} |")
    print(f"\nTest-time augmentation: {rows[0]['tta']}.")
    print("\nPublished (different tasks, splits and resolutions; see the task column):\n")
    print("| source | task | split | model | result |\n|---|---|---|---|---|")
    for p in PUBLISHED:
        print(f"| {p['source']} | {p['task']} | {p['split']} | {p['model']} | {p['result']} |")
    print("\nMeasured recipes:\n")
    print("| where | split | recipe | result |\n|---|---|---|---|")
    for p in RECIPES:
        print(f"| {p['where']} | {p['split']} | {p['recipe']} | {p['result']} |")
    gaps = [r["val_roc_auc"] - r["test_roc_auc"] for r in rows if r["val_roc_auc"] is not None]
    print(f"\nValidation - test ROC-AUC gap over {len(gaps)} models: mean {sum(gaps) / len(gaps):+.3f}, "
          f"from {min(gaps):+.3f} to {max(gaps):+.3f}.")
    print(f"\nChampion (chosen on validation {record['select_by']} {record['value']:.4f}): {best['model']}, test accuracy {best['test_accuracy']:.3f}, ROC-AUC {best['test_roc_auc']:.3f}, "
          f"{number(best['train_wall_s'], '{:.0f}')} s of training, {best['params']:,} parameters, {best['macs'] / 1e9:.2f} G MACs "
          f"per image. Target accuracy >= {TARGET['accuracy']} and ROC-AUC >= {TARGET['roc_auc']}: "
          f"{'met' if met else 'NOT met'}.")
    total = sum(r["train_wall_s"] or 0 for r in rows)
    print(f"Training wall time of all {len(rows)} models: {total / 60:.1f} min.")
    Path(args.out).write_text(json.dumps({"task": ELPV_TASK, "target": TARGET, "target_met": met,
                                          "champion": best["model"], "choice": record, "models": rows, "published": list(PUBLISHED)},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
