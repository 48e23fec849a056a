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


def curves(labels: np.ndarray, probabilities: np.ndarray) -> tuple[list[dict], list[dict]]:
    """ROC (fpr, tpr, threshold) and PR (recall, precision) points for DVC plots and the report."""
    fpr, tpr, roc_thresholds = skm.roc_curve(labels, probabilities)
    precision, recall, _ = skm.precision_recall_curve(labels, probabilities)
    roc = [{"fpr": round(float(f), 6), "tpr": round(float(t), 6), "threshold": round(float(min(h, 1.0)), 6)}
           for f, t, h in zip(fpr, tpr, roc_thresholds)]
    pr = [{"recall": round(float(r), 6), "precision": round(float(p), 6)} for r, p in zip(recall, precision)]
    return roc, pr


def predict(model, data) -> Predictions:
    """Probabilities of an unshuffled split loaded ``with_ids=True``."""
    ids, labels, probabilities, groups = [], [], [], []
    for images, y, batch_ids, batch_groups in data:
        probabilities.append(np.asarray(model(images, training=False), dtype=float).ravel())
        labels.append(y.numpy().ravel())
        ids.extend(i.decode() for i in batch_ids.numpy())
        groups.extend(g.decode() for g in batch_groups.numpy())
    return Predictions(ids, np.concatenate(labels).astype(int), np.concatenate(probabilities), groups)


def latency(model, input_shape: tuple[int, ...], batch: int, runs: int) -> dict:
    """Median wall time of ``runs`` forward passes of a batch (after one warm-up), and images/s."""
    x = np.random.default_rng(0).random((batch, *input_shape), dtype=np.float32)
    model.predict_on_batch(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"median_ms": round(median * 1000, 3), "images_per_s": round(batch / median, 1)}
