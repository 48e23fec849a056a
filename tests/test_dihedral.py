"""The 8 rot90/mirror views: training augmentation, cached views and test-time augmentation agree."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn import dihedral
from inspectcnn.models.saving import load_model


def _images(count=3, size=8, channels=1, seed=0):
    return np.random.default_rng(seed).random((count, size, size, channels)).astype("float32")


def _tiny_model(size=8, channels=1):
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(x), name="tiny")


def test_the_views_are_the_8_distinct_symmetries_of_the_square():
    image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    views = [dihedral.view(image, k) for k in range(8)]
    assert len({v.tobytes() for v in views}) == 8
    expected = [np.rot90(image[0, ..., 0], r) for r in range(4)]
    expected += [np.fliplr(e) for e in expected]
    assert {e.tobytes() for e in expected} == {v[0, ..., 0].tobytes() for v in views}
    assert np.array_equal(views[0], image)


@pytest.mark.parametrize("mode", ["flips", "dihedral"])
def test_tta_model_is_the_mean_over_the_views_and_loads_in_safe_mode(tmp_path, mode):
    model = _tiny_model()
    x = _images()
    wrapped = dihedral.tta_model(model, mode)
    expected = np.mean([model.predict(dihedral.view(x, k), verbose=0) for k in dihedral.TTA_VIEWS[mode]], axis=0)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), expected, atol=1e-6)
    wrapped.save(tmp_path / "tta.keras")
    again = load_model(tmp_path / "tta.keras")  # stock layers only: no custom objects, safe mode
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, atol=1e-6)
    assert dihedral.tta_model(model, "none") is model


def test_tta_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="unknown test-time augmentation 'spin'"):
        dihedral.tta_model(_tiny_model(), "spin")
    inputs = keras.Input((8, 6, 1))
    flat = keras.layers.Dense(1)(keras.layers.Flatten()(inputs))
    with pytest.raises(ValueError, match="square"):
        dihedral.tta_model(keras.Model(inputs, flat), "flips")


def test_random_views_give_each_image_one_of_its_8_views_and_all_of_them_over_a_batch():
    image = _images(1, size=6)
    batch = np.repeat(image, 200, axis=0)
    out = dihedral.random_views(batch, np.random.default_rng(3))
    views = [dihedral.view(image, k)[0].tobytes() for k in range(8)]
    seen = [views.index(o.tobytes()) for o in out]  # raises if an output is not a view
    assert sorted(set(seen)) == list(range(8))


def test_dihedral_augmentation_in_the_input_pipeline(tmp_path):
    from helpers import tiny_prepared

    from inspectcnn.config import AugmentConfig
    from inspectcnn.data.dataset import load_split

    prepared = tiny_prepared(tmp_path / "p", image_size=16)
    plain = load_split(prepared, "train", image_size=16, batch_size=64)[0][0]
    augment = AugmentConfig(flip="none", dihedral=True)
    moved = load_split(prepared, "train", image_size=16, batch_size=64, augment=augment, seed=1)[0][0]
    assert not np.array_equal(plain, moved)
    for original, changed in zip(plain, moved):
        assert any(np.array_equal(dihedral.view(original[None], k)[0], changed) for k in range(8))


def test_augment_views_name_what_can_be_cached():
    from inspectcnn.config import AugmentConfig

    assert AugmentConfig(flip="none", dihedral=True).views == tuple(range(8))
    assert AugmentConfig(flip="horizontal_and_vertical").views == (0, 1, 2, 3)
    assert AugmentConfig(flip="none").views == (0,)
    assert AugmentConfig(flip="none", dihedral=True, brightness=0.1).views is None
