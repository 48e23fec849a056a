"""The champion: chosen once, on validation, by a pure rule; the record every later stage reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspectcnn import champion
from inspectcnn.config import load_params


def test_the_highest_validation_value_wins_and_ties_go_to_the_earlier_entry():
    record = champion.choose({"a": {"roc_auc": 0.90}, "b": {"roc_auc": 0.93}, "c": {"roc_auc": 0.93}}, "roc_auc")
    assert record["champion"] == "b" and record["split"] == "val" and record["value"] == 0.93
    assert [c["model"] for c in record["candidates"]] == ["b", "c", "a"]
    assert record["runner_up"] == {"model": "c", "value": 0.93, "margin": 0.0}
    assert "validation" in record["rule"] and "test metrics take no part" in record["rule"]


def test_a_missing_metric_or_an_unknown_rule_is_a_clear_error():
    with pytest.raises(champion.ChampionError, match="no entry has a validation roc_auc"):
        champion.choose({"a": {"roc_auc": None}}, "roc_auc")
    with pytest.raises(champion.ChampionError, match="report.select_by: 'loss'"):
        champion.choose({"a": {"roc_auc": 0.9}}, "loss")


def test_an_ensemble_of_one_is_its_member_and_a_real_one_is_judged_out_of_fold():
    evaluations = {"lenet": {"val": {"roc_auc": 0.80}}, "lite": {"val": {"roc_auc": 0.90}},
                   "ensemble": {"val": {"roc_auc": 0.95}}}
    one = champion.validation_scores(evaluations, {"ensemble": {"members": {"lite": 1.0}}})
    assert set(one) == {"lenet", "lite"}
    several = champion.validation_scores(
        evaluations, {"ensemble": {"members": {"lite": 0.5, "lenet": 0.5}, "val_crossfit": {"roc_auc": 0.89}}})
    assert several["ensemble"]["roc_auc"] == 0.89  # its in-sample 0.95 was chosen on the same cells
    assert champion.choose(several, "roc_auc")["champion"] == "lite"


def test_read_refuses_a_missing_or_foreign_record(tmp_path):
    with pytest.raises(champion.ChampionError, match="run the champion stage first"):
        champion.read(tmp_path / "champion.json")
    (tmp_path / "champion.json").write_text(json.dumps({"champion": "x"}))
    with pytest.raises(champion.ChampionError, match="another version"):
        champion.read(tmp_path / "champion.json")
    record = champion.choose({"a": {"roc_auc": 0.9}}, "roc_auc")
    champion.write(tmp_path / "champion.json", record)
    assert champion.read(tmp_path / "champion.json") == record


def _write_entry(models, name, val_roc_auc, test_probabilities, labels):
    from sklearn.metrics import accuracy_score, roc_auc_score

    folder = models / name
    folder.mkdir(parents=True, exist_ok=True)
    evaluation = {"roc_auc": roc_auc_score(labels, test_probabilities),
                  "accuracy": accuracy_score(labels, test_probabilities >= 0.5),
                  "val": {"roc_auc": val_roc_auc, "accuracy": 0.8}}
    (folder / "eval.json").write_text(json.dumps(evaluation))


def test_permuting_the_test_predictions_does_not_change_the_choice(tmp_path):
    """The champion stage reads every entry's eval.json, test metrics included: scrambling the test
    predictions (which moves every test metric) leaves the choice and the whole record as they were."""
    (tmp_path / "params.yaml").write_text("models: {lenet: {}, simple_cnn: {}}\ntransfer: {}\n"
                                          "ensemble: {candidates: [lenet, simple_cnn]}\n")
    params = load_params(tmp_path / "params.yaml")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    good = np.clip(labels * 0.6 + rng.normal(0.2, 0.2, 200), 0, 1)
    records = []
    for permute in (False, True):
        models = tmp_path / f"models-{permute}"
        for name, val in (("lenet", 0.91), ("simple_cnn", 0.88)):
            test = rng.permutation(good) if permute and name == "lenet" else good
            _write_entry(models, name, val, test if name == "lenet" else rng.permutation(good), labels)
        _write_entry(models, "ensemble", 0.99, good, labels)
        (models / "ensemble" / "metrics.json").write_text(json.dumps({"members": {"lenet": 1.0}}))
        records.append(champion.run(params, models, tmp_path / f"champion-{permute}.json"))
    assert records[0] == records[1]
    assert records[0]["champion"] == "lenet"  # the ensemble of one member is lenet itself, not a candidate
    assert [c["model"] for c in records[0]["candidates"]] == ["lenet", "simple_cnn"]


def test_the_ensemble_crossfit_score_is_out_of_fold():
    """Members chosen on some validation cells score the others: a candidate that is noise everywhere
    but fits one fold perfectly cannot lift the out-of-fold score the way it lifts the in-sample one."""
    from inspectcnn import ensemble
    from inspectcnn.config import EnsembleConfig

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 100)
    signal = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 200), 0, 1)
    probabilities = {"signal": signal, "noise": rng.random(200)}
    scores = ensemble.crossfit_scores(labels, probabilities, EnsembleConfig(), seed=0)
    assert set(scores) == {"roc_auc", "pr_auc"}
    weights = ensemble.select(labels, probabilities, EnsembleConfig())
    in_sample = ensemble.score_of(labels, probabilities, weights, "roc_auc")
    assert scores["roc_auc"] <= in_sample + 1e-9
    assert scores["roc_auc"] > 0.7
