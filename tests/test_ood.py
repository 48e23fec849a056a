"""The out-of-distribution score (inspectcnn.ood, inspectcnn.ood_probes): k-th nearest neighbour distance of the
penultimate features, the threshold on validation, the score in the exported graph."""

from __future__ import annotations

import numpy as np
import pytest


def tiny_model(seed: int = 0):
    """image (8, 8, 1) -> flatten -> Dense(4, relu) 'penultimate' -> Dense(1, sigmoid)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(4, activation="relu", name="penultimate")(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="predictions")(x))


def cells(count: int, seed: int) -> np.ndarray:
    """'Cells': a bright left half, a dim right half, a little noise."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 8, 8, 1), np.float32)
    images[:, :, :4] = 0.8
    return np.clip(images + rng.normal(0, 0.03, images.shape).astype(np.float32), 0, 1)


def test_a_planted_out_of_distribution_image_scores_above_the_validation_threshold():
    from inspectcnn import ood

    model = ood.served_features_model(tiny_model(), "none")
    _, bank = ood.predict_features(model, cells(40, 1))
    scorer = ood.KnnScore(bank, k=3)
    value = ood.threshold(scorer(ood.predict_features(model, cells(20, 2))[1]), 0.95)
    planted = np.zeros((1, 8, 8, 1), np.float32)
    planted[:, :, 4:] = 1.0  # the mirror image of a cell: dim left, bright right
    inside = scorer(ood.predict_features(model, cells(10, 3))[1])
    outside = scorer(ood.predict_features(model, planted)[1])
    assert ood.flagged(outside, value).all() and ood.flagged(inside, value).mean() <= 0.2
    assert outside[0] > inside.max()


def test_the_score_is_the_kth_neighbour_distance_of_normalised_features():
    from inspectcnn import ood

    bank = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], np.float32)
    scorer = ood.KnnScore(bank, k=2)
    query = np.array([[2.0, 0.0]], np.float32)  # normalised: (1, 0); neighbours at 0, sqrt(2 - sqrt(2)), sqrt(2)
    assert scorer(query)[0] == pytest.approx(np.sqrt(2 - np.sqrt(2)), abs=1e-6)
    with pytest.raises(ood.OodError, match="bank holds 3 cells"):
        ood.KnnScore(bank, k=4)


def test_the_graph_score_matches_scikit_learn_with_test_time_views():
    from inspectcnn import ood

    model, images = tiny_model(), cells(12, 4)
    images[:3] = np.random.default_rng(5).random((3, 8, 8, 1), dtype=np.float32)
    served = ood.served_features_model(model, "dihedral")
    _, bank = ood.predict_features(served, cells(30, 6))
    expected = ood.KnnScore(bank, 5)(ood.predict_features(served, images)[1])
    probability, score = ood.scored_model(model, "dihedral", bank, 5).predict_on_batch(images)
    # sqrt(2 - 2 cos) in float32 loses digits for near neighbours (here 0.004 apart): within the 1e-4 of the export
    np.testing.assert_allclose(np.ravel(score), expected, atol=1e-4)
    np.testing.assert_allclose(np.ravel(probability), np.ravel(served.predict_on_batch(images)[0]), atol=1e-6)


def test_under_the_dihedral_views_a_rotated_or_mirrored_cell_has_the_cells_features():
    """Why the export scores its rotated probe set as the test cells themselves under dihedral TTA: the 8 views of
    a rotated (or mirrored) cell are the cell's own 8 views, so the averaged features and probability agree."""
    from inspectcnn import ood

    model, images = tiny_model(), cells(6, 7)
    images[:, 1:3, 5:] = 0.1  # not symmetric: a rotation changes what a single view sees
    served = ood.served_features_model(model, "dihedral")
    probability, features = ood.predict_features(served, images)
    single = ood.served_features_model(model, "none")
    for moved in (np.rot90(images, 1, axes=(1, 2)), images[:, ::-1], np.swapaxes(images, 1, 2)):
        moved = np.ascontiguousarray(moved)
        found = ood.predict_features(served, moved)
        np.testing.assert_allclose(found[1], features, atol=1e-6)
        np.testing.assert_allclose(found[0], probability, atol=1e-6)
    assert np.abs(ood.predict_features(single, np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2))))[1]
                  - ood.predict_features(single, images)[1]).max() > 1e-3  # one view alone does see the rotation


def test_a_model_without_a_dense_last_layer_has_no_score():
    import keras

    from inspectcnn import ood

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Average()([keras.layers.Dense(1)(inputs), keras.layers.Dense(1)(inputs)]))
    with pytest.raises(ood.OodError, match="not a Dense layer"):
        ood.feature_model(model)


def test_the_threshold_comes_from_validation_and_the_bank_from_training(monkeypatch, tmp_path):
    """fit_for_export reads train for the bank and val for the threshold; the test split only for the checks."""
    from inspectcnn import export, ood, ood_probes
    from inspectcnn.config import OodConfig

    splits = {"train": cells(30, 7), "val": cells(20, 8), "test": cells(20, 9)}
    splits["test"][:10] = np.random.default_rng(0).random((10, 8, 8, 1), dtype=np.float32)  # far from val
    read = []

    def split_arrays(prepared, split, size, channels, with_ids=False):
        read.append(split)
        return splits[split], np.zeros(len(splits[split]), int)

    monkeypatch.setattr(export, "split_arrays", split_arrays)
    spec = {"input": {"color_mode": "grayscale", "size": 8, "stored_size": 8, "channels": 1}}
    model = tiny_model()
    _, _, test_scores, record = ood_probes.fit_for_export(model, "none", tmp_path, OodConfig(k=3), spec, 0, tmp_path)
    served = ood.served_features_model(model, "none")
    scorer = ood.KnnScore(ood.predict_features(served, splits["train"])[1], 3)
    val_threshold = ood.threshold(scorer(ood.predict_features(served, splits["val"])[1]), 0.95)
    assert read == ["train", "val", "test"]
    assert record["threshold"] == pytest.approx(val_threshold, abs=1e-6) == spec["ood"]["threshold"]
    assert record["threshold"] != pytest.approx(ood.threshold(test_scores, 0.95), abs=1e-6)
    assert (tmp_path / ood.BANK_FILE).is_file() and record["bank_size"] == 30
    assert [c["set"] for c in record["checks"]] == ["test", "noise", "constant", "photographs", "rotated", "blurred"]


def test_the_features_are_computed_by_openvino_when_installed_and_by_keras_otherwise(monkeypatch, tmp_path):
    """The export computes the bank and the probe scores through OpenVINO's runtime (float32): the same
    probabilities and features as the Keras model; without OpenVINO, the Keras model itself."""
    import sys

    from inspectcnn import ood, ood_probes

    served = ood.served_features_model(tiny_model(), "dihedral")
    images = cells(10, 11)
    runner = ood_probes.features_runner(served, tmp_path)
    assert type(runner).__name__ == "_OpenVinoFeatures"
    expected, found = ood.predict_features(served, images, batch=4), ood.predict_features(runner, images, batch=4)
    np.testing.assert_allclose(found[0], expected[0], atol=1e-6)
    np.testing.assert_allclose(found[1], expected[1], atol=1e-6)
    monkeypatch.setitem(sys.modules, "openvino", None)  # not installed
    assert ood_probes.features_runner(served, tmp_path / "none") is served


def test_photograph_crops_are_model_inputs():
    from inspectcnn.ood_probes import photo_crops

    spec = {"input": {"color_mode": "grayscale", "size": 32, "stored_size": 48, "channels": 1}}
    crops = photo_crops(5, np.random.default_rng(0), spec)
    assert crops.shape == (5, 32, 32, 1) and crops.dtype == np.float32 and 0 <= crops.min() < crops.max() <= 1


def test_predict_decides_unknown_above_the_threshold_and_nothing_without_a_score():
    from inspectcnn.cli import decide

    classes = ["ok", "defect"]
    assert decide("a", 0.9, 0.5, classes, 0.2, 0.3) | {} == {
        "path": "a", "probability": 0.9, "label": 1, "class": "defect", "ood_score": 0.2, "in_distribution": "true"}
    row = decide("b", 0.9, 0.5, classes, 0.4, 0.3)
    assert (row["label"], row["class"], row["in_distribution"]) == (-1, "unknown", "false")
    row = decide("c", 0.1, 0.5, classes, None, None)
    assert (row["label"], row["class"], row["ood_score"], row["in_distribution"]) == (0, "ok", "", "")


def test_stage_features_join_the_penultimate_ones_and_leave_the_probability_alone():
    from inspectcnn import ood
    from inspectcnn.config import TransferConfig
    from inspectcnn.transfer.surgery import build_transfer_model

    model = build_transfer_model(TransferConfig(backbone="efficientnet_lite0", weights="none", image_size=64, head=[]), 1)
    images = np.random.default_rng(0).random((3, 64, 64, 1), dtype=np.float32)
    assert ood.usable_stages(model, (5,)) == (5,) and ood.usable_stages(tiny_model(), (5,)) == ()
    probability, features = ood.feature_model(model, (5,)).predict_on_batch(images)
    np.testing.assert_allclose(np.ravel(probability), np.ravel(model.predict_on_batch(images)), atol=1e-6)
    assert features.shape == (3, 112 + 1280)
    np.testing.assert_allclose(np.linalg.norm(features[:, :112], axis=1), 1.0, atol=1e-5)  # each part unit length
    with pytest.raises(ood.OodError, match="need a transfer model"):
        ood.feature_model(tiny_model(), (5,))
