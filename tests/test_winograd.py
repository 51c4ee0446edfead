"""Winograd F(4x4, 3x3): the native kernel vs the NumPy reference over a grid of shapes (odd
sizes, partial edge tiles, padding 0-3, batch 1, one channel, many channels), every ISA,
both dtypes; conv2d's algo='auto' choice; grad_input through Winograd; bad geometries."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close

import convkern.functional as F
import convkern.reference as R
from convkern import _C
from convkern._ops import conv as _conv

CASES = [  # (N, C, K, H, W, padding)
    (1, 1, 1, 3, 3, 0),      # one tile, 1x1 output
    (1, 1, 1, 4, 4, 1),
    (2, 3, 4, 8, 8, 1),
    (1, 5, 7, 13, 11, 0),    # partial edge tiles both ways
    (3, 2, 3, 5, 9, 2),
    (1, 4, 2, 6, 17, 3),     # padding beyond the kernel
    (1, 17, 19, 10, 10, 1),
    (2, 33, 16, 9, 30, 1),
    (1, 64, 64, 7, 7, 1),
    (1, 16, 32, 28, 28, 1),
    (1, 3, 5, 1, 40, (1, 0)),  # one input row, asymmetric padding
    (2, 300, 25, 6, 9, 1),   # transformed filters in two K slices (256 + 44) and 3 panels of rows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_winograd_matches_reference(isa, dtype, case, rng):
    n, c, k, h, w, pad = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    y = F.conv2d(x, wt, b, padding=pad, algo="winograd")
    ref = R.conv2d(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), padding=pad)
    assert y.dtype == dtype
    assert_close(y, ref, k=9 * c, case=str(case))


def test_winograd_same_padding_and_no_bias(rng):
    x = rng.standard_normal((2, 6, 11, 7))
    w = rng.standard_normal((5, 6, 3, 3))
    assert_close(F.conv2d(x, w, padding="same", algo="winograd"), R.conv2d(x, w, padding="same"), k=54)


def test_auto_chooses_winograd_for_float32_only(monkeypatch, rng):
    calls = []
    real = _C.conv_winograd_forward
    monkeypatch.setattr(_C, "conv_winograd_forward", lambda *a, **kw: (calls.append(a[0].shape), real(*a, **kw))[1])
    x = rng.standard_normal((1, 32, 28, 28)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) * 0.1).astype(np.float32)
    y = F.conv2d(x, w, padding=1)
    assert calls == [(1, 32, 28, 28)]
    assert_close(y, R.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1), k=9 * 32)
    F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)   # float64: im2col
    F.conv2d(x, w, padding=1, stride=2)                               # strided: im2col
    F.conv2d(x[:, :8], w[:, :8], padding=1)                           # few channels: not Winograd
    F.conv2d(x[:, :, :4, :4], w, padding=1)                           # too few tiles
    assert len(calls) == 1


def test_grad_input_through_winograd(monkeypatch, rng):
    calls = []
    real = _C.conv_winograd_forward
    monkeypatch.setattr(_C, "conv_winograd_forward", lambda *a, **kw: (calls.append(a[4:6]), real(*a, **kw))[1])
    for pad in (0, 1, 2):
        x = rng.standard_normal((2, 24, 20, 18)).astype(np.float32)
        w = (rng.standard_normal((20, 24, 3, 3)) * 0.1).astype(np.float32)
        y = R.conv2d(x.astype(np.float64), w.astype(np.float64), padding=pad)
        g = rng.standard_normal(y.shape).astype(np.float32)
        dx = F.conv2d_input(x.shape, w, g, padding=pad)
        assert_close(dx, R.conv2d_input(x.shape, w.astype(np.float64), g.astype(np.float64), padding=pad), k=9 * 20)
        assert calls[-1] == (2 - pad, 2 - pad)
        gx, gw, gb = F.conv2d_backward(g, x, w, None, padding=pad)
        assert_close(gx, dx)


@pytest.mark.parametrize("kw,match", [
    (dict(stride=2), "algo"), (dict(dilation=2), "algo"), (dict(groups=2), "algo"),
])
def test_winograd_rejects_other_geometries(kw, match):
    x = np.zeros((1, 4, 9, 9), np.float32)
    w = np.zeros((4, 4 // kw.get("groups", 1), 3, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        F.conv2d(x, w, padding=1, algo="winograd", **kw)
    with pytest.raises(ValueError, match="algo"):
        F.conv2d(x, np.zeros((4, 4, 5, 5), np.float32), algo="winograd")


def test_native_binding_checks():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="weight"):
        _C.conv_winograd_forward(x, np.zeros((3, 2, 5, 5), np.float32), None, np.zeros((1, 3, 3, 3), np.float32), 0, 0)
    with pytest.raises(ValueError, match="output"):
        _C.conv_winograd_forward(x, np.zeros((3, 2, 3, 3), np.float32), None, np.zeros((1, 4, 3, 3), np.float32), 0, 0)
    with pytest.raises(ValueError, match="bias"):
        _C.conv_winograd_forward(x, np.zeros((3, 2, 3, 3), np.float32), np.zeros(2, np.float32),
                                 np.zeros((1, 3, 3, 3), np.float32), 0, 0)
    with pytest.raises(TypeError):
        _C.conv_winograd_forward(x, np.zeros((3, 2, 3, 3)), None, np.zeros((1, 3, 3, 3), np.float32), 0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_fused_epilogue_and_transformed_filters(isa, dtype, threads):
    """The residual and relu applied in the output transform give bit for bit the separate
    passes (NaN kept); a PackedConvWeight's transformed filters (made at its first Winograd
    call, kept, remade under another ISA) give bit for bit the per-call transform; a zeroed
    transform is read (only the bias is left), another ISA's is ignored; bad arguments raise."""
    import convkern
    from convkern._ops.conv import conv_nd

    rng = np.random.default_rng(21)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        for n, c, k, h, w_, pad in [(1, 17, 19, 10, 10, 1), (2, 33, 16, 9, 30, 1), (1, 4, 2, 6, 17, 3),
                                    (2, 300, 25, 6, 9, 1)]:
            case = (n, c, k, h, w_, pad)
            x = rng.standard_normal((n, c, h, w_)).astype(dtype)
            x[0, 0, 1, 2] = np.nan
            wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
            b = rng.standard_normal(k).astype(dtype)
            plain = F.conv2d(x, wt, b, padding=pad, algo="winograd")
            r = rng.standard_normal(plain.shape).astype(dtype)
            joined = plain + r
            relu = np.maximum(joined, 0, where=~np.isnan(joined), out=joined.copy())
            y, fused = _conv._winograd(x, wt, b, plain.shape, pad, pad, True, r)
            assert fused
            np.testing.assert_array_equal(y, relu, err_msg=str(case))
            y, _ = _conv._winograd(x, wt, b, plain.shape, pad, pad, False, r)
            np.testing.assert_array_equal(y, joined, err_msg=str(case))
            y, _ = _conv._winograd(x, wt, b, plain.shape, pad, pad, True, None)
            np.testing.assert_array_equal(y, np.maximum(plain, 0, where=~np.isnan(plain), out=plain.copy()))
            pw = F.PackedConvWeight(wt)
            assert pw.data_wg is None
            np.testing.assert_array_equal(F.conv2d(x, pw, b, padding=pad, algo="winograd"), plain, err_msg=str(case))
            assert pw.data_wg is not None and pw.data_wg.size >= 4 * wt.size and pw.isa_wg >= 0
            kept = pw.data_wg
            np.testing.assert_array_equal(F.conv2d(x, pw, b, padding=pad, algo="winograd"), plain)
            assert pw.data_wg is kept  # made once
            if dtype == np.float32 and n * -(-h // 4) * -(-w_ // 4) >= 48:  # algo='auto' and the fused join
                np.testing.assert_array_equal(conv_nd(2, x, pw, b, padding=pad, relu=True, residual=r), relu)
            x[0, 0, 1, 2] = 0.0  # (NaN times a zeroed filter is NaN)
            plain = F.conv2d(x, wt, b, padding=pad, algo="winograd")
            u0 = np.zeros_like(pw.data_wg)
            y = np.empty_like(plain)
            _C.conv_winograd_forward(x, wt, b, y, pad, pad, False, None, u0, pw.isa_wg)
            np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))  # read
            _C.conv_winograd_forward(x, wt, b, y, pad, pad, False, None, u0, pw.isa_wg + 1)
            np.testing.assert_array_equal(y, plain)  # another ISA's: not read
            _C.conv_winograd_forward(x, wt, b, y, pad, pad, False, None, u0[1:], pw.isa_wg)
            np.testing.assert_array_equal(y, plain)  # the wrong size: not read
    finally:
        convkern.set_num_threads(old)


def test_transformed_filters_follow_the_isa():
    import convkern

    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 20, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((30, 20, 3, 3)).astype(np.float32)
    pw = F.PackedConvWeight(wt)
    for name in convkern.available_isas():
        with convkern.isa(name):
            n, isa = _C.winograd_transform_size(wt)
            np.testing.assert_array_equal(F.conv2d(x, pw, padding=1, algo="winograd"),
                                          F.conv2d(x, wt, padding=1, algo="winograd"))
            assert pw.isa_wg == isa and pw.data_wg.size == n
    with pytest.raises(ValueError, match="u"):
        _C.winograd_transform(wt, np.empty(5, np.float32))
    with pytest.raises(TypeError, match="u"):
        _C.winograd_transform(wt, np.empty(_C.winograd_transform_size(wt)[0]))
    with pytest.raises(ValueError, match="weight"):
        _C.winograd_transform_size(np.ones((3, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="residual"):
        _C.conv_winograd_forward(x, wt, None, np.zeros((1, 30, 12, 12), np.float32), 1, 1, False,
                                 np.zeros((1, 30, 12, 11), np.float32))


# ---------------------------------------------------------------- the weight gradient
WGRAD_CASES = [  # (N, C, K, H, W, padding, trailing padding)
    (1, 1, 1, 3, 3, 0, 0),      # one tile, 1x1 output
    (1, 1, 1, 5, 5, 1, 1),
    (2, 3, 5, 7, 9, 1, 1),
    (1, 17, 19, 13, 11, 0, 0),  # partial edge tiles both ways, channels not a multiple of 16
    (3, 2, 3, 5, 9, 2, 2),
    (1, 4, 2, 6, 17, 3, 1),     # padding beyond the kernel, asymmetric
    (2, 33, 16, 9, 30, 1, 1),
    (1, 3, 5, 1, 40, (1, 0), (1, 0)),  # one input row
    (3, 40, 36, 8, 8, 1, 1),    # tiles of several images in one block
    (1, 64, 48, 16, 20, 1, 0),  # output plane smaller than the padded input's
]


def _wgrad_case(case, dtype, rng):
    n, c, k, h, w, lead, trail = case
    lead = lead if isinstance(lead, tuple) else (lead, lead)
    trail = trail if isinstance(trail, tuple) else (trail, trail)
    p, q = h + lead[0] + trail[0] - 2, w + lead[1] + trail[1] - 2
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    dy = rng.standard_normal((n, k, p, q)).astype(dtype)
    # the reference with explicit padding: pad the input, then a valid convolution
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (lead[0], trail[0]), (lead[1], trail[1])))
    ref = R.conv2d_weight(xp, (k, c, 3, 3), dy.astype(np.float64))
    return x, dy, lead, ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", WGRAD_CASES, ids=[str(c) for c in WGRAD_CASES])
def test_winograd_grad_weight_matches_reference(isa, dtype, case, rng):
    x, dy, lead, ref = _wgrad_case(case, dtype, rng)
    n, k, p, q = dy.shape
    dw = np.full(ref.shape, np.nan, dtype)
    db = np.full(k, np.nan, dtype)
    _C.conv_winograd_backward_weight(x, dy, dw, db, lead[0], lead[1])
    assert_close(dw, ref, k=n * p * q, case=str(case), name="grad_weight")
    assert_close(db, dy.astype(np.float64).sum((0, 2, 3)), k=n * p * q, case=str(case), name="grad_bias")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_winograd_grad_weight_threads_agree(threads, rng):
    """Each of the 36 products is computed whole by one thread, and the tile blocks are
    summed in order, so the result does not depend on the thread count."""
    x = rng.standard_normal((4, 48, 30, 30)).astype(np.float32)
    dy = rng.standard_normal((4, 40, 30, 30)).astype(np.float32)
    base, dw = np.empty((40, 48, 3, 3), np.float32), np.empty((40, 48, 3, 3), np.float32)
    old = F.get_num_threads()
    try:
        F.set_num_threads(1)
        _C.conv_winograd_backward_weight(x, dy, base, None, 1, 1)
        F.set_num_threads(threads)
        _C.conv_winograd_backward_weight(x, dy, dw, None, 1, 1)
    finally:
        F.set_num_threads(old)
    np.testing.assert_array_equal(dw, base)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert_close(dw, R.conv2d_weight(xp, dw.shape, dy.astype(np.float64)), k=4 * 30 * 30)


def test_winograd_grad_weight_gradcheck(rng):
    """float64 finite differences of L(w) = sum(conv2d(x, w) * g): dL/dw is the weight
    gradient of grad_output g, which the Winograd kernel computes."""
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 7, 6))
    dw = np.empty_like(w)
    _C.conv_winograd_backward_weight(x, g, dw, None, 1, 1)
    eps, num = 1e-6, np.empty_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += eps
        wm[i] -= eps
        num[i] = (np.sum(R.conv2d(x, wp, padding=1) * g) - np.sum(R.conv2d(x, wm, padding=1) * g)) / (2 * eps)
    np.testing.assert_allclose(dw, num, rtol=1e-6, atol=1e-6)


def test_auto_grad_weight_through_winograd(monkeypatch, rng):
    calls = []
    real = _C.conv_winograd_backward_weight
    monkeypatch.setattr(_C, "conv_winograd_backward_weight", lambda *a: (calls.append(a[4:]), real(*a))[1])
    for pad in (0, 1, 2):
        x = rng.standard_normal((2, 32, 22, 19)).astype(np.float32)
        w = (rng.standard_normal((40, 32, 3, 3)) * 0.1).astype(np.float32)
        b = np.zeros(40, np.float32)
        y = R.conv2d(x.astype(np.float64), w.astype(np.float64), padding=pad)
        g = rng.standard_normal(y.shape).astype(np.float32)
        ref = R.conv2d_weight(x.astype(np.float64), w.shape, g.astype(np.float64), padding=pad)
        n, p, q = g.shape[0], g.shape[2], g.shape[3]
        assert_close(F.conv2d_weight(x, w.shape, g, padding=pad), ref, k=n * p * q)
        assert calls[-1] == (pad, pad)
        _, gw, gb = F.conv2d_backward(g, x, w, b, padding=pad)
        assert_close(gw, ref, k=n * p * q)
        assert_close(gb, g.astype(np.float64).sum((0, 2, 3)), k=n * p * q)
        assert calls[-1] == (pad, pad)
    calls.clear()
    x = rng.standard_normal((2, 32, 22, 19)).astype(np.float32)
    w = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 40, 22, 19)).astype(np.float32)
    F.conv2d_weight(x.astype(np.float64), w.shape, g.astype(np.float64), padding=1)  # float64: im2col
    F.conv2d_weight(x[:, :16], (40, 16, 3, 3), g, padding=1)                          # few channels
    F.conv2d_weight(x[:1, :, :8, :8], w.shape, g[:1, :, :8, :8], padding=1)          # 4 tiles
    F.conv2d_weight(x, w.shape, g[:, :, ::2, ::2].copy(), padding=1, stride=2)        # strided
    assert calls == []


def test_winograd_grad_weight_binding_checks():
    x = np.zeros((1, 2, 5, 5), np.float32)
    dy = np.zeros((1, 3, 5, 5), np.float32)
    dw = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="grad_weight"):
        _C.conv_winograd_backward_weight(x, dy, np.zeros((3, 2, 5, 5), np.float32), None, 1, 1)
    with pytest.raises(ValueError, match="grad_weight"):
        _C.conv_winograd_backward_weight(x, dy, np.zeros((3, 4, 3, 3), np.float32), None, 1, 1)
    with pytest.raises(ValueError, match="grad_output"):
        _C.conv_winograd_backward_weight(x, np.zeros((1, 4, 5, 5), np.float32), dw, None, 1, 1)
    with pytest.raises(ValueError, match="grad_output"):
        _C.conv_winograd_backward_weight(x, np.zeros((1, 3, 0, 5), np.float32), dw, None, 1, 1)
    with pytest.raises(ValueError, match="input"):
        _C.conv_winograd_backward_weight(x[0], dy, dw, None, 1, 1)
    with pytest.raises(ValueError, match="padding"):
        _C.conv_winograd_backward_weight(x, dy, dw, None, -1, 1)
    with pytest.raises(ValueError, match="grad_bias"):
        _C.conv_winograd_backward_weight(x, dy, dw, np.zeros(2, np.float32), 1, 1)
    with pytest.raises(TypeError, match="grad_output"):
        _C.conv_winograd_backward_weight(x, dy.astype(np.float64), dw, None, 1, 1)
    with pytest.raises(TypeError, match="input"):
        _C.conv_winograd_backward_weight(x.astype(np.int32), dy, dw, None, 1, 1)
    with pytest.raises(ValueError, match="grad_weight"):
        _C.conv_winograd_backward_weight(x, dy, np.zeros((3, 2, 3, 3), np.float32)[:, :, ::-1], None, 1, 1)


@pytest.mark.parametrize("case", [(2, 20, 13, 9, 7, 1), (1, 33, 40, 6, 6, 2), (3, 16, 12, 5, 11, 0)])
def test_flipped_weight_matches_a_flipped_copy(isa, case, rng):
    """flipped_weight: the filter transform reads another layer's (C, K, 3, 3) weight flipped and
    transposed; bit for bit the forward with that copy made in NumPy (K and C not multiples of
    the micro-kernel's 12 rows or the transform's 16 channels)."""
    n, c, k, h, w, pad = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c, k, 3, 3)).astype(np.float32)   # the other layer's (its K = c)
    copy = np.ascontiguousarray(wt.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    p, q = h + 2 * pad - 2, w + 2 * pad - 2
    y = np.empty((n, k, p, q), np.float32)
    ref = np.empty_like(y)
    _C.conv_winograd_forward(x, wt, None, y, pad, pad, flipped_weight=True)
    _C.conv_winograd_forward(x, copy, None, ref, pad, pad)
    np.testing.assert_array_equal(y, ref)
    assert_close(y, R.conv2d(x.astype(np.float64), copy.astype(np.float64), padding=pad), k=9 * c)
    with pytest.raises(ValueError, match="weight"):
        _C.conv_winograd_forward(x, copy[:, :c - 1].copy(), None, y, pad, pad, flipped_weight=True)
    with pytest.raises(ValueError, match="flipped_weight"):
        _C.conv_winograd_forward(x, wt, None, y, pad, pad, u=np.zeros(4, np.float32), flipped_weight=True)
