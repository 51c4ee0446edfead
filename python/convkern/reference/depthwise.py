"""Depthwise 2-d convolution: plain NumPy forward and backward.

y[n, c*M + m, p, q] = b[c*M + m] + sum_{r, s} w[c*M + m, 0, r, s] * xpad[n, c, p*sh + r*dh, q*sw + s*dw]
"""
from __future__ import annotations

import numpy as np

__all__ = ["depthwise_conv2d", "depthwise_conv2d_backward"]
DIFFERENTIABLE = {"depthwise_conv2d": ("input", "weight", "bias")}


def _pair(v):
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def _geometry(x, w, stride, padding, dilation):
    R, S = w.shape[2:]
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        th, tw = dh * (R - 1), dw * (S - 1)
        pads = ((th // 2, th - th // 2), (tw // 2, tw - tw // 2))
    else:
        ph, pw = _pair(padding)
        pads = ((ph, ph), (pw, pw))
    H, W = x.shape[-2:]
    P = (H + sum(pads[0]) - dh * (R - 1) - 1) // sh + 1
    Q = (W + sum(pads[1]) - dw * (S - 1) - 1) // sw + 1
    return (sh, sw), (dh, dw), pads, P, Q


def _windows(xpad, r, s, sh, sw, dh, dw, P, Q):
    """The input values that kernel tap (r, s) meets at every output position: (..., P, Q)."""
    return xpad[..., r * dh: r * dh + (P - 1) * sh + 1: sh, s * dw: s * dw + (Q - 1) * sw + 1: sw]


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    x = input if input.ndim == 4 else input[None]
    C, K = x.shape[1], weight.shape[0]
    M = K // C
    (sh, sw), (dh, dw), pads, P, Q = _geometry(x, weight, stride, padding, dilation)
    xpad = np.pad(x, ((0, 0), (0, 0)) + pads)
    xrep = np.repeat(xpad, M, axis=1)  # channel c*M + m sees input channel c
    y = np.zeros((x.shape[0], K, P, Q), dtype=np.result_type(x, weight))
    for r in range(weight.shape[2]):
        for s in range(weight.shape[3]):
            y += weight[None, :, 0, r, s, None, None] * _windows(xrep, r, s, sh, sw, dh, dw, P, Q)
    if bias is not None:
        y += bias[None, :, None, None]
    return y if input.ndim == 4 else y[0]


def depthwise_conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    x = input if input.ndim == 4 else input[None]
    gy = grad_output if input.ndim == 4 else grad_output[None]
    N, C, H, W = x.shape
    K = weight.shape[0]
    M = K // C
    (sh, sw), (dh, dw), pads, P, Q = _geometry(x, weight, stride, padding, dilation)
    xrep = np.repeat(np.pad(x, ((0, 0), (0, 0)) + pads), M, axis=1)
    gxrep = np.zeros_like(xrep, dtype=gy.dtype)
    gw = np.zeros_like(weight, dtype=gy.dtype)
    for r in range(weight.shape[2]):
        for s in range(weight.shape[3]):
            # scatter each tap's contribution back onto the (padded) input it read
            _windows(gxrep, r, s, sh, sw, dh, dw, P, Q)[...] += weight[None, :, 0, r, s, None, None] * gy
            gw[:, 0, r, s] = np.einsum("nkpq,nkpq->k", gy, _windows(xrep, r, s, sh, sw, dh, dw, P, Q))
    gx = gxrep.reshape(N, C, M, *gxrep.shape[2:]).sum(axis=2)   # the M copies of channel c
    gx = gx[:, :, pads[0][0]: pads[0][0] + H, pads[1][0]: pads[1][0] + W]
    gb = gy.sum(axis=(0, 2, 3)) if bias is not None else None
    return (gx if input.ndim == 4 else gx[0]), gw, gb
