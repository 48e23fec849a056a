"""The numbers the report assembles from the evaluated entries: ranking, Pareto fronts, paired comparisons,
per-level and per-architecture tables, the worst errors, the champion's reason in words."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspectcnn import artifacts
from inspectcnn.artifacts import read_table
from inspectcnn.config import Params

log = logging.getLogger(__name__)


COST_KEYS = ("params", "macs")
# a ranking row's measurements of one execution: shown in the pages, kept out of ranking.csv (a table that
# changes only when a result does; each model's run.json and eval_run.json hold them)
TIMING_COLUMNS = ("latency_b1_ms", "throughput_img_s", "train_wall_s")


@dataclass
class Entry:
    name: str
    kind: str  # train | transfer | anomaly | ensemble (Params.kind)
    eval: dict
    training: dict
    history: list[dict]
    roc: list[dict]
    pr: list[dict]
    predictions: list[dict]


def collect(params: Params, models_dir: Path) -> list[Entry]:
    entries = []
    for name in params.entries():
        folder = artifacts.model_folder(name, models_dir)
        entries.append(Entry(
            name=name, kind=params.kind(name),
            eval=folder.read_evaluation(with_run=True), training=folder.read_training(),
            history=read_table(folder.history) if folder.history.is_file() else [], roc=read_table(folder.roc),
            pr=read_table(folder.pr), predictions=read_table(folder.predictions),
        ))
    return entries


def kind_name(kind: str) -> str:
    """An entry's kind as the tables name it: an anomaly detector says what it was trained without."""
    return "anomaly (no defect labels)" if kind == "anomaly" else kind


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names not dominated: no other model is at least as accurate and at most as costly (one strictly)."""
    front = set()
    for name, (accuracy, cost) in points.items():
        dominated = any(
            a >= accuracy and c <= cost and (a > accuracy or c < cost)
            for other, (a, c) in points.items() if other != name
        )
        if not dominated:
            front.add(name)
    return front


def ranking(entries: list[Entry], rank_by: str) -> list[dict]:
    rows = []
    for entry in entries:
        e = entry.eval
        rows.append({
            "model": entry.name, "kind": kind_name(entry.kind),
            **{k: e[k] for k in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
                                 "brier", "ece", "threshold")},
            "params": e["cost"]["params"], "macs": e["cost"]["macs"],
            "latency_b1_ms": e["cost"]["latency_batch1"]["median_ms"],
            "throughput_img_s": max(v["images_per_s"] for k, v in e["cost"].items() if k.startswith("latency_batch")),
            "train_wall_s": entry.training.get("wall_time_s"),
            "ci95": e.get("ci95") or {}, "tta": e.get("tta", "none"),
            # the same metrics on validation, beside the test ones: a user sees when the two splits disagree
            **{f"val_{k}": (e.get("val") or {}).get(k) for k in ("accuracy", "roc_auc", "pr_auc", "f1")},
        })
    rows.sort(key=lambda r: (r[rank_by] is not None, r[rank_by] or 0.0), reverse=True)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows




def load_models(entries: list[Entry], models_dir: Path) -> dict:
    """Each trained model, loaded once (safe mode) for the Grad-CAM figures and the architecture table."""
    from inspectcnn.models.saving import load_model

    return {e.name: load_model(artifacts.model_folder(e.name, models_dir).model) for e in entries}




def annotated_levels(prepared_dir: Path) -> dict[str, float]:
    """id -> annotated level (ELPV's defect probability) of the test cells, from the manifest; {} without."""
    from inspectcnn.data import store

    return store.levels(prepared_dir, "test")


def worst_errors(entry: Entry, count: int) -> list[dict]:
    """The champion's test errors with the highest log loss (confident mistakes first), false positives and
    false negatives alike."""
    rows = []
    for p in entry.predictions:
        actual, probability = int(p["actual"]), float(p["probability"])
        if actual != int(p["predicted"]):
            loss = -np.log(max(probability if actual else 1.0 - probability, 1e-7))
            rows.append({"id": p["id"], "actual": actual, "probability": probability, "group": p.get("group", ""),
                         "kind": "false negative" if actual else "false positive", "loss": float(loss)})
    return sorted(rows, key=lambda r: -r["loss"])[:count]




def level_name(level: float) -> str:
    for value, name in ((0.0, "0"), (1 / 3, "1/3"), (2 / 3, "2/3"), (1.0, "1")):
        if abs(level - value) < 1e-6:
            return name
    return f"{level:g}"


def confusion_by_level(entry: Entry, levels: dict[str, float]) -> list[dict]:
    """Per annotated level (ELPV: the experts' defect probability): how many cells, how many flagged."""
    if not levels:
        return []
    table: dict[float, dict] = {}
    for p in entry.predictions:
        if p["id"] not in levels:
            continue
        level = levels[p["id"]]
        row = table.setdefault(level, {"level": level_name(level), "label": int(p["actual"]), "count": 0,
                                       "flagged": 0})
        row["count"] += 1
        row["flagged"] += int(p["predicted"])
    out = []
    for level in sorted(table):
        row = table[level]
        row["passed"] = row["count"] - row["flagged"]
        row["accuracy"] = (row["flagged"] if row["label"] else row["passed"]) / row["count"]
        out.append(row)
    return out


def architecture_table(entries: list[Entry], models: dict) -> list[dict]:
    from inspectcnn.models.summary import receptive_field

    rows = []
    for entry in entries:
        model = models[entry.name]
        try:
            field = receptive_field(model) if entry.kind == "train" else backbone_field(model)
        except ValueError:
            field = None
        rows.append({"model": entry.name, "input": entry.eval["cost"]["input"], "params": entry.eval["cost"]["params"],
                     "macs": entry.eval["cost"]["macs"], "receptive_field": field})
    return rows


def backbone_field(model) -> int:
    from inspectcnn.models.summary import receptive_field

    base = model.get_layer("backbone")
    return receptive_field(base, base.layers[-1].name)


def significance(entries: list[Entry], champion: str, metric: str, resamples: int, seed: int) -> list[dict]:
    """Every other model against the champion on the same test cells (paired bootstrap on ``metric``),
    in the order of ``entries``: which of them the champion is, or is not, shown to beat."""
    from inspectcnn.scoring import paired_bootstrap

    by_name = {e.name: e for e in entries}

    def table(name):
        found = {r["id"]: (int(r["actual"]), float(r["probability"])) for r in by_name[name].predictions}
        return found, by_name[name].eval["threshold"]

    best, champion_threshold = table(champion)
    ids = sorted(best)
    labels = np.array([best[i][0] for i in ids])
    out = []
    for entry in entries:
        if entry.name == champion:
            continue
        other, threshold = table(entry.name)
        if sorted(other) != ids or not resamples:
            continue
        result = paired_bootstrap(labels, [best[i][1] for i in ids], [other[i][1] for i in ids], metric,
                                  (champion_threshold, threshold), resamples, seed)
        out.append({"model": entry.name, "kind": kind_name(entry.kind), **result})
    return out


def scratch_comparison(entries: list[Entry], metric: str, resamples: int, seed: int) -> dict | None:
    """The from-scratch architectures against the best of them (chosen on validation ``metric``), paired
    bootstrap on the test cells: which are statistically indistinguishable from it."""
    scratch = [e for e in entries if e.kind == "train" and (e.eval.get("val") or {}).get(metric) is not None]
    if len(scratch) < 2:
        return None
    best = max(scratch, key=lambda e: e.eval["val"][metric])
    rows = significance(scratch, best.name, metric, resamples, seed)
    return {"best": best.name, "metric": metric, "value": best.eval["val"][metric], "rows": rows,
            "indistinguishable": [r["model"] for r in rows if not r["significant"]]}


def level_table(entries: list[Entry], rows: list[dict]) -> list[dict]:
    """Accuracy by annotated level (ELPV defect probability) and by group, in ranking order."""
    by_name = {e.name: e for e in entries}
    out = []
    for row in rows:
        e = by_name[row["model"]].eval
        if e.get("levels") or e.get("groups"):
            out.append({"model": row["model"], "levels": e.get("levels") or {},
                        "groups": {g: {"count": m["count"], "accuracy": m["accuracy"]}
                                   for g, m in (e.get("groups") or {}).items()}})
    return out


def champion_reason(record: dict, rows: list[dict], front_macs: set) -> str:
    """Why the champion: the validation rule that chose it, then what it scores on test and what it costs."""
    by_name = {r["model"]: r for r in rows}
    best = by_name[record["champion"]]
    metric = record["select_by"].replace("_", "-")
    text = (f"Chosen on validation: the highest validation {metric} ({record['value']:.3f}, as served with TTA "
            f"{best['tta']}) of {len(record['candidates'])} candidates")
    second = record.get("runner_up")
    text += f", ahead of {second['model']} ({second['value']:.3f})." if second else "."
    ci = best["ci95"]

    def shown(key):
        interval = ci.get(key)
        return f"{best[key]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")

    text += (f" On the test split, which took no part in the choice: accuracy {shown('accuracy')}, "
             f"ROC-AUC {shown('roc_auc')}.")
    cost = f"{best['params']:,} parameters, {best['macs'] / 1e6:,.1f} M MACs per image, {best['latency_b1_ms']:.1f} ms"
    text += f" It costs {cost} at batch 1"
    text += " and is on the accuracy/MACs Pareto front." if best["model"] in front_macs else "."
    return text


