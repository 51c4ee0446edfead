"""linear: plain NumPy forward and backward (the oracle; never calls native code).

y = x @ W^T + b over the last axis of x; the backward flattens the leading axes.
"""
from __future__ import annotations

from .._ops import _norm_util as U

__all__ = ["linear", "linear_backward"]
DIFFERENTIABLE = {"linear": ("input", "weight", "bias")}


def linear(input, weight, bias=None):
    x, w, b = U.linear_args(input, weight, bias)
    y = x @ w.T
    if b is not None:
        y = y + b
    return y


def linear_backward(grad_output, input, weight, bias=None):
    x, w, b = U.linear_args(input, weight, bias)
    g = U.grad_like(grad_output, x, x.shape[:-1] + (w.shape[0],))
    g2 = g.reshape(-1, w.shape[0])
    x2 = x.reshape(-1, w.shape[1])
    gx = g @ w
    gw = g2.T @ x2
    gb = g2.sum(axis=0) if b is not None else None
    return gx, gw, gb
