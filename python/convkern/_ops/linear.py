"""Linear (fully connected) operator on native gemm kernels: y = x @ weight.T + bias.

input (..., in_features) (1-d input gives a 1-d output), weight (out_features,
in_features), bias (out_features,) or None; torch.nn.functional.linear's semantics.
"""
from __future__ import annotations

from .. import _C
from . import _norm_util as U
from ._util import empty

__all__ = ["linear", "linear_backward"]
DIFFERENTIABLE = {"linear": ("input", "weight", "bias")}


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias."""
    x, w, b = U.linear_args(input, weight, bias)
    y = empty(x.shape[:-1] + (w.shape[0],), x.dtype)
    if x.size:
        _C.linear_forward(x, w, b, y)
    return y


def linear_backward(grad_output, input, weight, bias=None):
    """(grad_input, grad_weight, grad_bias): grad_output @ weight, grad_output^T @ input (over
    all leading dimensions), and the sum of grad_output (None without bias)."""
    x, w, b = U.linear_args(input, weight, bias)
    g = U.grad_like(grad_output, x, x.shape[:-1] + (w.shape[0],))
    gx = empty(x.shape, x.dtype, "grad_input")
    gw = empty(w.shape, x.dtype, "grad_weight")
    gb = empty((w.shape[0],), x.dtype, "grad_bias") if b is not None else None
    if x.size == 0:  # empty batch: zero parameter gradients
        gw.fill(0)
        if gb is not None:
            gb.fill(0)
        return gx, gw, gb
    _C.linear_backward(g, x, w, gx, gw, gb)
    return gx, gw, gb
