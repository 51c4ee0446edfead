"""conv operators (native kernels).

Convolutions (1-d, 2-d, 3-d; torch.nn.functional names, defaults and shapes), their
backward functions, the torch.nn.grad-style ``conv*d_input`` / ``conv*d_weight`` and the
transposed convolutions. Every op runs on the same three N-d native kernels (im2col + GEMM
forward, backward-data through col2im, backward-weight), with 1-d and 2-d problems passed
as 3-d ones with unit leading spatial dims. A transposed convolution is the data gradient
of a convolution, so its forward is the backward-data kernel and its backward runs the
convolution forward and weight-gradient kernels.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C, _backend, _cuda
from . import _util as U
from . import activation as _activation
from . import depthwise as _depthwise

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

_ALGOS = ("auto", "im2col", "direct", "winograd", "nhwc")
_LETTERS = {1: "W", 2: "H, W", 3: "D, H, W"}


_INF = float("inf")  # relu_max of a plain ReLU


# ----------------------------------------------------------------------------- helpers
def _as5d(a: np.ndarray, nd: int) -> np.ndarray:
    """(N, C, *spatial) -> (N, C, 1.., D, H, W): a view of a C-contiguous array."""
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


def _pad3(v, nd: int, fill: int) -> tuple:
    return (fill,) * (3 - nd) + tuple(int(e) for e in v)


class _Geom:
    """Validated geometry of one convolution: (N, C, *in) * (K, C/groups, *kernel) -> (N, K, *out)."""

    def __init__(self, nd, x_shape, w_shape, stride, padding, dilation, groups, *, input_name="input",
                 weight_name="weight"):
        self.nd = nd
        self.groups = U.as_int(groups, "groups", 1)
        self.stride = U.ntuple(stride, nd, "stride", 1)
        self.dilation = U.ntuple(dilation, nd, "dilation", 1)
        if any(s == 0 for s in w_shape):
            raise ValueError(f"{weight_name}: sizes must be positive, got shape {tuple(w_shape)}")
        if any(s == 0 for s in x_shape[1:]):
            raise ValueError(f"{input_name}: channel and spatial sizes must be positive, got shape {tuple(x_shape)}")
        K, Cg = w_shape[:2]
        C = x_shape[1]
        g = self.groups
        if K % g:
            raise ValueError(f"{weight_name}: out_channels (dim 0 = {K}) must be divisible by groups ({g})")
        if C != Cg * g:
            raise ValueError(f"{input_name}: expected {Cg * g} channels ({weight_name}.shape[1] = {Cg} times groups = {g}),"
                             f" got {C} (shape {tuple(x_shape)})")
        kernel = tuple(w_shape[2:])
        if isinstance(padding, str):
            U.check_choice(padding, ("same", "valid"), "padding")
            if padding == "valid":
                self.pads = [(0, 0)] * nd
            else:
                if any(s != 1 for s in self.stride):
                    raise ValueError("padding: 'same' is not supported for strided convolutions")
                total = [d * (k - 1) for d, k in zip(self.dilation, kernel)]
                self.pads = [(t // 2, t - t // 2) for t in total]  # the odd extra on the right, like torch
        else:
            self.pads = [(p, p) for p in U.ntuple(padding, nd, "padding", 0)]
        self.out = tuple(U.out_size(n, k, s, lo, hi, d)
                         for n, k, s, (lo, hi), d in zip(x_shape[2:], kernel, self.stride, self.pads, self.dilation))
        if any(o <= 0 for o in self.out):
            raise ValueError(f"{input_name}: spatial size ({_LETTERS[nd]}) {tuple(x_shape[2:])} padded by "
                             f"{[lo + hi for lo, hi in self.pads]} is smaller than the dilated kernel "
                             f"{tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, kernel))}: the output would be empty")
        self._fields(tuple(x_shape), tuple(w_shape), (x_shape[0], K) + self.out)

    def _fields(self, x_shape, w_shape, y_shape):
        self.x_shape, self.w_shape, self.y_shape = x_shape, w_shape, y_shape
        self.memo = {}  # per-call decisions taken once for this geometry (_geom reuses it)
        self._native = None

    @classmethod
    def given(cls, nd, groups, stride, dilation, pads, x_shape, w_shape, y_shape):
        """A geometry from already-valid fields (the transposed convolution's y -> x)."""
        g = cls.__new__(cls)
        g.nd, g.groups, g.stride, g.dilation, g.pads = nd, groups, stride, dilation, pads
        g.out = tuple(y_shape[2:])
        g._fields(tuple(x_shape), tuple(w_shape), tuple(y_shape))
        return g

    def native(self):
        """(stride, padding, dilation, groups) as the 3-d native kernels take them (leading pads)."""
        if self._native is None:
            self._native = (_pad3(self.stride, self.nd, 1), _pad3([lo for lo, _ in self.pads], self.nd, 0),
                            _pad3(self.dilation, self.nd, 1), self.groups)
        return self._native

    def symmetric_padding(self):
        return all(lo == hi for lo, hi in self.pads)


_GEOMS: dict = {}
_GEOMS_MAX = 1024


def _key_part(v):
    """A stride/padding/dilation/groups argument as part of a cache key: ints and strings, and
    tuples or lists of ints, each of exactly that type (1, 1.0, True and np.int64(1) compare
    equal but do not validate alike); None for anything else (that call is not cached)."""
    t = type(v)
    if t is int or t is str:
        return v
    if (t is tuple or t is list) and all(type(e) is int for e in v):
        return tuple(v)
    return None


def _geom(nd, x_shape, w_shape, stride, padding, dilation, groups):
    """_Geom(nd, x_shape, w_shape, ...), the same object for every call with these shapes and
    arguments: its validation and the decisions kept in ``memo`` (which kernel, the workspace
    check) are made once, not per call (they were about 12 us of a 20 us call on a tiny
    layer). Invalid arguments raise on every call: only valid geometries are kept."""
    key = (nd, x_shape, w_shape, _key_part(stride), _key_part(padding), _key_part(dilation), _key_part(groups))
    cacheable = None not in key[3:]
    g = _GEOMS.get(key) if cacheable else None
    if g is None:
        g = _Geom(nd, x_shape, w_shape, stride, padding, dilation, groups)
        if cacheable:
            if len(_GEOMS) >= _GEOMS_MAX:
                _GEOMS.clear()
            _GEOMS[key] = g
    return g


class PackedConvWeight:
    """A convolution weight packed once into the CPU GEMM's panels, for inference.

    ``F.conv1d/2d/3d(x, PackedConvWeight(w, groups), ...)`` computes exactly what
    ``F.conv2d(x, w, ...)`` does (bit for bit) without repacking the weight on every call, as
    ONNX Runtime and oneDNN do for constant weights: on ResNet-50's 7x7 layers at batch 1 the
    packing is 15-25% of the forward. The packed copy is taken now: changing ``weight``
    afterwards is not seen (pack again). It holds ``packed_size`` more values than the weight,
    and belongs to the instruction set active when it was made (after ``convkern.set_isa`` to
    another one, calls fall back to packing per call). The im2col kernel uses it; direct and
    depthwise layers, GPU arrays, and backward functions use ``weight``.

    A batch-1 call that the kernel computes channel-last (small planes such as ResNet's 14x14
    and 7x7 layers: output positions as the micro-kernel's rows, channels as its lanes) reads
    the weight in another layout, packed at the first such call and kept (``data_cl``, one
    more weight-sized array; groups=1 only). A call that runs Winograd F(4x4, 3x3) reads the
    filters transformed (``data_wg``, 36/9 = 4 times the weight's size), made at the first such
    call and kept, instead of transforming them per call (a quarter of the time of a batch-1
    28x28 layer with 512 channels).
    """

    __slots__ = ("weight", "groups", "data", "isa", "data_cl", "isa_cl", "data_wg", "isa_wg", "data_nh", "isa_nh")

    def __init__(self, weight, groups=1):
        w = U.as_float(weight, "weight")
        if not 3 <= w.ndim <= 5:
            raise ValueError(f"weight: expected (out_channels, in_channels/groups, *kernel) with 1-3 kernel dims, got "
                             f"shape {w.shape}")
        self.groups = U.as_int(groups, "groups", 1)
        self.weight = np.array(w, copy=True)  # packed and plain stay the same weight
        self.weight.flags.writeable = False
        w5 = _as5d(self.weight, w.ndim - 2)
        n, self.isa = _C.conv_packed_size(w5, self.groups)
        self.data = np.empty(n, w.dtype)
        _C.conv_pack_weight(w5, self.data, self.groups)
        self.data_cl, self.isa_cl = None, -1
        self.data_wg, self.isa_wg = None, -1
        self.data_nh, self.isa_nh = None, -1

    def _channel_last(self, x5, y5, geom):
        """(packed_cl, its isa) for conv_forward: the channel-last layout, packed now if this call
        is the first to need it under the active ISA; (None, -1) when the call does not."""
        if self.groups != 1 or x5.shape[0] != 1:
            return None, -1
        w5 = _as5d(self.weight, self.weight.ndim - 2)
        if not _C.conv_channel_last(x5, w5, y5, *geom.native()):
            return None, -1
        n, isa = _C.conv_packed_size(w5, 1, True)
        if self.isa_cl != isa:  # none yet (-1), or packed under another ISA
            data = np.empty(n, self.weight.dtype)
            _C.conv_pack_weight(w5, data, 1, True)
            self.data_cl, self.isa_cl = data, isa
        return self.data_cl, self.isa_cl

    def _winograd(self):
        """(u, its isa) for conv_winograd_forward: the transformed filters, made now if this is
        the first Winograd call under the active ISA."""
        n, isa = _C.winograd_transform_size(self.weight)
        if self.isa_wg != isa:  # none yet (-1), or made under another ISA
            data = np.empty(n, self.weight.dtype)
            _C.winograd_transform(self.weight, data)
            self.data_wg, self.isa_wg = data, isa
        return self.data_wg, self.isa_wg

    def _nhwc(self):
        """(packed, its isa) for conv_nhwc_forward: the weight in the channel-last forward's
        channel blocks, packed now if this is the first such call under the active ISA."""
        w5 = _as5d(self.weight, 2)
        n, isa = _C.conv_nhwc_packed_size(w5)
        if self.isa_nh != isa:  # none yet (-1), or packed under another ISA
            data = np.empty(n, self.weight.dtype)
            _C.conv_nhwc_pack_weight(w5, data)
            self.data_nh, self.isa_nh = data, isa
        return self.data_nh, self.isa_nh

    @property
    def shape(self):
        return self.weight.shape

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def packed_size(self):
        return self.data.size

    def __repr__(self):
        return f"PackedConvWeight(shape={self.weight.shape}, dtype={self.weight.dtype}, groups={self.groups})"


def _unpack(weight, groups):
    """(the weight array, the PackedConvWeight or None) of a conv call's weight argument."""
    if not isinstance(weight, PackedConvWeight):
        return weight, None
    if U.as_int(groups, "groups", 1) != weight.groups:
        raise ValueError(f"weight: packed for groups={weight.groups}, called with groups={groups}")
    return weight.weight, weight


def _inputs(nd, input, weight, bias):
    x = U.as_float(input, "input")
    w = U.as_float(weight, "weight", like=x)
    b = U.as_float_opt(bias, "bias", like=x)
    U.check_ndim(x, (nd + 1, nd + 2), "input", f"(C, {_LETTERS[nd]}) or (N, C, {_LETTERS[nd]})")
    U.check_ndim(w, nd + 2, "weight")
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    return x, w, b, unbatched


def _check_bias(b, channels):
    if b is not None:
        U.check_ndim(b, 1, "bias")
        if b.shape[0] != channels:
            raise ValueError(f"bias: expected shape ({channels},), got {b.shape}")


def _grad_output(grad_output, like, shape, unbatched):
    dy = U.as_float(grad_output, "grad_output", like=like)
    if unbatched:
        U.check_ndim(dy, len(shape) - 1, "grad_output")
        dy = dy[None]
    U.check_shape(dy, shape, "grad_output")
    return dy


def _check_workspace(geom, dtype, out_shape, name):
    """The im2col kernels also allocate a (C/groups * kernel volume) x (output plane) column
    buffer per thread (plus a weight-sized partial per thread for grad_weight): refuse the call
    before allocating when output + workspace exceed the machine (an overcommitted allocation
    would end in the OOM killer, found by the fuzz campaign). A size that passed is remembered
    in geom.memo under 1 GiB (above, the machine's free memory is read again on every call)."""
    itemsize = np.dtype(dtype).itemsize
    threads = max(1, min(geom.y_shape[0], _backend.get_num_threads()))
    key = ("workspace", itemsize, out_shape, threads, _cuda.current_device())
    if key in geom.memo:
        return
    cg, trs = geom.w_shape[1], math.prod(geom.w_shape[2:])
    opq = math.prod(geom.y_shape[2:])
    work = cg * trs * opq * threads + math.prod(geom.w_shape) * threads
    total = math.prod(out_shape) + work
    U.check_elements((total,), name, itemsize, f"{tuple(out_shape)} plus the im2col workspace, in all a buffer")
    if total * itemsize < 1 << 30:
        geom.memo[key] = True


def _output(geom, dtype, shape, name):
    """An uninitialised output of ``shape`` after _check_workspace (which covers its size)."""
    _check_workspace(geom, dtype, shape, name)
    return U.empty_unchecked(shape, dtype)


def _forward(geom, x, w, b, direct=False, relu=False, packed=None, residual=None, relu_max=_INF):
    """(y, whether the residual and relu were applied)."""
    y = _output(geom, x.dtype, geom.y_shape, "output")
    if y.size == 0:
        return y, True
    return y, _im2col_call(geom, x, y, w, b, direct, relu, packed, relu_max)(x, y, residual)


def _im2col_call(geom, x, y, w, b, direct, relu, packed, relu_max):
    """conv_forward with all but the arrays of one call bound: ``call(x, y, residual)`` ->
    whether the residual and relu were applied. x and y: the call's arrays (the channel-last
    layout of a packed weight is decided, and packed, now)."""
    nd = geom.nd
    use = packed is not None and isinstance(x, np.ndarray)  # (same dtype: checked by _inputs)
    x5, y5 = _as5d(x, nd), _as5d(y, nd)
    cl, cl_isa = packed._channel_last(x5, y5, geom) if use and not direct else (None, -1)
    x5, y5, w5, native = x5.shape, y5.shape, _as5d(w, nd), geom.native()
    data, isa = (packed.data, packed.isa) if use else (None, -1)
    direct, relu = bool(direct), bool(relu)

    def call(x, y, residual):
        res = None if residual is None else residual.reshape(y5)
        return _C.conv_forward(x.reshape(x5), w5, b, y.reshape(y5), *native, direct, relu, data, isa, res, cl, cl_isa,
                               relu_max=relu_max)
    return call


def _winograd_ok(geom):
    """Winograd F(4x4, 3x3) applies: 2-d, 3x3 kernel, stride 1, dilation 1, one group."""
    return (geom.nd == 2 and geom.groups == 1 and tuple(geom.w_shape[2:]) == (3, 3) and geom.stride == (1, 1)
            and geom.dilation == (1, 1))


def _prefer_winograd(dtype, n, out_hw, cin, cout):
    """algo='auto': float32 only (float64 keeps the exact-order sums), at least 16 channels each
    way, and enough 4x4 output tiles to amortize the transformed weights (36*K*C values per
    call): at least 48 tiles, or 32 with at least 256 input channels. Measured against im2col
    and the channel-last GEMM (AVX-512, 2 threads, calls interleaved, the filters transformed
    per call; benchmarks/results/2026-12-07i-zen4): 0.39-0.77 of the time from 48 tiles (1.05
    for 128 channels on 28x28 at batch 1); at 32 tiles 0.64-0.89 with 256-1024 input channels
    (512 on 7x7 at batch 8: 0.68) but 1.09-1.25 for 96->208 and 192->384 on 13x13/14x14 at
    batch 2; 1.07-2.7 at 16 tiles. (Before the GEMM and transform work of 2026-12, 32 tiles
    with 192+ channels lost 1.1-1.5x, so the rule then asked 4 * tiles >= input channels.)"""
    if dtype != np.float32 or cin < 16 or cout < 16:
        return False
    tiles = n * (-(-out_hw[0] // 4)) * (-(-out_hw[1] // 4))
    return tiles >= 48 or (tiles >= 32 and cin >= 256)


def _winograd(x, w, b, y_shape, pad_h, pad_w, relu=False, residual=None, packed=None, relu_max=_INF):
    """(y, whether residual and relu were applied). packed: a PackedConvWeight of w, whose
    transformed filters are used (host arrays only)."""
    y = U.empty(y_shape, x.dtype)
    if not y.size:
        return y, False
    return y, _winograd_call(x, w, b, pad_h, pad_w, relu, packed, relu_max)(x, y, residual)


def _winograd_call(x, w, b, pad_h, pad_w, relu, packed, relu_max):
    """conv_winograd_forward with all but the arrays of one call bound (as _im2col_call)."""
    u, u_isa = packed._winograd() if packed is not None and isinstance(x, np.ndarray) else (None, -1)
    relu = bool(relu)

    def call(x, y, residual):
        return _C.conv_winograd_forward(x, w, b, y, pad_h, pad_w, relu, residual, u, u_isa, relu_max=relu_max)
    return call


def _nhwc_ok(geom):
    """The channel-last forward applies: 2-d, one group."""
    return geom.nd == 2 and geom.groups == 1


def _prefer_nhwc(geom):
    """algo='auto' (CPU, after Winograd and the direct kernel declined): the channel-last
    implicit GEMM for 2-d, one-group layers with a kernel larger than 1x1, at least 16 input
    channels and at least 196 output positions (batch times plane). Measured against im2col +
    GEMM (AVX-512, 2 threads, calls interleaved, benchmarks/results/2026-11-23-xeon-h): with
    packed weights 0.46-0.98 of the time on ResNet-50, VGG, AlexNet and GoogLeNet layers (5x5
    480->48 on 14x14: 0.55 at batch 1, 0.74 at batch 8; 3x3/2 128 on 28x28: 0.56), but the 7x7
    stem (3 channels) 1.37. A plain weight is repacked on every call, which costs more than
    the gain on small planes (512 channels on 7x7 at batch 1: 1.7x im2col's time), so those stay
    with im2col. The rule looks at the geometry only, so a PackedConvWeight gives bit for bit
    the plain weight's result."""
    return _nhwc_ok(geom) and _nhwc_pays(geom.w_shape[2:], geom.w_shape[1], geom.y_shape[0] * math.prod(geom.out))


def _nhwc_pays(kernel, in_channels, positions):
    """_prefer_nhwc's measured thresholds, for the forward or the grad_input as a forward."""
    return math.prod(kernel) > 1 and in_channels >= 16 and positions >= 32


def _nhwc(geom, x, w, b, relu=False, residual=None, packed=None, relu_max=_INF):
    """(y, True): the channel-last forward with the residual and relu applied."""
    y = _output(geom, x.dtype, geom.y_shape, "output")
    if y.size == 0:
        return y, True
    return y, _nhwc_call(geom, w, b, relu, packed, relu_max)(x, y, residual)


def _nhwc_call(geom, w, b, relu, packed, relu_max):
    """conv_nhwc_forward with all but the arrays of one call bound (as _im2col_call)."""
    pk, isa = packed._nhwc() if packed is not None else (None, -1)
    stride, pad, dil, _ = geom.native()
    w5, relu = _as5d(w, 2), bool(relu)

    def call(x, y, residual):
        res = None if residual is None else _as5d(residual, 2)
        return _C.conv_nhwc_forward(_as5d(x, 2), w5, b, _as5d(y, 2), stride, pad, dil, relu, res, pk, isa,
                                    relu_max=relu_max)
    return call


def _grad_input_nhwc(geom, dy):
    """grad_input runs as a channel-last forward (the convolution of grad_output with the
    flipped, transposed kernel) where 'auto' would pick that forward for it: CPU arrays, 2-d,
    one group, stride 1, leading padding within the dilated kernel, and _prefer_nhwc's
    kernel, channel and position counts with grad_output's channels as the input's."""
    if _cuda.current_device() is not None or not isinstance(dy, np.ndarray) or not _nhwc_ok(geom):
        return False
    ks = geom.w_shape[2:]
    return (geom.stride == (1, 1) and all(lo <= d * (k - 1) for (lo, _), d, k in zip(geom.pads, geom.dilation, ks))
            and _nhwc_pays(ks, geom.w_shape[0], geom.x_shape[0] * math.prod(geom.x_shape[2:])))


def _grad_input(geom, dy, w, dtype):
    # 3x3 stride 1: grad_input is the convolution of grad_output with the flipped, transposed
    # kernel and leading padding 2 - pad (Winograd when it pays)
    N, K = geom.y_shape[:2]
    if (_cuda.current_device() is None and isinstance(dy, np.ndarray) and _winograd_ok(geom)
            and all(lo <= 2 for lo, _ in geom.pads)
            and _prefer_winograd(np.dtype(dtype), N, geom.x_shape[2:], K, geom.x_shape[1])):
        # (w read flipped and transposed by the filter transform: no copy)
        dx = _output(geom, dtype, geom.x_shape, "grad_input")
        _C.conv_winograd_forward(dy, np.ascontiguousarray(w), None, dx, 2 - geom.pads[0][0], 2 - geom.pads[1][0],
                                 flipped_weight=True)
        return dx
    if _grad_input_nhwc(geom, dy):
        # any stride-1 2-d kernel: the same convolution, through the channel-last GEMM, with
        # leading padding dilation * (k - 1) - pad
        # (w read transposed and flipped by the kernel: a NumPy copy took 6 ms for 512 x 512 x 3 x 3)
        ks, dil = geom.w_shape[2:], geom.dilation
        dx = _output(geom, dtype, geom.x_shape, "grad_input")
        pads = [d * (k - 1) - lo for (lo, _), d, k in zip(geom.pads, dil, ks)]
        _C.conv_nhwc_forward(_as5d(dy, 2), _as5d(np.ascontiguousarray(w), 2), None, _as5d(dx, 2), (1, 1, 1),
                             (0, pads[0], pads[1]), (1, dil[0], dil[1]), flipped_weight=True)
        return dx
    dx = _output(geom, dtype, geom.x_shape, "grad_input")
    if dx.size == 0:
        return dx
    _C.conv_backward_data(_as5d(dy, geom.nd), _as5d(w, geom.nd), _as5d(dx, geom.nd), *geom.native())
    return dx


def _prefer_winograd_weight(geom, x, dy):
    """grad_weight of a 3x3 stride-1 layer through Winograd F(3x3, 4x4)
    (_C.conv_winograd_backward_weight): CPU arrays, float32, at least 32 channels each way, at
    least 32 output tiles of 4x4 (over the batch), an output plane at least 4x4, and the 36
    K x C transformed sums within 64 MB. Measured against im2col (AVX-512, 2 threads, calls
    interleaved; benchmarks/winograd_vs_im2col.py --grad-weight, benchmarks/results/
    2026-12-07i-zen4): 0.33-0.87 of the time from 32 tiles up with 32-1024 channels (1.06 for
    128 channels on 28x28 at batch 1), but 1.3-5x with 16 tiles or fewer (batch 1 at 14x14 and
    7x7) and on 2x2 planes (a 4x4 tile for 4 outputs)."""
    if _cuda.current_device() is not None or not isinstance(x, np.ndarray) or not isinstance(dy, np.ndarray):
        return False
    if not _winograd_ok(geom) or x.dtype != np.float32:
        return False
    (N, K, P, Q), C = dy.shape, x.shape[1]
    tiles = N * (-(-P // 4)) * (-(-Q // 4))
    return min(C, K) >= 32 and tiles >= 32 and min(P, Q) >= 4 and 36 * K * C * 4 <= 64 << 20


def _grad_weight(geom, x, dy, dtype, with_bias):
    dw = _output(geom, dtype, geom.w_shape, "grad_weight")
    db = U.empty((geom.w_shape[0],), dtype, "grad_bias") if with_bias else None
    if _prefer_winograd_weight(geom, x, dy):  # (2-d, and a batch: from its rule)
        _C.conv_winograd_backward_weight(x, dy, dw, db, geom.pads[0][0], geom.pads[1][0])
        return dw, db
    _C.conv_backward_weight(_as5d(x, geom.nd), _as5d(dy, geom.nd), _as5d(dw, geom.nd), db, *geom.native())
    return dw, db


def _check_relu_max(v):
    """relu_max: None (a plain ReLU: +inf) or a number > 0."""
    if v is None:
        return _INF
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"relu_max: expected a number, got {type(v).__name__}")
    v = float(v)
    if not v > 0:
        raise ValueError(f"relu_max: must be > 0, got {v}")
    return v


def _is_depthwise(geom):
    """A 2-d convolution with one input channel per group (any channel multiplier)."""
    return geom.nd == 2 and geom.groups > 1 and geom.groups == geom.x_shape[1] and geom.w_shape[1] == 1


def _use_depthwise(geom, algo):
    return algo == "auto" and _is_depthwise(geom)


def _prefer_direct(geom):
    """algo='auto': the direct kernel beats im2col + GEMM (measured on AVX2) for unit-stride rows
    at least 16 outputs wide with a short reduction (few input channels per group); pointwise
    convolutions are a plain GEMM."""
    kvol = 1
    for k in geom.w_shape[2:]:
        kvol *= k
    return (geom.nd == 2 and geom.stride[-1] == 1 and kvol > 1 and geom.out[-1] >= 16
            and geom.w_shape[1] * kvol <= 600 and geom.w_shape[0] // geom.groups >= 4)


def _prefer_direct_gpu(geom):
    """algo='auto' on a GPU: the direct CUDA kernel (8 output channels per block, weights in
    shared memory) only for very short reductions (e.g. few-channel inputs); everything else
    goes to the implicit GEMM. Not tuned yet (no GPU measurement so far): see docs/CUDA.md."""
    kvol = 1
    for k in geom.w_shape[2:]:
        kvol *= k
    return geom.w_shape[1] * kvol <= 64


def _direct(geom, algo):
    if algo == "direct":
        return True
    if algo != "auto":
        return False
    return _prefer_direct_gpu(geom) if _cuda.current_device() is not None else _prefer_direct(geom)


# ----------------------------------------------------------------------------- convolution
def _route(geom, x, algo):
    """The forward kernel of a call: 'depthwise', 'winograd', 'nhwc', 'direct' or 'im2col' (the
    rules of conv2d's docstring), raising for a forced algo that does not apply. Kept in
    geom.memo per algo, dtype, device and array type (all the rules read besides the geometry)."""
    device = _cuda.current_device()
    host = isinstance(x, np.ndarray)
    key = ("route", algo, x.dtype, device, host)
    route = geom.memo.get(key)
    if route is not None:
        return route
    if _use_depthwise(geom, algo):
        route = "depthwise"
    elif algo == "winograd" or (algo == "auto" and device is None and _winograd_ok(geom) and
                                _prefer_winograd(x.dtype, x.shape[0], geom.out, geom.x_shape[1], geom.w_shape[0])):
        if not _winograd_ok(geom):
            raise ValueError(f"algo: 'winograd' needs a 2-d 3x3 kernel with stride 1, dilation 1 and groups 1, got "
                             f"kernel {tuple(geom.w_shape[2:])}, stride {geom.stride}, dilation {geom.dilation}, "
                             f"groups {geom.groups}")
        route = "winograd"
    elif algo == "nhwc" or (algo == "auto" and device is None and host and not _direct(geom, algo)
                            and _prefer_nhwc(geom)):
        if not _nhwc_ok(geom):
            raise ValueError(f"algo: 'nhwc' needs a 2-d convolution with groups 1, got {geom.nd}-d with groups "
                             f"{geom.groups}")
        if not host:
            raise ValueError("algo: 'nhwc' runs on the CPU only (NumPy arrays)")
        route = "nhwc"
    else:
        route = "direct" if _direct(geom, algo) else "im2col"
    geom.memo[key] = route
    return route


class ConvPlan:
    """One forward convolution call, validated and decided once (route, packed layouts, bound
    kernel arguments), to be repeated on other inputs of the same shape and dtype: what a
    graph runtime does per node. ``run(x, residual)`` costs about 2.5 us of Python where a full
    conv_nd call costs about 10 (the ONNX backend runs 52 convolutions per MobileNetV2).
    Made by ``conv_nd_plan``. A plan belongs to the instruction set active when it was made
    (its packed layouts are that ISA's): after ``convkern.set_isa`` to another one it refuses,
    so that the caller plans again rather than repacking the weight on every call."""

    __slots__ = ("x_shape", "dtype", "y_shape", "res_shape", "relu", "relu_max", "call", "isa")

    def __init__(self, x, y_shape, residual, relu, relu_max, call):
        self.x_shape, self.dtype, self.y_shape = x.shape, x.dtype, y_shape
        self.res_shape = None if residual is None else residual.shape
        self.relu, self.relu_max, self.call = relu, relu_max, call
        self.isa = _C.get_isa()

    def _run(self, x, y, residual):
        """y = the convolution of x (+ residual, relu): what the kernel did not fuse runs after."""
        if not self.call(x, y, residual):
            if residual is not None:
                y += residual
            if self.relu and y.size:
                if self.relu_max == _INF:
                    _C.act_forward(y, y, _activation._RELU, 0.0)
                else:
                    _C.act_forward(y, y, _activation._RELU6, self.relu_max)
        return y

    def run(self, x, residual=None):
        """The convolution of ``x`` (plus ``residual`` when the plan was made with one), or None,
        running nothing, unless x (and residual) are C-contiguous NumPy arrays of the shapes and
        dtype the plan was made for, no GPU op is active and the plan's ISA still is (the caller
        then takes conv_nd)."""
        if (not U.same_array(x, self.x_shape, self.dtype) or _cuda.current_device() is not None
                or _C.get_isa() != self.isa):
            return None
        if residual is None:
            if self.res_shape is not None:
                return None
        elif self.res_shape is None or not U.same_array(residual, self.res_shape, self.dtype):
            return None
        return self._run(x, _C.empty(self.y_shape, self.dtype), residual)


def _conv_plan(nd, input, weight, bias, stride, padding, dilation, groups, algo, relu, residual, relu_max):
    """(y, plan or None, unbatched): the validated call run once, with its ConvPlan where the
    call can be repeated (NumPy arrays on the CPU, batched, a non-empty output)."""
    weight, packed = _unpack(weight, groups)
    relu_max = _check_relu_max(relu_max)
    x, w, b, unbatched = _inputs(nd, input, weight, bias)
    U.check_choice(algo, _ALGOS, "algo")
    geom = _geom(nd, x.shape, w.shape, stride, padding, dilation, groups)
    _check_bias(b, w.shape[0])
    if residual is not None:
        residual = U.as_float(residual, "residual", like=x)
        U.check_shape(residual, geom.y_shape[1:] if unbatched else geom.y_shape, "residual")
        if unbatched:
            residual = residual[None]
    route = _route(geom, x, algo)
    if route in ("depthwise", "winograd"):
        y = U.empty(geom.y_shape, x.dtype)
    else:
        y = _output(geom, x.dtype, geom.y_shape, "output")
    if y.size == 0:
        return y, None, unbatched
    relu = bool(relu)
    if route == "depthwise":
        # (a residual comes after the bias and before the relu: fused only without one)
        dcall = _depthwise.forward_call(w, b, geom, relu and residual is None, relu_max)

        def call(x, y, residual):
            return dcall(x, y) and residual is None
    elif route == "winograd":
        call = _winograd_call(x, w, b, geom.pads[0][0], geom.pads[1][0], relu, packed, relu_max)
    elif route == "nhwc":
        call = _nhwc_call(geom, w, b, relu, packed, relu_max)
    else:
        call = _im2col_call(geom, x, y, w, b, route == "direct", relu, packed, relu_max)
    plan = ConvPlan(x, geom.y_shape, residual, relu, relu_max, call)
    y = plan._run(x, y, residual)
    reusable = isinstance(x, np.ndarray) and not unbatched and _cuda.current_device() is None
    return y, plan if reusable else None, unbatched


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, algo="im2col", relu=False, residual=None,
          relu_max=None):
    y, _, unbatched = _conv_plan(nd, input, weight, bias, stride, padding, dilation, groups, algo, relu, residual,
                                 relu_max)
    return y[0] if unbatched else y


def _conv_backward(nd, grad_output, input, weight, bias, stride, padding, dilation, groups, algo="im2col"):
    weight, _ = _unpack(weight, groups)
    x, w, b, unbatched = _inputs(nd, input, weight, bias)
    U.check_choice(algo, _ALGOS, "algo")
    geom = _geom(nd, x.shape, w.shape, stride, padding, dilation, groups)
    _check_bias(b, w.shape[0])
    dy = _grad_output(grad_output, x, geom.y_shape, unbatched)
    if _use_depthwise(geom, algo):
        dx, dw, db = _depthwise.backward_geom(dy, x, w, b, geom)
    else:
        dx = _grad_input(geom, dy, w, x.dtype)
        dw, db = _grad_weight(geom, x, dy, x.dtype, b is not None)
    return (dx[0] if unbatched else dx), dw, db


def conv_nd(nd, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False, residual=None,
            relu_max=None):
    """conv1d/2d/3d by rank (nd = 1, 2, 3; the algorithm 'auto' picks for 2-d, im2col else),
    then + residual (an array of the output's shape) and, when relu, max(y, 0), or min(max(y,
    0), relu_max) when relu_max is given (6: ReLU6). Fused into the product's epilogue on the
    CPU (im2col, Winograd and channel-last GEMMs; depthwise without a residual), passes after
    otherwise. For graph runtimes (the ONNX backend's Conv + Relu / Clip and Conv + Add (+
    Relu), ResNet's join, MobileNetV2's ReLU6)."""
    return _conv(nd, input, weight, bias, stride, padding, dilation, groups, "auto" if nd == 2 else "im2col", relu,
                 residual, relu_max)


def conv_nd_plan(nd, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False,
                 residual=None, relu_max=None):
    """(conv_nd(...), a ConvPlan repeating the call on other inputs of the same shape and
    dtype, or None where it cannot: a GPU op, an unbatched input, an empty output). The plan
    keeps the weight and bias it was made with: for constant weights (a graph's)."""
    y, plan, unbatched = _conv_plan(nd, input, weight, bias, stride, padding, dilation, groups,
                                    "auto" if nd == 2 else "im2col", relu, residual, relu_max)
    return (y[0] if unbatched else y), plan


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d: input (N, C, W) or (C, W), weight (K, C/groups, S)."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """torch.nn.functional.conv2d: input (N, C, H, W) or (C, H, W), weight (K, C/groups, R, S).

    padding: int, pair, 'valid' or 'same' (stride 1 only; an odd total pad puts the extra
    on the right/bottom like torch). algo: 'im2col' (im2col + GEMM), 'direct' (direct
    kernel vectorized over the output width), 'winograd' (Winograd F(4x4, 3x3): 3x3 kernels,
    stride 1, dilation 1, groups 1; 4x fewer multiplies, float32 error a few times the
    direct sum's, see docs/WINOGRAD.md), 'nhwc' (CPU, groups 1: an implicit GEMM over a
    channel-last copy of the input, output positions broadcast from it, no im2col; see
    docs/NHWC.md) or 'auto' (the depthwise kernel for depthwise convolutions; Winograd for
    float32 3x3 stride-1 layers with at least 16 channels and 48 output tiles of 4x4 (32 from 256
    input channels); the direct
    kernel for unit-stride wide rows with few channels per group; 'nhwc' for one-group layers
    with a kernel larger than 1x1, at least 16 input channels and 196 output positions;
    im2col + GEMM otherwise). The backward uses the im2col kernels, Winograd for the
    grad_input of float32 layers where 'auto' would choose it, and Winograd F(3x3, 4x4) for the
    grad_weight of float32 3x3 stride-1 layers with at least 32 channels each way and 32 tiles."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, algo)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv3d: input (N, C, D, H, W) or (C, D, H, W), weight (K, C/groups, T, R, S)."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups)


def conv1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """(grad_input, grad_weight, grad_bias or None) of conv1d."""
    return _conv_backward(1, grad_output, input, weight, bias, stride, padding, dilation, groups)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """(grad_input, grad_weight, grad_bias or None) of conv2d (algo 'direct' uses the im2col kernels)."""
    return _conv_backward(2, grad_output, input, weight, bias, stride, padding, dilation, groups, algo)


def conv3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """(grad_input, grad_weight, grad_bias or None) of conv3d."""
    return _conv_backward(3, grad_output, input, weight, bias, stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- torch.nn.grad style
def _size(v, nd, name):
    if not isinstance(v, (tuple, list)) and not (isinstance(v, np.ndarray) and v.ndim == 1):
        raise TypeError(f"{name}: expected a sequence of {nd + 2} ints, got {type(v).__name__}")
    if len(v) != nd + 2:
        raise ValueError(f"{name}: expected {nd + 2} sizes, got {tuple(v)}")
    return tuple(U.as_int(e, name, 0) for e in v)


def _conv_input(nd, input_size, weight, grad_output, stride, padding, dilation, groups):
    w = U.as_float(weight, "weight")
    dy = U.as_float(grad_output, "grad_output", like=w)
    U.check_ndim(w, nd + 2, "weight")
    U.check_ndim(dy, nd + 2, "grad_output")
    x_shape = _size(input_size, nd, "input_size")
    geom = _Geom(nd, x_shape, w.shape, stride, padding, dilation, groups, input_name="input_size")
    U.check_shape(dy, geom.y_shape, "grad_output")
    if _is_depthwise(geom):
        dx = U.empty(geom.x_shape, w.dtype, "grad_input")
        if dx.size:
            _C.depthwise_conv2d_backward_input(dy, w, dx, *_depthwise.native_args(geom))
        return dx
    return _grad_input(geom, dy, w, w.dtype)


def _conv_weight(nd, input, weight_size, grad_output, stride, padding, dilation, groups):
    x = U.as_float(input, "input")
    dy = U.as_float(grad_output, "grad_output", like=x)
    U.check_ndim(x, nd + 2, "input")
    U.check_ndim(dy, nd + 2, "grad_output")
    w_shape = _size(weight_size, nd, "weight_size")
    geom = _Geom(nd, x.shape, w_shape, stride, padding, dilation, groups, weight_name="weight_size")
    U.check_shape(dy, geom.y_shape, "grad_output")
    if _is_depthwise(geom):
        dw = U.empty(geom.w_shape, x.dtype, "grad_weight")
        if x.shape[0]:
            _C.depthwise_conv2d_backward_weight(x, dy, dw, None, *_depthwise.native_args(geom))
        else:
            dw[...] = 0
        return dw
    return _grad_weight(geom, x, dy, x.dtype, False)[0]


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv1d_input: gradient of conv1d w.r.t. an input of shape input_size."""
    return _conv_input(1, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv2d_input: gradient of conv2d w.r.t. an input of shape input_size."""
    return _conv_input(2, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv3d_input: gradient of conv3d w.r.t. an input of shape input_size."""
    return _conv_input(3, input_size, weight, grad_output, stride, padding, dilation, groups)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv1d_weight: gradient of conv1d w.r.t. a weight of shape weight_size."""
    return _conv_weight(1, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv2d_weight: gradient of conv2d w.r.t. a weight of shape weight_size."""
    return _conv_weight(2, input, weight_size, grad_output, stride, padding, dilation, groups)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.grad.conv3d_weight: gradient of conv3d w.r.t. a weight of shape weight_size."""
    return _conv_weight(3, input, weight_size, grad_output, stride, padding, dilation, groups)


# ----------------------------------------------------------------------------- transposed convolution
class _TGeom:
    """A transposed convolution x (N, Cin, *in) * w (Cin, Cout/groups, *kernel) -> y (N, Cout, *out),
    seen as the convolution y -> x: ``conv`` is that convolution's geometry."""

    def __init__(self, nd, x, w, stride, padding, output_padding, groups, dilation):
        g = U.as_int(groups, "groups", 1)
        stride = U.ntuple(stride, nd, "stride", 1)
        padding = U.ntuple(padding, nd, "padding", 0)
        output_padding = U.ntuple(output_padding, nd, "output_padding", 0)
        dilation = U.ntuple(dilation, nd, "dilation", 1)
        if 0 in w.shape:
            raise ValueError(f"weight: sizes must be positive, got shape {w.shape}")
        if 0 in x.shape[1:]:
            raise ValueError(f"input: channel and spatial sizes must be positive, got shape {x.shape}")
        Cin = x.shape[1]
        if w.shape[0] != Cin:
            raise ValueError(f"weight: dim 0 must equal the input channels ({Cin}), got shape {w.shape}")
        if Cin % g:
            raise ValueError(f"groups: input channels ({Cin}) must be divisible by groups ({g})")
        for op, s, d in zip(output_padding, stride, dilation):
            if op >= s and op >= d:
                raise ValueError(f"output_padding: must be smaller than either stride or dilation, got "
                                 f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
        out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                    for n, s, p, d, k, op in zip(x.shape[2:], stride, padding, dilation, w.shape[2:], output_padding))
        if any(o <= 0 for o in out):
            raise ValueError(f"input: spatial size {tuple(x.shape[2:])} with padding {padding} gives an empty "
                             f"output {out}")
        self.nd = nd
        self.y_shape = (x.shape[0], w.shape[1] * g) + out
        # the convolution y -> x (its input is our output); its output size is ours as given, not
        # recomputed, since output_padding >= stride (allowed when < dilation) can break the formula
        self.conv = _Geom.given(nd, g, stride, dilation, [(p, p) for p in padding], self.y_shape, w.shape, x.shape)


def _tinputs(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x, w, b, unbatched = _inputs(nd, input, weight, bias)
    geom = _TGeom(nd, x, w, stride, padding, output_padding, groups, dilation)
    _check_bias(b, geom.y_shape[1])
    return x, w, b, unbatched, geom


def _conv_transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x, w, b, unbatched, geom = _tinputs(nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
    y = _grad_input(geom.conv, x, w, x.dtype)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)
    return y[0] if unbatched else y


def _conv_transpose_backward(nd, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                             dilation):
    x, w, b, unbatched, geom = _tinputs(nd, input, weight, bias, stride, padding, output_padding, groups, dilation)
    dy = _grad_output(grad_output, x, geom.y_shape, unbatched)
    dx, _ = _forward(geom.conv, dy, w, None)
    dw, _ = _grad_weight(geom.conv, dy, x, x.dtype, False)
    db = None if b is None else dy.sum(axis=(0,) + tuple(range(2, dy.ndim)), dtype=x.dtype)  # (batch 0 too)
    return (dx[0] if unbatched else dx), dw, db


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d: input (N, Cin, W), weight (Cin, Cout/groups, S)."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d: input (N, Cin, H, W), weight (Cin, Cout/groups, R, S)."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose3d: input (N, Cin, D, H, W), weight (Cin, Cout/groups, T, R, S)."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose1d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """(grad_input, grad_weight, grad_bias or None) of conv_transpose1d."""
    return _conv_transpose_backward(1, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation)


def conv_transpose2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """(grad_input, grad_weight, grad_bias or None) of conv_transpose2d."""
    return _conv_transpose_backward(2, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation)


def conv_transpose3d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """(grad_input, grad_weight, grad_bias or None) of conv_transpose3d."""
    return _conv_transpose_backward(3, grad_output, input, weight, bias, stride, padding, output_padding, groups,
                                    dilation)
