"""ONNX operators mapped onto convkern's kernels (``convkern.functional``) and NumPy.

Every compute-heavy operator (Conv, ConvTranspose, pooling, normalization, Gemm/MatMul,
activations, Softmax) runs on convkern's native kernels; pure data movement and elementwise
arithmetic (Add, Reshape, Concat, Gather, Slice, Pad, ...) uses NumPy.  Neither onnxruntime
nor ``onnx.reference`` is used here.

An operator is ``fn(node, inputs) -> list of outputs`` registered in ``OPS[op_type]``;
``node`` is a :class:`Node` (attributes decoded, ``node.opset`` = the model's ai.onnx
version, so one function covers opsets 1-21 where attributes became inputs).
Missing optional inputs are ``None``.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from .. import functional as F
from .._ops import _util as U
from .._ops import blocked as _blockedops
from .._ops import conv as _convops
from .._ops.activation import _LEAKY as _ACT_LEAKY, _RELU as _ACT_RELU, _RELU6 as _ACT_RELU6

OPS: dict = {}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class OnnxRuntimeError(ValueError):
    """A node failed: bad shapes or attribute values (names the node and operator)."""


class Node:
    """A decoded ONNX node: op_type, name, input/output names, attributes (Python values)."""

    __slots__ = ("op_type", "name", "inputs", "outputs", "attrs", "opset", "domain", "post", "extra")

    def __init__(self, op_type, name="", inputs=(), outputs=(), attrs=None, opset=21, domain=""):
        self.op_type = op_type
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.attrs = dict(attrs or {})
        self.opset = opset
        self.domain = domain
        self.post = None  # fused epilogue: ("relu",) or ("clip", lo, hi)
        self.extra = {}

    @classmethod
    def from_proto(cls, proto, opset):
        from onnx import helper

        attrs = {}
        for a in proto.attribute:
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                v = [s.decode("utf-8", "replace") for s in v]
            attrs[a.name] = v
        return cls(proto.op_type, proto.name, proto.input, proto.output, attrs, opset, proto.domain)

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def describe(self):
        return f"{self.op_type} node {self.name or self.outputs[0] if self.outputs else self.op_type!r}"

    @property
    def n_outputs(self):
        return sum(1 for o in self.outputs if o)

    def wants(self, k):
        return len(self.outputs) > k and bool(self.outputs[k])


def register(*names):
    def deco(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return deco


def fail(node, msg):
    raise OnnxRuntimeError(f"{node.op_type} ({node.name or (node.outputs[0] if node.outputs else '?')}): {msg}")


# ----------------------------------------------------------------------------- helpers
def _float_call(fn, x, *args, **kw):
    """Run a convkern op; non-float32/64 inputs (float16, bfloat16) go through float32."""
    if x.dtype in _FLOATS:
        return fn(x, *args, **kw)
    y = fn(x.astype(np.float32), *args, **kw)
    return y.astype(x.dtype)


def _cast_like(a, x):
    a = np.asarray(a)
    return a if a.dtype == x.dtype else a.astype(x.dtype)


def _ints(v):
    if v is None:
        return None
    return [int(i) for i in np.asarray(v).reshape(-1).tolist()]


def _axis(node, axis, rank):
    a = int(axis)
    if a < -rank or a >= max(rank, 1):
        fail(node, f"axis {a} out of range for rank {rank}")
    return a + rank if a < 0 else a


def _native_inplace(y):
    """y is a C-contiguous float32/float64 NumPy array that convkern's (vectorized, threaded)
    elementwise kernels can rewrite in place."""
    return isinstance(y, np.ndarray) and y.dtype in _FLOATS and y.flags.c_contiguous and y.flags.writeable


def _rerun(node, key, x, *owners):
    """The output of the kernel call that the node keeps under node.extra[key] (_keep) run on x,
    or None, running nothing, unless x has the shape and dtype it was kept for (C-contiguous)
    and the owners (by identity: a Gemm's B and C) are the same: the node then takes its full
    path, with every check."""
    kept = node.extra.get(key)
    if (kept is None or not U.same_array(x, kept[0], kept[1]) or len(owners) != len(kept[4])
            or any(a is not b for a, b in zip(owners, kept[4]))):
        return None
    y = _C.empty(kept[2], x.dtype)
    kept[3](x, y)
    return y


def _keep(node, key, x, y, call, *owners):
    """Keeps call(x, y), the kernel call just made for x -> y, for _rerun on later runs."""
    node.extra[key] = (x.shape, x.dtype, y.shape, call, owners)


def _relu6_cap(post):
    """hi when a fused post-op is Clip(0, hi) with a finite hi > 0 (ReLU6 and its kin: the
    native relu6 kernel, or a convolution's epilogue, clamps to [0, hi]), else None."""
    if post is not None and post[0] == "clip" and post[1] == 0 and 0 < post[2] < np.inf:
        return float(post[2])
    return None


def _post(node, y):
    p = node.post
    if p is None:
        return y
    if p[0] in ("relu", "leaky") and _native_inplace(y) and y.size:
        # 3x faster than np.maximum on a batch-8 ResNet-50 activation (8x256x56x56: 0.45 vs 1.30 ms)
        op, a = (_ACT_RELU, 0.0) if p[0] == "relu" else (_ACT_LEAKY, p[1])
        _C.act_forward(y, y, op, a)
    elif p[0] == "relu":
        np.maximum(y, 0, out=y)
    elif _relu6_cap(p) is not None and _native_inplace(y) and y.size:
        _C.act_forward(y, y, _ACT_RELU6, _relu6_cap(p))  # threaded and vectorized; np.clip is one thread
    elif p[0] == "clip":
        np.clip(y, p[1], p[2], out=y)
    elif p[0] == "leaky":
        np.multiply(y, np.where(y < 0, y.dtype.type(p[1]), y.dtype.type(1)), out=y)
    return y


def _ceil_div(a, b):
    return -((-a) // b)


def same_pads(in_sizes, k, s, d, mode):
    """Begin/end pads for auto_pad SAME_UPPER / SAME_LOWER."""
    b, e = [], []
    for n, kk, ss, dd in zip(in_sizes, k, s, d):
        out = _ceil_div(n, ss)
        total = max(0, (out - 1) * ss + (kk - 1) * dd + 1 - n)
        small = total // 2
        if mode == "SAME_UPPER":
            b.append(small)
            e.append(total - small)
        else:
            b.append(total - small)
            e.append(small)
    return b, e


def _window_pads(node, in_sizes, k, s, d):
    nd = len(k)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return same_pads(in_sizes, k, s, d, auto)
    if auto == "VALID":
        return [0] * nd, [0] * nd
    pads = _ints(node.attr("pads")) or [0] * (2 * nd)
    if len(pads) != 2 * nd:
        fail(node, f"pads has {len(pads)} values, expected {2 * nd}")
    if min(pads) < 0:
        fail(node, f"negative pads {pads}")
    return pads[:nd], pads[nd:]


def _pad_spatial(x, begin, end, value=0.0):
    if not any(begin) and not any(end):
        return x
    width = [(0, 0)] * (x.ndim - len(begin)) + list(zip(begin, end))
    return np.pad(x, width, mode="constant", constant_values=value)


# ----------------------------------------------------------------------------- convolution
_CONV = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
_CONVT = {1: "conv_transpose1d", 2: "conv_transpose2d", 3: "conv_transpose3d"}


def _conv_geom(node, x, w):
    nd = x.ndim - 2
    if nd not in _CONV:
        fail(node, f"input must be 3-d to 5-d (N, C, spatial...), got shape {x.shape}")
    if w.ndim != nd + 2:
        fail(node, f"weight must have {nd + 2} dimensions, got shape {w.shape}")
    k = _ints(node.attr("kernel_shape")) or list(w.shape[2:])
    if list(k) != list(w.shape[2:]):
        fail(node, f"kernel_shape {k} does not match the weight's shape {w.shape}")
    s = _ints(node.attr("strides")) or [1] * nd
    d = _ints(node.attr("dilations")) or [1] * nd
    if len(s) != nd or len(d) != nd or min(s) < 1 or min(d) < 1:
        fail(node, f"bad strides {s} / dilations {d}")
    return nd, k, s, d


def _packed_weight(node, w, g):
    """A constant weight (node.extra["const_weight"], set by the backend) packed once for the
    CPU GEMM and kept on the node, packed again after convkern.set_isa to another instruction
    set (a packed copy serves only its own); anything else as it is."""
    if not node.extra.get("const_weight"):
        return w
    cached = node.extra.get("packed")
    if cached is None or cached[0] is not w or cached[1].isa != _C.get_isa():
        cached = (w, F.PackedConvWeight(w, g))
        node.extra["packed"] = cached
    return cached[1]


def _conv_call(node, x, w):
    """(nd, pads (begin, end) when they differ, else None, conv keyword arguments) of a Conv
    node on these input and weight shapes, worked out once per shape pair and kept on the node
    (the attribute parsing cost as much as a 7x7 depthwise convolution's kernel)."""
    key = (x.shape, w.shape)
    c = node.extra.get("conv_call")
    if c is not None and c[0] == key:
        return c[1]
    nd, k, s, d = _conv_geom(node, x, w)
    g = int(node.attr("group", 1))
    if g < 1 or x.shape[1] != w.shape[1] * g or w.shape[0] % g:
        fail(node, f"channels do not agree: input {x.shape}, weight {w.shape}, group {g}")
    pb, pe = _window_pads(node, x.shape[2:], k, s, d)
    pads = None if pb == pe else (pb, pe)
    geom = dict(stride=tuple(s), padding=tuple(pb) if pads is None else 0, dilation=tuple(d), groups=g)
    node.extra["conv_call"] = (key, (nd, pads, geom))
    return nd, pads, geom


def _blocked_call(node, x, w, in_blk, out_blk):
    """(the native call of a channel-blocked Conv node (optimize.blocked_layout) for inputs of
    x's shape, f(x, b, residual, relu, relu_max) -> y, worked out once per shape; y's shape)."""
    depthwise = int(node.attr("group", 1)) > 1
    if depthwise or w.shape[2:] != (1, 1):  # depthwise (blocked in), or direct (NCHW in, few channels)
        if depthwise:
            cb, n, h, wd = x.shape[:4]
        else:  # (the kernel checks the channels)
            n, _, h, wd = x.shape
            cb = _blockedops.blocks(w.shape[0])
        _, k, s, d = _conv_geom(node, np.broadcast_to(x.dtype.type(0), (1, 1, h, wd)), w)  # (a 4-d view)
        (pt, pl), (pb, pr) = _window_pads(node, (h, wd), k, s, d)
        p, q = _blockedops.output_size((h, wd), k, s, (pt, pl, pb, pr), d)
        if p < 1 or q < 1:
            fail(node, f"input {x.shape} is smaller than the kernel: empty output")
        shape = (cb, n, p, q, 16)
        kernel = _C.blk_depthwise if depthwise else _C.blk_conv_direct

        def call(x, b, res, relu, relu_max):
            y = _C.empty(shape, x.dtype)
            kernel(x, w, b, y, s[0], s[1], pt, pl, p, q, d[0], d[1], relu, relu_max)
            return y
        return call, shape
    K, c = w.shape[:2]
    n, h, wd = (x.shape[1], x.shape[2], x.shape[3]) if in_blk else (x.shape[0], x.shape[2], x.shape[3])
    sh, sw = _ints(node.attr("strides")) or (1, 1)
    strided = (sh, sw) != (1, 1)
    if strided:  # (the input subsampled first: a 1x1 layer reads only those positions)
        h, wd = (h - 1) // sh + 1, (wd - 1) // sw + 1
        xs_shape = (x.shape[0], n, h, wd, 16) if in_blk else None
    shape = _blockedops.y_shape(n, K, h, wd, out_blk)
    pk = _blockedops.PackedBlocked1x1(w)
    rows = _blockedops.product_rows(in_blk, out_blk, K, h * wd, x.dtype)
    state = [pk.isa, pk.packed(rows, out_blk), rows]

    def call(x, b, res, relu, relu_max):
        if state[0] != _C.get_isa():  # (packed for another instruction set: packed again once)
            p = pk.current()
            r = _blockedops.product_rows(in_blk, out_blk, K, h * wd, x.dtype)
            state[:] = [p.isa, p.packed(r, out_blk), r]
        if strided and in_blk:
            xs = _C.empty(xs_shape, x.dtype)
            _C.blk_subsample(x, xs, sh, sw)
            x = xs
        elif strided:
            x = np.ascontiguousarray(x[:, :, ::sh, ::sw])
        y = _C.empty(shape, x.dtype)
        _C.blk_conv1x1(x, state[1], b, res, y, n, c, K, h * wd, in_blk, out_blk, relu, relu_max, state[2])
        return y
    return call, shape


def _conv_blocked(node, ins, io):
    """A Conv node that runs channel-blocked (io: whether its input and output are). What the
    blocked kernels do not take (a fused residual that broadcasts, a bias or weight of another
    dtype) runs the NCHW way on converted arrays, its output blocked again. (The node keeps its
    call per input shape with everything decided: about 1 us of Python per node.)"""
    x, w = ins[0], ins[1]
    c = node.extra.get("blocked_call")
    if c is None or c[1] is not w or c[0] != x.shape:
        if not isinstance(x, np.ndarray) or x.dtype != w.dtype or x.ndim != (5 if io[0] else 4):
            return _blocked_fallback(node, ins, io)
        cap = _relu6_cap(node.post)
        relu = node.post == ("relu",) or cap is not None
        c = (x.shape, w) + _blocked_call(node, x, w, *io) + (relu, np.inf if cap is None else cap,
                                                            bool(node.extra.get("residual")))
        node.extra["blocked_call"] = c
    b = ins[2] if len(ins) > 2 else None
    res = ins[3] if c[6] else None
    if ((b is not None and (not isinstance(b, np.ndarray) or b.dtype != x.dtype))
            or (res is not None and (not isinstance(res, np.ndarray) or res.dtype != x.dtype or res.shape != c[3]))):
        return _blocked_fallback(node, ins, io)
    y = c[2](x, b, res, c[4], c[5])
    return [y if c[4] else _post(node, y)]


def _blocked_fallback(node, ins, io):
    in_blk, out_blk = io
    args = list(ins)
    if in_blk:
        args[0] = _blockedops.from_blocked(args[0], node.extra["blocked_in_channels"])
    if out_blk and node.extra.get("residual") and isinstance(args[3], np.ndarray) and args[3].ndim == 5:
        args[3] = _blockedops.from_blocked(args[3], node.extra["blocked_res_channels"])
    y = _conv_nchw(node, args)[0]
    return [_blockedops.to_blocked(y) if out_blk else y]


@register("Conv")
def conv(node, ins):
    io = node.extra.get("blocked")
    if io is not None:
        return _conv_blocked(node, ins, io)
    return _conv_nchw(node, ins)


def _conv_nchw(node, ins):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    res = ins[3] if node.extra.get("residual") else None
    fast = node.extra.get("conv_plan")  # the last call's plan, for the same weight and bias
    if fast is not None and fast[0] is w and fast[1] is b:
        y = fast[2].run(x, res)
        if y is not None:
            return [y if fast[2].relu else _post(node, y)]
    nd, pads, geom = _conv_call(node, x, w)
    if pads is not None:
        x = _pad_spatial(x, *pads)
    g = geom["groups"]
    if x.dtype not in _FLOATS:
        y = getattr(F, _CONV[nd])(x.astype(np.float32), w.astype(np.float32),
                                  None if b is None else b.astype(np.float32), **geom).astype(x.dtype)
        return [_post(node, y)]
    w = _cast_like(w, x)
    if w is ins[1]:
        w = _packed_weight(node, w, g)
    # Conv + Add (+ Relu) fused by the optimizer: the other addend comes last
    if res is not None:
        y_shape = _convops._geom(nd, x.shape, w.shape, **geom).y_shape
        if not (isinstance(res, np.ndarray) and res.dtype == x.dtype and res.shape == y_shape):
            y = _convops.conv_nd(nd, x, w, None if b is None else _cast_like(b, x), **geom)
            return [_post(node, np.add(y, res))]  # broadcasting, as the Add did
    # a Relu, or a Clip(0, hi) (ReLU6), fused into the product's epilogue where the kernel can
    cap = _relu6_cap(node.post)
    relu = node.post == ("relu",) or cap is not None
    bb = None if b is None else _cast_like(b, x)
    y, plan = _convops.conv_nd_plan(nd, x, w, bb, relu=relu, residual=res, relu_max=cap, **geom)
    # kept for the next run when it sees the node's own weight and bias (constants) unpadded
    if plan is not None and pads is None and bb is b and (w is ins[1] or isinstance(w, F.PackedConvWeight)):
        node.extra["conv_plan"] = (ins[1], b, plan)
    return [y if relu else _post(node, y)]


@register("ConvTranspose")
def conv_transpose(node, ins):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd, k, s, d = _conv_geom(node, x, w)
    g = int(node.attr("group", 1))
    if g < 1 or x.shape[1] != w.shape[0] or w.shape[0] % g:
        fail(node, f"channels do not agree: input {x.shape}, weight {w.shape}, group {g}")
    in_sp = list(x.shape[2:])
    op = _ints(node.attr("output_padding")) or [0] * nd
    full = [(n - 1) * ss + (kk - 1) * dd + 1 for n, ss, kk, dd in zip(in_sp, s, k, d)]
    out_shape = _ints(node.attr("output_shape"))
    auto = node.attr("auto_pad", "NOTSET")
    if out_shape:
        out_shape = out_shape[-nd:]
        total = [f + o - t for f, o, t in zip(full, op, out_shape)]
        if auto == "SAME_UPPER":
            pb = [t // 2 for t in total]
        else:
            pb = [t - t // 2 for t in total]
        pe = [t - bb for t, bb in zip(total, pb)]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [n * ss for n, ss in zip(in_sp, s)]
        total = [f + o - t for f, o, t in zip(full, op, out_shape)]
        if auto == "SAME_UPPER":
            pb = [t // 2 for t in total]
        else:
            pb = [t - t // 2 for t in total]
        pe = [t - bb for t, bb in zip(total, pb)]
    else:
        pads = _ints(node.attr("pads")) or [0] * (2 * nd)
        if auto == "VALID":
            pads = [0] * (2 * nd)
        pb, pe = pads[:nd], pads[nd:]
    xx = x if x.dtype in _FLOATS else x.astype(np.float32)
    ww = _cast_like(w, xx)
    fn = getattr(F, _CONVT[nd])
    # full transposed convolution, then crop pads / extend by output_padding (negative pads extend)
    direct = all(bb == ee >= 0 for bb, ee in zip(pb, pe)) and all(o < max(ss, dd) for o, ss, dd in zip(op, s, d))
    if direct:
        y = fn(xx, ww, None if b is None else _cast_like(b, xx), stride=tuple(s), padding=tuple(pb),
               output_padding=tuple(op), groups=g, dilation=tuple(d))
    else:
        y = fn(xx, ww, None, stride=tuple(s), padding=0, output_padding=0, groups=g, dilation=tuple(d))
        ends = [o - e for o, e in zip(op, pe)]  # amount to add (+) or crop (-) at the end
        begins = [-bb for bb in pb]
        y = _crop_pad(y, begins, ends)
        if b is not None:
            y = y + _cast_like(b, xx).reshape((1, -1) + (1,) * nd)
    if y.dtype != x.dtype:
        y = y.astype(x.dtype)
    return [_post(node, np.ascontiguousarray(y))]


def _crop_pad(y, begins, ends):
    """Add (positive) or remove (negative) zeros at the start/end of each trailing axis."""
    nd = len(begins)
    sl = [slice(None)] * (y.ndim - nd)
    width = [(0, 0)] * (y.ndim - nd)
    for bb, ee, n in zip(begins, ends, y.shape[-nd:]):
        sl.append(slice(max(0, -bb), n - max(0, -ee)))
        width.append((max(0, bb), max(0, ee)))
    y = y[tuple(sl)]
    if any(w != (0, 0) for w in width):
        y = np.pad(y, width)
    return y


# ----------------------------------------------------------------------------- pooling
def _pool_out(n, pb, pe, k, s, d, ceil):
    span = (k - 1) * d + 1
    num = n + pb + pe - span
    if num < 0:
        return 0
    if ceil:
        out = _ceil_div(num, s) + 1
        if (out - 1) * s >= n + pb:  # last window must start inside the input or left pad
            out -= 1
    else:
        out = num // s + 1
    return out


def _pool_geom(node, x):
    k = _ints(node.attr("kernel_shape"))
    if not k:
        fail(node, "kernel_shape is required")
    nd = len(k)
    if x.ndim != nd + 2:
        fail(node, f"input must have {nd + 2} dimensions for kernel_shape {k}, got shape {x.shape}")
    s = _ints(node.attr("strides")) or [1] * nd
    d = _ints(node.attr("dilations")) or [1] * nd
    if len(s) != nd or len(d) != nd or min(s) < 1 or min(d) < 1 or min(k) < 1:
        fail(node, f"bad kernel_shape {k} / strides {s} / dilations {d}")
    ceil = bool(node.attr("ceil_mode", 0))
    pb, pe = _window_pads(node, x.shape[2:], k, s, d)
    auto = node.attr("auto_pad", "NOTSET")
    out = []
    for i in range(nd):
        n = x.shape[2 + i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            o = _ceil_div(n, s[i])
        else:
            o = _pool_out(n, pb[i], pe[i], k[i], s[i], d[i], ceil)
        if o < 1:
            fail(node, f"input spatial size {x.shape[2:]} too small for kernel {k} (pads {pb}+{pe})")
        out.append(o)
    # extra end padding so that a floor-mode window sweep yields exactly `out`
    ext = [max(pe[i], (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - x.shape[2 + i] - pb[i]) for i in range(nd)]
    return nd, k, s, d, pb, pe, ext, out


def _low(dtype):
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return np.iinfo(dtype).min


def _window_slices(nd, offs, s, d, out):
    return tuple([Ellipsis] + [slice(o * dd, o * dd + (n - 1) * ss + 1, ss)
                               for o, ss, dd, n in zip(offs, s, d, out)])


def _np_pool(xp, k, s, d, out, mode):
    """Generic N-d sliding-window max / sum over a padded input (loops over kernel offsets)."""
    import itertools

    y = None
    for offs in itertools.product(*[range(kk) for kk in k]):
        v = xp[_window_slices(len(k), offs, s, d, out)]
        if y is None:
            y = v.copy() if mode == "sum" or True else v
            if mode == "sum" and y.dtype.kind in "iu":
                y = y.astype(np.float64)
        elif mode == "max":
            np.maximum(y, v, out=y) if y.dtype.kind not in "f" else np.fmax(y, v, out=y)
        else:
            y += v
    return y


def _np_maxpool_indices(x, k, s, d, pb, ext, out, storage_order):
    """Max with int64 flat indices into the *unpadded* input (ONNX's convention)."""
    import itertools

    nd = len(k)
    xp = _pad_spatial(x, pb, ext, _low(x.dtype))
    best = None
    idx = None
    sp = x.shape[2:]
    grids = np.meshgrid(*[np.arange(o) for o in out], indexing="ij")
    for offs in itertools.product(*[range(kk) for kk in k]):
        v = xp[_window_slices(nd, offs, s, d, out)]
        coords = [g * ss + o * dd - p for g, ss, o, dd, p in zip(grids, s, offs, d, pb)]
        if storage_order:
            flat = np.zeros_like(coords[0])
            for c, n in zip(reversed(coords), reversed(sp)):
                flat = flat * n + c
            # column-major over spatial dims: last spatial index varies slowest
            flat = np.zeros_like(coords[0])
            mult = 1
            for c, n in zip(coords, sp):
                flat = flat + c * mult
                mult *= n
        else:
            flat = np.zeros_like(coords[0])
            for c, n in zip(coords, sp):
                flat = flat * n + c
        if best is None:
            best = v.copy()
            idx = np.broadcast_to(flat, v.shape).copy()
        else:
            better = v > best
            best = np.where(better, v, best)
            idx = np.where(better, flat, idx)
    plane = int(np.prod(sp))
    base = (np.arange(x.shape[0] * x.shape[1], dtype=np.int64) * plane).reshape(x.shape[:2] + (1,) * nd)
    return best, (idx + base).astype(np.int64)


def _as_2d_pool(x, nd, k, s, d, pb, ext):
    """Lift a 1-d pool to 2-d (H=1) so convkern's 2-d kernels run it."""
    if nd == 1:
        return x[:, :, None, :], [1] + k, [1] + s, [1] + d, [0] + pb, [0] + ext
    return x, k, s, d, pb, ext


@register("MaxPool")
def max_pool(node, ins):
    x = ins[0]
    y = _rerun(node, "max_pool", x)
    if y is not None:
        return [_post(node, y)]
    nd, k, s, d, pb, pe, ext, out = _pool_geom(node, x)
    if node.wants(1):
        y, idx = _np_maxpool_indices(x, k, s, d, pb, ext, out, int(node.attr("storage_order", 0)))
        return [y, idx]
    if nd in (1, 2) and x.dtype in _FLOATS:
        x2, k2, s2, d2, pb2, ext2 = _as_2d_pool(x, nd, k, s, d, pb, ext)
        sym = all(b == e and b <= kk // 2 for b, e, kk in zip(pb2, ext2, k2))
        if sym:
            y = F.max_pool2d(x2, tuple(k2), tuple(s2), tuple(pb2), tuple(d2), False)
            if nd == 2 and x.flags.c_contiguous and y.size:  # (F.max_pool2d's kernel call)
                args = (k2[0], k2[1], s2[0], s2[1], pb2[0], pb2[1], d2[0], d2[1], False)
                _keep(node, "max_pool", x, y, lambda x, y: _C.max_pool2d_forward(x, y, None, *args))
        else:
            xp = _pad_spatial(x2, pb2, ext2, -np.inf)
            y = F.max_pool2d(xp, tuple(k2), tuple(s2), 0, tuple(d2), False)
        if nd == 1:
            y = y[:, :, 0, :]
        return [_post(node, y)]
    xp = _pad_spatial(x, pb, ext, _low(x.dtype))
    return [_post(node, _np_pool(xp, k, s, d, out, "max").astype(x.dtype, copy=False))]


def _avg_counts(sp, k, s, d, pb, pe, out, include_pad):
    """Per-output divisor: window positions inside the input (or the explicitly padded input)."""
    cnt = None
    for n, kk, ss, dd, b, e, o in zip(sp, k, s, d, pb, pe, out):
        lo, hi = (-b, n + e) if include_pad else (0, n)
        start = np.arange(o) * ss - b
        pos = start[:, None] + np.arange(kk)[None, :] * dd
        c = ((pos >= lo) & (pos < hi)).sum(1).astype(np.float64)
        cnt = c if cnt is None else cnt[..., None] * c
    return cnt


def _blocked_gap(node, x):
    """Global average pooling of a channel-blocked input (optimize.blocked_layout), or None
    where the node does not pool globally over this input (an AveragePool whose window is not
    the whole plane: the caller converts it and runs the NCHW way)."""
    if not (isinstance(x, np.ndarray) and x.ndim == 5 and x.dtype in _FLOATS and x.shape[4] == 16):
        return None
    if node.op_type == "AveragePool" and tuple(_ints(node.attr("kernel_shape")) or ()) != x.shape[2:4]:
        return None
    y = _C.empty((x.shape[1], node.extra["blocked_in_channels"], 1, 1), x.dtype)
    _C.blk_gap(x, y, y.shape[1])
    return y


def _pool_input(node, x):
    """A pooling node's input, or its global average (ops on a blocked input: (None, y))."""
    io = node.extra.get("blocked")
    if io is None or not io[0]:
        return x, None
    y = _blocked_gap(node, x)
    return (None, y) if y is not None else (_blockedops.from_blocked(x, node.extra["blocked_in_channels"]), None)


@register("AveragePool")
def avg_pool(node, ins):
    x, y = _pool_input(node, ins[0])
    if y is not None:
        return [y]
    y = _rerun(node, "avg_pool", x)
    if y is not None:
        return [y]
    nd, k, s, d, pb, pe, ext, out = _pool_geom(node, x)
    include = bool(node.attr("count_include_pad", 0))
    cnt = _avg_counts(x.shape[2:], k, s, d, pb, pe, out, include)
    xf = x if x.dtype in _FLOATS else x.astype(np.float32)
    if nd in (1, 2) and max(d) == 1:
        x2, k2, s2, d2, pb2, ext2 = _as_2d_pool(xf, nd, k, s, d, pb, ext)
        full = np.prod(k)
        if all(b == e and b <= kk // 2 for b, e, kk in zip(pb2, ext2, k2)) and (
                include or not any(pb2)) and np.all(cnt == full):
            y = F.avg_pool2d(x2, tuple(k2), tuple(s2), tuple(pb2), False, True)
            if nd == 2 and x is xf and x.flags.c_contiguous and y.size:  # (F.avg_pool2d's kernel call)
                args = (k2[0], k2[1], s2[0], s2[1], pb2[0], pb2[1], False, True, 0)
                _keep(node, "avg_pool", x, y, lambda x, y: _C.avg_pool2d_forward(x, y, *args))
        else:
            xp = _pad_spatial(x2, pb2, ext2, 0.0)
            y = F.avg_pool2d(xp, tuple(k2), tuple(s2), 0, False, True, 1)
            y /= cnt.astype(y.dtype).reshape((1, 1) + y.shape[2:])
        if nd == 1:
            y = y[:, :, 0, :]
    else:
        xp = _pad_spatial(xf, pb, ext, 0.0)
        y = _np_pool(xp, k, s, d, out, "sum")
        y = (y / cnt).astype(xf.dtype)
    return [y.astype(x.dtype, copy=False)]


@register("GlobalAveragePool")
def global_avg_pool(node, ins):
    x, y = _pool_input(node, ins[0])
    if y is not None:
        return [y]
    y = _rerun(node, "global_avg_pool", x)
    if y is not None:
        return [y]
    if x.ndim == 4 and x.dtype in _FLOATS:
        y = F.global_avg_pool2d(x)
        if x.flags.c_contiguous and x.size:  # (F.global_avg_pool2d's kernel call)
            _keep(node, "global_avg_pool", x, y, _C.global_avg_pool2d_forward)
        return [y]
    if x.ndim < 3:
        fail(node, f"input must be (N, C, spatial...), got shape {x.shape}")
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype)]


@register("GlobalMaxPool")
def global_max_pool(node, ins):
    x = ins[0]
    if x.ndim == 4 and x.dtype in _FLOATS:
        return [F.global_max_pool2d(x)]
    if x.ndim < 3:
        fail(node, f"input must be (N, C, spatial...), got shape {x.shape}")
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


# ----------------------------------------------------------------------------- normalization
@register("BatchNormalization")
def batch_norm(node, ins):
    x, scale, bias, mean, var = ins[:5]
    eps = float(node.attr("epsilon", 1e-5))
    training = bool(node.attr("training_mode", 0)) if node.opset >= 14 else (
        node.opset >= 7 and node.n_outputs > 1 and not node.attr("is_test", 0))
    if x.ndim < 2 or any(np.asarray(a).shape != (x.shape[1],) for a in (scale, bias, mean, var)):
        fail(node, f"scale/B/mean/var must all have shape ({x.shape[1] if x.ndim > 1 else '?'},) for input {x.shape}")
    if training and node.opset >= 14:
        mom = float(node.attr("momentum", 0.9))
        axes = (0,) + tuple(range(2, x.ndim))
        m = x.mean(axis=axes)
        v = x.var(axis=axes)
        sh = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - m.reshape(sh)) / np.sqrt(v.reshape(sh) + eps) * scale.reshape(sh) + bias.reshape(sh)
        rm = mean * mom + m * (1 - mom)
        rv = var * mom + v * (1 - mom)
        return [_post(node, y.astype(x.dtype)), rm.astype(mean.dtype), rv.astype(var.dtype)]
    xx = x if x.dtype in _FLOATS else x.astype(np.float32)
    c = [np.ascontiguousarray(_cast_like(a, xx)) for a in (mean, var, scale, bias)]
    y = F.batch_norm(xx, c[0], c[1], c[2], c[3], False, 0.1, eps)
    return [_post(node, y.astype(x.dtype, copy=False))]


@register("InstanceNormalization")
def instance_norm(node, ins):
    x, scale, bias = ins[:3]
    eps = float(node.attr("epsilon", 1e-5))
    if x.ndim < 3 or scale.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
        fail(node, f"scale/B must have shape (C,) for input (N, C, ...), got {scale.shape}, {bias.shape}, {x.shape}")
    xx = x if x.dtype in _FLOATS else x.astype(np.float32)
    n, c = x.shape[:2]
    y = F.layer_norm(xx.reshape(n, c, -1), (int(np.prod(x.shape[2:])),), None, None, eps).reshape(x.shape)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    y *= _cast_like(scale, xx).reshape(sh)
    y += _cast_like(bias, xx).reshape(sh)
    return [y.astype(x.dtype, copy=False)]


@register("LayerNormalization")
def layer_norm(node, ins):
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    axis = _axis(node, node.attr("axis", -1), x.ndim)
    eps = float(node.attr("epsilon", 1e-5))
    norm_shape = x.shape[axis:]
    xx = x if x.dtype in _FLOATS else x.astype(np.float32)
    outs = []
    if (not node.wants(1) and not node.wants(2) and scale.shape == norm_shape
            and (bias is None or bias.shape == norm_shape)):
        y = F.layer_norm(xx, norm_shape, _cast_like(scale, xx), None if bias is None else _cast_like(bias, xx), eps)
        return [y.astype(x.dtype, copy=False)]
    axes = tuple(range(axis, x.ndim))
    xs = xx.astype(np.float32) if int(node.attr("stash_type", 1)) == 1 else xx
    m = xs.mean(axis=axes, keepdims=True)
    v = ((xs - m) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(v + eps)
    y = (xs - m) * inv * scale
    if bias is not None:
        y = y + bias
    outs = [y.astype(x.dtype)]
    if node.wants(1):
        outs.append(m.astype(xs.dtype))
    if node.wants(2):
        outs.append(inv.astype(xs.dtype))
    return outs


@register("LRN")
def lrn(node, ins):
    x = ins[0]
    size = int(node.attr("size"))
    alpha, beta, bias = float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0))
    if size % 2 == 1 and x.dtype in _FLOATS and x.ndim >= 3:
        return [F.local_response_norm(x, size, alpha, beta, bias)]
    # even size: ONNX puts floor((size-1)/2) channels before and ceil((size-1)/2) after
    sq = (x.astype(np.float64) ** 2)
    c = x.shape[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    p = np.pad(sq, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    cs = np.cumsum(p, axis=1)
    cs = np.concatenate([np.zeros_like(cs[:, :1]), cs], axis=1)
    s = cs[:, size:size + c] - cs[:, :c]
    return [(x / (bias + alpha / size * s) ** beta).astype(x.dtype)]


# ----------------------------------------------------------------------------- activations
def _act(fn):
    def run(node, ins):
        x = ins[0]
        if x.dtype in _FLOATS:
            return [fn(node, x)]
        return [fn(node, x.astype(np.float32)).astype(x.dtype)]
    return run


OPS["Relu"] = lambda node, ins: [F.relu(ins[0]) if ins[0].dtype in _FLOATS else np.maximum(ins[0], 0).astype(ins[0].dtype)]
OPS["LeakyRelu"] = _act(lambda n, x: F.leaky_relu(x, float(n.attr("alpha", 0.01))))
OPS["Elu"] = _act(lambda n, x: F.elu(x, float(n.attr("alpha", 1.0))))
OPS["Sigmoid"] = _act(lambda n, x: F.sigmoid(x))
OPS["Tanh"] = _act(lambda n, x: F.tanh(x))


def _selu(n, x):
    y = F.elu(x, float(n.attr("alpha", 1.67326319217681884765625)))
    y *= x.dtype.type(n.attr("gamma", 1.05070102214813232421875))
    return y


OPS["Selu"] = _act(_selu)
OPS["HardSigmoid"] = lambda node, ins: [np.clip(ins[0] * ins[0].dtype.type(node.attr("alpha", 0.2))
                                                + ins[0].dtype.type(node.attr("beta", 0.5)), 0, 1).astype(ins[0].dtype)]
OPS["HardSwish"] = lambda node, ins: [(ins[0] * np.clip(ins[0] / 6 + 0.5, 0, 1)).astype(ins[0].dtype)]
OPS["Softplus"] = lambda node, ins: [np.logaddexp(0, ins[0]).astype(ins[0].dtype)]
OPS["Softsign"] = lambda node, ins: [(ins[0] / (1 + np.abs(ins[0]))).astype(ins[0].dtype)]


@register("Gelu")
def gelu(node, ins):
    x = ins[0]
    appr = node.attr("approximate", "none")
    return [_float_call(F.gelu, x, approximate=appr)]


@register("PRelu")
def prelu(node, ins):
    x, slope = ins[0], np.asarray(ins[1])
    if node.opset < 7 and x.ndim >= 2 and slope.size == x.shape[1] and slope.size > 1:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # opset 6: one slope per channel
    if x.dtype in _FLOATS and x.ndim >= 2:
        c = x.shape[1]
        sq = slope.reshape(-1) if slope.size in (1, c) else None
        # the slope applies per channel when its shape broadcasts as (C, 1, ..., 1)
        if sq is not None and (slope.size == 1 or (slope.ndim >= x.ndim - 1 and slope.shape[-(x.ndim - 1)] == c)):
            return [F.prelu(x, np.ascontiguousarray(_cast_like(sq, x)))]
    try:
        np.broadcast_shapes(x.shape, slope.shape)
    except ValueError:
        fail(node, f"slope {slope.shape} does not broadcast to input {x.shape}")
    return [np.where(x < 0, x * slope, x).astype(x.dtype)]


@register("Clip")
def clip(node, ins):
    x = ins[0]
    if node.opset < 11:
        lo, hi = node.attr("min", None), node.attr("max", None)
    else:
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else None
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else None
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo).astype(x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi).astype(x.dtype))
    return [np.array(y, dtype=x.dtype, copy=y is x)]


def _softmax_like(fname):
    def run(node, ins):
        x = ins[0]
        fn = getattr(F, fname)
        if x.ndim == 0:
            fail(node, "input must have at least 1 dimension")
        if node.opset < 13:
            axis = _axis(node, node.attr("axis", 1), x.ndim)
            n = int(np.prod(x.shape[:axis]))
            x2 = x.reshape(n, -1)
            return [_float_call(fn, x2, 1).reshape(x.shape)]
        axis = _axis(node, node.attr("axis", -1), x.ndim)
        return [_float_call(fn, x, axis)]
    return run


OPS["Softmax"] = _softmax_like("softmax")
OPS["LogSoftmax"] = _softmax_like("log_softmax")


def _erf(x):
    xf = np.asarray(x, dtype=np.float64)
    if xf.size <= 200000:
        return np.vectorize(math.erf, otypes=[np.float64])(xf).astype(x.dtype)
    # W. J. Cody-style rational approximation (|err| < 1.2e-7), vectorized
    t = 1.0 / (1.0 + 0.5 * np.abs(xf))
    y = 1 - t * np.exp(-xf * xf - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
        0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
            1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return (np.sign(xf) * y).astype(x.dtype)


OPS["Erf"] = lambda node, ins: [_erf(ins[0])]


@register("Dropout")
def dropout(node, ins):
    x = ins[0]
    training = False
    ratio = float(node.attr("ratio", 0.5))
    if node.opset >= 12:
        if len(ins) > 1 and ins[1] is not None:
            ratio = float(np.asarray(ins[1]))
        if len(ins) > 2 and ins[2] is not None:
            training = bool(np.asarray(ins[2]))
    elif node.opset < 7:
        training = not node.attr("is_test", 0)
    if not training or ratio == 0:
        outs = [x]
        mask = np.ones(x.shape, dtype=bool if node.opset >= 10 else x.dtype)
    else:
        rng = np.random.default_rng(node.attr("seed", None))
        keep = rng.uniform(size=x.shape) >= ratio
        outs = [(x * keep / (1.0 - ratio)).astype(x.dtype)]
        mask = keep if node.opset >= 10 else keep.astype(x.dtype)
    if node.wants(1):
        outs.append(mask)
    return outs


# ----------------------------------------------------------------------------- dense
@register("Gemm")
def gemm(node, ins):
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    y = _rerun(node, "linear", a, b, c)
    if y is not None:
        return [_post(node, y)]
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if a.ndim != 2 or b.ndim != 2:
        fail(node, f"A and B must be 2-d, got {a.shape} and {b.shape}")
    if node.attr("transA", 0):
        a = a.T
    w = b if node.attr("transB", 0) else b.T  # (M, K) "weight" for linear
    if a.shape[1] != w.shape[1]:
        fail(node, f"inner dimensions differ: A' {a.shape}, B' {(w.shape[1], w.shape[0])}")
    M = w.shape[0]
    if a.dtype not in _FLOATS:
        y = (alpha * (a.astype(np.float64) @ w.T.astype(np.float64)))
        if c is not None and beta != 0:
            y = y + beta * c
        return [y.astype(a.dtype)]
    bias = None
    if c is not None and alpha == 1.0 and beta == 1.0 and c.size == M and (c.ndim == 1 or c.shape == (1, M)):
        bias, c = np.ascontiguousarray(_cast_like(c.reshape(M), a)), None
    w = _cast_like(w, a)
    y = F.linear(a, w, bias)
    if (alpha == 1.0 and c is None and not node.attr("transA", 0) and w.flags.c_contiguous and a.flags.c_contiguous
            and a.size):  # (F.linear's kernel call, for this B and C)
        _keep(node, "linear", a, y, lambda a, y: _C.linear_forward(a, w, bias, y), ins[1],
              ins[2] if len(ins) > 2 else None)
    if alpha != 1.0:
        y *= a.dtype.type(alpha)
    if c is not None and beta != 0.0:
        try:
            y += (beta * c).astype(a.dtype) if beta != 1.0 else c.astype(a.dtype, copy=False)
        except ValueError:
            fail(node, f"C {c.shape} does not broadcast to {y.shape}")
    return [_post(node, y)]


@register("MatMul")
def matmul(node, ins):
    a, b = ins[0], ins[1]
    if a.ndim == 0 or b.ndim == 0:
        fail(node, "MatMul inputs must not be scalars")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        fail(node, f"inner dimensions differ: {a.shape} @ {b.shape}")
    if b.ndim == 2 and a.dtype in _FLOATS and b.dtype == a.dtype and a.ndim >= 1:
        w = node.extra.get("wT")
        if w is None or w.shape != (b.shape[1], b.shape[0]):
            w = np.ascontiguousarray(b.T)
        return [F.linear(a, w)]
    try:
        return [np.matmul(a, b)]
    except ValueError as e:
        fail(node, str(e))


# ----------------------------------------------------------------------------- elementwise
def _legacy_bcast(node, a, b):
    if node.opset < 7 and node.attr("broadcast", 0) and b.ndim < a.ndim and b.ndim > 0:
        axis = node.attr("axis", a.ndim - b.ndim)
        axis = axis + a.ndim if axis < 0 else axis
        b = b.reshape(b.shape + (1,) * (a.ndim - axis - b.ndim))
    return b


def _binary(ufunc, int_fix=None):
    def run(node, ins):
        a, b = ins[0], ins[1]
        b = _legacy_bcast(node, a, b)
        try:
            if int_fix is not None and a.dtype.kind in "iu":
                return [int_fix(a, b)]
            y = ufunc(a, b)
        except ValueError as e:
            fail(node, f"shapes {a.shape} and {b.shape} do not broadcast ({e})")
        if y.dtype != a.dtype and a.dtype.kind in "fiu" and np.asarray(b).dtype.kind in "fiu":
            y = y.astype(a.dtype)
        return [_post(node, y) if node.post else y]
    return run


def _int_div(a, b):
    q = np.trunc(a.astype(np.float64) / b).astype(a.dtype) if a.dtype.kind == "i" else (a // b).astype(a.dtype)
    return q


OPS["Add"] = _binary(np.add)
OPS["Sub"] = _binary(np.subtract)
OPS["Mul"] = _binary(np.multiply)
OPS["Div"] = _binary(np.divide, _int_div)
OPS["Pow"] = lambda node, ins: [np.power(ins[0], _legacy_bcast(node, ins[0], ins[1])).astype(ins[0].dtype)
                                if ins[0].dtype.kind == "f" else
                                np.power(ins[0].astype(np.float64), ins[1]).astype(ins[0].dtype)]
OPS["Equal"] = lambda node, ins: [np.equal(ins[0], ins[1])]
OPS["Less"] = lambda node, ins: [np.less(ins[0], ins[1])]
OPS["Greater"] = lambda node, ins: [np.greater(ins[0], ins[1])]
OPS["LessOrEqual"] = lambda node, ins: [np.less_equal(ins[0], ins[1])]
OPS["GreaterOrEqual"] = lambda node, ins: [np.greater_equal(ins[0], ins[1])]
OPS["And"] = lambda node, ins: [np.logical_and(ins[0], ins[1])]
OPS["Or"] = lambda node, ins: [np.logical_or(ins[0], ins[1])]
OPS["Not"] = lambda node, ins: [np.logical_not(ins[0])]
OPS["Where"] = lambda node, ins: [np.where(ins[0], ins[1], ins[2])]
OPS["Mod"] = lambda node, ins: [(np.fmod(ins[0], ins[1]) if node.attr("fmod", 0) else np.mod(ins[0], ins[1])).astype(ins[0].dtype)]


def _unary(fn):
    return lambda node, ins: [np.asarray(fn(ins[0])).astype(ins[0].dtype, copy=False)]


for _n, _f in {"Abs": np.abs, "Neg": np.negative, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
               "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
               "Sign": np.sign, "Sin": np.sin, "Cos": np.cos, "IsNaN": None, "IsInf": None}.items():
    if _f is not None:
        OPS[_n] = _unary(_f)
OPS["IsNaN"] = lambda node, ins: [np.isnan(ins[0])]
OPS["IsInf"] = lambda node, ins: [np.isinf(ins[0])]


def _variadic(ufunc, mean=False):
    def run(node, ins):
        xs = [x for x in ins if x is not None]
        if not xs:
            fail(node, "needs at least one input")
        y = xs[0]
        try:
            for x in xs[1:]:
                y = ufunc(y, x)
        except ValueError as e:
            fail(node, f"inputs do not broadcast ({e})")
        if mean:
            y = y / len(xs)
        y = np.asarray(y)
        if len(xs) == 1:
            y = y.copy()
        y = y.astype(xs[0].dtype, copy=False)
        return [_post(node, y) if node.post else y]
    return run


OPS["Sum"] = _variadic(np.add)
OPS["Max"] = _variadic(np.maximum)
OPS["Min"] = _variadic(np.minimum)
OPS["Mean"] = _variadic(np.add, mean=True)


@register("Cast")
def cast(node, ins):
    from onnx import helper

    to = int(node.attr("to"))
    try:
        dt = helper.tensor_dtype_to_np_dtype(to)
    except Exception:  # noqa: BLE001
        raise NotImplementedError(f"Cast to ONNX type {to} is not supported") from None
    return [np.asarray(ins[0]).astype(dt)]


# ----------------------------------------------------------------------------- shape / data movement
def _check_size(node, shape, limit=2**34):
    n = 1
    for s in shape:
        if s < 0:
            fail(node, f"negative dimension in shape {tuple(shape)}")
        n *= s
    if n > limit:
        fail(node, f"output shape {tuple(shape)} is absurdly large ({n} elements)")


@register("Concat")
def concat(node, ins):
    xs = [x for x in ins if x is not None]
    if not xs:
        fail(node, "needs at least one input")
    axis = _axis(node, node.attr("axis", 1), xs[0].ndim)
    try:
        return [np.concatenate(xs, axis=axis)]
    except ValueError as e:
        fail(node, f"shapes do not agree: {[x.shape for x in xs]} ({e})")


@register("Split")
def split(node, ins):
    x = ins[0]
    axis = _axis(node, node.attr("axis", 0), x.ndim)
    n_out = len(node.outputs)
    sizes = None
    if node.opset < 13:
        sizes = _ints(node.attr("split")) or (_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
    elif len(ins) > 1 and ins[1] is not None:
        sizes = _ints(ins[1])
    dim = x.shape[axis]
    if not sizes:
        num = int(node.attr("num_outputs", n_out))
        if node.opset >= 18 and node.attr("num_outputs") is not None:
            chunk = _ceil_div(dim, num)
            sizes = [min(chunk, dim - i * chunk) for i in range(num)]
        else:
            if dim % n_out:
                fail(node, f"dimension {dim} cannot be split into {n_out} equal parts")
            sizes = [dim // n_out] * n_out
    if sum(sizes) != dim or min(sizes) < 0:
        fail(node, f"split sizes {sizes} do not add up to dimension {dim}")
    idx = np.cumsum(sizes)[:-1]
    return list(np.split(x, idx, axis=axis))


@register("Slice")
def slice_(node, ins):
    x = ins[0]
    if node.opset < 10:
        starts, ends = _ints(node.attr("starts")), _ints(node.attr("ends"))
        axes, steps = _ints(node.attr("axes")), None
    else:
        starts, ends = _ints(ins[1]), _ints(ins[2])
        axes = _ints(ins[3]) if len(ins) > 3 and ins[3] is not None else None
        steps = _ints(ins[4]) if len(ins) > 4 and ins[4] is not None else None
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        fail(node, "starts/ends/axes/steps must have the same length")
    sl = [slice(None)] * x.ndim
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = _axis(node, ax, x.ndim)
        n = x.shape[ax]
        if sp == 0:
            fail(node, "steps must not be 0")
        if st < 0:
            st += n
        if en < 0:
            en += n
        if sp > 0:
            st = min(max(st, 0), n)
            en = min(max(en, 0), n)
            sl[ax] = slice(st, en, sp)
        else:
            st = min(max(st, -1), n - 1)
            en = min(max(en, -1), n - 1)
            sl[ax] = slice(st, None if en < 0 else en, sp) if st >= 0 else slice(0, 0)
    return [x[tuple(sl)]]


@register("Flatten")
def flatten(node, ins):
    x = ins[0]
    axis = int(node.attr("axis", 1))
    if axis < 0:
        axis += x.ndim
    if axis < 0 or axis > x.ndim:
        fail(node, f"axis {axis} out of range for rank {x.ndim}")
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def reshape_target(node, in_shape, shape, allowzero=False):
    shape = list(shape)
    out = []
    neg = -1
    for i, s in enumerate(shape):
        if s == 0 and not allowzero:
            if i >= len(in_shape):
                fail(node, f"shape {shape}: 0 at position {i} but the input has rank {len(in_shape)}")
            out.append(int(in_shape[i]))
        elif s == -1:
            if neg >= 0:
                fail(node, f"shape {shape} has more than one -1")
            neg = i
            out.append(1)
        elif s < -1:
            fail(node, f"invalid shape {shape}")
        else:
            out.append(int(s))
    total = int(np.prod(in_shape, dtype=np.int64))
    known = int(np.prod(out, dtype=np.int64))
    if neg >= 0:
        if known == 0 or total % known:
            fail(node, f"cannot reshape {tuple(in_shape)} to {shape}")
        out[neg] = total // known
    elif known != total:
        fail(node, f"cannot reshape {tuple(in_shape)} ({total} elements) to {shape} ({known} elements)")
    return out


@register("Reshape")
def reshape(node, ins):
    x = ins[0]
    shape = _ints(node.attr("shape")) if node.opset < 5 else _ints(ins[1])
    return [x.reshape(reshape_target(node, x.shape, shape, bool(node.attr("allowzero", 0))))]


@register("Transpose")
def transpose(node, ins):
    x = ins[0]
    perm = _ints(node.attr("perm")) or list(range(x.ndim))[::-1]
    if sorted(perm) != list(range(x.ndim)):
        fail(node, f"perm {perm} is not a permutation of {x.ndim} axes")
    return [np.transpose(x, perm)]


@register("Squeeze")
def squeeze(node, ins):
    x = ins[0]
    axes = _ints(node.attr("axes")) if node.opset < 13 else (_ints(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
    if axes is None:
        return [np.squeeze(x)]
    axes = [_axis(node, a, x.ndim) for a in axes]
    for a in axes:
        if x.shape[a] != 1:
            fail(node, f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [np.squeeze(x, axis=tuple(axes))]


@register("Unsqueeze")
def unsqueeze(node, ins):
    x = ins[0]
    axes = _ints(node.attr("axes")) if node.opset < 13 else _ints(ins[1])
    r = x.ndim + len(axes)
    axes = sorted(_axis(node, a, r) for a in axes)
    if len(set(axes)) != len(axes):
        fail(node, f"repeated axes {axes}")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [x.reshape(shape)]


@register("Gather")
def gather(node, ins):
    x, idx = ins[0], np.asarray(ins[1])
    axis = _axis(node, node.attr("axis", 0), x.ndim)
    n = x.shape[axis]
    if idx.dtype.kind not in "iu":
        fail(node, f"indices must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        fail(node, f"indices out of range [-{n}, {n - 1}]")
    idx = np.where(idx < 0, idx + n, idx)
    return [np.take(x, idx, axis=axis)]


@register("Shape")
def shape(node, ins):
    s = np.array(ins[0].shape, dtype=np.int64)
    start, end = node.attr("start", 0), node.attr("end", None)
    return [s[start:end] if (start or end is not None) else s]


OPS["Size"] = lambda node, ins: [np.array(ins[0].size, dtype=np.int64)]


@register("Constant")
def constant(node, ins):
    from onnx import numpy_helper

    for k, v in node.attrs.items():
        if k == "value":
            return [numpy_helper.to_array(v) if not isinstance(v, np.ndarray) else v]
        if k == "value_float":
            return [np.array(v, dtype=np.float32)]
        if k == "value_floats":
            return [np.array(v, dtype=np.float32)]
        if k == "value_int":
            return [np.array(v, dtype=np.int64)]
        if k == "value_ints":
            return [np.array(v, dtype=np.int64)]
        if k == "value_string":
            return [np.array(v, dtype=object)]
        if k == "value_strings":
            return [np.array(v, dtype=object)]
        if k == "sparse_value":
            dense = numpy_helper.to_array(v.values)
            out = np.zeros(tuple(v.dims), dtype=dense.dtype)
            ind = numpy_helper.to_array(v.indices)
            out.reshape(-1)[ind.reshape(-1) if ind.ndim == 1 else np.ravel_multi_index(ind.T, out.shape)] = dense
            return [out]
    fail(node, "no value attribute")


@register("ConstantOfShape")
def constant_of_shape(node, ins):
    from onnx import numpy_helper

    shp = _ints(ins[0])
    _check_size(node, shp)
    v = node.attr("value")
    val = np.zeros(1, np.float32) if v is None else (v if isinstance(v, np.ndarray) else numpy_helper.to_array(v))
    return [np.full(shp, val.reshape(-1)[0], dtype=val.dtype)]


OPS["Identity"] = lambda node, ins: [ins[0]]


@register("Expand")
def expand(node, ins):
    x, shp = ins[0], _ints(ins[1])
    try:
        out = np.broadcast_shapes(x.shape, tuple(shp))
    except ValueError:
        fail(node, f"cannot expand {x.shape} to {shp}")
    _check_size(node, out)
    return [np.broadcast_to(x, out).copy()]


@register("Tile")
def tile(node, ins):
    reps = _ints(ins[1])
    if node.opset < 6:
        r = [1] * ins[0].ndim
        r[int(np.asarray(ins[2]))] = int(np.asarray(ins[1]))
        reps = r
    _check_size(node, [a * b for a, b in zip(ins[0].shape, reps)])
    return [np.tile(ins[0], reps)]


@register("Range")
def range_(node, ins):
    st, lim, d = (np.asarray(v).reshape(()) for v in ins[:3])
    if d == 0:
        fail(node, "delta must not be 0")
    n = max(int(np.ceil((lim - st) / d)), 0)
    _check_size(node, [n])
    return [(st + np.arange(n) * d).astype(st.dtype)]


@register("Pad")
def pad(node, ins):
    x = ins[0]
    mode = node.attr("mode", "constant")
    if node.opset < 11:
        pads = _ints(node.attr("pads") if "pads" in node.attrs else node.attr("paddings"))
        value = float(node.attr("value", 0.0))
        axes = None
    else:
        pads = _ints(ins[1])
        value = ins[2] if len(ins) > 2 and ins[2] is not None else 0
        value = np.asarray(value).reshape(-1)[0] if np.asarray(value).size else 0
        axes = _ints(ins[3]) if len(ins) > 3 and ins[3] is not None else None
    if axes is None:
        axes = list(range(x.ndim))
    axes = [_axis(node, a, x.ndim) for a in axes]
    if len(pads) != 2 * len(axes):
        fail(node, f"pads has {len(pads)} values, expected {2 * len(axes)}")
    begin = [0] * x.ndim
    end = [0] * x.ndim
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    # negative pads crop
    sl = tuple(slice(max(0, -b), n - max(0, -e)) for b, e, n in zip(begin, end, x.shape))
    x = x[sl]
    width = [(max(0, b), max(0, e)) for b, e in zip(begin, end)]
    _check_size(node, [n + b + e for n, (b, e) in zip(x.shape, width)])
    if mode == "constant":
        return [np.pad(x, width, mode="constant", constant_values=np.asarray(value).astype(x.dtype))]
    npmode = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if npmode is None:
        fail(node, f"unknown mode {mode!r}")
    if mode == "reflect" and any(n < 2 and (b or e) for n, (b, e) in zip(x.shape, width)):
        fail(node, "reflect padding needs at least 2 elements along padded axes")
    return [np.pad(x, width, mode=npmode)]


def _reduce(npfn, since_input):
    def run(node, ins):
        x = ins[0]
        if node.opset < since_input:
            axes = _ints(node.attr("axes"))
        else:
            axes = _ints(ins[1]) if len(ins) > 1 and ins[1] is not None else None
        keep = bool(node.attr("keepdims", 1))
        if not axes:
            if node.attr("noop_with_empty_axes", 0) and node.opset >= since_input:
                return [x]
            axes = None
        else:
            axes = tuple(_axis(node, a, x.ndim) for a in axes)
        if x.ndim == 0:
            return [x]
        y = npfn(x, axes, keep)
        return [np.asarray(y).astype(x.dtype, copy=False)]
    return run


def _mean(x, axes, keep):
    if x.dtype in _FLOATS and x.ndim == 4 and axes in ((2, 3), (-2, -1)) and keep and x.dtype == np.float32:
        return F.global_avg_pool2d(x)
    return np.mean(x, axis=axes, keepdims=keep, dtype=np.float64 if x.dtype.kind == "f" else None)


OPS["ReduceMean"] = _reduce(_mean, 18)
OPS["ReduceSum"] = _reduce(lambda x, a, k: np.sum(x, axis=a, keepdims=k), 13)
OPS["ReduceMax"] = _reduce(lambda x, a, k: np.max(x, axis=a, keepdims=k), 18)
OPS["ReduceMin"] = _reduce(lambda x, a, k: np.min(x, axis=a, keepdims=k), 18)
OPS["ReduceProd"] = _reduce(lambda x, a, k: np.prod(x, axis=a, keepdims=k), 18)
OPS["ReduceSumSquare"] = _reduce(lambda x, a, k: np.sum(x * x, axis=a, keepdims=k), 18)
OPS["ReduceL2"] = _reduce(lambda x, a, k: np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=a, keepdims=k)), 18)


def _argreduce(fn):
    def run(node, ins):
        x = ins[0]
        axis = _axis(node, node.attr("axis", 0), x.ndim)
        keep = bool(node.attr("keepdims", 1))
        if node.attr("select_last_index", 0):
            y = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
        else:
            y = fn(x, axis=axis)
        if keep:
            y = np.expand_dims(y, axis)
        return [y.astype(np.int64)]
    return run


OPS["ArgMax"] = _argreduce(np.argmax)
OPS["ArgMin"] = _argreduce(np.argmin)


# ----------------------------------------------------------------------------- Resize / Upsample
def _coords(mode, out_n, in_n, scale, roi=None, res_len=None):
    x = np.arange(out_n, dtype=np.float64)
    res_len = out_n if res_len is None else res_len
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adj = out_n / (scale * in_n)
        center = in_n / 2.0
        offset = center * (1 - adj)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_n > 1 else np.zeros_like(x)
    if mode == "align_corners":
        return x * (in_n - 1) / (res_len - 1) if out_n > 1 and res_len != 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_crop_and_resize":
        st, en = roi
        if out_n > 1:
            return st * (in_n - 1) + x * (en - st) * (in_n - 1) / (out_n - 1)
        return np.full_like(x, 0.5 * (st + en) * (in_n - 1))
    raise NotImplementedError(f"Resize coordinate_transformation_mode {mode!r}")


def _nearest_idx(c, in_n, nmode):
    if nmode == "round_prefer_floor":
        i = np.where(c - np.floor(c) == 0.5, np.floor(c), np.round(c))
    elif nmode == "round_prefer_ceil":
        i = np.where(c - np.floor(c) == 0.5, np.ceil(c), np.round(c))
    elif nmode == "floor":
        i = np.floor(c)
    elif nmode == "ceil":
        i = np.ceil(c)
    else:
        raise NotImplementedError(f"Resize nearest_mode {nmode!r}")
    return np.clip(i, 0, in_n - 1).astype(np.int64)


def _interp_matrix(c, in_n, mode, a, exclude_outside):
    m = np.zeros((len(c), in_n))
    i0 = np.floor(c).astype(np.int64)
    r = c - i0
    rows = np.arange(len(c))
    if mode == "linear":
        cc = np.clip(c, 0, in_n - 1)
        i0 = np.floor(cc).astype(np.int64)
        r = cc - i0
        i1 = np.minimum(i0 + 1, in_n - 1)
        np.add.at(m, (rows, i0), 1 - r)
        np.add.at(m, (rows, i1), r)
        return m
    # cubic
    coeffs = [((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
              ((a + 2) * r - (a + 3)) * r * r + 1,
              ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
              ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a]
    idx = [i0 - 1, i0, i0 + 1, i0 + 2]
    if exclude_outside:
        ws = [np.where((j >= 0) & (j < in_n), w, 0.0) for j, w in zip(idx, coeffs)]
        tot = sum(ws)
        ws = [w / tot for w in ws]
    else:
        ws = coeffs
    for j, w in zip(idx, ws):
        np.add.at(m, (rows, np.clip(j, 0, in_n - 1)), w)
    return m


def resize_nd(x, out_shape, scales, mode, ctm, nmode, cubic_a=-0.75, exclude_outside=0, extrap=0.0, roi=None,
              from_scales=False):
    y = x
    xf = x.dtype.kind == "f"
    mask = None
    for ax in range(x.ndim):
        n, m = x.shape[ax], out_shape[ax]
        if n == m and scales[ax] == 1.0 and ctm != "tf_crop_and_resize":
            continue
        rr = (roi[ax], roi[ax + x.ndim]) if roi is not None and len(roi) == 2 * x.ndim else (0.0, 1.0)
        c = _coords(ctm, m, n, scales[ax], rr, n * scales[ax] if from_scales else m)
        if ctm == "tf_crop_and_resize":
            bad = (c < 0) | (c > n - 1)
            if bad.any():
                sh = [1] * x.ndim
                sh[ax] = m
                bm = bad.reshape(sh)
                mask = bm if mask is None else (mask | bm)
        if mode == "nearest":
            y = np.take(y, _nearest_idx(c, n, nmode), axis=ax)
        else:
            w = _interp_matrix(c, n, mode, cubic_a, exclude_outside)
            yy = y.astype(np.float64) if not xf else y
            y = np.moveaxis(np.tensordot(yy, w.astype(yy.dtype), axes=([ax], [1])), -1, ax)
    if mask is not None:
        y = np.where(mask, np.asarray(extrap, dtype=y.dtype), y)
    if x.dtype.kind in "iu" and y.dtype != x.dtype:
        info = np.iinfo(x.dtype)
        y = np.clip(np.round(y), info.min, info.max)
    return np.ascontiguousarray(y.astype(x.dtype, copy=False))


@register("Upsample")
def upsample(node, ins):
    x = ins[0]
    scales = [float(s) for s in (node.attr("scales") if node.opset < 9 else np.asarray(ins[1]).reshape(-1))]
    if node.opset < 7:
        scales = [1.0, 1.0, float(node.attr("height_scale", 1)), float(node.attr("width_scale", 1))]
    if len(scales) != x.ndim:
        fail(node, f"scales has {len(scales)} values for a rank-{x.ndim} input")
    mode = node.attr("mode", "nearest")
    mode = "linear" if mode in ("bilinear", "linear") else mode
    out = [int(np.floor(n * s)) for n, s in zip(x.shape, scales)]
    _check_size(node, out)
    return [resize_nd(x, out, scales, mode, "asymmetric", "floor")]


@register("Resize")
def resize(node, ins):
    x = ins[0]
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        fail(node, f"unknown mode {mode!r}")
    if node.attr("antialias", 0):
        raise NotImplementedError("Resize with antialias=1 is not supported")
    if node.opset < 11:
        scales = [float(s) for s in np.asarray(ins[1]).reshape(-1)]
        out = [int(np.floor(n * s)) for n, s in zip(x.shape, scales)]
        _check_size(node, out)
        return [resize_nd(x, out, scales, mode, "asymmetric", "floor")]
    roi = ins[1] if len(ins) > 1 and ins[1] is not None and np.asarray(ins[1]).size else None
    sc = ins[2] if len(ins) > 2 and ins[2] is not None and np.asarray(ins[2]).size else None
    sz = ins[3] if len(ins) > 3 and ins[3] is not None and np.asarray(ins[3]).size else None
    axes = _ints(node.attr("axes")) or list(range(x.ndim))
    axes = [_axis(node, a, x.ndim) for a in axes]
    scales = [1.0] * x.ndim
    out = list(x.shape)
    if sc is not None:
        v = [float(s) for s in np.asarray(sc).reshape(-1)]
        if len(v) != len(axes):
            fail(node, f"scales has {len(v)} values for {len(axes)} axes")
        for a, s in zip(axes, v):
            if s <= 0:
                fail(node, f"scales must be positive, got {v}")
            scales[a] = s
            out[a] = int(np.floor(x.shape[a] * s))
    elif sz is not None:
        v = _ints(sz)
        if len(v) != len(axes):
            fail(node, f"sizes has {len(v)} values for {len(axes)} axes")
        pol = node.attr("keep_aspect_ratio_policy", "stretch")
        if pol == "stretch":
            for a, s in zip(axes, v):
                out[a] = s
                scales[a] = s / x.shape[a]
        else:
            rs = [s / x.shape[a] for a, s in zip(axes, v)]
            r = min(rs) if pol == "not_larger" else max(rs)
            for a in axes:
                scales[a] = r
                out[a] = int(np.floor(x.shape[a] * r + 0.5))
    else:
        fail(node, "one of scales / sizes is required")
    if roi is not None:
        r = [float(t) for t in np.asarray(roi).reshape(-1)]
        if len(axes) != x.ndim and len(r) == 2 * len(axes):
            full = [0.0] * x.ndim + [1.0] * x.ndim
            for i, a in enumerate(axes):
                full[a], full[a + x.ndim] = r[i], r[i + len(axes)]
            r = full
        roi = r
    _check_size(node, out)
    return [resize_nd(x, out, scales, mode, node.attr("coordinate_transformation_mode", "half_pixel"),
                      node.attr("nearest_mode", "round_prefer_floor"), float(node.attr("cubic_coeff_a", -0.75)),
                      int(node.attr("exclude_outside", 0)), float(node.attr("extrapolation_value", 0.0)), roi,
                      from_scales=sc is not None)]


# Operators whose result depends only on their inputs (safe to evaluate at prepare time).
NONDETERMINISTIC = {"Dropout", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
