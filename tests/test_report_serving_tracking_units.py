"""Fast unit tests of what only whole-pipeline fixtures reached before (issue 24 asks for them; they guard
its restructuring): the report's ranking, Pareto front and champion sentence; serving's inference spec,
preprocessing and a runner per format on a tiny model; tracking.start_run's run states and tags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspectcnn import report, serving


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


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def test_the_inference_spec_round_trips_and_a_broken_one_is_named(tmp_path):
    spec = serving.inference_spec(model="m", threshold=0.37, threshold_rule="max_f1", size=16, channels=3,
                                  stored_size=32, color_mode="grayscale", classes=["good", "bad"], tta="flips")
    assert spec["positive_class"] == "bad" and spec["threshold_rule"] == "max_f1 on the validation split"
    assert "repeat the gray channel 3 times" in spec["preprocessing"]
    assert serving.read_spec(serving.write_spec(spec, tmp_path)) == spec
    (tmp_path / serving.SPEC_FILE).write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(serving.ServingError, match=r"lacks \['input', 'classes'\]"):
        serving.read_spec(tmp_path / serving.SPEC_FILE)


def test_preprocessing_resizes_twice_scales_to_one_and_repeats_grey_for_three_channels():
    spec = serving.inference_spec(model="m", threshold=0.5, threshold_rule="r", size=8, channels=3, stored_size=16,
                                  color_mode="grayscale", classes=["a", "b"], tta="none")
    pixels = np.full((40, 40), 255, dtype=np.uint8)
    array = serving.preprocess(pixels, spec)
    assert array.shape == (8, 8, 3) and array.dtype == np.float32 and np.allclose(array, 1.0)


def test_spec_from_evaluation_takes_threshold_and_tta_from_eval_and_sizes_from_meta(tiny_model):
    spec = serving.spec_from_evaluation("m", tiny_model, {"threshold": 0.3, "threshold_rule": "youden", "tta": "flips"},
                                        {"image_size": 64, "channels": 1, "classes": ["ok", "defect"]})
    assert (spec["threshold"], spec["tta"], spec["input"]["size"], spec["input"]["stored_size"]) == (0.3, "flips", 16, 64)
    assert spec["input"]["color_mode"] == "grayscale" and spec["positive_class"] == "defect"


@pytest.mark.parametrize("suffix", [".keras", ".onnx", ".xml", ".tflite"])
def test_a_runner_per_format_gives_the_keras_probabilities(tiny_model, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    if suffix == ".keras":
        tiny_model.save(path)
    else:
        fmt = {".onnx": "onnx", ".xml": "openvino", ".tflite": "litert"}[suffix]
        pytest.importorskip({"onnx": "tf2onnx", "openvino": "openvino", "litert": "ai_edge_litert"}[fmt])
        tiny_model.predict_on_batch(np.zeros((1, 16, 16, 1), np.float32))
        tiny_model.export(str(path), format=fmt, verbose=False)
    batch = np.random.default_rng(0).random((5, 16, 16, 1), dtype=np.float32)
    runner = serving.open_runner(path)
    assert runner.format == serving.format_of(path)
    assert np.allclose(runner.predict(batch), np.asarray(tiny_model.predict_on_batch(batch)).ravel(), atol=1e-5)


def test_every_export_format_is_one_registry_entry_that_serving_can_open():
    from inspectcnn import formats
    from inspectcnn.config import EXPORT_FORMATS

    assert tuple(formats.FORMATS) == EXPORT_FORMATS
    for fmt in formats.FORMATS.values():
        engine = formats.engine_of(Path(fmt.file))
        assert engine is not None and engine.name == fmt.engine, fmt.name
        assert serving.format_of(Path(fmt.file)) == fmt.engine


def test_a_bare_pipeline_keras_file_is_served_with_its_tta_and_an_exported_copy_without(tiny_model, tmp_path):
    bare = tmp_path / "models" / "m" / "model.keras"
    bare.parent.mkdir(parents=True)
    tiny_model.save(bare)
    spec = serving.bare_spec(bare)
    assert spec["threshold"] == 0.5 and spec["input"]["size"] == 16 and spec["tta"] == "none"
    spec["tta"] = "flips"
    batch = np.random.default_rng(1).random((3, 16, 16, 1), dtype=np.float32)
    from inspectcnn import dihedral

    flipped = np.mean([np.asarray(tiny_model.predict_on_batch(dihedral.view(batch, k))).ravel()
                       for k in dihedral.TTA_VIEWS["flips"]], axis=0)
    assert np.allclose(serving.served_runner(bare, spec).predict(batch), flipped, atol=1e-5)
    exported = tmp_path / "export" / "model.keras"
    exported.parent.mkdir()
    tiny_model.save(exported)
    serving.write_spec(spec, exported.parent)  # an exported copy: its TTA is inside the file already
    plain = np.asarray(tiny_model.predict_on_batch(batch)).ravel()
    assert np.allclose(serving.served_runner(exported, spec).predict(batch), plain, atol=1e-6)


def test_stage_run_tags_every_run_the_same_way(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking
    from inspectcnn.config import parse_params

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    params = parse_params({"mlflow": {"experiment": "stage-units"}})
    with tracking.stage_run("evaluate@m", "evaluate", params, {"entry": "m"}, tags={"entry": "m"}) as run:
        run_id = run.run_id
    tags = MlflowClient(store).get_run(run_id).data.tags
    assert tags["dvc_stage"] == "evaluate@m" and tags["kind"] == "evaluate" and tags["entry"] == "m"
    assert tags["params_hash"] == tracking.params_hash({"entry": "m"})
    assert {"git_commit", "device", "keras_version", "python_version"} <= set(tags)
    assert tags["mlflow.runName"] == "evaluate@m"


def test_an_unknown_format_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(serving.ServingError, match="unknown model format"):
        serving.format_of(tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="model.onnx not found"):
        serving.open_runner(tmp_path / "model.onnx")


def test_start_run_ends_finished_or_failed_with_the_stage_tags_params_and_experiment_kind(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from inspectcnn import tracking

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with tracking.start_run("train@m", experiment="units", params={"train": {"epochs": 2, "schedule": None}},
                            tags={"kind": "train"}) as run:
        run.log_metrics({"val_auc": 0.5}, step=0)
        finished = run.run_id
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_run("train@m", experiment="units", params={}, tags={"kind": "train"}) as run:
            failed = run.run_id
            raise RuntimeError("boom")
    client = MlflowClient(store)
    assert client.get_experiment_by_name("units").tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    done = client.get_run(finished)
    assert done.info.status == "FINISHED" and done.data.tags["kind"] == "train"
    assert done.data.params == {"train.epochs": "2", "train.schedule": "null"}
    assert client.get_run(failed).info.status == "FAILED"


def test_start_run_without_a_reachable_store_fails_clearly_or_runs_untracked_when_optional(tmp_path, monkeypatch):
    from inspectcnn import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(tracking.TrackingUnavailableError, match="mlflow.required: false"):
        with tracking.start_run("train@m", experiment="units", params={}, tags={}):
            pass
    with tracking.start_run("train@m", experiment="units", params={}, tags={}, required=False) as run:
        assert not run.active and run.run_id is None
