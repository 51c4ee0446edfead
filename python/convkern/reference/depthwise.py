"""depthwise: plain NumPy forward and backward (the oracle; never calls native code).

``depthwise_conv2d`` is conv2d with groups = C: input (N, C, H, W), weight (C*M, 1, R, S),
output channel ``c*M + m`` reads input channel ``c``. Written as a loop over the kernel
offsets (r, s): each offset multiplies the strided (N, C, P, Q) window of the zero-padded
input by its (C, M) weights. The backward runs the same loop: grad_input scatters
grad_output * w back onto each offset's window, grad_weight contracts each window with
grad_output over (N, P, Q).
"""
from __future__ import annotations

import numpy as np

__all__ = ["depthwise_conv2d", "depthwise_conv2d_backward"]
DIFFERENTIABLE = {"depthwise_conv2d": ("input", "weight", "bias")}


def _pair(v):
    return tuple(int(e) for e in v) * (2 if len(v) == 1 else 1) if isinstance(v, (list, tuple)) else (int(v),) * 2


def _geometry(x_shape, w_shape, stride, padding, dilation):
    """(stride, dilation, ((top, bottom), (left, right)) pads, (P, Q), M)."""
    stride, dilation = _pair(stride), _pair(dilation)
    R, S = w_shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        else:  # 'same': the odd extra pad on the bottom/right (torch)
            tot = (dilation[0] * (R - 1), dilation[1] * (S - 1))
            pads = tuple((t // 2, t - t // 2) for t in tot)
    else:
        pads = tuple((p, p) for p in _pair(padding))
    out = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1
                for n, (lo, hi), k, s, d in zip(x_shape[2:], pads, (R, S), stride, dilation))
    return stride, dilation, pads, out, w_shape[0] // x_shape[1]


def _window(r, s, stride, dilation, out):
    """The (P, Q) strided slices of the padded input seen by kernel offset (r, s)."""
    return (slice(r * dilation[0], r * dilation[0] + (out[0] - 1) * stride[0] + 1, stride[0]),
            slice(s * dilation[1], s * dilation[1] + (out[1] - 1) * stride[1] + 1, stride[1]))


def _padded_extent(x_shape, pads, stride, dilation, out, w_shape):
    """Pads (top, bottom, left, right) so that every tap of every output lies inside."""
    R, S = w_shape[2:]
    need_h = (out[0] - 1) * stride[0] + (R - 1) * dilation[0] + 1
    need_w = (out[1] - 1) * stride[1] + (S - 1) * dilation[1] + 1
    H, W = x_shape[2:]
    return ((pads[0][0], max(0, need_h - H - pads[0][0])), (pads[1][0], max(0, need_w - W - pads[1][0])))


def _depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    x, w = np.asarray(input), np.asarray(weight)
    stride, dilation, pads, out, M = _geometry(x.shape, w.shape, stride, padding, dilation)
    N, C = x.shape[:2]
    R, S = w.shape[2:]
    ext = _padded_extent(x.shape, pads, stride, dilation, out, w.shape)
    xp = np.pad(x, ((0, 0), (0, 0)) + ext)
    wm = w.reshape(C, M, R, S)
    y = np.zeros((N, C, M) + out, dtype=np.result_type(x, w))
    for r in range(R):
        for s in range(S):
            win = xp[(slice(None), slice(None)) + _window(r, s, stride, dilation, out)]  # (N, C, P, Q)
            y += win[:, :, None] * wm[None, :, :, r, s, None, None]
    y = y.reshape(N, C * M, *out)
    if bias is not None:
        y += np.asarray(bias)[None, :, None, None]
    return y


def _depthwise_conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    x, w, gy = np.asarray(input), np.asarray(weight), np.asarray(grad_output)
    stride, dilation, pads, out, M = _geometry(x.shape, w.shape, stride, padding, dilation)
    N, C, H, W = x.shape
    R, S = w.shape[2:]
    ext = _padded_extent(x.shape, pads, stride, dilation, out, w.shape)
    xp = np.pad(x, ((0, 0), (0, 0)) + ext)
    gxp = np.zeros_like(xp)
    gym = gy.reshape(N, C, M, *out)
    wm = w.reshape(C, M, R, S)
    gw = np.zeros((C, M, R, S), dtype=x.dtype)
    for r in range(R):
        for s in range(S):
            idx = (slice(None), slice(None)) + _window(r, s, stride, dilation, out)
            gxp[idx] += np.einsum("ncmpq,cm->ncpq", gym, wm[:, :, r, s])
            gw[:, :, r, s] = np.einsum("ncmpq,ncpq->cm", gym, xp[idx])
    gx = gxp[:, :, ext[0][0]:ext[0][0] + H, ext[1][0]:ext[1][0] + W]
    gb = gy.sum(axis=(0, 2, 3)) if bias is not None else None
    return np.ascontiguousarray(gx), gw.reshape(w.shape), gb


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """(N, C, H, W) or unbatched (C, H, W) input, like torch's conv2d."""
    if input.ndim == 3:
        return _depthwise_conv2d(input[None], weight, bias, stride, padding, dilation)[0]
    return _depthwise_conv2d(input, weight, bias, stride, padding, dilation)


def depthwise_conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1):
    if input.ndim == 3:
        gx, gw, gb = _depthwise_conv2d_backward(grad_output[None], input[None], weight, bias, stride, padding, dilation)
        return gx[0], gw, gb
    return _depthwise_conv2d_backward(grad_output, input, weight, bias, stride, padding, dilation)
