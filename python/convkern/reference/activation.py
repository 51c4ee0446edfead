"""Activations, softmax and dropout: plain NumPy forward and backward."""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "prelu", "prelu_backward", "elu", "elu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "gelu", "gelu_backward", "softmax", "softmax_backward",
    "log_softmax", "log_softmax_backward", "dropout", "dropout_backward",
]
DIFFERENTIABLE = {
    "relu": ("input",), "leaky_relu": ("input",), "prelu": ("input", "weight"), "elu": ("input",),
    "sigmoid": ("input",), "tanh": ("input",), "gelu": ("input",), "softmax": ("input",), "log_softmax": ("input",),
    "dropout": ("input",),
}

_erf = np.vectorize(math.erf, otypes=[np.float64])


def relu(input):
    return np.where(input < 0, 0, input).astype(input.dtype)


def relu_backward(grad_output, input):
    return (np.where(input <= 0, 0, grad_output).astype(input.dtype),)  # torch: 0 at the kink


def leaky_relu(input, negative_slope=0.01):
    return np.where(input < 0, input * negative_slope, input).astype(input.dtype)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    return (np.where(input > 0, grad_output, grad_output * negative_slope).astype(input.dtype),)


def elu(input, alpha=1.0):
    return np.where(input > 0, input, alpha * np.expm1(np.minimum(input, 0))).astype(input.dtype)


def elu_backward(grad_output, input, alpha=1.0):
    return (np.where(input > 0, grad_output, grad_output * alpha * np.exp(np.minimum(input, 0))).astype(input.dtype),)


def sigmoid(input):
    return 1 / (1 + np.exp(-input))


def sigmoid_backward(grad_output, input):
    s = sigmoid(input)
    return (grad_output * s * (1 - s),)


def tanh(input):
    return np.tanh(input)


def tanh_backward(grad_output, input):
    return (grad_output * (1 - np.tanh(input) ** 2),)


def gelu(input, approximate="none"):
    x = input
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype)


def gelu_backward(grad_output, input, approximate="none"):
    x = input
    if approximate == "tanh":
        c = math.sqrt(2 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x ** 3))
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * c * (1 + 3 * 0.044715 * x ** 2)
        return (grad_output * d,)
    cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)
    return ((grad_output * (cdf + x * pdf)).astype(x.dtype),)


def _slope(input, weight):
    """weight broadcast over dimension 1 (the channels)."""
    if input.ndim >= 2 and weight.size > 1:
        return weight.reshape((1, -1) + (1,) * (input.ndim - 2))
    return weight.reshape(())


def prelu(input, weight):
    return np.where(input < 0, input * _slope(input, weight), input)


def prelu_backward(grad_output, input, weight):
    a = _slope(input, weight)
    gx = np.where(input > 0, grad_output, grad_output * a)
    contrib = np.where(input > 0, 0, grad_output * input)
    if weight.size == 1:
        gw = np.array([contrib.sum()], dtype=input.dtype).reshape(weight.shape)
    else:
        axes = tuple(i for i in range(input.ndim) if i != 1)
        gw = contrib.sum(axis=axes).reshape(weight.shape)
    return gx, gw


def softmax(input, dim=None):
    m = np.max(input, axis=dim, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(input - m)
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_output, input, dim=None):
    y = softmax(input, dim)
    return (y * (grad_output - (grad_output * y).sum(axis=dim, keepdims=True)),)


def log_softmax(input, dim=None):
    m = np.max(input, axis=dim, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    return input - m - np.log(np.exp(input - m).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_output, input, dim=None):
    y = log_softmax(input, dim)
    return (grad_output - np.exp(y) * grad_output.sum(axis=dim, keepdims=True),)


def dropout_mask(shape, p, seed):
    """The kept elements: splitmix64(seed + i * golden) >> 11 >= p * 2**53 (same hash as the kernel)."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    threshold = min(int(p * 2.0 ** 53), 2 ** 53)
    return ((z >> np.uint64(11)) >= np.uint64(threshold)).reshape(shape)


def dropout(input, p=0.5, training=True, seed=None):
    if not training or p == 0:
        return input.copy()
    if p >= 1:
        return np.zeros_like(input)
    return np.where(dropout_mask(input.shape, p, seed), input * (1.0 / (1 - p)), 0).astype(input.dtype)


def dropout_backward(grad_output, input, p=0.5, training=True, seed=None):
    return (dropout(grad_output, p, training, seed),)
