"""An ensemble of trained entries: members and weights chosen on validation, built as one Keras model.

Selection reads only each candidate's validation probabilities (``data/val_predictions/<entry>.csv``,
written by its evaluate stage with the configured test-time augmentation); the test split is never opened here.
The result is a plain Keras model (each member resized to its own input size, the weighted mean of
their probabilities) made of stock layers, so ``inspectcnn predict``, ``mlflow models serve`` and the
evaluate stage use it like any other model.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from inspectcnn.artifacts import val_predictions as val_predictions_file
from inspectcnn.config import EnsembleConfig, Params
from inspectcnn.errors import UserError


class EnsembleError(UserError, ValueError):
    """The ensemble cannot be built from what its candidates left (missing or mismatched predictions)."""


SCORES = {"roc_auc": skm.roc_auc_score, "pr_auc": skm.average_precision_score}


def read_val_predictions(folder: Path, candidates: list[str]) -> tuple[list[str], np.ndarray, dict]:
    """(ids, labels, {candidate: probabilities}) on the validation split, aligned by id."""
    tables = {}
    for name in candidates:
        path = val_predictions_file(name, folder)
        if not path.is_file():
            raise EnsembleError(f"ensemble.candidates: {path} not found; run evaluate for {name} first "
                                "(dvc repro runs it before the ensemble)")
        with path.open(newline="") as handle:
            tables[name] = {row["id"]: (int(row["actual"]), float(row["probability"])) for row in csv.DictReader(handle)}
    ids = sorted(next(iter(tables.values())))
    for name, table in tables.items():
        if sorted(table) != ids:
            raise EnsembleError(f"{name}'s validation predictions cover other cells than {candidates[0]}'s: "
                                "were they evaluated on the same prepared data? Rerun dvc repro")
    labels = np.array([tables[candidates[0]][i][0] for i in ids])
    return ids, labels, {name: np.array([table[i][1] for i in ids]) for name, table in tables.items()}


def select(labels: np.ndarray, probabilities: dict[str, np.ndarray], config: EnsembleConfig) -> dict[str, float]:
    """{member: weight} (weights sum to 1), chosen on validation as ``config.selection`` says."""
    names = list(probabilities)
    if config.selection == "mean":
        return {name: 1.0 / len(names) for name in names}
    score = SCORES[config.metric]
    picks: list[str] = []
    best = -np.inf
    total = np.zeros(len(labels))
    for _ in range(config.max_members):
        trials = {name: score(labels, (total + probabilities[name]) / (len(picks) + 1)) for name in names}
        name = max(names, key=lambda n: (trials[n], -names.index(n)))  # ties: the earlier candidate
        if trials[name] <= best:
            break
        best = trials[name]
        picks.append(name)
        total += probabilities[name]
    counts = Counter(picks)
    return {name: counts[name] / len(picks) for name in names if counts[name]}


def crossfit_scores(labels: np.ndarray, probabilities: dict[str, np.ndarray], config: EnsembleConfig, seed: int,
                    folds: int = 5) -> dict[str, float]:
    """Out-of-fold validation scores of the selection itself: members and weights chosen on four fifths of
    the validation cells score the fifth left out, for each fifth in turn. What the ensemble's own
    validation score would be were it not chosen on the same cells (the champion is compared on this)."""
    from sklearn.model_selection import StratifiedKFold

    folds = max(2, min(folds, int(np.bincount(labels).min())))
    mixed = np.zeros(len(labels))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels):
        weights = select(labels[fit], {name: p[fit] for name, p in probabilities.items()}, config)
        mixed[held] = sum(weight * probabilities[name][held] for name, weight in weights.items())
    return {metric: round(float(score(labels, mixed)), 6) for metric, score in SCORES.items()}


def score_of(labels: np.ndarray, probabilities: dict[str, np.ndarray], weights: dict[str, float], metric: str) -> float:
    mixed = sum(weight * probabilities[name] for name, weight in weights.items())
    return float(SCORES[metric](labels, mixed))


def resize_matrix(source: int, size: int) -> np.ndarray:
    """The (source x size) matrix of the input pipeline's resize (:func:`inspectcnn.data.images.resize`:
    Pillow's box filter when shrinking, bicubic when enlarging) along one axis, on float pixels: resizing X
    is ``M.T @ X @ M``, up to the pipeline's rounding to uint8. Read off Pillow one unit vector at a time."""
    from PIL import Image

    method = Image.Resampling.BOX if source > size else Image.Resampling.BICUBIC
    rows = [np.asarray(Image.fromarray(np.eye(source, dtype=np.float32)[j:j + 1], mode="F").resize(
        (size, 1), method), dtype=np.float32)[0] for j in range(source)]
    return np.stack(rows)


def _along_axis(x, axis: int, matrix: np.ndarray, name: str):
    """Spatial ``axis`` (1 rows, 2 columns) of ``x`` mapped by a fixed matrix with stock layers (move it
    last, a frozen bias-free Dense, move it back), as :mod:`inspectcnn.dihedral` mirrors a view: no
    ResizeArea op, which ONNX, OpenVINO and LiteRT do not convert."""
    import keras

    order = (1, 3, 2) if axis == 2 else (3, 2, 1)  # Permute dims count from 1 (batch excluded)
    x = keras.layers.Permute(order, name=f"{name}_to_last", dtype="float32")(x)
    dense = keras.layers.Dense(matrix.shape[1], use_bias=False, trainable=False, name=f"{name}_filter",
                               dtype="float32")
    x = dense(x)
    dense.set_weights([matrix.astype("float32")])
    return keras.layers.Permute(order, name=f"{name}_back", dtype="float32")(x)


def build(members: dict[str, "keras.Model"], weights: dict[str, float]):  # noqa: F821
    """One Keras model: image at the largest member input size -> each member (resized with the input
    pipeline's own filter, channels matched) -> the weighted mean of the members' probabilities."""
    import keras
    from keras import layers

    size = max(int(m.input.shape[1]) for m in members.values())
    channels = min(int(m.input.shape[-1]) for m in members.values())
    image = layers.Input((size, size, channels), name="image")
    outputs = []
    for name, member in members.items():
        x = image
        own = int(member.input.shape[1])
        if own != size:  # Pillow's filter as two fixed matrix products: stock layers every format converts
            matrix = resize_matrix(size, own)
            x = _along_axis(_along_axis(x, 1, matrix, f"{name}_resize_rows"), 2, matrix, f"{name}_resize_columns")
        if int(member.input.shape[-1]) == 3 and channels == 1:
            x = layers.Concatenate(name=f"{name}_gray_to_rgb", dtype="float32")([x] * 3)
        wrapped = keras.Model(member.input, member.output, name=f"member_{name}")
        y = wrapped(x)
        if len(members) > 1:
            y = layers.Rescaling(weights[name], name=f"{name}_weight", dtype="float32")(y)
        outputs.append(y)
    mixed = outputs[0] if len(outputs) == 1 else layers.Add(name="weighted_mean", dtype="float32")(outputs)
    return keras.Model(image, mixed, name="ensemble")


def run(params: Params, models_dir: Path, out_dir: Path, val_predictions: Path) -> dict:
    """The `ensemble` stage: select members on validation (``val_predictions``, every candidate's table),
    build the ensemble from their models in ``models_dir`` and save it to ``out_dir``; its metrics
    (validation only)."""
    import time

    from inspectcnn import artifacts, tracking
    from inspectcnn.config import ENSEMBLE
    from inspectcnn.models.saving import load_model

    config = params.ensemble
    started = time.perf_counter()
    _, labels, probabilities = read_val_predictions(val_predictions, params.ensemble_candidates())
    weights = select(labels, probabilities, config)
    members = {name: load_model(artifacts.model_folder(name, models_dir).model) for name in weights}
    model = build(members, weights)
    alone = {name: round(float(SCORES[config.metric](labels, p)), 4) for name, p in probabilities.items()}
    metrics = {
        "members": {name: round(w, 4) for name, w in weights.items()},
        f"val_{config.metric}_members": alone,
        f"val_{config.metric}": round(score_of(labels, probabilities, weights, config.metric), 4),
        # out-of-fold: the selection scored on validation cells it did not choose on (what the champion uses)
        "val_crossfit": crossfit_scores(labels, probabilities, config, params.seed),
        "selection": config.selection,
        "params": int(model.count_params()),
        "image_size": int(model.input.shape[1]),
    }
    out = artifacts.ModelFolder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_params = {"seed": params.seed, "backend": params.backend, "entry": ENSEMBLE, **config.model_dump(), "tta": params.evaluate.tta}
    with tracking.stage_run(ENSEMBLE, "ensemble", params, run_params) as run:
        tmp = out.model.with_name(f".tmp.{out.model.name}")  # Keras saves only to a name ending in .keras
        model.save(tmp)
        tmp.replace(out.model)
        run.log_metrics({f"val_{config.metric}": metrics[f"val_{config.metric}"],
                         **{f"weight_{k}": v for k, v in weights.items()}})
        run.log_keras_model(model, tuple(int(d) for d in model.input.shape[1:]))
        metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
        if run.active:
            metrics["mlflow_run_id"] = run.run_id
        out.write_training(metrics)
    return metrics
