"""inspectcnn.serving: the inference spec, preprocessing, and a runner per format on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspectcnn import serving


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


def test_an_unknown_format_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(serving.ServingError, match="unknown model format"):
        serving.format_of(tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="model.onnx not found"):
        serving.open_runner(tmp_path / "model.onnx")
