"""Activations, softmax / log_softmax and dropout on native kernels (torch.nn.functional names).

Every op takes any input rank (prelu: channel dim 1) in float32 or float64 and returns a new
array of the input's dtype. ``<op>_backward(grad_output, <forward args>)`` returns one gradient
per name in ``DIFFERENTIABLE[op]``; it is stateless and recomputes what it needs. Subgradients
at kinks follow torch: relu'(0) = 0, relu6'(0) = relu6'(6) = 0, leaky_relu'(0) = prelu'(0) = slope, elu'(0) = alpha.
"""
from __future__ import annotations

import numbers

import math

import numpy as np

from .. import _C
from . import _util as U

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


def _as_float(x, name: str, like=None) -> np.ndarray:
    """U.as_float keeping 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)."""
    y = U.as_float(x, name, like)
    return y.reshape(()) if x.ndim == 0 else y

# op codes of csrc/ops/activation.h (ActOp)
_RELU, _LEAKY, _ELU, _SIGMOID, _TANH, _GELU, _GELU_TANH, _RELU6 = range(8)


def _grad_like(grad_output, x: np.ndarray) -> np.ndarray:
    g = _as_float(grad_output, "grad_output", like=x)
    if g.shape != x.shape:
        raise ValueError(f"grad_output: expected shape {x.shape} (the output's), got {g.shape}")
    return g


def _unary(x, op: int, a: float = 0.0) -> np.ndarray:
    x = _as_float(x, "input")
    y = U.empty(x.shape, x.dtype)
    if x.size:
        _C.act_forward(x, y, op, a)
    return y


def _unary_backward(grad_output, x, op: int, a: float = 0.0):
    x = _as_float(x, "input")
    g = _grad_like(grad_output, x)
    gx = U.empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.act_backward(g, x, gx, op, a)
    return (gx,)


def relu(input):
    """max(input, 0) elementwise (NaN stays NaN)."""
    return _unary(input, _RELU)


def relu_backward(grad_output, input):
    return _unary_backward(grad_output, input, _RELU)


def relu6(input):
    """min(max(input, 0), 6) elementwise (MobileNet's activation; NaN stays NaN)."""
    return _unary(input, _RELU6, 6.0)


def relu6_backward(grad_output, input):
    """grad_output where 0 < input < 6, else 0 (torch's hardtanh subgradient)."""
    return _unary_backward(grad_output, input, _RELU6, 6.0)


def leaky_relu(input, negative_slope=0.01):
    """input if input > 0 else negative_slope * input."""
    return _unary(input, _LEAKY, U.as_number(negative_slope, "negative_slope"))


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    return _unary_backward(grad_output, input, _LEAKY, U.as_number(negative_slope, "negative_slope"))


def elu(input, alpha=1.0):
    """input if input > 0 else alpha * (exp(input) - 1)."""
    return _unary(input, _ELU, U.as_number(alpha, "alpha"))


def elu_backward(grad_output, input, alpha=1.0):
    return _unary_backward(grad_output, input, _ELU, U.as_number(alpha, "alpha"))


def sigmoid(input):
    return _unary(input, _SIGMOID)


def sigmoid_backward(grad_output, input):
    return _unary_backward(grad_output, input, _SIGMOID)


def tanh(input):
    return _unary(input, _TANH)


def tanh_backward(grad_output, input):
    return _unary_backward(grad_output, input, _TANH)


def _gelu_op(approximate) -> int:
    if not isinstance(approximate, str):
        raise TypeError(f"approximate: expected a str, got {type(approximate).__name__}")
    U.check_choice(approximate, ("none", "tanh"), "approximate")
    return _GELU if approximate == "none" else _GELU_TANH


def gelu(input, approximate="none"):
    """x * Phi(x) (approximate='none', with erf) or torch's tanh approximation."""
    return _unary(input, _gelu_op(approximate))


def gelu_backward(grad_output, input, approximate="none"):
    return _unary_backward(grad_output, input, _gelu_op(approximate))


# ---------------------------------------------------------------------------------------------
def _prelu_args(input, weight):
    x = _as_float(input, "input")
    w = _as_float(weight, "weight", like=x)
    if w.ndim != 1 and not (w.ndim == 0):
        raise ValueError(f"weight: expected 1 dimension (num_parameters,), got shape {w.shape}")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.size not in (1, channels):
        raise ValueError(f"weight: has {w.size} values; expected 1 or the {channels} channels of input dim 1 "
                         f"(input shape {x.shape})")
    if w.size == 1:
        outer, C, inner = 1, 1, x.size
    else:
        outer, C, inner = x.shape[0], channels, math.prod(x.shape[2:])
    return x, U.ascontiguous(w.reshape(-1)), w.shape, (outer, C, inner)


def prelu(input, weight):
    """input if input > 0 else weight[c] * input, c the index along dim 1 (weight of 1 value: shared)."""
    x, w, _, (outer, C, inner) = _prelu_args(input, weight)
    y = U.empty(x.shape, x.dtype)
    if x.size:
        _C.prelu_forward(x, w, y, outer, C, inner)
    return y


def prelu_backward(grad_output, input, weight):
    x, w, wshape, (outer, C, inner) = _prelu_args(input, weight)
    g = _grad_like(grad_output, x)
    gx = U.empty(x.shape, x.dtype, "grad_input")
    gw = U.zeros((w.size,), x.dtype, "grad_weight")
    if x.size:
        _C.prelu_backward(g, x, w, gx, gw, outer, C, inner)
    return gx, gw.reshape(wshape)


# ---------------------------------------------------------------------------------------------
def _softmax_args(input, dim):
    x = _as_float(input, "input")
    if dim is None:
        raise ValueError("dim: must be given (the dimension to normalize over)")
    nd = max(x.ndim, 1)
    d = U.as_int(dim, "dim")
    if not -nd <= d < nd:
        raise ValueError(f"dim: {d} is out of range for an input of {x.ndim} dimensions (shape {x.shape})")
    d %= nd
    shape = x.shape if x.ndim else (1,)
    outer = math.prod(shape[:d])
    inner = math.prod(shape[d + 1:])
    return x, (outer, shape[d], inner)


def softmax(input, dim=None):
    """exp(x - max) / sum(exp(x - max)) along ``dim`` (negative dims count from the end)."""
    x, (outer, D, inner) = _softmax_args(input, dim)
    y = U.empty(x.shape, x.dtype)
    if x.size:
        _C.softmax_forward(x, y, outer, D, inner, False)
    return y


def softmax_backward(grad_output, input, dim=None):
    x, (outer, D, inner) = _softmax_args(input, dim)
    g = _grad_like(grad_output, x)
    gx = U.empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.softmax_backward(g, x, gx, outer, D, inner, False)
    return (gx,)


def log_softmax(input, dim=None):
    """x - max - log(sum(exp(x - max))) along ``dim``."""
    x, (outer, D, inner) = _softmax_args(input, dim)
    y = U.empty(x.shape, x.dtype)
    if x.size:
        _C.softmax_forward(x, y, outer, D, inner, True)
    return y


def log_softmax_backward(grad_output, input, dim=None):
    x, (outer, D, inner) = _softmax_args(input, dim)
    g = _grad_like(grad_output, x)
    gx = U.empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.softmax_backward(g, x, gx, outer, D, inner, True)
    return (gx,)


# ---------------------------------------------------------------------------------------------
_U64 = 1 << 64


def _dropout_p(p) -> float:
    p = U.as_number(p, "p")
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"p: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _dropout_seed(seed, required: bool) -> int:
    if seed is None:
        if required:
            raise ValueError("seed: dropout_backward needs the seed the forward used (got None)")
        return int(np.random.randint(0, 2**63, dtype=np.int64))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int or None, got {type(seed).__name__}")
    return int(seed) % _U64


def dropout_threshold(p: float) -> int:
    """Elements whose 53 random bits are below this are dropped: floor(p * 2^53)."""
    return int(p * float(1 << 53))


def _dropout_run(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    y = U.empty(x.shape, x.dtype)
    if x.size:
        scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
        _C.dropout(x, y, seed, dropout_threshold(p), scale)
    return y


def dropout(input, p=0.5, training=True, seed=None):
    """Inverted dropout: each element is zeroed with probability p, the rest scaled by 1/(1-p).

    The mask is a hash of (seed, flat element index) (splitmix64), so a seed gives the same
    mask on every ISA and thread count; ``seed=None`` draws one from NumPy's global RNG.
    Identity (a copy) when ``training`` is False or p == 0; p == 1 gives input * 0."""
    x = _as_float(input, "input")
    p = _dropout_p(p)
    training = U.check_flag(training, "training")
    seed = _dropout_seed(seed, required=False)
    if not training or p == 0.0:
        return x.copy()
    return _dropout_run(x, p, seed)


def dropout_backward(grad_output, input, p=0.5, training=True, seed=None):
    """grad_output times the forward's mask (recomputed from ``seed``, required when training
    with 0 < p < 1)."""
    x = _as_float(input, "input")
    g = _grad_like(grad_output, x)
    p = _dropout_p(p)
    training = U.check_flag(training, "training")
    if not training or p == 0.0:
        return (g.copy(),)
    seed = _dropout_seed(seed, required=p < 1.0)
    return (_dropout_run(g, p, seed),)
