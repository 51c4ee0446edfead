"""Normalization operators (native kernels): batch_norm, local_response_norm, layer_norm.

Same names, defaults and semantics as torch.nn.functional. ``batch_norm`` with
``training=True`` normalizes with the batch statistics (biased variance) and updates the
given running statistics IN PLACE, like torch: ``running = (1 - momentum) * running +
momentum * batch_stat`` with the unbiased batch variance. Backwards are stateless and never
touch the running statistics.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from . import _norm_util as U
from ._util import empty

__all__ = [
    "batch_norm", "batch_norm_backward", "local_response_norm", "local_response_norm_backward",
    "layer_norm", "layer_norm_backward",
]
DIFFERENTIABLE = {
    "batch_norm": ("input", "weight", "bias"),
    "local_response_norm": ("input",),
    "layer_norm": ("input", "weight", "bias"),
}


def _stat_buffer(v):
    """(contiguous array the kernel updates, original to copy back into or None)."""
    if v is None or v.flags.c_contiguous:
        return v, None
    return U.ascontiguous(v), v


# ------------------------------------------------------------------------- batch_norm

def _zero(a):
    if a is not None:
        a.fill(0)
    return a


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalization over (N, C, *) inputs, per channel C."""
    x, rm, rv, w, b, training, momentum, eps = U.bn_args(input, running_mean, running_var, weight, bias, training,
                                                         momentum, eps)
    rm_c, rm_back = _stat_buffer(rm)
    rv_c, rv_back = _stat_buffer(rv)
    y = empty(x.shape, x.dtype)
    if x.size == 0:  # batch 0 (inference only: bn_args refuses it in training)
        return y
    _C.batch_norm_forward(x, y, w, b, rm_c, rv_c, training, momentum, eps)
    if training:
        if rm_back is not None:
            rm_back[...] = rm_c
        if rv_back is not None:
            rv_back[...] = rv_c
    return y


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None, training=False,
                        momentum=0.1, eps=1e-5):
    """(grad_input, grad_weight, grad_bias); grad_weight / grad_bias are None without weight / bias.
    Training: gradients through the batch statistics. The running statistics are not updated."""
    x, rm, rv, w, b, training, momentum, eps = U.bn_args(input, running_mean, running_var, weight, bias, training,
                                                         momentum, eps)
    g = U.grad_like(grad_output, x, x.shape)
    C = x.shape[1]
    if not training:
        rm, rv = U.ascontiguous(rm), U.ascontiguous(rv)
    else:
        rm = rv = None
    gx = empty(x.shape, x.dtype, "grad_input")
    gw = empty((C,), x.dtype, "grad_weight") if w is not None else None
    gb = empty((C,), x.dtype, "grad_bias") if b is not None else None
    if x.size == 0:  # batch 0: nothing flows to the affine parameters
        return gx, _zero(gw), _zero(gb)
    _C.batch_norm_backward(g, x, w, rm, rv, gx, gw, gb, training, eps)
    return gx, gw, gb


# ------------------------------------------------------------------------- local_response_norm

def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization across channels (torch's definition):
    y = x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta."""
    x, size, alpha, beta, k = U.lrn_args(input, size, alpha, beta, k)
    y = empty(x.shape, x.dtype)
    if x.size:
        _C.local_response_norm_forward(x, y, size, alpha, beta, k)
    return y


def local_response_norm_backward(grad_output, input, size, alpha=1e-4, beta=0.75, k=1.0):
    """(grad_input,)."""
    x, size, alpha, beta, k = U.lrn_args(input, size, alpha, beta, k)
    g = U.grad_like(grad_output, x, x.shape)
    gx = empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.local_response_norm_backward(g, x, gx, size, alpha, beta, k)
    return (gx,)


# ------------------------------------------------------------------------- layer_norm

def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization over the trailing ``normalized_shape`` dimensions."""
    x, shape, w, b, eps = U.ln_args(input, normalized_shape, weight, bias, eps)
    y = empty(x.shape, x.dtype)
    if x.size:
        _C.layer_norm_forward(x, y, w, b, math.prod(shape), eps)
    return y


def layer_norm_backward(grad_output, input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(grad_input, grad_weight, grad_bias); None for an absent weight / bias."""
    x, shape, w, b, eps = U.ln_args(input, normalized_shape, weight, bias, eps)
    g = U.grad_like(grad_output, x, x.shape)
    gx = empty(x.shape, x.dtype, "grad_input")
    gw = empty(shape, x.dtype, "grad_weight") if w is not None else None
    gb = empty(shape, x.dtype, "grad_bias") if b is not None else None
    if x.size == 0:
        return gx, _zero(gw), _zero(gb)
    _C.layer_norm_backward(g, x, w, gx, gw, gb, math.prod(shape), eps)
    return gx, gw, gb
