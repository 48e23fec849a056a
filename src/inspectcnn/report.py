"""The comparison report: ranking, champion, curves, cost, Grad-CAM, per-group results, context.

Writes a self-contained ``report.html`` (figures embedded as base64 PNG, no network) and a
``report.md`` from Jinja2 templates, plus ``ranking.csv`` and ``summary.json``.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspectcnn import artifacts, devices, plots
from inspectcnn.artifacts import read_json, read_table, write_json, write_table
from inspectcnn.config import Params
from inspectcnn.reference import ELPV_TASK, PUBLISHED, RECIPES

log = logging.getLogger(__name__)
COST_KEYS = ("params", "macs")


@dataclass
class Entry:
    name: str
    kind: str  # train | transfer | ensemble
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
            name=name, kind="transfer" if name in params.transfer else "ensemble" if name in params.ensembles()
            else "train",
            eval=folder.read_evaluation(with_run=True), training=folder.read_training(),
            history=read_table(folder.history) if folder.history.is_file() else [], roc=read_table(folder.roc),
            pr=read_table(folder.pr), predictions=read_table(folder.predictions),
        ))
    return entries


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
            "model": entry.name, "kind": entry.kind,
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


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plots.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _figures(entries: list[Entry], rows: list[dict], front_macs: set, front_latency: set) -> dict[str, str]:
    colors = plots.plt.cm.tab20(np.linspace(0, 1, max(len(entries), 2)))
    return {"curves": _curves_figure(entries, colors), "confusion": _confusion_figure(entries),
            "learning": _learning_figure(entries, colors), "pareto": _pareto_figure(rows, front_macs, front_latency)}


def _curves_figure(entries: list[Entry], colors) -> str:
    plt = plots.plt
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    for color, entry in zip(colors, entries):
        roc_axis.plot([float(p["fpr"]) for p in entry.roc], [float(p["tpr"]) for p in entry.roc], color=color,
                      label=f"{entry.name} ({entry.eval['roc_auc']:.3f})")
        pr_axis.plot([float(p["recall"]) for p in entry.pr], [float(p["precision"]) for p in entry.pr], color=color,
                     label=f"{entry.name} ({entry.eval['pr_auc']:.3f})")
    roc_axis.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    pr_axis.set(xlabel="recall", ylabel="precision", title="precision-recall (test)")
    for axis in (roc_axis, pr_axis):
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    return _png(figure)


def _confusion_figure(entries: list[Entry]) -> str:
    plt = plots.plt
    columns = 4
    rows_n = -(-len(entries) // columns)
    figure, axes = plt.subplots(rows_n, columns, figsize=(3.1 * columns, 2.8 * rows_n), squeeze=False)
    for axis, entry in zip(axes.ravel(), entries):
        c = entry.eval["confusion"]
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        axis.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, str(value), ha="center", va="center", color="black" if value < matrix.max() / 2 else "white")
        axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["pred 0", "pred 1"], yticklabels=["true 0", "true 1"],
                 title=entry.name)
    for axis in axes.ravel()[len(entries):]:
        axis.axis("off")
    figure.tight_layout()
    return _png(figure)


def _learning_figure(entries: list[Entry], colors) -> str:
    figure, (loss_axis, auc_axis) = plots.plt.subplots(1, 2, figsize=(11, 4))
    for color, entry in zip(colors, entries):
        epochs = [int(r["epoch"]) for r in entry.history]
        loss_axis.plot(epochs, [float(r["val_loss"]) for r in entry.history], color=color, label=entry.name)
        auc_axis.plot(epochs, [float(r["val_auc"]) for r in entry.history], color=color, label=entry.name)
    loss_axis.set(xlabel="epoch", ylabel="validation loss", title="learning curves")
    auc_axis.set(xlabel="epoch", ylabel="validation ROC-AUC")
    for axis in (loss_axis, auc_axis):
        axis.grid(alpha=0.3)
    auc_axis.legend(fontsize=7)
    return _png(figure)


def _pareto_figure(rows: list[dict], front_macs: set, front_latency: set) -> str:
    figure, axes = plots.plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, front, label in ((axes[0], "macs", front_macs, "multiply-accumulates per image (log)"),
                                    (axes[1], "latency_b1_ms", front_latency, "latency, batch 1 (ms, log)")):
        for row in rows:
            on_front = row["model"] in front
            axis.scatter(row[key], row["accuracy"], s=60 if on_front else 25, color="C3" if on_front else "C0")
            axis.annotate(row["model"], (row[key], row["accuracy"]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
        ordered = sorted((r for r in rows if r["model"] in front), key=lambda r: r[key])
        axis.plot([r[key] for r in ordered], [r["accuracy"] for r in ordered], "C3--", lw=1, label="Pareto front")
        axis.set(xscale="log", xlabel=label, ylabel="test accuracy")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _png(figure)


def load_models(entries: list[Entry], models_dir: Path) -> dict:
    """Each trained model, loaded once (safe mode) for the Grad-CAM figures and the architecture table."""
    from inspectcnn.models.saving import load_model

    return {e.name: load_model(artifacts.model_folder(e.name, models_dir).model) for e in entries}


def gradcam_figures(entries: list[Entry], models: dict, prepared_dir: Path, per_category: int) -> dict[str, str]:
    """For each model: Grad-CAM maps of a few true positives, false positives and false negatives."""
    if per_category == 0:
        return {}
    from inspectcnn.data.dataset import load_split
    from inspectcnn.gradcam import gradcam

    plt = plots.plt
    found = {}
    for entry in entries:
        if entry.kind == "ensemble":  # its members have their own maps
            continue
        model = models[entry.name]
        size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
        picks = []
        for category, (actual, predicted) in (("TP", (1, 1)), ("FP", (0, 1)), ("FN", (1, 0))):
            chosen = [p for p in entry.predictions if int(p["actual"]) == actual and int(p["predicted"]) == predicted]
            chosen.sort(key=lambda p: -abs(float(p["probability"]) - 0.5))  # the most confident first
            picks += [(category, p) for p in chosen[:per_category]]
        if not picks:
            continue
        wanted = {p["id"] for _, p in picks}
        images = {}
        data = load_split(prepared_dir, "test", image_size=size, batch_size=64, channels=channels, cache=False)
        batches = {}  # each batch holding a pick, built once
        for position, item in enumerate(data.ids):
            if item in wanted:
                index = position // data.batch_size
                batches.setdefault(index, data[index][0])
                images[item] = batches[index][position % data.batch_size]
        figure, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.5), squeeze=False)
        for axis, (category, pick) in zip(axes[0], picks):
            image = images[pick["id"]]
            axis.imshow(image[..., 0], cmap="gray")
            axis.imshow(gradcam(model, image), cmap="jet", alpha=0.4)
            axis.set_title(f"{category} p={float(pick['probability']):.2f}", fontsize=8)
            axis.axis("off")
        figure.suptitle(entry.name, fontsize=9)
        found[entry.name] = _png(figure)
    return found


def _test_images(prepared_dir: Path, ids: set[str], size: int, channels: int) -> dict[str, np.ndarray]:
    """The test images of ``ids`` as the model sees them (each batch holding one built once)."""
    from inspectcnn.data.dataset import load_split

    data = load_split(prepared_dir, "test", image_size=size, batch_size=64, channels=channels, cache=False)
    images, batches = {}, {}
    for position, item in enumerate(data.ids):
        if item in ids:
            index = position // data.batch_size
            batches.setdefault(index, data[index][0])
            images[item] = batches[index][position % data.batch_size]
    return images


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


def error_gallery(entry: Entry, model, prepared_dir: Path, count: int, levels: dict[str, float]) -> dict:
    """The champion's worst test errors: each cell with its Grad-CAM overlay (where the network looked),
    true label, probability, annotated level and group."""
    errors = worst_errors(entry, count)
    for error in errors:
        level = levels.get(error["id"])
        error["level"] = _level_name(level) if level is not None else ""
    if not errors:
        return {"rows": [], "image": None, "gradcam": False}
    from inspectcnn.gradcam import gradcam

    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    images = _test_images(prepared_dir, {e["id"] for e in errors}, size, channels)
    has_features = any(layer.name == "features" for layer in model.layers)
    plt = plots.plt
    columns = min(4, len(errors))
    rows_ = -(-len(errors) // columns)
    figure, axes = plt.subplots(rows_, columns, figsize=(2.6 * columns, 2.9 * rows_), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, error in zip(axes.ravel(), errors):
        image = images[error["id"]]
        axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        if has_features:
            axis.imshow(gradcam(model, image), cmap="jet", alpha=0.4)
        label = "FN" if error["actual"] else "FP"
        where = " ".join(x for x in (f"level {error['level']}" if error["level"] else "", error["group"]) if x)
        axis.set_title(f"{label} p={error['probability']:.2f}\n{where}", fontsize=8)
    figure.suptitle(f"{entry.name}: worst test errors" + (" with Grad-CAM" if has_features else ""), fontsize=9)
    return {"rows": errors, "image": _png(figure), "gradcam": has_features}


def _level_name(level: float) -> str:
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
        row = table.setdefault(level, {"level": _level_name(level), "label": int(p["actual"]), "count": 0,
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
            field = receptive_field(model) if entry.kind == "train" else _backbone_field(model)
        except ValueError:
            field = None
        rows.append({"model": entry.name, "input": entry.eval["cost"]["input"], "params": entry.eval["cost"]["params"],
                     "macs": entry.eval["cost"]["macs"], "receptive_field": field})
    return rows


def _backbone_field(model) -> int:
    from inspectcnn.models.summary import receptive_field

    base = model.get_layer("backbone")
    return receptive_field(base, base.layers[-1].name)


def significance(entries: list[Entry], champion: str, metric: str, resamples: int, seed: int) -> list[dict]:
    """Every other model against the champion on the same test cells (paired bootstrap on ``metric``),
    in the order of ``entries``: which of them the champion is, or is not, shown to beat."""
    from inspectcnn.evaluation import paired_bootstrap

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
        out.append({"model": entry.name, "kind": entry.kind, **result})
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


def run(params: Params, models_dir: Path, prepared_dir: Path, summary_path: Path, champion_path: Path,
        export_path: Path | None, health_path: Path | None, out_dir: Path) -> dict:
    """The `report` stage: every evaluated entry compared, the champion (the champion stage's record) and the
    export checks shown; report.html, report.md, ranking.csv and summary.json written to ``out_dir``."""
    from inspectcnn import champion as choice, export as exporting

    entries = collect(params, models_dir)
    record = choice.read(champion_path)
    champion = record["champion"]
    if champion not in {e.name for e in entries}:
        raise choice.ChampionError(f"{champion_path} names {champion}, which is not an entry of params.yaml: "
                                   "run the champion stage again (dvc repro champion)")
    rows = ranking(entries, params.report.rank_by)
    models = load_models(entries, models_dir)
    export = read_json(export_path) if export_path and export_path.is_file() else None
    if export and export.get("champion") != champion:
        raise choice.ChampionError(f"{export_path} exported {export.get('champion')}, but the champion is "
                                   f"{champion}: run the export stage again (dvc repro export)")
    data = read_json(summary_path) if summary_path.is_file() else {}
    context = _context(params, entries, rows, models, record, prepared_dir, data, health_path)
    context.update(export=export, export_problems=exporting.problems(export))
    _render(context, out_dir)
    write_table(out_dir / artifacts.RANKING.name, [
        {**{k: v for k, v in row.items() if k != "ci95"},
         **{f"{m}_ci_{end}": (row["ci95"].get(m) or [None, None])[i] for m in ("accuracy", "roc_auc", "f1")
            for i, end in enumerate(("low", "high"))}}
        for row in rows])
    best = next(r for r in rows if r["model"] == champion)
    summary = {"champion": champion, "select_by": record["select_by"], "champion_val": record["value"],
               "champion_roc_auc": best["roc_auc"], "champion_accuracy": best["accuracy"],
               "champion_ci95": best["ci95"], "models": len(rows), "export_problems": context["export_problems"]}
    write_json(out_dir / artifacts.SUMMARY.name, summary)
    return summary


def _context(params: Params, entries: list[Entry], rows: list[dict], models: dict, record: dict,
             prepared_dir: Path, data: dict, health_path: Path | None) -> dict:
    """What the templates show (all but the registry and export lines)."""
    champion = record["champion"]
    by_name = {e.name: e for e in entries}
    front_macs = pareto_front({r["model"]: (r["accuracy"], r["macs"]) for r in rows})
    front_latency = pareto_front({r["model"]: (r["accuracy"], r["latency_b1_ms"]) for r in rows})
    test_levels = annotated_levels(prepared_dir)
    config = params.report
    return {
        "rows": rows, "rank_by": config.rank_by, "champion": champion, "choice": record,
        "reason": champion_reason(record, rows, front_macs),
        "front_macs": sorted(front_macs), "front_latency": sorted(front_latency),
        "figures": _figures(entries, rows, front_macs, front_latency),
        "gradcams": gradcam_figures(entries, models, prepared_dir, config.gradcam_per_category),
        "groups": {e.name: e.eval["groups"] for e in entries if e.eval["groups"]},
        "data": data,
        "architectures": architecture_table(entries, models),
        "published": PUBLISHED, "task": ELPV_TASK, "environment": devices.environment(),
        "threshold_rule": params.evaluate.threshold, "tta": params.evaluate.tta,
        "resamples": params.evaluate.bootstrap, "recipes": RECIPES,
        "significance": significance(entries, champion, record["select_by"], params.evaluate.bootstrap, params.seed),
        "select_by": record["select_by"],
        "scratch": scratch_comparison(entries, record["select_by"], params.evaluate.bootstrap, params.seed),
        "levels": level_table(entries, rows),
        "gallery": error_gallery(by_name[champion], models[champion], prepared_dir, config.error_gallery,
                                 test_levels) if config.error_gallery else {"rows": [], "image": None},
        "level_confusion": confusion_by_level(by_name[champion], test_levels),
        "health": {**(data.get("health") or {}),
                   **(read_json(health_path) if health_path and health_path.is_file() else {})},
        # ELPV's description, published results and measured recipes describe ELPV only
        "is_elpv": data.get("source") == "elpv",
    }


def _render(context: dict, out_dir: Path) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    templates = Environment(loader=PackageLoader("inspectcnn", "templates"),
                            autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    for page in (artifacts.REPORT_HTML, artifacts.REPORT_MD):
        artifacts.write_text(out_dir / page.name, templates.get_template(f"{page.name}.j2").render(**context))
