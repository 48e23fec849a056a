"""Exporting the champion for deployment, each file checked against the Keras model it came from.

Every format is written by the libraries that own it: Keras 3's ``model.export`` (ONNX through tf2onnx,
LiteRT through the TFLite converter, OpenVINO through ``openvino.convert_model``), the TFLite converter's
own float16 and full-integer int8 quantisation (a representative set of **training** images), NNCF's
post-training int8 quantisation for OpenVINO. Nothing here converts a layer by hand.

For each file: max and mean |delta probability| against the Keras model on the whole test split, test
accuracy and ROC-AUC at the model's own validation threshold, file size and batch-1 latency through its own
runtime. A format that fails to convert is recorded with the format and the operation named, and the others
still export; a format whose package is missing is skipped under ``formats: auto`` and an error before any
work when params name it.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from inspectcnn import formats
from inspectcnn.config import EXPORT_FORMATS, Params
from inspectcnn.errors import UserError

log = logging.getLogger(__name__)

FORMATS = formats.FORMATS  # the registry shared with serving (inspectcnn.formats)
assert tuple(FORMATS) == EXPORT_FORMATS
AUTO_FORMATS = tuple(name for name, fmt in FORMATS.items() if fmt.auto)  # export.formats: auto
PACKAGE_NAMES = {"ai_edge_litert": "ai-edge-litert"}  # import name -> pip name


class ExportError(UserError, RuntimeError):
    """Params that ask for an export this machine cannot do."""


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a package that refuses to be found (a blocked or broken install)
        return False


def unavailable(fmt: str, backend: str) -> str | None:
    """Why ``fmt`` cannot be exported here (a missing package, an unsupported backend), or None."""
    needs = formats.backend_needs(FORMATS[fmt], backend)
    if isinstance(needs, str):
        return needs
    missing = [PACKAGE_NAMES.get(n, n) for n in needs if not _installed(n)]
    return f"needs the Python package(s) {', '.join(missing)} (not installed)" if missing else None


def resolve_formats(params: Params) -> tuple[list[str], dict[str, str]]:
    """(formats to export, {skipped format: reason}); a ExportError when params name one that can't be done."""
    wanted = params.export.formats
    candidates = AUTO_FORMATS if wanted == "auto" else wanted
    reasons = {fmt: why for fmt in candidates if (why := unavailable(fmt, params.backend))}
    if wanted != "auto" and reasons:
        raise ExportError("export.formats names formats this machine cannot export: "
                          + "; ".join(f"{fmt}: {why}" for fmt, why in reasons.items())
                          + ". Install them, or drop them from export.formats (auto skips what is missing)")
    chosen = [fmt for fmt in candidates if fmt not in reasons]
    return chosen, reasons


def _export_one(model, fmt: str, path: Path, calibration: np.ndarray, spec: dict) -> None:
    """``FORMATS[fmt].convert`` into ``path`` (the model called once first: the ONNX exporter needs it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = tuple(int(d) for d in model.input.shape[1:])
    model.predict_on_batch(np.zeros((1, *size), np.float32))
    FORMATS[fmt].convert(model, path, calibration, spec)


def batch_predict(runner, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([runner.predict(images[i:i + batch]) for i in range(0, len(images), batch)])


def latency_ms(call, image: np.ndarray, runs: int) -> float:
    """Batch-1 latency through ``call``: the project's one protocol (:func:`inspectcnn.scoring.time_calls`)."""
    from inspectcnn.scoring import time_calls

    return time_calls(call, image, runs)["median_ms"]


def scores(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Test accuracy and ROC-AUC at ``threshold``, as :mod:`inspectcnn.scoring` computes them."""
    from inspectcnn.scoring import point_metrics

    found = point_metrics(np.asarray(labels).astype(int), np.asarray(probabilities, dtype=float), threshold)
    auc = found["roc_auc"]
    return {"accuracy": round(float(found["accuracy"]), 6),
            "roc_auc": None if not np.isfinite(auc) else round(float(auc), 6)}


def split_arrays(prepared: Path, split: str, size: int, channels: int,
                 with_ids: bool = False) -> tuple[np.ndarray, ...]:
    """(images float32 N x S x S x C as the model sees them, labels[, ids]) of a whole split, unaugmented."""
    from inspectcnn.data.dataset import load_split

    data = load_split(prepared, split, image_size=size, batch_size=256, channels=channels)
    found = np.concatenate([data[i][0] for i in range(len(data))]), data.labels.ravel().astype(int)
    return (*found, list(data.ids)) if with_ids else found


def evaluated_probabilities(model_dir: Path, ids: list[str], labels: np.ndarray) -> np.ndarray | None:
    """The test probabilities the evaluate stage computed with this very model (its predictions.csv, written
    at float32 precision), in the order of ``ids``; None when they are missing or do not match the split
    (then the export predicts them itself)."""
    from inspectcnn.artifacts import ModelFolder, read_table

    path = ModelFolder(model_dir).predictions
    if not path.is_file():
        return None
    rows = {row["id"]: row for row in read_table(path)}
    if set(rows) != set(ids) or any(int(rows[i]["actual"]) != int(a) for i, a in zip(ids, labels)):
        return None
    return np.array([np.float32(rows[i]["probability"]) for i in ids], dtype=np.float64)


def calibration_set(prepared: Path, size: int, channels: int, count: int, seed: int) -> np.ndarray:
    """``count`` training images (seeded draw, no augmentation): what the int8 formats calibrate on."""
    images, _ = split_arrays(prepared, "train", size, channels)
    chosen = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    return images[np.sort(chosen)]


def export_champion(params: Params, champion: str, models_dir: Path, prepared: Path, out: Path) -> dict:
    """Export ``models/<champion>`` (with its test-time augmentation) in every chosen format under ``out``;
    returns what reports/export.json holds."""
    from inspectcnn import artifacts, dihedral, ood, ood_probes, serving
    from inspectcnn.models.saving import load_model

    chosen, skipped = resolve_formats(params)  # before any long work
    folder = artifacts.model_folder(champion, models_dir)
    evaluation = folder.read_evaluation()
    trained, tta = load_model(folder.model), evaluation.get("tta", "none")
    model = dihedral.tta_model(trained, tta)
    size, channels = int(model.input.shape[1]), int(model.input.shape[-1])
    spec = serving.entry_spec(champion, model, evaluation, prepared)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scored, ood_record = None, {"method": "none"}
    if params.export.ood.method != "none":
        try:  # the bank (training split) and threshold (validation) into the spec, checked on the probe sets
            scored, _, test_scores, ood_record = ood_probes.fit_for_export(trained, tta, prepared, params.export.ood, spec,
                                                                    params.seed, out)
        except ood.OodError as error:
            ood_record = {"method": "none", "reason": str(error)}
            log.warning("no out-of-distribution score: %s", error)
    serving.write_spec(spec, out)
    images, labels, ids = split_arrays(prepared, "test", size, channels, with_ids=True)
    calibration = (calibration_set(prepared, size, channels, params.export.calibration_size, params.seed)
                   if any(FORMATS[f].precision == "int8" for f in chosen) else images[:0])
    reference = evaluated_probabilities(folder.root, ids, labels)
    log.info("export: the Keras reference is %s", "the evaluate stage's test probabilities (same model, same "
             "images)" if reference is not None else "predicted here (no matching predictions.csv)")
    rows = export_model(model, spec, chosen, images, labels, calibration, params.export, out, reference,
                        ood=(scored, test_scores) if scored is not None else None)
    for fmt, why in skipped.items():
        rows[fmt] = {"format": fmt, "precision": FORMATS[fmt].precision, "status": "skipped", "reason": why}
        log.warning("%s skipped: %s", fmt, why)
    return {"champion": champion, "threshold": float(spec["threshold"]), "tta": spec["tta"],
            "test_count": int(len(labels)), "calibration": {"split": "train", "count": int(len(calibration))},
            "tolerances": {"parity": params.export.parity_tolerance,
                           "int8_accuracy_drop": params.export.int8_accuracy_drop},
            "formats": rows, "ood": ood_record}


def export_model(model, spec: dict, chosen: list[str], images: np.ndarray, labels: np.ndarray,
                 calibration: np.ndarray, config, out: Path, reference: np.ndarray | None = None,
                 ood: tuple | None = None) -> dict[str, dict]:
    """Each of ``chosen`` written under ``out`` and checked on (images, labels) against ``model`` (whose
    probabilities on ``images`` are ``reference`` when already known); a row per format (and one for Keras
    itself). One format failing to convert or to run leaves the others. ``ood``: (the model with the
    out-of-distribution score as a second output, the score of each of ``images``): the ONNX file is made
    from it, and its second output checked against those scores."""
    from inspectcnn import ood_probes
    import keras
    from tqdm import tqdm

    threshold = float(spec["threshold"])
    if reference is None:
        reference = np.concatenate([np.asarray(model.predict_on_batch(images[i:i + 64]), dtype=np.float64).ravel()
                                    for i in range(0, len(images), 64)])
    one = images[:1]
    keras_row = {"format": "keras", "precision": "float32", "runtime": f"keras {keras.__version__}",
                 "status": "ok", **scores(labels, reference, threshold),
                 "latency_b1_ms": latency_ms(model.predict_on_batch, one, config.latency_runs)}
    rows = {"keras": keras_row}
    # the converters' INFO lines ("Assets written to: <tmp>/assets", tf2onnx's steps); their warnings stay
    for name in ("tf2onnx", "tensorflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for fmt in (bar := tqdm(chosen, desc="export", unit="format", disable=None)):  # a bar only on a terminal
        bar.set_postfix_str(fmt)
        carries = ood is not None and fmt == "onnx"
        rows[fmt] = export_format(ood[0] if carries else model, fmt, out / FORMATS[fmt].file, spec, calibration,
                                  (images, labels), reference, keras_row, config)
        rows[fmt]["ood_output"] = carries and rows[fmt]["status"] == "ok"
        if rows[fmt]["ood_output"]:
            rows[fmt].update(ood_probes.onnx_parity(out / FORMATS[fmt].file, images, ood[1]))
    return rows


def export_format(model, fmt: str, path: Path, spec: dict, calibration: np.ndarray, test: tuple, reference,
                  keras_row: dict, config) -> dict[str, Any]:
    """One format written to ``path`` and checked on ``test`` (images, labels) against the Keras
    ``reference`` probabilities: its row (status ok, or failed with the reason, the other formats unaffected)."""
    from inspectcnn import serving
    from inspectcnn.backend import CONVERTER_NOISE, native_output_filtered

    images, labels = test
    row: dict[str, Any] = {"format": fmt, "precision": FORMATS[fmt].precision, "file": str(path)}
    try:
        with formats.converting():
            _export_one(model, fmt, path, calibration, spec)
    except Exception as error:  # noqa: BLE001 - one format's converter failing leaves the others to export
        row.update(status="failed", error=formats.conversion_error(fmt, error, model))
        log.error("%s", row["error"])
        return row
    try:
        with native_output_filtered(CONVERTER_NOISE):  # the LiteRT interpreter's "Created ... delegate"
            runner = serving.open_runner(path)
            probabilities = batch_predict(runner, images)
        latency = latency_ms(runner.predict, images[:1], config.latency_runs)
    except Exception as error:  # noqa: BLE001 - written, but its runtime cannot run it
        row.update(status="failed", error=f"{fmt}: exported, but {_runtime(fmt)} cannot run it "
                                          f"({type(error).__name__}: {str(error).splitlines()[0][:300]})")
        log.error("%s", row["error"])
        return row
    delta = np.abs(probabilities - reference)
    row.update(status="ok", size_bytes=formats.file_size(path), runtime=_runtime(fmt),
               parity_max=float(f"{delta.max():.3g}"), parity_mean=float(f"{delta.mean():.3g}"),
               **scores(labels, probabilities, float(spec["threshold"])), latency_b1_ms=latency)
    row.update(_check(row, keras_row, config))
    log.info("%s: %s", fmt, row["check"])
    return row


def problems(result: dict) -> dict[str, list[str]]:
    """What nobody may miss in an export result: {"failed": [...], "skipped": [...], "missed": [...]}, each
    a "format: reason" line (failed to convert or run; not exported here; outside its tolerance)."""
    found: dict[str, list[str]] = {"failed": [], "skipped": [], "missed": []}
    for fmt, row in (result or {}).get("formats", {}).items():
        if row.get("status") == "failed":
            error = str(row.get("error") or "")
            found["failed"].append(error if error.startswith(f"{fmt}:") else f"{fmt}: {error}")
        elif row.get("status") == "skipped":
            found["skipped"].append(f"{fmt}: {row.get('reason')}")
        elif row.get("within_tolerance") is False:
            found["missed"].append(f"{fmt}: {row.get('check')}")
    return found


def latency_verdict(export: dict, fmt: str = "onnx_int8") -> dict | None:
    """Whether ``fmt``'s batch-1 latency (an export record with its run record merged, its ``latency_target_ms`` beside the formats) meets the target."""
    row = (export or {}).get("formats", {}).get(fmt) or {}
    if row.get("status") != "ok" or "latency_b1_ms" not in row:
        return None
    target = float(export["latency_target_ms"])
    return {"format": fmt, "ms": float(row["latency_b1_ms"]), "target_ms": target,
            "met": float(row["latency_b1_ms"]) < target}


def _runtime(fmt: str) -> str:
    return formats.ENGINES[FORMATS[fmt].engine].version()


def _check(row: dict, keras_row: dict, config) -> dict:
    """Whether the file meets its tolerance: float formats on parity, int8 on the accuracy drop."""
    if row["precision"] == "int8":
        drop = keras_row["accuracy"] - row["accuracy"]
        ok = drop <= config.int8_accuracy_drop + 1e-12
        text = (f"int8 accuracy {row['accuracy']:.4f} vs {keras_row['accuracy']:.4f} in Keras: drop {drop:+.4f}, "
                + ("within" if ok else f"MISSED by {drop - config.int8_accuracy_drop:.4f}, beyond")
                + f" the {config.int8_accuracy_drop} allowed")
        return {"accuracy_drop": round(drop, 6), "within_tolerance": bool(ok), "check": text}
    tolerance = config.float16_parity_tolerance if row["precision"] == "float16" else config.parity_tolerance
    ok = row["parity_max"] < tolerance
    text = (f"max |delta p| {row['parity_max']:.2e} (mean {row['parity_mean']:.2e}) vs Keras: "
            + ("within" if ok else f"MISSED by {row['parity_max'] - tolerance:.2e}, beyond")
            + f" the {tolerance:g} allowed for {row['precision']}")
    return {"within_tolerance": bool(ok), "check": text}


def run(params: Params, models: Path, prepared: Path, out: Path, metrics: Path, champion_path: Path,
        run_record: Path) -> dict:
    """The `export` stage: the champion of ``champion_path`` (the champion stage's record) in every chosen
    format under ``out``, each checked; the checks written to ``metrics``, their latencies to ``run_record``."""
    from inspectcnn import champion as choice
    from inspectcnn.artifacts import write_export

    resolve_formats(params)  # a format params name that cannot be exported: an error before any work
    record = choice.read(champion_path)
    log.info("export: champion %s (validation %s %.4f) -> %s", record["champion"], record["select_by"],
             record["value"], out)
    result = export_champion(params, record["champion"], models, prepared, out)
    write_export(result, metrics, run_record)
    return result
