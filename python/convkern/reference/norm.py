"""norm: plain NumPy forward and backward (the oracle; never calls native code).

batch_norm: statistics over every axis but the channel axis 1 (NumPy's mean / var, biased
variance for normalizing); in training the given running statistics are updated in place
with the unbiased variance, like torch. local_response_norm sums x^2 over shifted slices of
a channel-padded copy (torch's avg-pool formulation). layer_norm normalizes over the
trailing ``normalized_shape`` axes.
"""
from __future__ import annotations

import numpy as np

from .._ops import _norm_util as U

__all__ = [
    "batch_norm", "batch_norm_backward", "local_response_norm", "local_response_norm_backward",
    "layer_norm", "layer_norm_backward",
]
DIFFERENTIABLE = {
    "batch_norm": ("input", "weight", "bias"),
    "local_response_norm": ("input",),
    "layer_norm": ("input", "weight", "bias"),
}


# ------------------------------------------------------------------------- batch_norm

def _bn_stats(x, rm, rv, training):
    """(mean, biased var) per channel, shaped to broadcast against x, and the count M."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    M = x.size // x.shape[1]
    if training:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    else:
        mean, var = rm, rv
    return mean.reshape(shape), var.reshape(shape), axes, shape, M


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    x, rm, rv, w, b, training, momentum, eps = U.bn_args(input, running_mean, running_var, weight, bias, training,
                                                         momentum, eps)
    mean, var, axes, shape, M = _bn_stats(x, rm, rv, training)
    y = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    if training:
        if rm is not None:
            rm[...] = (1 - momentum) * rm + momentum * mean.reshape(-1)
        if rv is not None:
            rv[...] = (1 - momentum) * rv + momentum * var.reshape(-1) * M / (M - 1)
    return y.astype(x.dtype)


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-5):
    x, rm, rv, w, b, training, momentum, eps = U.bn_args(input, running_mean, running_var, weight, bias, training,
                                                         momentum, eps)
    g = U.grad_like(grad_output, x, x.shape)
    mean, var, axes, shape, M = _bn_stats(x, rm, rv, training)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    gw = (g * xhat).sum(axis=axes) if w is not None else None
    gb = g.sum(axis=axes) if b is not None else None
    gxhat = g * w.reshape(shape) if w is not None else g
    if training:
        # d xhat / d x through the batch mean and variance
        gx = invstd * (gxhat - gxhat.mean(axis=axes, keepdims=True)
                       - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
    else:
        gx = gxhat * invstd
    return gx.astype(x.dtype), gw, gb


# ------------------------------------------------------------------------- local_response_norm

def _window_sum(v, before, after):
    """s[:, c] = sum of v[:, c - before .. c + after] (zero outside the channels)."""
    C = v.shape[1]
    before, after = min(before, C), min(after, C)  # a window wider than C sees only zeros beyond
    pad = [(0, 0)] * v.ndim
    pad[1] = (before, after)
    vp = np.pad(v, pad)
    return sum(vp[:, o:o + C] for o in range(before + after + 1))


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    x, size, alpha, beta, k = U.lrn_args(input, size, alpha, beta, k)
    d = k + alpha / size * _window_sum(x * x, size // 2, (size - 1) // 2)
    return (x / d ** beta).astype(x.dtype)


def local_response_norm_backward(grad_output, input, size, alpha=1e-4, beta=0.75, k=1.0):
    x, size, alpha, beta, k = U.lrn_args(input, size, alpha, beta, k)
    g = U.grad_like(grad_output, x, x.shape)
    d = k + alpha / size * _window_sum(x * x, size // 2, (size - 1) // 2)
    # y_c = x_c d_c^-beta, d_c depends on x_i for i in window(c) <=> c in [i-(size-1)//2, i+size//2]
    t = g * x * d ** (-beta - 1)
    gx = g * d ** (-beta) - 2 * beta * alpha / size * x * _window_sum(t, (size - 1) // 2, size // 2)
    return (gx.astype(x.dtype),)


# ------------------------------------------------------------------------- layer_norm

def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, shape, w, b, eps = U.ln_args(input, normalized_shape, weight, bias, eps)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype)


def layer_norm_backward(grad_output, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    x, shape, w, b, eps = U.ln_args(input, normalized_shape, weight, bias, eps)
    g = U.grad_like(grad_output, x, x.shape)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    lead = tuple(range(x.ndim - len(shape)))
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    gw = (g * xhat).sum(axis=lead) if w is not None else None
    gb = g.sum(axis=lead) if b is not None else None
    gxhat = g * w if w is not None else g
    gx = rstd * (gxhat - gxhat.mean(axis=axes, keepdims=True) - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
    return gx.astype(x.dtype), gw, gb
