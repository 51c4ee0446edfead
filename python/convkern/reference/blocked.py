"""Channel-blocked (NCHW16c) layout and the blocked 1x1 / depthwise convolutions, in NumPy:
the specification of convkern._ops.blocked (inference only: no backward).

An (N, C, H, W) tensor is held blocked as (ceil(C/16), N, H, W, 16): element (n, c, h, w) at
[c // 16, n, h, w, c % 16]. When C is not a multiple of 16, the last block's lanes from C % 16
on are padding: to_blocked fills them with zeros, and the convolutions here write zeros there
(the native kernels do so from finite inputs) and never read them into a real channel.
"""
from __future__ import annotations

import numpy as np

from . import conv as _conv

BLOCK = 16


def blocks(c):
    """How many blocks hold c channels."""
    return -(-int(c) // BLOCK)


def to_blocked(x):
    """(N, C, H, W) -> (ceil(C/16), N, H, W, 16), the padding lanes zero (a new C-contiguous array)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"input: expected (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    cp = blocks(c) * BLOCK
    if cp != c:
        x = np.concatenate([x, np.zeros((n, cp - c, h, w), x.dtype)], axis=1)
    return np.ascontiguousarray(x.reshape(n, cp // BLOCK, BLOCK, h, w).transpose(1, 0, 3, 4, 2))


def from_blocked(x, channels=None):
    """(ceil(C/16), N, H, W, 16) -> (N, C, H, W), C = channels (default: every lane), the padding
    dropped (a new C-contiguous array)."""
    x = np.asarray(x)
    if x.ndim != 5 or x.shape[4] != BLOCK:
        raise ValueError(f"input: expected (C/{BLOCK}, N, H, W, {BLOCK}), got {x.shape}")
    cb, n, h, w, _ = x.shape
    c = cb * BLOCK if channels is None else int(channels)
    if blocks(c) != cb or c < 1:
        raise ValueError(f"channels: {channels} channels are not held in {cb} blocks of {BLOCK}")
    return np.ascontiguousarray(x.transpose(1, 0, 4, 2, 3).reshape(n, cb * BLOCK, h, w)[:, :c])


def _act(y, relu, relu_max):
    if relu:
        y = np.maximum(y, 0)
        if relu_max is not None:
            y = np.minimum(y, relu_max)
    return y


def conv1x1_blocked(input, weight, bias=None, residual=None, *, in_blocked, out_blocked, relu=False,
                    relu_max=None):
    """conv2d(input, weight (K, C, 1, 1)) + bias + residual, then relu (clamped to relu_max when
    given); input, and output and residual, blocked or NCHW as in_blocked / out_blocked say."""
    k, c = weight.shape[:2]
    x = from_blocked(input, c) if in_blocked else np.asarray(input)
    y = _conv.conv2d(x, np.asarray(weight).reshape(k, c, 1, 1), bias)
    if residual is not None:
        y = y + (from_blocked(residual, k) if out_blocked else residual)
    y = _act(y, relu, relu_max)
    return to_blocked(y) if out_blocked else y


def depthwise_blocked(input, weight, bias=None, stride=1, padding=0, dilation=1, relu=False, relu_max=None):
    """Depthwise conv2d (weight (C, 1, R, S), groups C) of a blocked input, blocked output.
    padding: int, (ph, pw), or (top, left, bottom, right)."""
    x = from_blocked(input, weight.shape[0])
    pad = (padding,) * 4 if np.isscalar(padding) else tuple(padding)
    if len(pad) == 2:
        pad = pad * 2
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    y = _conv.conv2d(x, weight, bias, stride=stride, padding=0, dilation=dilation, groups=x.shape[1])
    return to_blocked(_act(y, relu, relu_max))


def conv_direct_blocked(input, weight, bias=None, stride=1, padding=0, dilation=1, relu=False, relu_max=None):
    """conv2d(input (N, C, H, W), weight (K, C, R, S)) + bias, then relu, into a blocked output.
    padding: int, (ph, pw), or (top, left, bottom, right)."""
    x = np.asarray(input)
    pad = (padding,) * 4 if np.isscalar(padding) else tuple(padding)
    if len(pad) == 2:
        pad = pad * 2
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    y = _conv.conv2d(x, weight, bias, stride=stride, padding=0, dilation=dilation)
    return to_blocked(_act(y, relu, relu_max))
