"""inspectcnn.report.numbers: the ranking, the Pareto front and the champion sentence."""

from __future__ import annotations

from inspectcnn import report


def entry(name: str, kind: str = "train", roc_auc: float | None = 0.8, accuracy: float = 0.7, macs: int = 1000,
          latency: float = 2.0) -> report.Entry:
    evaluation = {"accuracy": accuracy, "balanced_accuracy": accuracy, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                  "roc_auc": roc_auc, "pr_auc": 0.6, "brier": 0.2, "ece": 0.1, "threshold": 0.4,
                  "ci95": {"accuracy": [accuracy - 0.05, accuracy + 0.05]}, "tta": "flips",
                  "cost": {"params": 10, "macs": macs, "latency_batch1": {"median_ms": latency, "images_per_s": 100.0},
                           "latency_batch16": {"median_ms": 8 * latency, "images_per_s": 250.0}}}
    return report.Entry(name=name, kind=kind, eval=evaluation, training={"wall_time_s": 12.0}, history=[], roc=[],
                        pr=[], predictions=[])


def test_ranking_sorts_by_the_metric_with_missing_values_last_and_numbers_the_rows():
    rows = report.ranking([entry("a", roc_auc=0.7), entry("b", roc_auc=None), entry("c", roc_auc=0.9)], "roc_auc")
    assert [(r["rank"], r["model"]) for r in rows] == [(1, "c"), (2, "a"), (3, "b")]
    assert rows[0]["throughput_img_s"] == 250.0 and rows[0]["latency_b1_ms"] == 2.0 and rows[0]["train_wall_s"] == 12.0
    assert [r["model"] for r in report.ranking([entry("x", accuracy=0.6), entry("y", accuracy=0.8)], "accuracy")] == [
        "y", "x"]


def test_the_pareto_front_keeps_only_models_nothing_beats_on_both_axes():
    front = report.pareto_front({"big": (0.9, 100.0), "small": (0.7, 1.0), "worse": (0.6, 50.0),
                                 "tie": (0.7, 1.0)})
    assert front == {"big", "small", "tie"}


def test_the_champion_sentence_gives_the_validation_rule_then_the_test_numbers():
    rows = report.ranking([entry("heavy", roc_auc=0.9, macs=10**9), entry("light", roc_auc=0.85, macs=10**6)],
                          "roc_auc")
    record = {"champion": "light", "select_by": "roc_auc", "value": 0.93,
              "candidates": [{"model": "light", "value": 0.93}, {"model": "heavy", "value": 0.91}],
              "runner_up": {"model": "heavy", "value": 0.91, "margin": 0.02}}
    sentence = report.champion_reason(record, rows, report.pareto_front(
        {r["model"]: (r["accuracy"], r["macs"]) for r in rows}))
    assert sentence.startswith("Chosen on validation: the highest validation roc-auc (0.930, as served with TTA "
                               "flips) of 2 candidates, ahead of heavy (0.910).")
    assert "On the test split, which took no part in the choice: accuracy 0.700 [0.650, 0.750]" in sentence


def test_the_ranking_shows_validation_beside_test():
    row = report.ranking([entry("a")], "roc_auc")[0]
    assert "val_roc_auc" in row and "val_accuracy" in row
