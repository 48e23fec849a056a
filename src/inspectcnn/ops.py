"""Convolution arithmetic in plain NumPy, written for reading (Dumoulin and Visin 2016, "A guide to convolution arithmetic").

This is the reference the tests hold Keras against: slow loops over output positions, no tricks.
Arrays are (H, W) for one channel and (C, H, W) for several, as in the notes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def corr2d(x: np.ndarray, k: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
    """2-D cross-correlation of one channel (no padding): Y[i, j] = sum(X[window] * K)."""
    kh, kw = k.shape
    sh, sw = stride
    out_h, out_w = (x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1
    y = np.zeros((out_h, out_w), dtype=np.result_type(x, k, np.float64))
    for i in range(out_h):
        for j in range(out_w):
            y[i, j] = np.sum(x[i * sh : i * sh + kh, j * sw : j * sw + kw] * k)
    return y


def pad2d(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the last two axes by (p_h, p_w) on each side."""
    ph, pw = padding
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(x, widths, constant_values=value)


def corr2d_multi_in(x: np.ndarray, k: np.ndarray, stride=(1, 1), padding=(0, 0)) -> np.ndarray:
    """Several input channels (C, H, W) with a kernel (C, kh, kw): correlate per channel, then sum."""
    x = pad2d(x, padding)
    return sum(corr2d(x_c, k_c, stride) for x_c, k_c in zip(x, k))


def corr2d_multi_in_out(x: np.ndarray, k: np.ndarray, stride=(1, 1), padding=(0, 0), bias=None) -> np.ndarray:
    """Kernel (C_out, C_in, kh, kw): one multi-input correlation per output channel, stacked."""
    y = np.stack([corr2d_multi_in(x, k_o, stride, padding) for k_o in k])
    if bias is not None:
        y = y + np.asarray(bias)[:, None, None]
    return y


def conv1x1(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """1x1 convolution as a matrix product over channels: kernel (C_out, C_in), x (C_in, H, W)."""
    c_in, h, w = x.shape
    return (k @ x.reshape(c_in, h * w)).reshape(k.shape[0], h, w)


def pool2d(x: np.ndarray, pool_size, mode: str = "max", stride=None, padding=(0, 0)) -> np.ndarray:
    """Max or average pooling of each channel; average counts padded zeros (PyTorch's default)."""
    ph, pw = pool_size
    stride = stride or pool_size
    if x.ndim == 3:
        return np.stack([pool2d(c, pool_size, mode, stride, padding) for c in x])
    fill = -np.inf if mode == "max" else 0.0
    x = pad2d(x.astype(np.float64), padding, fill)
    out_h, out_w = (x.shape[0] - ph) // stride[0] + 1, (x.shape[1] - pw) // stride[1] + 1
    reduce = {"max": np.max, "avg": np.mean}[mode]
    y = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            y[i, j] = reduce(x[i * stride[0] : i * stride[0] + ph, j * stride[1] : j * stride[1] + pw])
    return y


def output_size(n: int, k: int, p: int = 0, s: int = 1) -> int:
    """Equation (7) of the notes along one axis: floor((n - k + 2p) / s) + 1."""
    return (n - k + 2 * p) // s + 1


def output_shape(input_hw, kernel_hw, padding_hw=(0, 0), stride_hw=(1, 1)) -> tuple[int, int]:
    return tuple(output_size(n, k, p, s) for n, k, p, s in zip(input_hw, kernel_hw, padding_hw, stride_hw))


def padding_for(n: int, k: int, s: int, wanted: int) -> int:
    """Smallest padding p >= 0 (per side) with output_size(n, k, p, s) == wanted."""
    # floor((n - k + 2p) / s) + 1 = wanted  <=>  (wanted - 1) * s <= n - k + 2p < wanted * s
    p = max(0, math.ceil(((wanted - 1) * s - n + k) / 2))
    if output_size(n, k, p, s) != wanted:
        raise ValueError(f"no padding gives output {wanted} for n={n}, k={k}, s={s}")
    return p


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field of a stack of (kernel, stride) layers: r += (k - 1) * product of earlier strides."""
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field
