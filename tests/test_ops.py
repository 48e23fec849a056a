"""The NumPy reference against the notes' worked examples and against Keras layers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from inspectcnn import ops

X = np.arange(9.0).reshape(3, 3)
K = np.arange(4.0).reshape(2, 2)


def test_cross_correlation_example():
    np.testing.assert_array_equal(ops.corr2d(X, K), [[19, 25], [37, 43]])


def test_two_input_channels_example():
    x = np.stack([X, X + 1])
    k = np.stack([K, K + 1])
    assert ops.corr2d_multi_in(x, k)[0, 0] == 56  # 37 + 19


def test_one_by_one_convolution_equals_per_pixel_dense():
    rng = np.random.default_rng(0)
    x, k = rng.random((3, 3, 3)), rng.random((2, 3))
    reference = ops.corr2d_multi_in_out(x, k[:, :, None, None])
    np.testing.assert_allclose(ops.conv1x1(x, k), reference)
    assert ops.conv1x1(x, k).shape == (2, 3, 3)


def test_three_output_channels_kernel_shape():
    k = np.stack([np.stack([K, K + 1]) + i for i in range(3)])
    assert k.shape == (3, 2, 2, 2)
    assert ops.corr2d_multi_in_out(np.stack([X, X + 1]), k).shape == (3, 2, 2)


def test_pooling_exercise():
    # 4x4 input, window 2x2 stride 2: no padding; window 3x3 stride 2 needs padding 1 for 2x2 out.
    assert ops.padding_for(4, 2, 2, 2) == 0
    assert ops.padding_for(4, 3, 2, 2) == 1
    # The exercise: window and stride (2, 3), output still (2, 2) -> padding (0, 1).
    assert (ops.padding_for(4, 2, 2, 2), ops.padding_for(4, 3, 3, 2)) == (0, 1)
    x = np.arange(16.0).reshape(4, 4)
    assert ops.pool2d(x, (2, 3), "max", (2, 3), (0, 1)).shape == (2, 2)
    np.testing.assert_array_equal(ops.pool2d(X, (2, 2), "max", (1, 1)), [[4, 5], [7, 8]])
    np.testing.assert_array_equal(ops.pool2d(X, (2, 2), "avg", (1, 1)), [[2, 3], [5, 6]])


def test_output_shape_formula():
    assert ops.output_shape((8, 8), (3, 3), (1, 1), (1, 1)) == (8, 8)
    assert ops.output_shape((8, 8), (3, 5), (0, 1), (3, 4)) == (2, 2)  # the notes' stride figure
    assert ops.output_size(224, 11, 2, 4) == 55  # AlexNet's first layer


def test_receptive_field_of_a_stack():
    assert ops.receptive_field([(3, 1), (3, 1)]) == 5
    assert ops.receptive_field([(5, 1), (2, 2), (5, 1), (2, 2)]) == 16


def _keras(layer, x_chw):
    y = layer(np.transpose(x_chw, (1, 2, 0))[None].astype(np.float32))
    return np.transpose(keras.ops.convert_to_numpy(y)[0], (2, 0, 1))


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(3, 1, 0), (3, 2, 1), (5, 1, 2), (2, 3, 1), (1, 1, 0)])
def test_convolution_agrees_with_keras(kernel, stride, padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.standard_normal((3, 11, 11))
    k = rng.standard_normal((4, 3, kernel, kernel))
    b = rng.standard_normal(4)
    conv = keras.layers.Conv2D(4, kernel, strides=stride)
    pad = keras.layers.ZeroPadding2D(padding)
    conv.build((None, 11 + 2 * padding, 11 + 2 * padding, 3))
    conv.set_weights([np.transpose(k, (2, 3, 1, 0)), b])  # Keras kernels are (kh, kw, c_in, c_out)
    got = _keras(lambda t: conv(pad(t)), x)
    np.testing.assert_allclose(got, ops.corr2d_multi_in_out(x, k, (stride, stride), (padding, padding), b),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize(("size", "stride", "padding"), [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_pooling_agrees_with_keras(mode, size, stride, padding):
    x = np.random.default_rng(size + stride).standard_normal((2, 9, 9))
    layer = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}[mode](size, strides=stride)
    # Keras pads with zeros here (before pooling), the reference pads max with -inf: equal for max only
    # when the padding never wins, so max uses padding 0 against Keras and -inf padding is tested above.
    pad = padding if mode == "avg" else 0
    got = _keras(lambda t: layer(keras.layers.ZeroPadding2D(pad)(t)), x)
    np.testing.assert_allclose(got, ops.pool2d(x, (size, size), mode, (stride, stride), (pad, pad)), rtol=1e-5, atol=1e-6)
