"""Test-set evaluation: scikit-learn metrics at a threshold chosen on validation, per group, and cost."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm


@dataclass(frozen=True)
class Predictions:
    ids: list[str]
    labels: np.ndarray  # 0/1
    probabilities: np.ndarray
    groups: list[str]


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, rule: str | float) -> float:
    """The decision threshold: ``max_f1`` (best F1), ``youden`` (max TPR - FPR) or a fixed number."""
    if not isinstance(rule, str):
        return float(rule)
    if rule == "max_f1":
        precision, recall, thresholds = skm.precision_recall_curve(labels, probabilities)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=(precision + recall) > 0)
        return float(thresholds[int(np.argmax(f1[:-1]))])  # the last PR point has no threshold
    if rule == "youden":
        fpr, tpr, thresholds = skm.roc_curve(labels, probabilities)
        best = int(np.argmax(tpr - fpr))
        return float(min(thresholds[best], 1.0))  # roc_curve's first threshold is +inf
    raise ValueError(f"unknown threshold rule {rule!r}; use max_f1, youden or a number in (0, 1)")


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Sum over equal-width probability bins of |accuracy - confidence| weighted by the bin's share."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.mean() * abs(labels[members].mean() - probabilities[members].mean())
    return float(error)


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float,
                           bins: int = 10) -> dict:
    """All test metrics at ``threshold``; ranking metrics are None when only one class is present."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted = (probabilities >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "count": int(len(labels)),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(labels, predicted)) if both else None,
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities)) if both else None,
        "pr_auc": float(skm.average_precision_score(labels, probabilities)) if both else None,
        "brier": float(skm.brier_score_loss(labels, probabilities)),
        "ece": expected_calibration_error(labels, probabilities, bins),
        "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def per_group(predictions: Predictions, threshold: float, bins: int = 10) -> dict:
    groups = np.asarray(predictions.groups)
    return {
        group: classification_metrics(predictions.labels[groups == group], predictions.probabilities[groups == group],
                                      threshold, bins)
        for group in sorted(set(predictions.groups))
        if group
    }


CI_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")


def point_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """The CI_METRICS of one (re)sample; NaN where undefined (:func:`resample_metrics` of one row)."""
    found = resample_metrics(np.asarray(labels)[None], np.asarray(probabilities, dtype=float)[None], threshold)
    return {name: float(values[0]) for name, values in found.items()}


def roc_auc_rows(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """ROC-AUC of every row of (R, n) labels (0/1) and probabilities at once: the positives' rank sum (ties
    averaged, ``scipy.stats.rankdata``) as the Mann-Whitney U over n1 x n0, the value scikit-learn's
    roc_auc_score gives a row; NaN for a row of one class."""
    from scipy.stats import rankdata

    positive = np.asarray(labels) == 1
    ranks = rankdata(np.asarray(probabilities, dtype=float), axis=1)
    n1 = positive.sum(axis=1).astype(float)
    n0 = positive.shape[1] - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * positive).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def resample_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float,
                     names: tuple[str, ...] = CI_METRICS) -> dict[str, np.ndarray]:
    """``names`` of CI_METRICS for every row of (R, n) labels and probabilities (R resamples): an array of R
    values each, NaN where undefined. Counting metrics from the confusion counts and ROC-AUC from the ranks
    (:func:`roc_auc_rows`), the same definitions as scikit-learn's, for all rows at once; PR-AUC by
    scikit-learn's average_precision_score row by row."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    predicted, positive = probabilities >= threshold, labels == 1
    tp, fp = (predicted & positive).sum(axis=1).astype(float), (predicted & ~positive).sum(axis=1).astype(float)
    fn, tn = (~predicted & positive).sum(axis=1).astype(float), (~predicted & ~positive).sum(axis=1).astype(float)
    both = (tp + fn > 0) & (tn + fp > 0)
    found: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        for name in names:
            if name == "accuracy":
                found[name] = (tp + tn) / labels.shape[1]
            elif name == "balanced_accuracy":
                found[name] = np.where(both, (recall + tn / (tn + fp)) / 2, np.nan)
            elif name == "precision":
                found[name] = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            elif name == "recall":
                found[name] = recall
            elif name == "f1":
                found[name] = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            elif name == "roc_auc":
                found[name] = np.where(both, roc_auc_rows(labels, probabilities), np.nan)
            elif name == "pr_auc":
                found[name] = np.array([float(skm.average_precision_score(y, p)) if ok else np.nan
                                        for y, p, ok in zip(labels, probabilities, both)])
            else:
                raise ValueError(f"unknown metric {name!r}; one of {', '.join(CI_METRICS)}")
    return found


def resamples(count: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, count) indices drawn with replacement: the same cells for every model with the same seed."""
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def bootstrap_ci(labels, probabilities, threshold: float, resamples_: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap interval of every metric of CI_METRICS (the threshold stays fixed: it was
    chosen on validation). Resamples where a metric is undefined (one class only) are left out."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    if not resamples_:
        return {}
    rows = resamples(len(labels), resamples_, seed)
    draws = resample_metrics(labels[rows], probabilities[rows], threshold)
    tail = (1.0 - level) / 2 * 100
    out = {}
    for name in CI_METRICS:
        values = draws[name][np.isfinite(draws[name])]
        out[name] = [round(float(np.percentile(values, tail)), 4), round(float(np.percentile(values, 100 - tail)), 4)] \
            if len(values) else None
    return out


def paired_bootstrap(labels, first, second, metric: str, thresholds: tuple[float, float], resamples_: int = 1000,
                     seed: int = 0) -> dict:
    """Difference ``metric(first) - metric(second)`` on the same cells, with its 95 % percentile interval
    and a two-sided bootstrap p-value; ``significant`` when the interval excludes 0."""
    labels = np.asarray(labels).astype(int)
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    observed = (point_metrics(labels, first, thresholds[0])[metric]
                - point_metrics(labels, second, thresholds[1])[metric])
    rows = resamples(len(labels), resamples_, seed)
    a = resample_metrics(labels[rows], first[rows], thresholds[0], (metric,))[metric]
    b = resample_metrics(labels[rows], second[rows], thresholds[1], (metric,))[metric]
    differences = (a - b)[np.isfinite(a) & np.isfinite(b)]
    low, high = np.percentile(differences, [2.5, 97.5])
    p_value = min(1.0, 2 * min((differences <= 0).mean(), (differences >= 0).mean()))
    return {"metric": metric, "difference": round(float(observed), 4), "ci95": [round(float(low), 4),
            round(float(high), 4)], "p_value": round(float(p_value), 4), "significant": bool(low > 0 or high < 0)}


def per_level(predictions: Predictions, levels: dict[str, float], threshold: float) -> dict:
    """Count, cells right, accuracy and its 95 % Wilson score interval (scipy; sound for the 15-cell levels
    where a bootstrap of a proportion is not) per annotated level (ELPV: the experts' defect probability
    0, 1/3, 2/3, 1)."""
    from scipy.stats import binomtest

    names = {0.0: "0", 1 / 3: "1/3", 2 / 3: "2/3", 1.0: "1"}
    found: dict[str, list[bool]] = {}
    for item, label, probability in zip(predictions.ids, predictions.labels, predictions.probabilities):
        if item not in levels:
            continue
        value = levels[item]
        name = next((n for v, n in names.items() if abs(v - value) < 1e-3), f"{value:g}")
        found.setdefault(name, []).append(bool((probability >= threshold) == bool(label)))
    order = {n: i for i, n in enumerate(names.values())}

    def row(right: list[bool]) -> dict:
        interval = binomtest(sum(right), len(right)).proportion_ci(confidence_level=0.95, method="wilson")
        return {"count": len(right), "right": sum(right), "accuracy": round(float(np.mean(right)), 4),
                "ci95": [round(float(interval.low), 4), round(float(interval.high), 4)]}

    return {name: row(right) for name, right in sorted(found.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))}


# What `dvc metrics show` compares across models: one flat file per model (models/<entry>/scores.json), the same
# keys for every model, so the table is one row per model; the full evaluation stays in eval.json.
SCORE_KEYS = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "roc_auc_low", "roc_auc_high", "pr_auc", "brier",
              "ece", "threshold", "val_accuracy", "val_roc_auc")


def scores(results: dict) -> dict[str, float | None]:
    """The comparable columns of an evaluation (eval.json's content), rounded to 4 places."""
    interval = (results.get("ci95") or {}).get("roc_auc") or [None, None]
    validation = results.get("val") or {}
    flat = {**{k: results.get(k) for k in SCORE_KEYS}, "roc_auc_low": interval[0], "roc_auc_high": interval[1],
            "val_accuracy": validation.get("accuracy"), "val_roc_auc": validation.get("roc_auc")}
    return {k: None if flat[k] is None else round(float(flat[k]), 4) for k in SCORE_KEYS}


def curves(labels: np.ndarray, probabilities: np.ndarray) -> tuple[list[dict], list[dict]]:
    """ROC (fpr, tpr, threshold) and PR (recall, precision) points for DVC plots and the report."""
    fpr, tpr, roc_thresholds = skm.roc_curve(labels, probabilities)
    precision, recall, _ = skm.precision_recall_curve(labels, probabilities)
    roc = [{"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": round(float(min(h, 1.0)), 6)}
           for f, t, h in zip(fpr, tpr, roc_thresholds)]
    pr = [{"recall": round(float(r), 6), "precision": round(float(p), 6)} for r, p in zip(recall, precision)]
    return roc, pr


def predict(model, data) -> Predictions:
    """Probabilities of an unshuffled split (a :class:`inspectcnn.data.dataset.SplitBatches`)."""
    import keras
    from tqdm import tqdm

    # predict_on_batch runs the traced (compiled) step: 1.4-3x faster than eager calls on a TTA model here
    probabilities = [np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(data[i][0])), dtype=float).ravel()
                     for i in tqdm(range(len(data)), desc=f"predict {getattr(data, 'name', '')}".rstrip(), unit="batch",
                                   mininterval=5.0, leave=False, disable=len(data) < 8 or None)]
    return Predictions(list(data.ids), data.labels.ravel().astype(int), np.concatenate(probabilities),
                       list(data.groups))


def time_calls(call, x: np.ndarray, runs: int, warmups: int = 2) -> dict:
    """The project's one latency protocol: ``warmups`` untimed calls, then the median wall time of ``runs``
    calls of ``call(x)``, and images/s at that median."""
    for _ in range(warmups):
        call(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"median_ms": round(median * 1000, 3), "images_per_s": round(len(x) / median, 1)}


def latency(model, input_shape: tuple[int, ...], batch: int, runs: int) -> dict:
    """A Keras model's latency on a random batch of ``batch`` images (:func:`time_calls`)."""
    x = np.random.default_rng(0).random((batch, *input_shape), dtype=np.float32)
    return time_calls(model.predict_on_batch, x, runs)