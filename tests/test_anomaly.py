"""The good-only anomaly detector (inspectcnn.anomaly): PaDiM's Gaussians, the Keras model that scores with
them, its parameters' validation."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_whitening_gives_the_mahalanobis_distance():
    from inspectcnn.anomaly import fit_gaussians, max_distances

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3, 4)).astype(np.float32) @ rng.normal(size=(4, 4)).astype(np.float32)
    kernel, bias = fit_gaussians(features, epsilon=0.01)
    query = rng.normal(size=(5, 3, 4)).astype(np.float32)
    expected = np.zeros((5, 3))
    for p in range(3):
        x = features[:, p].astype(np.float64)
        inverse = np.linalg.inv(np.cov(x, rowvar=False) + 0.01 * np.eye(4))
        deviation = query[:, p] - x.mean(axis=0)
        expected[:, p] = np.einsum("nc,cd,nd->n", deviation, inverse, deviation)
    np.testing.assert_allclose(max_distances(query, kernel, bias), expected.max(axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="at least 2 good"):
        fit_gaussians(features[:1], 0.01)


def test_the_keras_detector_scores_as_numpy_does_and_maps_each_position():
    import keras

    from inspectcnn.anomaly import detector, fit_gaussians, max_distances

    rng = np.random.default_rng(1)
    inputs = keras.Input((4, 2), name="patches")  # 4 positions (a 2 x 2 grid), 2 channels: the extractor's output
    features_model = keras.Model(inputs, keras.layers.Identity()(inputs))
    good = rng.normal(size=(50, 4, 2)).astype(np.float32)
    kernel, bias = fit_gaussians(good, 0.01)
    center = float(np.median(max_distances(good, kernel, bias)))
    model = detector(features_model, kernel, bias, center)
    query = rng.normal(size=(6, 4, 2)).astype(np.float32) * np.float32(3)
    scores = max_distances(query, kernel, bias)
    np.testing.assert_allclose(np.ravel(model.predict_on_batch(query)), scores / (scores + center), rtol=1e-5)
    grid = keras.Model(model.input, model.get_layer("anomaly_map").output).predict_on_batch(query)
    assert grid.shape == (6, 2, 2, 1)
    np.testing.assert_allclose(grid.reshape(6, -1).max(axis=1), scores, rtol=1e-5)


def test_stage_outputs_name_layers_of_the_lite_backbones():
    from inspectcnn import efficientnet_lite
    from inspectcnn.efficientnet_lite import stage_outputs

    for variant in ("efficientnet_lite0", "efficientnet_lite2"):
        model = efficientnet_lite.build(variant, (64, 64, 3), include_top=False)
        names = stage_outputs(variant)
        assert sorted(names) == list(range(1, 8))
        strides = [64 // model.get_layer(names[s]).output.shape[1] for s in range(1, 8)]
        assert strides == [2, 4, 8, 16, 16, 32, 32]


def test_the_extractor_gives_dims_channels_on_the_stride_8_grid():
    from inspectcnn.anomaly import extractor
    from inspectcnn.config import AnomalyConfig

    model = extractor(AnomalyConfig(image_size=64, dims=10), channels=1, seed=0)
    assert tuple(model.output.shape) == (None, 64, 10)
    out = model.predict_on_batch(np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32))
    assert out.shape == (2, 64, 10) and np.isfinite(out).all()
    with pytest.raises(ValueError, match="give 24 channels"):
        extractor(AnomalyConfig(image_size=64, stages=[2], dims=30), channels=1, seed=0)


@pytest.mark.parametrize("entry, message", [
    ({"backbone": "vgg16"}, "EfficientNet-Lite backbone"),
    ({"stages": [3, 2]}, "increasing stage numbers"),
    ({"stages": [8]}, "increasing stage numbers"),
    ({"image_size": 100}, "multiple of 32"),
    ({"method": "patchcore"}, "padim"),
])
def test_bad_anomaly_params_name_the_key(entry, message):
    from inspectcnn.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match=message) as error:
        parse_params({"anomaly": {"det": entry}})
    assert "anomaly.det." in str(error.value)


def test_an_anomaly_entry_may_not_share_a_models_name():
    from inspectcnn.config import ConfigError, parse_params

    with pytest.raises(ConfigError, match="models and anomaly share entry names"):
        parse_params({"models": {"lenet": {}}, "anomaly": {"lenet": {}}})
    params = parse_params({"models": {"lenet": {}}, "anomaly": {"padim": {}}, "evaluate": {"tta": "dihedral"}})
    assert params.entries() == ["lenet", "padim", "ensemble"]
    assert (params.kind("padim"), params.tta("padim"), params.tta("lenet")) == ("anomaly", "none", "dihedral")


def test_write_subset_keeps_the_chosen_training_cells_and_the_other_splits(tmp_path):
    from helpers import tiny_prepared

    from inspectcnn.data import store
    from inspectcnn.data.dataset import load_split

    prepared = tiny_prepared(tmp_path / "full")
    ids, labels, _ = store.read_index(prepared, "train")
    keep = {i for i, label in zip(ids, labels) if label == 0} | {next(i for i, l in zip(ids, labels) if l == 1)}
    meta = store.write_subset(prepared, tmp_path / "subset", "train", keep)
    assert meta["splits"]["train"]["count"] == len(keep)
    assert set(store.read_index(tmp_path / "subset", "train")[0]) == keep
    full = load_split(prepared, "test", image_size=24, batch_size=64)[0][0]
    np.testing.assert_array_equal(load_split(tmp_path / "subset", "test", image_size=24, batch_size=64)[0][0], full)
    rows = store.read_manifest(tmp_path / "subset")
    assert {r["id"] for r in rows if r["split"] == "train"} == keep
    with pytest.raises(store.PrepareError, match="not in the train split"):
        store.write_subset(prepared, tmp_path / "bad", "train", {"nope"})


def test_the_int8_onnx_file_of_a_detector_runs_with_its_gaussians_in_float(tmp_path):
    """ONNX Runtime cannot run a product with a stack of matrices (one inverse covariance per position) whose
    int8 weights have a scale per channel (QLinearMatMul: "weight zero point must be a scalar..."): the int8
    file keeps those products in float32 and scores close to the float file."""
    import keras
    import onnx
    import onnxruntime

    from inspectcnn import formats
    from inspectcnn.anomaly import detector, fit_gaussians, max_distances

    rng = np.random.default_rng(2)
    inputs = keras.Input((16, 8), name="patches")
    features_model = keras.Model(inputs, keras.layers.Identity()(inputs))
    good = rng.normal(size=(80, 16, 8)).astype(np.float32)
    kernel, bias = fit_gaussians(good, 0.01)
    model = detector(features_model, kernel, bias, float(np.median(max_distances(good, kernel, bias))))
    query = rng.normal(size=(12, 16, 8)).astype(np.float32)  # within the calibrated range
    expected = np.ravel(model.predict_on_batch(query))
    spec = {"threshold": 0.5}
    with formats.converting():  # as the export stage converts: the converters' import warnings held back
        formats.to_onnx(model, tmp_path / "model.onnx", good, spec)
        formats.to_onnx(model, tmp_path / "model_int8.onnx", good, spec, int8=True)

    kept = formats.batched_constant_matmuls(tmp_path / "model.onnx")
    assert kept, "the detector's per-position products: MatMul nodes with a 3-D constant"
    nodes = {node.name: node.op_type for node in onnx.load(str(tmp_path / "model_int8.onnx")).graph.node}
    assert "QuantizeLinear" in nodes.values() and all(nodes.get(name) == "MatMul" for name in kept)
    session = onnxruntime.InferenceSession(str(tmp_path / "model_int8.onnx"), providers=["CPUExecutionProvider"])
    found = np.ravel(session.run(None, {session.get_inputs()[0].name: query})[0])
    assert np.abs(found - expected).max() < 0.1
