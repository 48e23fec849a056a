"""Anomaly detection from good cells only (the `anomaly@<entry>` stages): PaDiM (Defard et al. 2021, "PaDiM: a
Patch Distribution Modeling Framework for Anomaly Detection and Localization") on the offline ImageNet
EfficientNet-Lite, fitted on the **good cells of the training split** (no defect label is read but the one
that says which cells are good), then evaluated like every model.

The detector is one Keras model of stock layers (it loads with ``safe_mode``, evaluates, exports and serves
like any entry):

image -> gray to RGB -> EfficientNet-Lite preprocessing -> the base's outputs of ``stages`` (strides 4, 8, 16),
pooled or upsampled to the stride-8 grid and concatenated (a patch feature per grid position) -> a seeded
choice of ``dims`` channels (a fixed 0/1 ``Dense``) -> per position p, the whitened deviation
W_p (x - mu_p) (one ``EinsumDense``; W_p is the inverse Cholesky factor of the position's covariance, so the
squared norm is the squared Mahalanobis distance) -> the squared norm per position (``anomaly_map``) -> its
maximum over the grid (``image_score``) -> s / (s + c), c the good training cells' median score
(``predictions``: in [0, 1), ordered as the score, 0.5 at c; **not** a calibrated probability).

Its decision threshold is chosen on validation by the evaluate stage like every other entry's.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np

from inspectcnn.config import AnomalyConfig, Params

log = logging.getLogger(__name__)

GRID_STRIDE = 8  # the patch grid: one position per 8 x 8 pixels of the input


def extractor(config: AnomalyConfig, channels: int, seed: int):
    """image [0, 1] -> (B, positions, dims): the patch features of every grid position, the chosen channels."""
    import keras
    from keras import layers

    from inspectcnn import efficientnet_lite
    from inspectcnn.backbones import BACKBONES, LITE_WEIGHTS
    from inspectcnn.config import TransferConfig
    from inspectcnn.transfer.base import load_base, preprocess

    base = load_base(TransferConfig(backbone=config.backbone, weights=LITE_WEIGHTS, image_size=config.image_size))
    names = efficientnet_lite.stage_outputs(BACKBONES[config.backbone].constructor)
    taps = keras.Model(base.input, [base.get_layer(names[s]).output for s in config.stages], name="backbone")
    taps.trainable = False
    inputs = layers.Input((config.image_size, config.image_size, channels), name="image")
    x = layers.Concatenate(name="gray_to_rgb")([inputs] * 3) if channels == 1 else inputs
    outputs = taps(preprocess(x, "lite"))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    on_grid = []
    for stage, tensor in zip(config.stages, outputs):
        factor = efficientnet_lite.STAGE_STRIDES[stage - 1] / GRID_STRIDE
        if factor < 1:
            tensor = layers.AveragePooling2D(int(1 / factor), name=f"stage{stage}_pool")(tensor)
        elif factor > 1:
            tensor = layers.UpSampling2D(int(factor), interpolation="nearest", name=f"stage{stage}_upsample")(tensor)
        on_grid.append(tensor)
    x = layers.Concatenate(name="patch_concat")(on_grid) if len(on_grid) > 1 else on_grid[0]
    grid, total = config.image_size // GRID_STRIDE, int(x.shape[-1])
    if config.dims > total:
        raise ValueError(f"anomaly dims {config.dims}: the stages {list(config.stages)} give {total} channels")
    x = layers.Reshape((grid * grid, total), name="patches")(x)
    select = layers.Dense(config.dims, use_bias=False, trainable=False, name="patch_select")
    x = select(x)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=config.dims, replace=False))
    matrix = np.zeros((total, config.dims), np.float32)
    matrix[chosen, np.arange(config.dims)] = 1.0
    select.set_weights([matrix])
    return keras.Model(inputs, x, name="patch_extractor")


def fit_gaussians(features: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, D) good-cell features -> the whitening kernel (P, D, D) and bias (P, D) such that
    ``x @ kernel[p] + bias[p]`` = W_p (x - mu_p), with W_p^T W_p the inverse of the position's covariance
    (+ ``epsilon`` on its diagonal)."""
    count, positions, dims = features.shape
    if count < 2:
        raise ValueError(f"a Gaussian per position needs at least 2 good training cells, got {count}")
    kernel = np.empty((positions, dims, dims), np.float32)
    bias = np.empty((positions, dims), np.float32)
    for p in range(positions):
        x = features[:, p, :].astype(np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        covariance = centred.T @ centred / (count - 1) + epsilon * np.eye(dims)
        whitening = np.linalg.inv(np.linalg.cholesky(covariance))  # W = L^-1: W cov W^T = I
        kernel[p] = whitening.T
        bias[p] = -(whitening @ mean)
    return kernel, bias


def max_distances(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray, chunk: int = 64) -> np.ndarray:
    """The image score (largest squared Mahalanobis distance over the grid) of each of (N, P, D) features."""
    scores = []
    for start in range(0, len(features), chunk):
        z = np.einsum("npc,pcd->npd", features[start:start + chunk], kernel) + bias
        scores.append(np.square(z).sum(axis=-1).max(axis=-1))
    return np.concatenate(scores)


def detector(features_model, kernel: np.ndarray, bias: np.ndarray, center: float):
    """The whole detector (:mod:`inspectcnn.anomaly`'s docstring) on top of ``features_model``."""
    import keras
    from keras import layers

    positions, dims = bias.shape
    grid = int(round(positions ** 0.5))
    whiten = layers.EinsumDense("bpc,pcd->bpd", output_shape=(positions, dims), bias_axes="pd", trainable=False,
                                name="padim_whiten")
    z = whiten(features_model.output)
    whiten.set_weights([kernel, bias])
    squared = layers.Multiply(name="padim_square")([z, z])
    total = layers.EinsumDense("bpd,de->bpe", output_shape=(positions, 1), trainable=False, name="padim_distance")
    distance = total(squared)
    total.set_weights([np.ones((dims, 1), np.float32)])
    anomaly_map = layers.Reshape((grid, grid, 1), name="anomaly_map")(distance)
    score = layers.GlobalMaxPooling2D(name="image_score")(anomaly_map)
    # softsign(s / c) = s / (s + c): 0.5 at the good training cells' median score, monotone, and never saturated
    # in float32 (a logistic of the standardised score rounds every cell far from the training cells to 1.0)
    output = layers.Dense(1, activation="softsign", trainable=False, dtype="float32", name="predictions")
    probability = output(score)
    output.set_weights([np.array([[1.0 / center]], np.float32), np.zeros((1,), np.float32)])
    return keras.Model(features_model.input, probability, name="padim")


def score_model(model):
    """(probability, image score) of a detector: what the ONNX parity check compares."""
    import keras

    return keras.Model(model.input, [model.output, model.get_layer("image_score").output], name="padim_scores")


def good_features(features_model, prepared: Path, split: str, batch_size: int) -> np.ndarray:
    """The patch features of the good cells (label 0) of ``split``; no other label is read."""
    from inspectcnn.data.dataset import load_split

    size, channels = int(features_model.input.shape[1]), int(features_model.input.shape[-1])
    data = load_split(prepared, split, image_size=size, batch_size=batch_size, channels=channels)
    found = []
    for index in range(len(data)):
        images, labels = data[index]
        good = labels[:, 0] == 0
        if good.any():
            found.append(np.asarray(features_model.predict_on_batch(images[good]), np.float32))
    if not found:
        raise ValueError(f"{prepared}: the {split} split has no good (label 0) cells to fit on")
    return np.concatenate(found)


def fit(config: AnomalyConfig, prepared: Path, seed: int):
    """The fitted detector and what its fit measured."""
    from inspectcnn.data.store import read_meta

    channels = int(read_meta(prepared)["channels"])
    started = time.perf_counter()
    features_model = extractor(config, channels, seed)
    features = good_features(features_model, prepared, "train", config.batch_size)
    extracted = time.perf_counter()
    kernel, bias = fit_gaussians(features, config.epsilon)
    scores = max_distances(features, kernel, bias)
    center = float(np.median(scores))
    model = detector(features_model, kernel, bias, center)
    fitted = time.perf_counter()
    positions, dims = bias.shape
    return model, {
        "method": config.method, "good_train_cells": int(len(features)), "grid": int(round(positions ** 0.5)),
        "patch_channels": int(features_model.get_layer("patch_select").kernel.shape[0]), "dims": int(dims),
        "train_score_median": round(center, 4),
        "feature_extraction_s": round(extracted - started, 1), "fit_s": round(fitted - extracted, 1),
        "wall_time_s": round(fitted - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def onnx_parity(model, prepared: Path, backend: str) -> dict:
    """The detector exported to ONNX (Keras' exporter, into a temporary folder) and compared with it on the
    validation split: max |delta| of the probability and of the image score; where the backend cannot export
    ONNX here (JAX without TensorFlow), the reason instead."""
    import importlib.util
    import tempfile

    from inspectcnn.data.dataset import load_split
    from inspectcnn.formats import FORMATS, backend_needs, converting, to_onnx

    needs = backend_needs(FORMATS["onnx"], backend)
    missing = needs if isinstance(needs, str) else [n for n in needs if not _importable(importlib.util, n)]
    if missing:
        return {"onnx_check": f"skipped: ONNX export under the {backend} backend needs {missing}"}
    import onnxruntime

    scored = score_model(model)
    data = load_split(prepared, "val", image_size=int(model.input.shape[1]), batch_size=32,
                      channels=int(model.input.shape[-1]))
    found: list[list[np.ndarray]] = [[], [], [], []]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        scored.predict_on_batch(np.zeros((1, *scored.input.shape[1:]), np.float32))
        with converting():
            to_onnx(scored, path, np.zeros((0,)), {"threshold": None, "model": "anomaly"})
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for index in range(len(data)):
            batch = data[index][0]
            outputs = [*scored.predict_on_batch(batch), *session.run(None, {name: batch})]
            for store, output in zip(found, outputs):
                store.append(np.ravel(output))
    kp, ks, op, os_ = (np.concatenate(a).astype(np.float64) for a in found)
    return {"onnx_check": f"ok on val ({len(kp)} cells)",
            "onnx_probability_max_delta": float(f"{np.abs(kp - op).max():.3g}"),
            "onnx_score_max_delta": float(f"{np.abs(ks - os_).max():.3g}"),
            "onnx_score_max_relative_delta": float(f"{(np.abs(ks - os_) / np.abs(ks)).max():.3g}")}


def _importable(util, name: str) -> bool:
    try:
        return util.find_spec(name) is not None
    except (ImportError, ValueError):  # a package that refuses to be found (blocked, as under a JAX-only run)
        return False


def run(name: str, params: Params, prepared: Path, out_dir: Path) -> dict:
    """The `anomaly@<name>` stage: fit the detector on good training cells, save it into ``out_dir`` (checked
    against its ONNX export on validation), log the run to MLflow; its metrics."""
    from inspectcnn import tracking
    from inspectcnn.artifacts import ModelFolder
    
    config = params.anomaly_config(name)
    folder = ModelFolder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_params = {"seed": params.seed, "backend": params.backend, "entry": name, **config.model_dump()}
    with tracking.stage_run(f"anomaly@{name}", "anomaly", params, run_params, dataset=(prepared, "training")) as run:
        model, metrics = fit(config, prepared, params.seed)
        model.save(folder.model)
        metrics.update(onnx_parity(model, prepared, params.backend))
        log.info("%s: fitted on %d good cells in %.0f s (peak memory %.0f MB); ONNX %s", name,
                 metrics["good_train_cells"], metrics["wall_time_s"], metrics["peak_rss_mb"], metrics["onnx_check"])
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        run.log_keras_model(model, tuple(int(d) for d in model.input.shape[1:]))
        metrics["mlflow_run_id"] = run.run_id
    folder.write_training(metrics)
    return metrics
