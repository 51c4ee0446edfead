"""Depthwise 2-d convolution (native kernel) with a channel multiplier.

``depthwise_conv2d(input, weight)`` with input (N, C, H, W) and weight (C*M, 1, R, S) equals
``conv2d(input, weight, groups=C)``: output channel k = c*M + m reads input channel c.
conv2d(algo='auto') routes depthwise convolutions here.
"""
from __future__ import annotations

from .. import _C
from . import _util as U

__all__ = ["depthwise_conv2d", "depthwise_conv2d_backward"]
DIFFERENTIABLE = {"depthwise_conv2d": ("input", "weight", "bias")}


def _prep(input, weight, bias, stride, padding, dilation):
    from .conv import _check_bias, _geom  # conv imports this module: import lazily

    x = U.as_float(input, "input")
    w = U.as_float(weight, "weight", like=x)
    b = U.as_float_opt(bias, "bias", like=x)
    U.check_ndim(x, (3, 4), "input", "(C, H, W) or (N, C, H, W)")
    U.check_ndim(w, 4, "weight", "(C*multiplier, 1, R, S)")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    C = x.shape[1]
    if w.shape[1] != 1:
        raise ValueError(f"weight: a depthwise weight has shape (C*multiplier, 1, R, S), got {w.shape}")
    if C == 0 or w.shape[0] == 0 or w.shape[0] % C:
        raise ValueError(f"weight: out channels ({w.shape[0]}) must be a positive multiple of the input channels ({C})")
    geom = _geom(2, x.shape, w.shape, stride, padding, dilation, C)
    _check_bias(b, w.shape[0])
    return x, w, b, geom, unbatched


def native_args(geom):
    """(stride h, w, pad top, bottom, left, right, dilation h, w): the kernels' parameters."""
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    (pt, pb), (pl, pr) = geom.pads
    return sh, sw, pt, pb, pl, pr, dh, dw


def forward_geom(x, w, b, geom, relu=False, relu_max=float("inf")):
    """(y, whether the relu was applied): the kernel call for a validated geometry (used by
    conv2d). relu: y clamped to [0, relu_max] after the bias, fused where the kernel can."""
    y = U.empty(geom.y_shape, x.dtype)
    if not y.size:
        return y, True
    return y, forward_call(w, b, geom, relu, relu_max)(x, y)


def forward_call(w, b, geom, relu=False, relu_max=float("inf")):
    """The kernel call with all but its input and output bound: ``call(x, y)`` -> whether the
    relu was applied."""
    args = native_args(geom)

    def call(x, y):
        return _C.depthwise_conv2d_forward(x, w, b, y, *args, relu=relu, relu_max=relu_max)
    return call


def backward_geom(dy, x, w, b, geom):
    dx = U.empty(x.shape, x.dtype, "grad_input")
    dw = U.empty(w.shape, x.dtype, "grad_weight")
    db = U.empty((w.shape[0],), x.dtype, "grad_bias") if b is not None else None
    if x.shape[0]:
        _C.depthwise_conv2d_backward_input(dy, w, dx, *native_args(geom))
        _C.depthwise_conv2d_backward_weight(x, dy, dw, db, *native_args(geom))
    else:
        dw[...] = 0
        if db is not None:
            db[...] = 0
    return dx, dw, db


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise convolution: conv2d with groups = in_channels, weight (C*multiplier, 1, R, S).

    padding: int, pair, 'valid' or 'same' (stride 1; the odd extra pad on the right/bottom)."""
    x, w, b, geom, unbatched = _prep(input, weight, bias, stride, padding, dilation)
    y = forward_geom(x, w, b, geom)[0]
    return y[0] if unbatched else y


def depthwise_conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    """(grad_input, grad_weight, grad_bias or None)."""
    from .conv import _grad_output

    x, w, b, geom, unbatched = _prep(input, weight, bias, stride, padding, dilation)
    dy = _grad_output(grad_output, x, geom.y_shape, unbatched)
    dx, dw, db = backward_geom(dy, x, w, b, geom)
    return (dx[0] if unbatched else dx), dw, db
