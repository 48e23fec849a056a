"""Evaluation metrics against hand-computed values, threshold rules, Grad-CAM."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn.scoring import (
    Predictions, choose_threshold, classification_metrics, expected_calibration_error, per_group,
)

# Eight test items, threshold 0.5: predicted positive = the last four.
LABELS = np.array([0, 0, 0, 1, 0, 1, 1, 1])
PROBS = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])


def test_metrics_by_hand():
    m = classification_metrics(LABELS, PROBS, 0.5, bins=2)
    # predicted 1 for 0.6 (neg), 0.7, 0.8, 0.9 (pos); 0.4 is a missed positive
    assert m["confusion"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 3 / 4) / 2)
    # ROC-AUC: of the 16 (pos, neg) pairs only (0.4 vs 0.6) is misordered -> 15/16
    assert m["roc_auc"] == pytest.approx(15 / 16)
    assert m["brier"] == pytest.approx(np.mean((PROBS - LABELS) ** 2))
    # two bins: [0, .5) holds 0.1..0.4 (mean conf .25, accuracy 1/4); [.5, 1] holds 0.6..0.9 (.75, 3/4)
    assert m["ece"] == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1, 1]), np.array([0.9, 0.7]), bins=10) == pytest.approx(0.2)


def test_threshold_rules_give_the_known_thresholds():
    # max F1: at 0.4, tp 4, fp 1 -> F1 = 8/9 = 0.889, the best; at 0.7, tp 3, fn 1 -> 6/7 = 0.857
    assert choose_threshold(LABELS, PROBS, "max_f1") == pytest.approx(0.4)
    # Youden J = TPR - FPR: at 0.4 -> 1 - 1/4 = .75; at 0.7 -> 3/4 - 0 = .75; roc_curve keeps the
    # higher threshold first, so argmax picks 0.7
    assert choose_threshold(LABELS, PROBS, "youden") == pytest.approx(0.7)
    assert choose_threshold(LABELS, PROBS, 0.33) == 0.33


def test_single_class_subset_gives_no_ranking_metrics():
    m = classification_metrics(np.array([1, 1]), np.array([0.2, 0.9]), 0.5)
    assert m["roc_auc"] is None and m["recall"] == 0.5


def test_per_group_splits_the_items():
    predictions = Predictions([str(i) for i in range(8)], LABELS, PROBS, ["a", "b"] * 4)
    groups = per_group(predictions, 0.5)
    assert set(groups) == {"a", "b"} and groups["a"]["count"] == groups["b"]["count"] == 4


def test_gradcam_of_a_trained_model_has_the_input_size_and_is_not_constant():
    from inspectcnn.gradcam import gradcam
    from inspectcnn.models import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # defect = a bright square somewhere; the network must learn to look at it
    x = rng.random((96, 32, 32, 1), dtype=np.float32) * 0.3
    y = np.zeros((96, 1), dtype=np.float32)
    for i in range(0, 96, 2):
        r, c = rng.integers(4, 24, 2)
        x[i, r:r + 6, c:c + 6] = 1.0
        y[i] = 1
    model = build_model("simple_cnn", (32, 32, 1), width=0.5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    heat = gradcam(model, x[0])
    assert heat.shape == (32, 32)
    assert heat.max() == pytest.approx(1.0) and heat.std() > 0.05


# --------------------------------------------------------------------------- honest numbers


def _scores(n=394, seed=0, signal=0.4):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.31).astype(int)
    return labels, np.clip(labels * signal + rng.random(n) * (1 - signal), 0, 1)


def test_bootstrap_intervals_hold_the_point_estimate_and_repeat_with_the_seed():
    from inspectcnn.scoring import CI_METRICS, bootstrap_ci, classification_metrics

    labels, probabilities = _scores()
    point = classification_metrics(labels, probabilities, 0.5)
    ci = bootstrap_ci(labels, probabilities, 0.5, 300, seed=7)
    assert set(ci) == set(CI_METRICS)
    for metric, (low, high) in ci.items():
        assert low <= point[metric] <= high and high - low < 0.25, metric
    assert ci == bootstrap_ci(labels, probabilities, 0.5, 300, seed=7)
    assert ci != bootstrap_ci(labels, probabilities, 0.5, 300, seed=8)
    assert bootstrap_ci(labels, probabilities, 0.5, 0) == {}


def test_the_resample_metrics_of_all_rows_at_once_are_scikit_learns_of_each_row():
    """The bootstrap scores its 1000 resamples as arrays (ROC-AUC from ranks): each row's value is
    scikit-learn's, ties included, and NaN where a row has one class."""
    from sklearn import metrics as skm

    from inspectcnn.scoring import resample_metrics, resamples

    labels, probabilities = _scores(n=60)
    probabilities = np.round(probabilities, 1)  # many ties
    rows = resamples(len(labels), 200, seed=3)
    found = resample_metrics(labels[rows], probabilities[rows], 0.5)
    for index in range(len(rows)):
        y, p = labels[rows[index]], probabilities[rows[index]]
        predicted = p >= 0.5
        expected = {"accuracy": skm.accuracy_score(y, predicted), "f1": skm.f1_score(y, predicted, zero_division=0),
                    "precision": skm.precision_score(y, predicted, zero_division=0),
                    "recall": skm.recall_score(y, predicted), "balanced_accuracy": skm.balanced_accuracy_score(y, predicted),
                    "roc_auc": skm.roc_auc_score(y, p), "pr_auc": skm.average_precision_score(y, p)}
        for name, value in expected.items():
            assert found[name][index] == pytest.approx(value, abs=1e-12), (name, index)
    one_class = resample_metrics(np.zeros((1, 5), int), np.linspace(0, 1, 5)[None], 0.5)
    assert np.isnan(one_class["roc_auc"][0]) and np.isnan(one_class["pr_auc"][0]) and one_class["accuracy"][0] == 0.4


def test_paired_bootstrap_tells_a_real_difference_from_none():
    from inspectcnn.scoring import paired_bootstrap

    labels, good = _scores(signal=0.6)
    _, weak = _scores(seed=1, signal=0.05)
    weak_on_same = np.clip(np.where(labels == 1, 0.05, 0) + np.random.default_rng(2).random(len(labels)) * 0.95, 0, 1)
    better = paired_bootstrap(labels, good, weak_on_same, "roc_auc", (0.5, 0.5), 300, seed=0)
    assert better["difference"] > 0.2 and better["significant"] and better["p_value"] < 0.01
    same = paired_bootstrap(labels, good, good, "roc_auc", (0.5, 0.5), 300, seed=0)
    assert same["difference"] == 0 and not same["significant"]


def test_accuracy_per_annotated_level():
    from inspectcnn.scoring import Predictions, per_level

    predictions = Predictions(ids=["a", "b", "c", "d", "e"], labels=np.array([0, 0, 1, 1, 1]),
                              probabilities=np.array([0.1, 0.9, 0.2, 0.8, 0.9]), groups=[""] * 5)
    levels = {"a": 0.0, "b": 1 / 3, "c": 2 / 3, "d": 2 / 3, "e": 1.0}
    found = per_level(predictions, levels, 0.5)
    assert {name: (m["count"], m["right"], m["accuracy"]) for name, m in found.items()} == {
        "0": (1, 1, 1.0), "1/3": (1, 0, 0.0), "2/3": (2, 1, 0.5), "1": (1, 1, 1.0)}
    assert list(found) == ["0", "1/3", "2/3", "1"]
    # 95 % Wilson score intervals: 1 of 2 right is [0.0945, 0.9055]; 0 of 1 is [0, 0.7935]
    assert found["2/3"]["ci95"] == [0.0945, 0.9055] and found["1/3"]["ci95"] == [0.0, 0.7935]
    assert per_level(predictions, {}, 0.5) == {}


def test_the_model_card_names_a_weak_level_with_the_cells_right_and_its_interval():
    from inspectcnn.model_card import failure_modes

    evaluation = {"confusion": {"fn": 3, "fp": 1}, "count": 40, "recall": 0.8, "precision": 0.9, "threshold": 0.5,
                  "accuracy": 0.9, "levels": {"0": {"count": 25, "right": 25, "accuracy": 1.0, "ci95": [0.87, 1.0]},
                                              "2/3": {"count": 15, "right": 5, "accuracy": 0.3333,
                                                      "ci95": [0.1518, 0.5829]}}}
    weak = [line for line in failure_modes(evaluation) if "2/3" in line]
    assert weak == ["Known weakness: images the experts annotated at level 2/3 (5 of 15 right): accuracy 0.333, "
                    "95 % CI [0.15, 0.58], against 0.900 overall: borderline annotations, where the model is least "
                    "reliable."]
