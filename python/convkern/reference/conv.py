"""conv: plain NumPy forward and backward (the oracle; never calls native code).

Every convolution is written for any number of spatial dims as a loop over kernel offsets:
for each offset, the strided window of the (zero-padded) input that this tap sees is
contracted with the weight tap over the input channels of each group (einsum).
Transposed convolutions are written from their own definition (each input element
scatters ``x * w`` onto the output at ``i * stride + offset * dilation - padding``), not as
the gradient of a convolution, so that they check the native kernels independently.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv1d_backward", "conv2d_backward", "conv3d_backward",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "conv_transpose1d_backward", "conv_transpose2d_backward", "conv_transpose3d_backward",
    "conv1d_input", "conv2d_input", "conv3d_input",
    "conv1d_weight", "conv2d_weight", "conv3d_weight",
]
DIFFERENTIABLE = {
    "conv1d": ("input", "weight", "bias"),
    "conv2d": ("input", "weight", "bias"),
    "conv3d": ("input", "weight", "bias"),
    "conv_transpose1d": ("input", "weight", "bias"),
    "conv_transpose2d": ("input", "weight", "bias"),
    "conv_transpose3d": ("input", "weight", "bias"),
}


# ----------------------------------------------------------------------------- helpers
def _tuple(v, n):
    if isinstance(v, (list, tuple)):
        return tuple(int(e) for e in v) * (n if len(v) == 1 else 1)
    return (int(v),) * n


def _pads(padding, nd, kernel, dilation):
    """(lo, hi) pads per spatial dim; 'same' puts the odd extra pad on the right (torch)."""
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return [(t // 2, t - t // 2) for t in total]
    return [(p, p) for p in _tuple(padding, nd)]


def _batched(x, nd):
    """Adds the batch dim to an unbatched input; returns (x, was_unbatched)."""
    x = np.asarray(x)
    return (x[None], True) if x.ndim == nd + 1 else (x, False)


def _window(out, off, stride, dilation):
    """The slices of a padded input seen by kernel offset ``off`` at every output position."""
    return tuple(slice(o * d, o * d + (n - 1) * s + 1, s) for n, o, s, d in zip(out, off, stride, dilation))


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    nd = len(w_shape) - 2
    stride, dilation = _tuple(stride, nd), _tuple(dilation, nd)
    pads = _pads(padding, nd, w_shape[2:], dilation)
    out = [(n + lo + hi - d * (k - 1) - 1) // s + 1
           for n, (lo, hi), k, s, d in zip(x_shape[2:], pads, w_shape[2:], stride, dilation)]
    return nd, stride, dilation, pads, out


# ----------------------------------------------------------------------------- convolution
def _conv_forward(x, w, b, stride, padding, dilation, groups):
    nd, stride, dilation, pads, out = _conv_geometry(x.shape, w.shape, stride, padding, dilation)
    N, C = x.shape[:2]
    K, Cg = w.shape[:2]
    G = groups
    xp = np.pad(x, [(0, 0), (0, 0)] + pads).reshape(N, G, Cg, *[n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads)])
    wg = w.reshape(G, K // G, Cg, *w.shape[2:])
    y = np.zeros((N, G, K // G, *out), dtype=np.result_type(x, w))
    for off in itertools.product(*[range(k) for k in w.shape[2:]]):
        patch = xp[(Ellipsis,) + _window(out, off, stride, dilation)]  # N, G, Cg, *out
        y += np.einsum("ngc...,gkc->ngk...", patch, wg[(Ellipsis,) + off])
    y = y.reshape(N, K, *out)
    if b is not None:
        y = y + np.asarray(b).reshape((1, K) + (1,) * nd)
    return y


def _conv_grad_input(x_shape, w, dy, stride, padding, dilation, groups):
    nd, stride, dilation, pads, out = _conv_geometry(x_shape, w.shape, stride, padding, dilation)
    N = x_shape[0]
    K, Cg = w.shape[:2]
    G = groups
    padded = [n + lo + hi for n, (lo, hi) in zip(x_shape[2:], pads)]
    dxp = np.zeros((N, G, Cg, *padded), dtype=np.result_type(w, dy))
    wg = w.reshape(G, K // G, Cg, *w.shape[2:])
    dyg = dy.reshape(N, G, K // G, *out)
    for off in itertools.product(*[range(k) for k in w.shape[2:]]):
        dxp[(Ellipsis,) + _window(out, off, stride, dilation)] += np.einsum("ngk...,gkc->ngc...", dyg, wg[(Ellipsis,) + off])
    crop = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x_shape[2:], pads))
    return dxp.reshape(N, G * Cg, *padded)[(slice(None), slice(None)) + crop]


def _conv_grad_weight(x, w_shape, dy, stride, padding, dilation, groups):
    nd, stride, dilation, pads, out = _conv_geometry(x.shape, w_shape, stride, padding, dilation)
    N = x.shape[0]
    K, Cg = w_shape[:2]
    G = groups
    xp = np.pad(x, [(0, 0), (0, 0)] + pads).reshape(N, G, Cg, *[n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads)])
    dyg = dy.reshape(N, G, K // G, *out)
    dw = np.zeros((G, K // G, Cg, *w_shape[2:]), dtype=np.result_type(x, dy))
    npos = int(np.prod(out))
    for off in itertools.product(*[range(k) for k in w_shape[2:]]):
        patch = xp[(Ellipsis,) + _window(out, off, stride, dilation)]
        dw[(Ellipsis,) + off] = np.einsum("ngcs,ngks->gkc", patch.reshape(N, G, Cg, npos), dyg.reshape(N, G, K // G, npos))
    return dw.reshape(tuple(w_shape))


def _conv(nd, input, weight, bias, stride, padding, dilation, groups):
    x, unb = _batched(input, nd)
    y = _conv_forward(x, np.asarray(weight), bias, stride, padding, dilation, groups)
    return y[0] if unb else y


def _conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups):
    x, unb = _batched(input, nd)
    dy = np.asarray(grad_output)
    dy = dy[None] if unb else dy
    w = np.asarray(weight)
    dx = _conv_grad_input(x.shape, w, dy, stride, padding, dilation, groups)
    dw = _conv_grad_weight(x, w.shape, dy, stride, padding, dilation, groups)
    db = None if bias is None else dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))
    return (dx[0] if unb else dx), dw, db


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    return _conv(2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_backward(1, grad_output, input, weight, bias, stride, padding, dilation, groups)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    return _conv_backward(2, grad_output, input, weight, bias, stride, padding, dilation, groups)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv_backward(3, grad_output, input, weight, bias, stride, padding, dilation, groups)


# torch.nn.grad-style
def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_grad_input(tuple(input_size), np.asarray(weight), np.asarray(grad_output), stride, padding, dilation, groups)


conv2d_input = conv1d_input
conv3d_input = conv1d_input


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_grad_weight(np.asarray(input), tuple(weight_size), np.asarray(grad_output), stride, padding, dilation, groups)


conv2d_weight = conv1d_weight
conv3d_weight = conv1d_weight


# ----------------------------------------------------------------------------- transposed convolution
def _tgeometry(x_shape, w_shape, stride, padding, output_padding, dilation):
    nd = len(w_shape) - 2
    stride, padding, dilation = _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd)
    output_padding = _tuple(output_padding, nd)
    out = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1
           for n, s, p, d, k, op in zip(x_shape[2:], stride, padding, dilation, w_shape[2:], output_padding)]
    # full-length buffer holding every scattered position and the cropped output
    full = [max((n - 1) * s + d * (k - 1) + 1, p + o) for n, s, d, k, p, o in zip(x_shape[2:], stride, dilation, w_shape[2:], padding, out)]
    return nd, stride, padding, dilation, out, full


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x, unb = _batched(input, nd)
    w = np.asarray(weight)
    _, stride, padding, dilation, out, full = _tgeometry(x.shape, w.shape, stride, padding, output_padding, dilation)
    N, Cin = x.shape[:2]
    G = groups
    Cog = w.shape[1]
    xg = x.reshape(N, G, Cin // G, *x.shape[2:])
    wg = w.reshape(G, Cin // G, Cog, *w.shape[2:])
    buf = np.zeros((N, G, Cog, *full), dtype=np.result_type(x, w))
    for off in itertools.product(*[range(k) for k in w.shape[2:]]):
        sl = _window(x.shape[2:], off, stride, dilation)
        buf[(Ellipsis,) + sl] += np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis,) + off])
    crop = tuple(slice(p, p + o) for p, o in zip(padding, out))
    y = buf.reshape(N, G * Cog, *full)[(slice(None), slice(None)) + crop]
    if bias is not None:
        y = y + np.asarray(bias).reshape((1, G * Cog) + (1,) * nd)
    return y[0] if unb else y


def _conv_transpose_backward(nd, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x, unb = _batched(input, nd)
    dy = np.asarray(grad_output)
    dy = dy[None] if unb else dy
    w = np.asarray(weight)
    _, stride, padding, dilation, out, full = _tgeometry(x.shape, w.shape, stride, padding, output_padding, dilation)
    N, Cin = x.shape[:2]
    G = groups
    Cog = w.shape[1]
    # gradient w.r.t. the full (uncropped) buffer: dy placed at the crop, zeros elsewhere
    dbuf = np.zeros((N, G * Cog, *full), dtype=dy.dtype)
    dbuf[(slice(None), slice(None)) + tuple(slice(p, p + o) for p, o in zip(padding, out))] = dy
    dbuf = dbuf.reshape(N, G, Cog, *full)
    xg = x.reshape(N, G, Cin // G, *x.shape[2:])
    wg = w.reshape(G, Cin // G, Cog, *w.shape[2:])
    dx = np.zeros(xg.shape, dtype=np.result_type(dy, w))
    dw = np.zeros(wg.shape, dtype=np.result_type(dy, x))
    for off in itertools.product(*[range(k) for k in w.shape[2:]]):
        window = dbuf[(Ellipsis,) + _window(x.shape[2:], off, stride, dilation)]  # N, G, Cog, *in
        dx += np.einsum("ngo...,gco->ngc...", window, wg[(Ellipsis,) + off])
        dw[(Ellipsis,) + off] = np.einsum("ngcs,ngos->gco", xg.reshape(N, G, Cin // G, -1), window.reshape(N, G, Cog, -1))
    dx = dx.reshape(x.shape)
    db = None if bias is None else dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))
    return (dx[0] if unb else dx), dw.reshape(w.shape), db


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    return _conv_transpose_backward(1, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    return _conv_transpose_backward(2, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    return _conv_transpose_backward(3, grad_output, input, weight, bias, stride, padding, output_padding, groups, dilation)
