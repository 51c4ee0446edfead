"""Pooling operators (native kernels): max/avg (sliding window), adaptive and global pooling.

Same names, defaults, output shapes and semantics as torch.nn.functional (NCHW, batched
(N, C, H, W) or unbatched (C, H, W) input). Max-pooling indices are int64 flat positions
``h*W + w`` within each (n, c) plane, exactly as torch's (ties: the first maximum in
row-major window order; a NaN in the window wins, the last one).
"""
from __future__ import annotations

import numpy as np

from .. import _C as _native
from . import _pool_util as U


class _SkipEmpty:
    """convkern._C for this module, except that a call whose first array is empty (batch 0:
    every output is empty too, as in torch) does nothing."""

    def __getattr__(self, name):
        fn = getattr(_native, name)

        def call(first, *args):
            if getattr(first, "size", 1) == 0:
                return None
            return fn(first, *args)

        return call


_C = _SkipEmpty()
from ._util import check_flag, empty

__all__ = [
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward", "global_max_pool2d", "global_max_pool2d_backward",
]
DIFFERENTIABLE = {
    "max_pool2d": ("input",),
    "avg_pool2d": ("input",),
    "adaptive_avg_pool2d": ("input",),
    "adaptive_max_pool2d": ("input",),
    "global_avg_pool2d": ("input",),
    "global_max_pool2d": ("input",),
}


def _win_args(k, s, p, d, ceil_mode):
    return (k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], ceil_mode)


def _ret(y, idx, batched, return_indices):
    y = U.unbatch(y, batched)
    return (y, U.unbatch(idx, batched)) if return_indices else y


# ------------------------------------------------------------------------- max_pool2d

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-d max pooling; with ``return_indices`` also the int64 argmax positions (h*W + w)."""
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, (P, Q) = U.window(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_flag(return_indices, "return_indices")
    N, C = x.shape[:2]
    y = empty((N, C, P, Q), x.dtype)
    idx = empty((N, C, P, Q), np.int64, "indices") if return_indices else None
    _C.max_pool2d_forward(x, y, idx, *_win_args(k, s, p, d, ceil_mode))
    return _ret(y, idx, batched, return_indices)


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False):
    """(grad_input,): grad_output routed to each window's argmax (summed where windows overlap)."""
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, (P, Q) = U.window(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_flag(return_indices, "return_indices")
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.max_pool2d_backward(x, g, gx, *_win_args(k, s, p, d, ceil_mode))
    return (U.unbatch(gx, batched),)


# ------------------------------------------------------------------------- avg_pool2d

def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-d average pooling (torch's divisor rules, ceil_mode windows clipped to the padded extent)."""
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, (P, Q) = U.window(x, kernel_size, stride, padding, 1, ceil_mode)
    cip = check_flag(count_include_pad, "count_include_pad")
    div = U.divisor(divisor_override)
    N, C = x.shape[:2]
    y = empty((N, C, P, Q), x.dtype)
    _C.avg_pool2d_forward(x, y, k[0], k[1], s[0], s[1], p[0], p[1], ceil_mode, cip, div)
    return U.unbatch(y, batched)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """(grad_input,)."""
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, (P, Q) = U.window(x, kernel_size, stride, padding, 1, ceil_mode)
    cip = check_flag(count_include_pad, "count_include_pad")
    div = U.divisor(divisor_override)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.avg_pool2d_backward(g, gx, k[0], k[1], s[0], s[1], p[0], p[1], ceil_mode, cip, div)
    return (U.unbatch(gx, batched),)


# ------------------------------------------------------------------------- adaptive

def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling: window i covers [floor(i*H/OH), ceil((i+1)*H/OH))."""
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    y = empty(x.shape[:2] + (P, Q), x.dtype)
    if (P, Q) == (1, 1):  # one window: the global kernel (vectorized plane sums)
        _C.global_avg_pool2d_forward(x, y)
    else:
        _C.adaptive_avg_pool2d_forward(x, y, P, Q)
    return U.unbatch(y, batched)


def adaptive_avg_pool2d_backward(grad_output, input, output_size):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    gx = empty(x.shape, x.dtype, "grad_input")
    if (P, Q) == (1, 1):
        _C.global_avg_pool2d_backward(g, gx)
    else:
        _C.adaptive_avg_pool2d_backward(g, gx, P, Q)
    return (U.unbatch(gx, batched),)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive max pooling (torch's windows); with ``return_indices`` also the argmax positions."""
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    return_indices = check_flag(return_indices, "return_indices")
    y = empty(x.shape[:2] + (P, Q), x.dtype)
    idx = empty(x.shape[:2] + (P, Q), np.int64, "indices") if return_indices else None
    if (P, Q) == (1, 1) and idx is None:
        _C.global_max_pool2d_forward(x, y)
    else:
        _C.adaptive_max_pool2d_forward(x, y, idx, P, Q)
    return _ret(y, idx, batched, return_indices)


def adaptive_max_pool2d_backward(grad_output, input, output_size, return_indices=False):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    check_flag(return_indices, "return_indices")
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.adaptive_max_pool2d_backward(x, g, gx, P, Q)
    return (U.unbatch(gx, batched),)


# ------------------------------------------------------------------------- global

def global_avg_pool2d(input):
    """Mean over each (n, c) plane -> (N, C, 1, 1) (like adaptive_avg_pool2d(input, 1))."""
    x, batched = U.prep_input(input)
    y = empty(x.shape[:2] + (1, 1), x.dtype)
    _C.global_avg_pool2d_forward(x, y)
    return U.unbatch(y, batched)


def global_avg_pool2d_backward(grad_output, input):
    x, batched = U.prep_input(input)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (1, 1))
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.global_avg_pool2d_backward(g, gx)
    return (U.unbatch(gx, batched),)


def global_max_pool2d(input):
    """Max over each (n, c) plane -> (N, C, 1, 1) (like adaptive_max_pool2d(input, 1); NaN propagates)."""
    x, batched = U.prep_input(input)
    y = empty(x.shape[:2] + (1, 1), x.dtype)
    _C.global_max_pool2d_forward(x, y)
    return U.unbatch(y, batched)


def global_max_pool2d_backward(grad_output, input):
    """(grad_input,): the gradient goes to each plane's argmax (first maximum, or last NaN)."""
    x, batched = U.prep_input(input)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (1, 1))
    gx = empty(x.shape, x.dtype, "grad_input")
    _C.global_max_pool2d_backward(x, g, gx)
    return (U.unbatch(gx, batched),)
