"""activation: plain NumPy forward and backward (the oracle; never calls native code).

Same names, signatures and semantics as convkern.functional (torch.nn.functional): torch's
subgradients at kinks (relu'(0) = 0, leaky_relu'(0) = prelu'(0) = slope, elu'(0) = alpha)
and NaN handling (relu(NaN) = NaN). Dropout uses the same counter-based hash as the native
kernel (splitmix64 of seed + (i + 1) * 0x9E3779B97F4A7C15, in uint64 arithmetic), so the
masks are bitwise equal.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "relu", "relu_backward", "relu6", "relu6_backward", "leaky_relu", "leaky_relu_backward", "prelu", "prelu_backward",
    "elu", "elu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "gelu", "gelu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "dropout", "dropout_backward",
]

DIFFERENTIABLE = {
    "relu": ("input",),
    "relu6": ("input",),
    "leaky_relu": ("input",),
    "prelu": ("input", "weight"),
    "elu": ("input",),
    "sigmoid": ("input",),
    "tanh": ("input",),
    "gelu": ("input",),
    "softmax": ("input",),
    "log_softmax": ("input",),
    "dropout": ("input",),
}


def _arr(x, name="input"):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {x.dtype}")
    return x


def relu(input):
    x = _arr(input)
    return np.where(x < 0, np.zeros_like(x), x)  # NaN stays NaN


def relu_backward(grad_output, input):
    x = _arr(input)
    return (np.where(x <= 0, 0, grad_output).astype(x.dtype),)


def relu6(input):
    x = _arr(input)
    return np.where(x < 0, np.zeros_like(x), np.where(x > 6, np.full_like(x, 6), x))  # NaN stays NaN


def relu6_backward(grad_output, input):
    x = _arr(input)
    return (np.where((x > 0) & (x < 6), grad_output, 0).astype(x.dtype),)


def leaky_relu(input, negative_slope=0.01):
    x = _arr(input)
    return np.where(x > 0, x, x * negative_slope).astype(x.dtype)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    x = _arr(input)
    return (np.where(x > 0, grad_output, grad_output * negative_slope).astype(x.dtype),)


def elu(input, alpha=1.0):
    x = _arr(input)
    with np.errstate(over="ignore"):
        return np.where(x <= 0, alpha * np.expm1(np.minimum(x, 0)), x).astype(x.dtype)


def elu_backward(grad_output, input, alpha=1.0):
    x = _arr(input)
    # x > 0 selects the identity branch, so NaN input gives a NaN gradient (as torch's vector kernel)
    return (np.where(x > 0, grad_output, grad_output * alpha * np.exp(np.minimum(x, 0))).astype(x.dtype),)


def sigmoid(input):
    x = _arr(input)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


def sigmoid_backward(grad_output, input):
    y = sigmoid(input)
    return ((grad_output * (1 - y) * y).astype(y.dtype),)


def tanh(input):
    return np.tanh(_arr(input))


def tanh_backward(grad_output, input):
    y = tanh(input)
    return ((grad_output * (1 - y * y)).astype(y.dtype),)


_erf = np.frompyfunc(math.erf, 1, 1)
_KAPPA = 0.044715
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _check_approximate(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")


def _phi_cdf(x):
    # np.asarray: a ufunc on a 0-d array returns a Python float
    return 0.5 * (1.0 + np.asarray(_erf(x / math.sqrt(2.0)), dtype=np.float64))


def gelu(input, approximate="none"):
    """x * Phi(x), or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = _arr(input)
    _check_approximate(approximate)
    x64 = x.astype(np.float64)
    if approximate == "none":
        y = x64 * _phi_cdf(x64)
    else:
        y = 0.5 * x64 * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x64 + _KAPPA * x64 ** 3)))
    return y.astype(x.dtype)


def gelu_backward(grad_output, input, approximate="none"):
    x = _arr(input)
    _check_approximate(approximate)
    x64 = x.astype(np.float64)
    if approximate == "none":
        pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
        d = _phi_cdf(x64) + x64 * pdf
    else:
        u = _SQRT_2_OVER_PI * (x64 + _KAPPA * x64 ** 3)
        th = np.tanh(u)
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _KAPPA * x64 * x64)
        d = 0.5 * (1.0 + th) + 0.5 * x64 * (1.0 - th * th) * du
    return ((grad_output * d).astype(x.dtype),)


def _prelu_weight(x, weight):
    """weight broadcast against x: one value, or one per channel along dim 1."""
    w = np.asarray(weight).reshape(-1)
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.size not in (1, channels):
        raise ValueError(f"weight: has {w.size} values; expected 1 or {channels}")
    if w.size == 1:
        return w.reshape(()), None
    return w.reshape((1, channels) + (1,) * (x.ndim - 2)), tuple(i for i in range(x.ndim) if i != 1)


def prelu(input, weight):
    x = _arr(input)
    w, _ = _prelu_weight(x, weight)
    return np.where(x > 0, x, w * x).astype(x.dtype)


def prelu_backward(grad_output, input, weight):
    x = _arr(input)
    w, axes = _prelu_weight(x, weight)
    gx = np.where(x > 0, grad_output, w * grad_output).astype(x.dtype)
    contrib = np.where(x > 0, 0, x * grad_output)
    gw = contrib.sum() if axes is None else contrib.sum(axis=axes)
    return gx, np.asarray(gw, dtype=x.dtype).reshape(np.shape(weight))


def _dim(x, dim):
    if dim is None:
        raise ValueError("dim: must be given")
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise ValueError(f"dim: {dim} out of range")
    return dim % nd


def softmax(input, dim=None):
    x = _arr(input)
    d = _dim(x, dim)
    x1 = x.reshape(x.shape or (1,))
    e = np.exp(x1 - np.max(x1, axis=d, keepdims=True))
    return (e / np.sum(e, axis=d, keepdims=True)).reshape(x.shape)


def softmax_backward(grad_output, input, dim=None):
    y = softmax(input, dim)
    d = _dim(y, dim)
    y1 = y.reshape(y.shape or (1,))
    g1 = np.reshape(grad_output, y1.shape)
    gx = y1 * (g1 - np.sum(g1 * y1, axis=d, keepdims=True))
    return (gx.reshape(y.shape).astype(y.dtype),)


def log_softmax(input, dim=None):
    x = _arr(input)
    d = _dim(x, dim)
    x1 = x.reshape(x.shape or (1,))
    shifted = x1 - np.max(x1, axis=d, keepdims=True)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=d, keepdims=True))).reshape(x.shape)


def log_softmax_backward(grad_output, input, dim=None):
    y = log_softmax(input, dim)
    d = _dim(y, dim)
    y1 = y.reshape(y.shape or (1,))
    g1 = np.reshape(grad_output, y1.shape)
    gx = g1 - np.exp(y1) * np.sum(g1, axis=d, keepdims=True)
    return (gx.reshape(y.shape).astype(y.dtype),)


# ---------------------------------------------------------------------------------------------
def _check_p(p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability has to be between 0 and 1, but got {p}")


def dropout_mask(shape, p, seed):
    """Boolean keep-mask: splitmix64(seed + (i + 1) * golden) >> 11 >= floor(p * 2^53), i the
    flat (C-order) element index."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(1, n + 1, dtype=np.uint64)
    z = np.uint64(int(seed) % (1 << 64)) + i * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    threshold = np.uint64(int(p * float(1 << 53)))
    return ((z >> np.uint64(11)) >= threshold).reshape(shape)


def _dropout_apply(x, p, seed):
    keep = dropout_mask(x.shape, p, seed)
    # the scale is rounded to x's dtype first and the product taken in that dtype, as natively
    scale = x.dtype.type(1.0 / (1.0 - p) if p < 1.0 else 0.0)
    return x * np.where(keep, scale, x.dtype.type(0))


def dropout(input, p=0.5, training=True, seed=None):
    x = _arr(input)
    _check_p(p)
    if not training or p == 0.0:
        return x.copy()
    if seed is None:
        seed = int(np.random.randint(0, 2**63, dtype=np.int64))
    if not isinstance(seed, numbers.Integral):
        raise TypeError("seed: expected an int")
    return _dropout_apply(x, p, seed)


def dropout_backward(grad_output, input, p=0.5, training=True, seed=None):
    x = _arr(input)
    _check_p(p)
    g = np.asarray(grad_output)
    if not training or p == 0.0:
        return (g.astype(x.dtype),)
    if seed is None and p < 1.0:
        raise ValueError("seed: dropout_backward needs the seed the forward used")
    return (_dropout_apply(g.astype(x.dtype), p, 0 if seed is None else seed),)
