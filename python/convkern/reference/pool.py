"""pool: plain NumPy forward and backward (the oracle; never calls native code).

Sliding-window pools loop over the kernel offsets (r, s) and work on whole (N, C, P, Q)
slices of an explicitly padded input (-inf for max, 0 for avg). Max pooling scans the
offsets in torch's row-major order and takes a value when ``v > max or isnan(v)``, so ties
go to the first maximum and a NaN wins (the last one), exactly like torch's CPU kernel.
Adaptive average and max pooling loop over the output windows (an averaging-matrix product
would turn one NaN into NaN everywhere through 0 * NaN).
"""
from __future__ import annotations

import numpy as np

from .._ops import _pool_util as U
from .._ops._util import check_flag

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


def _padded(x, k, s, p, d, out, value):
    """x padded with `value` so that every tap of every output window is inside."""
    H, W = x.shape[2:]
    hi_h = max(0, (out[0] - 1) * s[0] + (k[0] - 1) * d[0] + 1 - H - p[0])
    hi_w = max(0, (out[1] - 1) * s[1] + (k[1] - 1) * d[1] + 1 - W - p[1])
    return np.pad(x, ((0, 0), (0, 0), (p[0], hi_h), (p[1], hi_w)), constant_values=value)


def _tap(xp, r, s_, k, s, d, out):
    """The (N, C, P, Q) slice of padded xp seen by window offset (r, s_)."""
    r0, c0 = r * d[0], s_ * d[1]
    return xp[:, :, r0:r0 + (out[0] - 1) * s[0] + 1:s[0], c0:c0 + (out[1] - 1) * s[1] + 1:s[1]]


def _axis_taps(n, k, s, p, d, out):
    """For one axis: start (P,), in-bounds mask (P, k) and position (P, k) of every tap."""
    start = np.arange(out) * s - p
    pos = start[:, None] + np.arange(k)[None, :] * d
    return start, (pos >= 0) & (pos < n), pos


def _max_scan(x, k, s, p, d, out):
    """(max, index, window-nonempty mask) with torch's scan rule."""
    N, C, H, W = x.shape
    xp = _padded(x, k, s, p, d, out, -np.inf)
    hstart, hvalid, hpos = _axis_taps(H, k[0], s[0], p[0], d[0], out[0])
    wstart, wvalid, wpos = _axis_taps(W, k[1], s[1], p[1], d[1], out[1])
    # torch's starting index: the first tap at or after position 0 (even if out of the window)
    ih0 = hstart + np.where(hstart < 0, -(hstart // d[0]) * d[0], 0)
    iw0 = wstart + np.where(wstart < 0, -(wstart // d[1]) * d[1], 0)
    m = np.full((N, C) + tuple(out), -np.inf, dtype=x.dtype)
    idx = np.broadcast_to(ih0[:, None] * W + iw0[None, :], m.shape).astype(np.int64)
    for r in range(k[0]):
        for c in range(k[1]):
            v = _tap(xp, r, c, k, s, d, out)
            flat = hpos[:, r, None] * W + wpos[None, :, c]
            take = (v > m) | np.isnan(v)  # padding (-inf) is never taken
            m = np.where(take, v, m)
            idx = np.where(take, flat, idx)
    nonempty = hvalid.any(1)[:, None] & wvalid.any(1)[None, :]
    return m, idx, nonempty


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, out = U.window(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_flag(return_indices, "return_indices")
    m, idx, _ = _max_scan(x, k, s, p, d, out)
    m, idx = U.unbatch(m, batched), U.unbatch(idx, batched)
    return (m, idx) if return_indices else m


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False):
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, out = U.window(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + out)
    N, C, H, W = x.shape
    _, idx, nonempty = _max_scan(x, k, s, p, d, out)
    _, hvalid, hpos = _axis_taps(H, k[0], s[0], p[0], d[0], out[0])
    _, wvalid, wpos = _axis_taps(W, k[1], s[1], p[1], d[1], out[1])
    gxp = _padded(np.zeros(x.shape, dtype=x.dtype), k, s, p, d, out, 0)
    for r in range(k[0]):
        for c in range(k[1]):
            # each output sends its gradient to the one offset that holds its argmax
            flat = hpos[:, r, None] * W + wpos[None, :, c]
            inside = hvalid[:, r, None] & wvalid[None, :, c]  # padded taps may alias real positions
            hit = (idx == flat) & inside & nonempty
            _tap(gxp, r, c, k, s, d, out)[...] += np.where(hit, g, 0)
    gx = gxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W]
    return (U.unbatch(np.ascontiguousarray(gx), batched),)


def _avg_divisor(x, k, s, p, out, count_include_pad, div):
    """(P, Q) divisors, torch's rules."""
    H, W = x.shape[2:]

    def axis(n, k_, s_, p_, o):
        start = np.arange(o) * s_ - p_
        end = np.minimum(start + k_, n + p_)          # clipped to the padded extent
        return end - start, np.minimum(end, n) - np.maximum(start, 0)

    pool_h, in_h = axis(H, k[0], s[0], p[0], out[0])
    pool_w, in_w = axis(W, k[1], s[1], p[1], out[1])
    if div:
        return np.full(out, float(div))
    if count_include_pad:
        return np.outer(pool_h, pool_w).astype(np.float64)
    return np.outer(in_h, in_w).astype(np.float64)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, out = U.window(x, kernel_size, stride, padding, 1, ceil_mode)
    cip = check_flag(count_include_pad, "count_include_pad")
    div = U.divisor(divisor_override)
    xp = _padded(x, k, s, p, d, out, 0)
    total = np.zeros(x.shape[:2] + out, dtype=np.float64)
    for r in range(k[0]):
        for c in range(k[1]):
            total += _tap(xp, r, c, k, s, d, out)
    y = (total / _avg_divisor(x, k, s, p, out, cip, div)).astype(x.dtype)
    return U.unbatch(y, batched)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    x, batched = U.prep_input(input)
    k, s, p, d, ceil_mode, out = U.window(x, kernel_size, stride, padding, 1, ceil_mode)
    cip = check_flag(count_include_pad, "count_include_pad")
    div = U.divisor(divisor_override)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + out)
    H, W = x.shape[2:]
    gs = g / _avg_divisor(x, k, s, p, out, cip, div)
    gxp = _padded(np.zeros(x.shape, dtype=np.float64), k, s, p, d, out, 0)
    for r in range(k[0]):
        for c in range(k[1]):
            _tap(gxp, r, c, k, s, d, out)[...] += gs
    gx = gxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W].astype(x.dtype)
    return (U.unbatch(gx, batched),)


# ------------------------------------------------------------------------- adaptive

def _windows(n, o):
    """torch's adaptive windows along one axis: [floor(i*n/o), ceil((i+1)*n/o))."""
    i = np.arange(o)
    return (i * n) // o, -(-((i + 1) * n) // o)


def adaptive_avg_pool2d(input, output_size):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    H, W = x.shape[2:]
    # per-window means, not A_h @ x @ A_w^T: there 0 * NaN would leak a NaN into every window
    hlo, hhi = _windows(H, P)
    wlo, whi = _windows(W, Q)
    x64 = x.astype(np.float64)
    y = np.empty(x.shape[:2] + (P, Q))
    for i in range(P):
        for j in range(Q):
            y[:, :, i, j] = x64[:, :, hlo[i]:hhi[i], wlo[j]:whi[j]].mean(axis=(2, 3))
    return U.unbatch(y.astype(x.dtype), batched)


def adaptive_avg_pool2d_backward(grad_output, input, output_size):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    H, W = x.shape[2:]
    hlo, hhi = _windows(H, P)
    wlo, whi = _windows(W, Q)
    g64 = g.astype(np.float64)
    gx = np.zeros(x.shape)
    for i in range(P):
        for j in range(Q):
            area = (hhi[i] - hlo[i]) * (whi[j] - wlo[j])
            gx[:, :, hlo[i]:hhi[i], wlo[j]:whi[j]] += (g64[:, :, i, j] / area)[:, :, None, None]
    return (U.unbatch(gx.astype(x.dtype), batched),)


def _window_argmax(win):
    """Index within the flattened last axis by torch's rule: the last NaN, else the first max."""
    n = win.shape[-1]
    isnan = np.isnan(win)
    last_nan = n - 1 - np.argmax(isnan[..., ::-1], axis=-1)
    first_max = np.argmax(np.where(isnan, -np.inf, win), axis=-1)
    return np.where(isnan.any(-1), last_nan, first_max)


def _adaptive_max(x, P, Q):
    N, C, H, W = x.shape
    m = np.empty((N, C, P, Q), dtype=x.dtype)
    idx = np.empty((N, C, P, Q), dtype=np.int64)
    hlo, hhi = _windows(H, P)
    wlo, whi = _windows(W, Q)
    for i in range(P):
        for j in range(Q):
            win = x[:, :, hlo[i]:hhi[i], wlo[j]:whi[j]]
            ww = whi[j] - wlo[j]
            flat = win.reshape(N, C, win.shape[2] * win.shape[3])
            a = _window_argmax(flat)
            m[:, :, i, j] = np.take_along_axis(flat, a[..., None], -1)[..., 0]
            idx[:, :, i, j] = (hlo[i] + a // ww) * W + wlo[j] + a % ww
    return m, idx


def _scatter(g, idx, shape, dtype):
    """grad_input[n, c, idx[n, c, i, j]] += g[n, c, i, j]."""
    N, C, H, W = shape
    gx = np.zeros((N * C, H * W), dtype=np.float64)
    planes = np.repeat(np.arange(N * C), g.shape[2] * g.shape[3])
    np.add.at(gx, (planes, idx.reshape(-1)), g.reshape(-1))
    return gx.reshape(shape).astype(dtype)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    return_indices = check_flag(return_indices, "return_indices")
    m, idx = _adaptive_max(x, P, Q)
    m, idx = U.unbatch(m, batched), U.unbatch(idx, batched)
    return (m, idx) if return_indices else m


def adaptive_max_pool2d_backward(grad_output, input, output_size, return_indices=False):
    x, batched = U.prep_input(input)
    P, Q = U.adaptive_size(output_size, x)
    check_flag(return_indices, "return_indices")
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (P, Q))
    _, idx = _adaptive_max(x, P, Q)
    return (U.unbatch(_scatter(g, idx, x.shape, x.dtype), batched),)


# ------------------------------------------------------------------------- global

def global_avg_pool2d(input):
    x, batched = U.prep_input(input)
    y = x.astype(np.float64).mean(axis=(2, 3), keepdims=True).astype(x.dtype)
    return U.unbatch(y, batched)


def global_avg_pool2d_backward(grad_output, input):
    x, batched = U.prep_input(input)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (1, 1))
    H, W = x.shape[2:]
    gx = np.broadcast_to(g.astype(np.float64) / (H * W), x.shape).astype(x.dtype)
    return (U.unbatch(gx, batched),)


def global_max_pool2d(input):
    x, batched = U.prep_input(input)
    return U.unbatch(_adaptive_max(x, 1, 1)[0], batched)


def global_max_pool2d_backward(grad_output, input):
    x, batched = U.prep_input(input)
    g = U.prep_grad(grad_output, x, batched, x.shape[:2] + (1, 1))
    _, idx = _adaptive_max(x, 1, 1)
    return (U.unbatch(_scatter(g, idx, x.shape, x.dtype), batched),)
