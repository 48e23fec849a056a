"""The pages the report renders: figures (embedded as base64 PNG, no network), Grad-CAM maps and the error
gallery, and the Jinja2 templates of report.html and report.md."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import numpy as np

from inspectcnn import artifacts, plots
from inspectcnn.report.numbers import Entry, level_name, worst_errors

log = logging.getLogger(__name__)


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plots.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def figures(entries: list[Entry], rows: list[dict], front_macs: set, front_latency: set) -> dict[str, str]:
    colors = plots.plt.cm.tab20(np.linspace(0, 1, max(len(entries), 2)))
    return {"curves": curves_figure(entries, colors), "confusion": confusion_figure(entries),
            "learning": learning_figure(entries, colors), "pareto": pareto_figure(rows, front_macs, front_latency)}


def curves_figure(entries: list[Entry], colors) -> str:
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
    return png(figure)


def confusion_figure(entries: list[Entry]) -> str:
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
    return png(figure)


def learning_figure(entries: list[Entry], colors) -> str:
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
    return png(figure)


def pareto_figure(rows: list[dict], front_macs: set, front_latency: set) -> str:
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
    return png(figure)




def accuracy_latency_figure(teacher: dict | None, student: dict, target_ms: float, names: tuple[str, str]) -> str:
    """Test accuracy against batch-1 latency of every checked file of the champion (``teacher``, its export
    record) and of the edge student (``student``), with the student's latency budget."""
    figure, axis = plots.plt.subplots(figsize=(7.5, 4.2))
    for record, marker, color, name in ((teacher, "o", "C0", names[0]), (student, "s", "C3", names[1])):
        points = [(fmt, r) for fmt, r in ((record or {}).get("formats") or {}).items()
                  if r.get("status") == "ok" and r.get("latency_b1_ms")]
        for fmt, row in points:
            axis.scatter(row["latency_b1_ms"], row["accuracy"], marker=marker, color=color, s=40)
            axis.annotate(fmt, (row["latency_b1_ms"], row["accuracy"]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
        if points:
            axis.scatter([], [], marker=marker, color=color, label=name)
    axis.axvline(target_ms, color="0.4", ls="--", lw=1, label=f"edge budget {target_ms:g} ms")
    axis.set(xscale="log", xlabel="latency, batch 1, through each file's runtime (ms, log)", ylabel="test accuracy")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return png(figure)


def gradcam_figures(entries: list[Entry], models: dict, prepared_dir: Path, per_category: int) -> dict[str, str]:
    """For each model: Grad-CAM maps of a few true positives, false positives and false negatives."""
    if per_category == 0:
        return {}
    from inspectcnn.gradcam import gradcam

    plt = plots.plt
    found = {}
    for entry in entries:
        if entry.kind in ("ensemble", "anomaly"):  # members have their own maps; a detector has anomaly maps
            continue
        model = models[entry.name]
        size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
        picks = confident_picks(entry, per_category)
        if not picks:
            continue
        images = test_images(prepared_dir, {p["id"] for _, p in picks}, size, channels)
        figure, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.5), squeeze=False)
        for axis, (category, pick) in zip(axes[0], picks):
            image = images[pick["id"]]
            axis.imshow(image[..., 0], cmap="gray")
            axis.imshow(gradcam(model, image), cmap="jet", alpha=0.4)
            axis.set_title(f"{category} p={float(pick['probability']):.2f}", fontsize=8)
            axis.axis("off")
        figure.suptitle(entry.name, fontsize=9)
        found[entry.name] = png(figure)
    return found


def confident_picks(entry: Entry, per_category: int) -> list[tuple[str, dict]]:
    """An entry's most confident true positives, false positives and false negatives of the test split."""
    picks = []
    for category, (actual, predicted) in (("TP", (1, 1)), ("FP", (0, 1)), ("FN", (1, 0))):
        chosen = [p for p in entry.predictions if int(p["actual"]) == actual and int(p["predicted"]) == predicted]
        chosen.sort(key=lambda p: -abs(float(p["probability"]) - 0.5))  # the most confident first
        picks += [(category, p) for p in chosen[:per_category]]
    return picks


def anomaly_figures(entries: list[Entry], models: dict, prepared_dir: Path, champion: str,
                    per_category: int) -> dict[str, str]:
    """For each anomaly detector: the champion's Grad-CAM (top row) and the detector's anomaly map (bottom row)
    on the same test cells (the champion's most confident TP, FP and FN), each with its own score."""
    import keras

    from inspectcnn.gradcam import gradcam

    detectors = [e for e in entries if e.kind == "anomaly"]
    by_name = {e.name: e for e in entries}
    picks = confident_picks(by_name[champion], max(per_category, 1))
    if not detectors or not picks:
        return {}
    plt, found = plots.plt, {}
    best = models[champion]
    has_features = any(layer.name == "features" for layer in best.layers)
    cells = test_images(prepared_dir, {p["id"] for _, p in picks}, int(best.input.shape[1]), int(best.input.shape[-1]))
    for entry in detectors:
        model = models[entry.name]
        mapper = keras.Model(model.input, model.get_layer("anomaly_map").output)  # (B, grid, grid, 1)
        size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
        own = test_images(prepared_dir, {p["id"] for _, p in picks}, size, channels)
        scores = {p["id"]: float(p["probability"]) for p in entry.predictions}
        figure, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks), 5.0), squeeze=False)
        for column, (category, pick) in enumerate(picks):
            top, bottom = axes[0][column], axes[1][column]
            top.imshow(cells[pick["id"]][..., 0], cmap="gray", vmin=0, vmax=1)
            if has_features:
                top.imshow(gradcam(best, cells[pick["id"]]), cmap="jet", alpha=0.4)
            top.set_title(f"{champion} {category} p={float(pick['probability']):.2f}", fontsize=7)
            image = own[pick["id"]]
            heat = np.asarray(mapper.predict_on_batch(image[None]))[0, :, :, 0]
            bottom.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            bottom.imshow(heat, cmap="jet", alpha=0.4, extent=(-0.5, size - 0.5, size - 0.5, -0.5),
                          interpolation="bilinear")
            bottom.set_title(f"{entry.name} score={scores.get(pick['id'], float('nan')):.2f}", fontsize=7)
            top.axis("off"), bottom.axis("off")
        figure.suptitle(f"{champion}'s Grad-CAM (top) and {entry.name}'s anomaly map (bottom, red: far from the "
                        "good cells at that position)", fontsize=8)
        found[entry.name] = png(figure)
    return found


def test_images(prepared_dir: Path, ids: set[str], size: int, channels: int) -> dict[str, np.ndarray]:
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




def error_gallery(entry: Entry, model, prepared_dir: Path, count: int, levels: dict[str, float]) -> dict:
    """The champion's worst test errors: each cell with its Grad-CAM overlay (where the network looked),
    true label, probability, annotated level and group."""
    errors = worst_errors(entry, count)
    for error in errors:
        level = levels.get(error["id"])
        error["level"] = level_name(level) if level is not None else ""
    if not errors:
        return {"rows": [], "image": None, "gradcam": False}
    from inspectcnn.gradcam import gradcam

    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    images = test_images(prepared_dir, {e["id"] for e in errors}, size, channels)
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
    return {"rows": errors, "image": png(figure), "gradcam": has_features}




def render(context: dict, out_dir: Path) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    templates = Environment(loader=PackageLoader("inspectcnn", "templates"),
                            autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    for page in (artifacts.REPORT_HTML, artifacts.REPORT_MD):
        artifacts.write_text(out_dir / page.name, templates.get_template(f"{page.name}.j2").render(**context))

