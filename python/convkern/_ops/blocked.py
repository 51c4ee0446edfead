"""Channel-blocked (NCHW16c) 1x1 and depthwise convolutions (CPU, inference).

An (N, C, H, W) tensor is held blocked as (ceil(C/16), N, H, W, 16): each position's 16
channels contiguous, one vector of the micro-kernels, and every image's positions of a block
side by side (a batch of blocked 1x1 layers is one product). When C is not a multiple of 16
the last block's lanes from C % 16 on are padding: the kernels write zeros there (from finite
inputs and residuals whose padding is zero) and never read them into a real channel, so a
blocked array does not say its channel count: the weights do. A chain of 1x1 and
depthwise layers (MobileNetV2's blocks) run in that layout reads and writes whole vectors of
channels per position: the 1x1 layers' products need no transposes on either side, and the
depthwise layers have no short rows on 7x7 or 14x14 planes. The ONNX backend keeps such
chains blocked (convkern.onnx.optimize.blocked_layout); the 1x1 layers at the chain's ends
read or write NCHW themselves, so no conversion runs.

The NumPy specification is convkern.reference.blocked (to_blocked / from_blocked there too).
"""
from __future__ import annotations

import numpy as np

from .. import _C
from ..reference.blocked import blocks, from_blocked, to_blocked  # noqa: F401  (NumPy layout changes)
from . import _util as U
from .conv import _check_relu_max

BLOCK = 16
__all__ = ["PackedBlocked1x1", "pack_conv1x1_blocked", "product_rows", "conv1x1_blocked", "depthwise_blocked",
           "conv_direct_blocked", "to_blocked", "from_blocked", "blocks"]


class PackedBlocked1x1:
    """A 1x1 weight (K, C) packed once for conv1x1_blocked, in each product orientation and
    output layout as it is first needed (``packed(rows, out_blocked)``), for the instruction set
    active when it was made (conv1x1_blocked packs again under another one)."""

    __slots__ = ("_data", "weight", "K", "C", "dtype", "isa")

    def __init__(self, weight):
        w = U.as_float(weight, "weight")
        if not (w.ndim == 2 or (w.ndim == 4 and w.shape[2:] == (1, 1))):
            raise ValueError(f"weight: expected (K, C, 1, 1) or (K, C), got shape {w.shape}")
        U.check_nonempty(w, "weight")
        self.weight, self.K, self.C, self.dtype = w, int(w.shape[0]), int(w.shape[1]), w.dtype
        self._data = {}
        self.isa = _C.get_isa()

    def packed(self, rows=False, out_blocked=False):
        """The packed weight for the product orientation rows (see _C.blk_rows) and a blocked
        output or not (its padding lanes' zero rows too)."""
        key = (bool(rows), bool(out_blocked) and self.K % BLOCK != 0)
        d = self._data.get(key)
        if d is None:
            d = self._data[key] = _C.blk_pack_1x1(self.weight, rows, out_blocked)
        return d

    def current(self):
        """This weight for the active instruction set."""
        return self if self.isa == _C.get_isa() else PackedBlocked1x1(self.weight)


def product_rows(in_blocked, out_blocked, k, positions, dtype):
    """Whether conv1x1_blocked computes Y = W X (rows) rather than channel-last: only from a
    blocked input into an NCHW output, where that pads fewer of the micro-tile's lanes."""
    return bool(in_blocked and not out_blocked and _C.blk_rows(k, positions, np.dtype(dtype) == np.float64))


def pack_conv1x1_blocked(weight):
    return PackedBlocked1x1(weight)


def _x_geometry(x, blocked, c, name="input", wname="weight"):
    """(N, C, H, W) of an NCHW or blocked input of c channels (the weight's)."""
    if blocked:
        U.check_ndim(x, 5, name, f"(ceil(C/{BLOCK}), N, H, W, {BLOCK})")
        if x.shape[4] != BLOCK:
            raise ValueError(f"{name}: a channel-blocked array has a last dimension of {BLOCK}, got {x.shape}")
        cb, n, h, w, _ = x.shape
        if blocks(c) != cb:
            raise ValueError(f"{wname}: has {c} input channels, which the input's {cb} blocks of {BLOCK} do not hold")
        return n, c, h, w
    U.check_ndim(x, 4, name, "(N, C, H, W)")
    if x.shape[1] != c:
        raise ValueError(f"{wname}: has {c} input channels, the input {x.shape[1]}")
    return x.shape


def output_size(hw, kernel, stride, pads, dilation):
    """(P, Q) of a 2-d window op: input hw, pads (top, left, bottom, right); < 1 when empty."""
    (h, w), (r, s), (sh, sw), (pt, pl, pb, pr), (dh, dw) = hw, kernel, stride, pads, dilation
    return (h + pt + pb - dh * (r - 1) - 1) // sh + 1, (w + pl + pr - dw * (s - 1) - 1) // sw + 1


def y_shape(n, k, h, w, blocked):
    """The shape of an (n, k, h, w) tensor, blocked or not."""
    return (blocks(k), n, h, w, BLOCK) if blocked else (n, k, h, w)


def conv1x1_blocked(input, weight, bias=None, residual=None, *, in_blocked, out_blocked, relu=False,
                    relu_max=None):
    """A 1x1, stride-1, unpadded convolution (weight (K, C, 1, 1), or a PackedBlocked1x1) + bias
    + residual, then, when relu, max(y, 0) (clamped to relu_max when given: 6 for ReLU6).
    in_blocked: input is (C/16, N, H, W, 16) (else (N, C, H, W)); out_blocked: the output, and
    the residual, are (ceil(K/16), N, H, W, 16) (else (N, K, H, W)). Returns a new array."""
    in_blocked, out_blocked = U.check_flag(in_blocked, "in_blocked"), U.check_flag(out_blocked, "out_blocked")
    relu = U.check_flag(relu, "relu")
    relu_max = _check_relu_max(relu_max)
    x = U.as_float(input, "input")
    pk = weight if isinstance(weight, PackedBlocked1x1) else PackedBlocked1x1(U.as_float(weight, "weight", like=x))
    if pk.dtype != x.dtype:
        raise TypeError(f"weight: dtype {pk.dtype} differs from input dtype {x.dtype}")
    n, c, h, w = _x_geometry(x, in_blocked, pk.C)
    U.check_nonempty(x, "input")
    pk = pk.current()
    b = U.as_float_opt(bias, "bias", like=x)
    if b is not None:
        U.check_shape(b, (pk.K,), "bias")
    yshape = y_shape(n, pk.K, h, w, out_blocked)
    if residual is not None:
        residual = U.as_float(residual, "residual", like=x)
        U.check_shape(residual, yshape, "residual")
    y = U.empty(yshape, x.dtype)
    rows = product_rows(in_blocked, out_blocked, pk.K, h * w, x.dtype)
    _C.blk_conv1x1(x, pk.packed(rows, out_blocked), b, residual, y, n, c, pk.K, h * w, in_blocked, out_blocked, relu,
                   relu_max, rows)
    return y


def _pads(padding):
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = (int(padding),) * 4
    else:
        p = tuple(U.as_int(v, "padding") for v in padding)
        if len(p) == 2:
            p = p * 2
    if len(p) != 4 or min(p) < 0:
        raise ValueError(f"padding: expected an int >= 0, (ph, pw) or (top, left, bottom, right), got {padding}")
    return p


def _pair(v, name):
    p = (U.as_int(v, name, 1),) * 2 if not isinstance(v, (tuple, list)) else tuple(U.as_int(a, name, 1) for a in v)
    if len(p) != 2:
        raise ValueError(f"{name}: expected an int or a pair, got {v}")
    return p


def _window(h, wd, kernel, stride, padding, dilation):
    """((sh, sw), (top, left, bottom, right), (dh, dw), (P, Q)) of a window op on an h x wd
    input; ValueError when the output is empty."""
    (sh, sw), (dh, dw) = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _pads(padding)
    p, q = output_size((h, wd), kernel, (sh, sw), pads, (dh, dw))
    if p < 1 or q < 1:
        raise ValueError(f"input: {h}x{wd} (padded {h + pads[0] + pads[2]}x{wd + pads[1] + pads[3]}) is smaller "
                         f"than the dilated kernel: empty output")
    return (sh, sw), pads, (dh, dw), (p, q)


def depthwise_blocked(input, weight, bias=None, stride=1, padding=0, dilation=1, relu=False, relu_max=None):
    """Depthwise conv2d (weight (C, 1, R, S): groups = C, multiplier 1) of a blocked input
    (ceil(C/16), N, H, W, 16) into a blocked output, + bias, then the relu as in conv1x1_blocked.
    padding: int, (ph, pw) or (top, left, bottom, right)."""
    relu = U.check_flag(relu, "relu")
    relu_max = _check_relu_max(relu_max)
    x = U.as_float(input, "input")
    w = U.as_float(weight, "weight", like=x)
    U.check_ndim(w, 4, "weight", "(C, 1, R, S)")
    U.check_nonempty(w, "weight")
    if w.shape[1] != 1:
        raise ValueError(f"weight: expected (C, 1, R, S), got {w.shape}")
    n, c, h, wd = _x_geometry(x, True, w.shape[0])
    U.check_nonempty(x, "input")
    b = U.as_float_opt(bias, "bias", like=x)
    if b is not None:
        U.check_shape(b, (c,), "bias")
    (sh, sw), (pt, pl, _, _), (dh, dw), (p, q) = _window(h, wd, w.shape[2:], stride, padding, dilation)
    y = U.empty((blocks(c), n, p, q, BLOCK), x.dtype)
    _C.blk_depthwise(x, w, b, y, sh, sw, pt, pl, p, q, dh, dw, relu, relu_max)
    return y


def conv_direct_blocked(input, weight, bias=None, stride=1, padding=0, dilation=1, relu=False, relu_max=None):
    """A direct conv2d (one group) of an NCHW input (N, C, H, W) with weight (K, C, R, S) into a
    blocked output (ceil(K/16), N, P, Q, 16), + bias, then the relu as in conv1x1_blocked: for
    layers with few input channels (a network's first layer), whose im2col product has too
    short a reduction to run at speed. padding: int, (ph, pw) or (top, left, bottom, right)."""
    relu = U.check_flag(relu, "relu")
    relu_max = _check_relu_max(relu_max)
    x = U.as_float(input, "input")
    U.check_ndim(x, 4, "input", "(N, C, H, W)")
    U.check_nonempty(x, "input")
    w = U.as_float(weight, "weight", like=x)
    U.check_ndim(w, 4, "weight", "(K, C, R, S)")
    U.check_nonempty(w, "weight")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"weight: has {w.shape[1]} input channels, the input {x.shape[1]}")
    b = U.as_float_opt(bias, "bias", like=x)
    if b is not None:
        U.check_shape(b, (w.shape[0],), "bias")
    n, _, h, wd = x.shape
    (sh, sw), (pt, pl, _, _), (dh, dw), (p, q) = _window(h, wd, w.shape[2:], stride, padding, dilation)
    y = U.empty(y_shape(n, w.shape[0], p, q, True), x.dtype)
    _C.blk_conv_direct(x, w, b, y, sh, sw, pt, pl, p, q, dh, dw, relu, relu_max)
    return y
