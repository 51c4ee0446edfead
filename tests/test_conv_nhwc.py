"""The channel-last implicit GEMM forward (algo='nhwc', cpu/conv_nhwc.cpp): the native kernel
vs the NumPy reference over a grid of shapes (odd sizes, strides, padding, dilation, batch 1,
one channel, channel counts on both sides of every channel block's width), every ISA, both
dtypes, 1 and 2 threads; the packed weight it keeps; algo='auto''s choice; bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close

import convkern
import convkern.functional as F
import convkern.reference as R
from convkern import _C
from convkern._ops import conv as _conv

CASES = [  # (N, C, K, H, W, (R, S), stride, padding, dilation)
    (1, 1, 1, 3, 3, (3, 3), 1, 0, 1),           # one output
    (1, 1, 5, 6, 7, (2, 2), 1, 0, 1),           # one channel, even kernel
    (2, 3, 4, 9, 8, (3, 3), 1, 1, 1),
    (1, 5, 17, 13, 11, (5, 5), 1, 2, 1),        # one lane past a vector (AVX-512 float: 16)
    (3, 7, 15, 11, 5, (3, 1), (2, 1), (1, 0), 1),
    (1, 16, 33, 10, 10, (3, 3), 2, 1, 1),
    (2, 8, 48, 9, 12, (3, 3), 1, 1, 2),         # dilation
    (1, 20, 63, 14, 14, (5, 5), 1, 2, 1),
    (1, 6, 65, 7, 9, (7, 7), 3, 3, 1),          # stride 3, kernel larger than the plane's padding
    (2, 33, 100, 6, 13, (3, 3), (1, 2), (2, 1), (1, 3)),
    (1, 4, 2, 1, 40, (1, 3), 1, (0, 1), 1),     # one input row
    (1, 300, 25, 6, 9, (3, 3), 1, 1, 1),        # 300 channels x 9 taps: 2 K slices
    (1, 2100, 9, 3, 4, (2, 2), 1, 0, 1),        # more channels than one slice: channel chunks
    (4, 16, 130, 5, 5, (3, 3), 1, 1, 1),        # batch: tiles across images
    (2, 8, 128, 40, 40, (3, 3), 1, 1, 1),       # two channel blocks, the copy larger than the weight:
                                                # two threads split the tiles, not the blocks
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_nhwc_matches_reference(isa, dtype, case, threads, rng):
    n, c, k, h, w, ks, stride, pad, dil = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c) + ks).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        y = F.conv2d(x, wt, b, stride=stride, padding=pad, dilation=dil, algo="nhwc")
    finally:
        convkern.set_num_threads(old)
    ref = R.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), stride=stride, padding=pad,
                   dilation=dil)
    assert y.dtype == dtype and y.shape == ref.shape
    assert_close(y, ref, k=c * ks[0] * ks[1], case=str(case))


def test_nhwc_same_padding_unbatched_and_no_bias(rng):
    x = rng.standard_normal((6, 11, 8))
    w = rng.standard_normal((5, 6, 4, 3))  # even kernel height: asymmetric 'same' padding
    assert_close(F.conv2d(x, w, padding="same", algo="nhwc"), R.conv2d(x[None], w, padding="same")[0], k=72)


def test_nhwc_keeps_nan_and_inf(rng):
    x = rng.standard_normal((1, 16, 6, 6)).astype(np.float32)
    x[0, 3, 2, 2] = np.nan
    x[0, 5, 4, 4] = np.inf
    w = rng.standard_normal((20, 16, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, padding=1, algo="nhwc")
    ref = F.conv2d(x, w, padding=1, algo="im2col")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))


def test_nhwc_packed_weight_follows_the_isa(rng):
    """PackedConvWeight keeps the channel blocks (data_nh), made at the first channel-last call
    under the active ISA and read afterwards (a zeroed copy leaves only the bias), remade after
    an ISA switch."""
    x = rng.standard_normal((1, 24, 9, 9)).astype(np.float32)
    w = rng.standard_normal((40, 24, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    pw = F.PackedConvWeight(w)
    assert pw.data_nh is None
    y = F.conv2d(x, pw, b, padding=1, algo="nhwc")
    np.testing.assert_array_equal(y, F.conv2d(x, w, b, padding=1, algo="nhwc"))
    first = pw.data_nh
    assert first is not None and pw.isa_nh == _C.conv_nhwc_packed_size(w[:, :, None])[1]
    F.conv2d(x, pw, b, padding=1, algo="nhwc")
    assert pw.data_nh is first  # made once
    first[:] = 0
    np.testing.assert_array_equal(F.conv2d(x, pw, b, padding=1, algo="nhwc"), np.broadcast_to(b[:, None, None],
                                                                                                y.shape[1:])[None])
    for name in convkern.available_isas():
        with convkern.isa(name):
            pw.data_nh, pw.isa_nh = None, -1
            got = F.conv2d(x, pw, b, padding=1, algo="nhwc")
            assert pw.isa_nh == _C.conv_nhwc_packed_size(w[:, :, None])[1]
            ref = F.conv2d(x, w, b, padding=1, algo="nhwc")
            np.testing.assert_array_equal(got, ref)
    # a copy made under another ISA (stale isa_nh) is not read: the active ISA's is made
    pw.isa_nh = 99
    np.testing.assert_array_equal(F.conv2d(x, pw, b, padding=1, algo="nhwc"), y)


def test_nhwc_binding_ignores_a_wrong_packed_weight(rng):
    x = rng.standard_normal((1, 16, 1, 6, 6)).astype(np.float32)
    w = rng.standard_normal((20, 16, 1, 3, 3)).astype(np.float32)
    geo = ((1, 1, 1), (0, 1, 1), (1, 1, 1))
    ref = np.empty((1, 20, 1, 6, 6), np.float32)
    _C.conv_nhwc_forward(x, w, None, ref, *geo)
    n, isa = _C.conv_nhwc_packed_size(w)
    y = np.empty_like(ref)
    _C.conv_nhwc_forward(x, w, None, y, *geo, False, None, np.zeros(n - 1, np.float32), isa)  # wrong size
    np.testing.assert_array_equal(y, ref)
    _C.conv_nhwc_forward(x, w, None, y, *geo, False, None, np.zeros(n, np.float32), isa + 1)  # other ISA
    np.testing.assert_array_equal(y, ref)


def test_nhwc_huge_geometry_falls_back(rng):
    """Padding and stride of 10**4 on a 1x1 input: the channel-last copy would be 10**8 values,
    so the im2col kernel runs instead, with the same result."""
    x = rng.standard_normal((1, 16, 1, 1)).astype(np.float32)
    w = rng.standard_normal((4, 16, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, stride=10000, padding=10000, algo="nhwc")
    np.testing.assert_array_equal(y, F.conv2d(x, w, stride=10000, padding=10000, algo="im2col"))


def test_auto_chooses_nhwc(monkeypatch, rng):
    calls = []
    real = _C.conv_nhwc_forward
    monkeypatch.setattr(_C, "conv_nhwc_forward", lambda *a, **kw: (calls.append(a[0].shape), real(*a, **kw))[1])
    x = rng.standard_normal((1, 32, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((48, 32, 5, 5)) * 0.1).astype(np.float32)
    y = F.conv2d(x, w, padding=2)
    assert calls == [(1, 32, 1, 14, 14)]
    assert_close(y, R.conv2d(x.astype(np.float64), w.astype(np.float64), padding=2), k=25 * 32)
    F.conv2d(x[:, :, :5, :5], w, padding=2)                          # 25 positions: im2col
    F.conv2d(x[:, :3], w[:, :3], padding=2)                          # 3 input channels: im2col
    F.conv2d(x, w[:, :, :1, :1])                                     # 1x1: the pointwise GEMM
    F.conv2d(x, w[:, :16], padding=2, groups=2)                     # groups: im2col
    assert len(calls) == 1


def test_nhwc_bad_arguments(rng):
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="algo"):
        F.conv2d(x, w, groups=2, algo="nhwc")
    w5 = rng.standard_normal((4, 8, 1, 3, 3)).astype(np.float32)
    y = np.empty((1, 4, 1, 4, 4), np.float32)
    x5 = x[:, :, None]
    geo = ((1, 1, 1), (0, 0, 0), (1, 1, 1))
    with pytest.raises(TypeError, match="weight"):
        _C.conv_nhwc_forward(x5, w5.astype(np.float64), None, y, *geo)
    with pytest.raises(TypeError, match="packed"):
        _C.conv_nhwc_forward(x5, w5, None, y, *geo, False, None, np.zeros(10, np.float64), 0)
    with pytest.raises(ValueError, match="weight"):  # a 3-d kernel
        _C.conv_nhwc_forward(x5, np.zeros((4, 8, 2, 3, 3), np.float32), None, y, *geo)
    with pytest.raises(ValueError, match="output"):
        _C.conv_nhwc_forward(x5, w5, None, np.empty((1, 5, 1, 4, 4), np.float32), *geo)
    with pytest.raises(ValueError, match="residual"):
        _C.conv_nhwc_forward(x5, w5, None, y, *geo, False, np.zeros((1, 4, 1, 4, 3), np.float32))
    with pytest.raises(ValueError, match="stride"):
        _C.conv_nhwc_forward(x5, w5, None, y, (1, 0, 1), (0, 0, 0), (1, 1, 1))
    n, _ = _C.conv_nhwc_packed_size(w5)
    with pytest.raises(ValueError, match="packed"):
        _C.conv_nhwc_pack_weight(w5, np.empty(n + 1, np.float32))
    with pytest.raises(ValueError, match="weight"):
        _C.conv_nhwc_packed_size(np.zeros((4, 8, 2, 3, 3), np.float32))


GRAD_CASES = [  # (N, C, K, H, W, (R, S), padding, dilation): stride 1, as the channel-last grad_input runs
    (1, 3, 16, 7, 9, (3, 3), 1, 1),
    (2, 20, 17, 6, 5, (5, 5), 2, 1),
    (1, 5, 33, 9, 8, (2, 3), (0, 2), 1),        # padding below and above half the kernel
    (2, 7, 48, 10, 11, (3, 3), (2, 1), (2, 3)),  # dilation
    (1, 70, 16, 4, 12, (1, 3), 0, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=[str(c) for c in GRAD_CASES])
def test_grad_input_through_nhwc(isa, dtype, case, monkeypatch, rng):
    """Stride-1 grad_input runs as a channel-last forward over the weight read transposed and
    flipped (flipped_weight=True): against the NumPy reference's backward."""
    n, c, k, h, w, ks, pad, dil = case
    calls = []
    real = _C.conv_nhwc_forward
    monkeypatch.setattr(_C, "conv_nhwc_forward", lambda *a, **kw: (calls.append(kw.get("flipped_weight")),
                                                                     real(*a, **kw))[1])
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c) + ks).astype(dtype)
    y_shape = R.conv2d(x, wt, padding=pad, dilation=dil).shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    dx = F.conv2d_input(x.shape, wt, dy, padding=pad, dilation=dil)
    assert calls == [True]
    ref = R.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), wt.astype(np.float64), padding=pad,
                            dilation=dil)[0]
    assert dx.dtype == dtype
    assert_close(dx, ref, k=k * ks[0] * ks[1], case=str(case))


def test_flipped_weight_is_checked(rng):
    """flipped_weight=True takes the forward's own weight (K, C, 1, R, S) for a grad_input with
    C channels: the same values as the im2col kernel's backward; a weight that does not match
    grad_output's and grad_input's channels is refused."""
    dy = rng.standard_normal((1, 16, 1, 6, 6)).astype(np.float32)
    w5 = rng.standard_normal((16, 8, 1, 3, 3)).astype(np.float32)  # the forward: 8 -> 16 channels, 3x3, pad 0
    dx = np.empty((1, 8, 1, 8, 8), np.float32)
    _C.conv_nhwc_forward(dy, w5, None, dx, (1, 1, 1), (0, 2, 2), (1, 1, 1), flipped_weight=True)
    ref = np.empty_like(dx)
    _C.conv_backward_data(dy, w5, ref, (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    np.testing.assert_allclose(dx, ref, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="output"):
        _C.conv_nhwc_forward(dy, w5[:, :4].copy(), None, dx, (1, 1, 1), (0, 2, 2), (1, 1, 1), flipped_weight=True)
    with pytest.raises(ValueError, match="weight"):
        _C.conv_nhwc_forward(dy, w5[:8].copy(), None, dx, (1, 1, 1), (0, 2, 2), (1, 1, 1), flipped_weight=True)
