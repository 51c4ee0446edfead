"""Activations, softmax / log_softmax and dropout (native kernels), torch.nn.functional style.

Backward functions take the forward's arguments and recompute what they need
(``relu_backward(grad_output, input)``); dropout's mask is a pure function of
``(seed, element index)``, so the backward with the same seed drops the same elements.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from ._util import as_float, as_int, as_number, check_choice, check_flag, check_shape, empty

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

# Kinds of csrc/ops/activation.h
_RELU, _LEAKY, _ELU, _SIGMOID, _TANH, _GELU_ERF, _GELU_TANH = range(7)


def _grad(grad_output, x):
    g = as_float(grad_output, "grad_output", like=x)
    check_shape(g, x.shape, "grad_output")
    return g


def _act(kind, input, alpha=0.0):
    x = as_float(input, "input")
    y = empty(x.shape, x.dtype)
    _C.act_forward(kind, x, y, alpha)
    return y


def _act_bwd(kind, grad_output, input, alpha=0.0):
    x = as_float(input, "input")
    g = _grad(grad_output, x)
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.act_backward(kind, x, g, gx, alpha)
    return (gx,)


def relu(input):
    """max(x, 0); NaN stays NaN."""
    return _act(_RELU, input)


def relu_backward(grad_output, input):
    return _act_bwd(_RELU, grad_output, input)


def leaky_relu(input, negative_slope=0.01):
    """x if x >= 0 else negative_slope * x."""
    return _act(_LEAKY, input, as_number(negative_slope, "negative_slope"))


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    return _act_bwd(_LEAKY, grad_output, input, as_number(negative_slope, "negative_slope"))


def elu(input, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _act(_ELU, input, as_number(alpha, "alpha"))


def elu_backward(grad_output, input, alpha=1.0):
    return _act_bwd(_ELU, grad_output, input, as_number(alpha, "alpha"))


def sigmoid(input):
    return _act(_SIGMOID, input)


def sigmoid_backward(grad_output, input):
    return _act_bwd(_SIGMOID, grad_output, input)


def tanh(input):
    return _act(_TANH, input)


def tanh_backward(grad_output, input):
    return _act_bwd(_TANH, grad_output, input)


def _gelu_kind(approximate):
    check_choice(approximate, ("none", "tanh"), "approximate")
    return _GELU_ERF if approximate == "none" else _GELU_TANH


def gelu(input, approximate="none"):
    """x * Phi(x) (approximate='tanh': the tanh approximation)."""
    return _act(_gelu_kind(approximate), input)


def gelu_backward(grad_output, input, approximate="none"):
    return _act_bwd(_gelu_kind(approximate), grad_output, input)


def _prelu_geometry(x, w):
    if w.ndim != 1:
        raise ValueError(f"weight: expected 1 dimension, got shape {w.shape}")
    if x.ndim == 0:
        raise ValueError("input: expected at least 1 dimension")
    C = x.shape[1] if x.ndim >= 2 else 1
    if w.size not in (1, C):
        raise ValueError(f"weight: expected 1 or {C} (the channel dimension) entries, got {w.size}")
    N = x.shape[0] if x.ndim >= 2 else 1
    inner = int(np.prod(x.shape[2:])) if x.ndim > 2 else (1 if x.ndim == 2 else x.shape[0])
    if x.ndim == 1:  # torch: a 1-d input is one channel's values
        N, C, inner = 1, 1, x.shape[0]
        if w.size != 1:
            raise ValueError(f"weight: a 1-d input needs a single slope, got {w.size}")
    return N, C, inner


def prelu(input, weight):
    """x if x >= 0 else weight[c] * x, weight of 1 or C (dimension 1) entries."""
    x = as_float(input, "input")
    w = as_float(weight, "weight", like=x)
    N, C, inner = _prelu_geometry(x, w)
    y = empty(x.shape, x.dtype)
    _C.prelu_forward(x, w, y, N, C, inner)
    return y


def prelu_backward(grad_output, input, weight):
    """(grad_input, grad_weight)."""
    x = as_float(input, "input")
    w = as_float(weight, "weight", like=x)
    N, C, inner = _prelu_geometry(x, w)
    g = _grad(grad_output, x)
    gx = empty(x.shape, x.dtype, "grad_input")
    gw = empty((C,), x.dtype, "grad_weight")
    _C.prelu_backward(x, w, g, gx, gw, N, C, inner)
    return gx, (gw[:1].copy() if w.size == 1 else gw).reshape(w.shape)


def _softmax_geometry(x, dim):
    if dim is None:
        raise ValueError("dim: softmax needs an explicit dim")
    dim = as_int(dim, "dim")
    nd = max(x.ndim, 1)
    if not -nd <= dim < nd:
        raise ValueError(f"dim: {dim} is out of range for an input with {x.ndim} dimensions")
    if x.ndim == 0:
        return 1, 1, 1
    dim %= x.ndim
    outer = int(np.prod(x.shape[:dim], dtype=np.int64))
    inner = int(np.prod(x.shape[dim + 1:], dtype=np.int64))
    return outer, x.shape[dim], inner


def _softmax(log, input, dim):
    x = as_float(input, "input")
    outer, D, inner = _softmax_geometry(x, dim)
    y = empty(x.shape, x.dtype)
    if x.size:
        _C.softmax_forward(log, x, y, outer, D, inner)
    return y


def _softmax_bwd(log, grad_output, input, dim):
    x = as_float(input, "input")
    outer, D, inner = _softmax_geometry(x, dim)
    g = _grad(grad_output, x)
    y = _softmax(log, x, dim)
    gx = empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.softmax_backward(log, y, g, gx, outer, D, inner)
    return (gx,)


def softmax(input, dim=None):
    """exp(x) / sum(exp(x)) along dim (max-subtracted)."""
    return _softmax(False, input, dim)


def softmax_backward(grad_output, input, dim=None):
    return _softmax_bwd(False, grad_output, input, dim)


def log_softmax(input, dim=None):
    """x - logsumexp(x) along dim."""
    return _softmax(True, input, dim)


def log_softmax_backward(grad_output, input, dim=None):
    return _softmax_bwd(True, grad_output, input, dim)


def _dropout_args(p, training, seed, need_seed):
    p = as_number(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: dropout probability must be in [0, 1], got {p}")
    training = check_flag(training, "training")
    if seed is None:
        if need_seed and training and 0.0 < p < 1.0:
            raise ValueError("seed: the backward of a training-mode dropout needs the forward's seed")
        seed = int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
    else:
        seed = as_int(seed, "seed", minimum=0)
        if seed >= 2**64:
            raise ValueError(f"seed: must be < 2**64, got {seed}")
    threshold = min(int(p * 2.0**53), 2**53)
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return p, training, seed, threshold, scale


def dropout(input, p=0.5, training=True, seed=None):
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p).

    The mask is a hash of (seed, flat element index): the same seed gives the same mask on
    every ISA and thread count. seed=None draws one from NumPy's global generator."""
    x = as_float(input, "input")
    p, training, seed, threshold, scale = _dropout_args(p, training, seed, need_seed=False)
    if not training or p == 0.0:
        return x.copy()
    y = empty(x.shape, x.dtype)
    _C.dropout(x, y, seed, threshold, scale)
    return y


def dropout_backward(grad_output, input, p=0.5, training=True, seed=None):
    """(grad_input,): grad_output through the same mask (needs the forward's seed)."""
    x = as_float(input, "input")
    p, training, seed, threshold, scale = _dropout_args(p, training, seed, need_seed=True)
    g = _grad(grad_output, x)
    if not training or p == 0.0:
        return (g.copy(),)
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.dropout(g, gx, seed, threshold, scale)
    return (gx,)
