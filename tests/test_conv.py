"""Convolution family: conv1d/2d/3d, conv_transpose1d/2d/3d, their backward functions and the
torch.nn.grad-style conv*d_input / conv*d_weight, native vs the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

import convkern.functional as F
import convkern.reference as R
from convkern._ops import conv as convops
from convkern.gradcheck import check_op
from check import assert_close, check_against_reference

DTYPES = [np.float32, np.float64]


def _prod(t):
    r = 1
    for v in t:
        r *= v
    return r


# ----------------------------------------------------------------------------- case grids
# (N, C, K, spatial, kernel, stride, padding, dilation, groups, bias, layout)
CONV2D = [
    (2, 3, 4, (9, 11), (3, 3), 1, 1, 1, 1, True, "c"),
    (1, 4, 6, (7, 13), (3, 2), 2, (2, 1), 1, 2, False, "c"),          # kernel > stride, groups 2
    (2, 6, 6, (8, 9), (3, 3), 1, 0, 2, 6, True, "c"),                  # depthwise-shaped, dilation 2
    (3, 4, 8, (5, 5), (1, 1), 1, 0, 1, 1, True, "c"),                  # 1x1 fast path
    (2, 4, 4, (6, 7), (1, 1), 1, 0, 1, 2, False, "t"),                 # 1x1 grouped, transposed layout
    (1, 1, 1, (5, 5), (5, 5), 1, 0, 1, 1, True, "c"),                  # C=1, 1x1 output
    (2, 2, 5, (11, 10), (4, 3), 3, (3, 2), 3, 1, True, "t"),           # pad up to k-1, dilation 3
    (1, 3, 3, (6, 17), (2, 5), (1, 2), 1, (2, 1), 3, True, "c"),       # asymmetric stride/dilation
    (2, 3, 2, (7, 9), (3, 3), 1, "same", 2, 1, True, "c"),
    (1, 2, 3, (6, 8), (2, 4), 1, "same", 1, 1, False, "c"),            # even kernel: extra pad right
    (2, 5, 3, (6, 7), (3, 2), 1, "valid", 1, 1, True, "c"),
    (5, 3, 7, (4, 37), (3, 3), 1, 1, 1, 1, True, "c"),                 # batch >= threads, wide rows
    (3, 2, 2, (1, 1), (1, 1), 2, 0, 1, 1, True, "c"),
    (1, 2, 4, (2, 3), (5, 5), 1, 4, 1, 1, True, "c"),                  # padding wider than the input
]
CONV1D = [
    (2, 3, 4, (17,), (3,), 1, 1, 1, 1, True, "c"),
    (1, 4, 6, (13,), (4,), 3, 3, 2, 2, False, "c"),
    (3, 4, 4, (9,), (1,), 1, 0, 1, 4, True, "t"),
    (2, 2, 3, (10,), (4,), 1, "same", 3, 1, True, "c"),
    (1, 1, 1, (5,), (5,), 1, 0, 1, 1, True, "c"),
]
CONV3D = [
    (2, 2, 3, (5, 6, 7), (3, 2, 3), 1, 1, 1, 1, True, "c"),
    (1, 4, 4, (5, 7, 6), (2, 3, 2), (2, 1, 2), (1, 2, 1), (1, 1, 2), 2, False, "t"),
    (2, 3, 3, (3, 4, 5), (1, 1, 1), 1, 0, 1, 3, True, "c"),
    (1, 2, 2, (4, 5, 5), (3, 3, 3), 1, "same", 1, 1, True, "c"),
]


def _make(case, rng, transpose_layout_axes=None):
    N, C, K, sp, ks, stride, padding, dilation, groups, bias, layout = case
    x = rng.standard_normal((N, C) + sp)
    w = rng.standard_normal((K, C // groups) + ks)
    if layout == "t":  # same values, reversed memory order of the spatial axes
        nd = len(sp)
        axes = (0, 1) + tuple(range(2 + nd - 1, 1, -1))
        x = np.ascontiguousarray(x.transpose(axes)).transpose(axes)
        assert not x.flags.c_contiguous or x.size == 1 or nd == 1
    b = rng.standard_normal(K) if bias else None
    kw = dict(bias=b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, kw, (C // groups) * _prod(ks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["im2col", "direct", "auto"])
@pytest.mark.parametrize("i", range(len(CONV2D)))
def test_conv2d_grid(isa, dtype, algo, i):
    rng = np.random.default_rng(i)
    x, w, kw, k = _make(CONV2D[i], rng)
    check_against_reference("conv2d", (x, w), dict(kw, algo=algo), dtype=dtype, k=k, rng=rng,
                            case=f"{isa} {algo} {CONV2D[i]}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,cases", [("conv1d", CONV1D), ("conv3d", CONV3D)])
def test_conv1d_3d_grid(isa, dtype, op, cases):
    for i, case in enumerate(cases):
        rng = np.random.default_rng(i)
        x, w, kw, k = _make(case, rng)
        check_against_reference(op, (x, w), kw, dtype=dtype, k=k, rng=rng, case=f"{isa} {op} {case}")


# Output rows at least two GEMM panels wide (32 float32 / 16 float64 columns on AVX2): the
# im2col matrix is packed straight from the image (implicit im2col). Runs of taps cross panel
# and row boundaries, stride 2 takes the deinterleaving copy (also at the row's right edge),
# more output channels than one MC block, reductions longer than one KC slice, groups, 3-d.
CONV_WIDE = [
    ("conv2d", (1, 3, 8, (9, 70), (7, 7), 2, 3, 1, 1, True, "c")),       # stem-like, stride 2
    ("conv2d", (2, 3, 4, (7, 67), (2, 2), 2, 0, 1, 1, True, "c")),       # stride 2, odd width
    ("conv2d", (1, 4, 150, (5, 40), (3, 3), 1, 1, 1, 1, True, "c")),     # M > MC
    ("conv2d", (1, 64, 6, (4, 36), (3, 3), 1, 1, 1, 1, False, "c")),     # CRS > KC
    ("conv2d", (1, 8, 6, (3, 50), (3, 3), 1, 2, 1, 2, True, "t")),       # groups, wide padding
    ("conv2d", (1, 2, 5, (6, 100), (3, 5), (1, 3), (1, 2), (1, 2), 1, True, "c")),  # stride 3, dilation 2
    ("conv2d", (1, 1, 3, (3, 64), (1, 3), 1, 0, 1, 1, True, "c")),       # one channel
    ("conv3d", (1, 2, 3, (3, 4, 40), (2, 3, 3), 1, 1, 1, 1, True, "c")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,case", CONV_WIDE)
def test_conv_wide_rows_implicit_im2col(isa, dtype, op, case):
    rng = np.random.default_rng(5)
    x, w, kw, k = _make(case, rng)
    extra = dict(algo="im2col") if op == "conv2d" else {}
    check_against_reference(op, (x, w), dict(kw, **extra), dtype=dtype, k=k, rng=rng, case=f"{isa} {op} {case}")


# (N, Cin, Cout, spatial, kernel, stride, padding, output_padding, groups, dilation, bias)
TCONV2D = [
    (2, 3, 4, (5, 6), (3, 3), 1, 0, 0, 1, 1, True),
    (1, 4, 6, (4, 5), (3, 2), 2, 1, 1, 2, 1, False),
    (2, 2, 3, (5, 4), (4, 3), 3, (3, 2), (2, 1), 1, 1, True),
    (1, 4, 4, (3, 7), (3, 3), 1, 2, 1, 4, 2, True),            # output_padding < dilation (> stride)
    (3, 4, 5, (4, 4), (1, 1), 1, 0, 0, 1, 1, True),            # 1x1 fast path
    (2, 2, 2, (3, 3), (1, 1), 1, 0, 1, 1, 2, True),            # 1x1 with output_padding: no fast path
    (1, 1, 1, (1, 1), (2, 3), 2, 0, 1, 1, 3, False),
    (2, 3, 3, (6, 5), (2, 2), (2, 1), (1, 0), (1, 0), 3, (2, 3), True),
]


def _tmake(case, rng):
    N, Cin, Cout, sp, ks, stride, padding, output_padding, groups, dilation, bias = case
    x = rng.standard_normal((N, Cin) + sp)
    w = rng.standard_normal((Cin, Cout // groups) + ks)
    b = rng.standard_normal(Cout) if bias else None
    kw = dict(bias=b, stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    # each output sums (Cin/groups) * kernel volume products at most
    return x, w, kw, (Cin // groups) * _prod(ks)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("i", range(len(TCONV2D)))
def test_conv_transpose2d_grid(isa, dtype, i):
    rng = np.random.default_rng(100 + i)
    x, w, kw, k = _tmake(TCONV2D[i], rng)
    check_against_reference("conv_transpose2d", (x, w), kw, dtype=dtype, k=k, rng=rng, case=f"{isa} {TCONV2D[i]}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose1d_3d(isa, dtype):
    rng = np.random.default_rng(7)
    cases = [
        ("conv_transpose1d", (2, 4, 6, (7,), (3,), 2, 1, 1, 2, 1, True)),
        ("conv_transpose1d", (1, 3, 2, (9,), (4,), 1, 3, 0, 1, 2, False)),
        ("conv_transpose3d", (2, 2, 3, (3, 4, 3), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 0, 1), 1, 1, True)),
        ("conv_transpose3d", (1, 4, 2, (3, 3, 4), (1, 2, 2), 1, 0, 0, 2, (1, 2, 1), False)),
    ]
    for op, case in cases:
        x, w, kw, k = _tmake(case, rng)
        check_against_reference(op, (x, w), kw, dtype=dtype, k=k, rng=rng, case=f"{isa} {op} {case}")


# ----------------------------------------------------------------------------- layouts, unbatched, depthwise
@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_inputs(dtype):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2, 6, 14, 22)).astype(dtype)
    x = big[:, ::2, ::2, 1::2]                      # (2, 3, 7, 11), strided
    wbig = rng.standard_normal((5, 3, 3, 6)).astype(dtype)
    w = wbig[:, :, :, ::2]                           # (5, 3, 3, 3)
    b = rng.standard_normal(10).astype(dtype)[::2]
    xc, wc, bc = (np.ascontiguousarray(a) for a in (x, w, b))
    for algo in ("im2col", "direct"):
        y = F.conv2d(x, w, b, 2, 1, algo=algo)
        np.testing.assert_array_equal(y, F.conv2d(xc, wc, bc, 2, 1, algo=algo))
        assert_close(y, R.conv2d(xc.astype(np.float64), wc.astype(np.float64), bc.astype(np.float64), 2, 1), k=27)
    g = rng.standard_normal((2, 10, 4, 6)).astype(dtype)[:, ::2]
    got = F.conv2d_backward(g, x, w, b, 2, 1)
    want = F.conv2d_backward(np.ascontiguousarray(g), xc, wc, bc, 2, 1)
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)
    wt = rng.standard_normal((3, 8, 2, 2)).astype(dtype)[:, ::2]   # conv_transpose weight (3, 4, 2, 2)
    np.testing.assert_array_equal(F.conv_transpose2d(x, wt, stride=2), F.conv_transpose2d(xc, np.ascontiguousarray(wt), stride=2))


def test_unbatched():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 7, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y = F.conv2d(x, w, b, padding=1)
    assert y.shape == (4, 7, 8)
    np.testing.assert_allclose(y, F.conv2d(x[None], w, b, padding=1)[0], rtol=0, atol=0)
    np.testing.assert_allclose(y, R.conv2d(x, w, b, padding=1), atol=1e-12)
    g = rng.standard_normal(y.shape)
    for a, e in zip(F.conv2d_backward(g, x, w, b, padding=1), R.conv2d_backward(g, x, w, b, padding=1)):
        np.testing.assert_allclose(a, e, atol=1e-12)
    x1 = rng.standard_normal((3, 9))
    w1 = rng.standard_normal((3, 2, 3))
    np.testing.assert_allclose(F.conv_transpose1d(x1, w1, stride=2), R.conv_transpose1d(x1, w1, stride=2), atol=1e-12)


def test_empty_batch():
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    assert F.conv2d(x, w).shape == (0, 4, 3, 3)
    dx, dw, db = F.conv2d_backward(np.zeros((0, 4, 3, 3), np.float32), x, w, np.ones(4, np.float32))
    assert dx.shape == x.shape and np.all(dw == 0) and np.all(db == 0)


def test_depthwise_dispatch_matches_im2col():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((8, 1, 3, 3))   # channel multiplier 2
    b = rng.standard_normal(8)
    for kw in (dict(stride=1, padding=1), dict(stride=2, padding=(0, 2), dilation=2)):
        np.testing.assert_allclose(F.conv2d(x, w, b, groups=4, **kw), F.conv2d(x, w, b, groups=4, algo="im2col", **kw),
                                   atol=1e-12)
        g = rng.standard_normal(F.conv2d(x, w, b, groups=4, **kw).shape)
        for a, e in zip(F.conv2d_backward(g, x, w, b, groups=4, **kw), R.conv2d_backward(g, x, w, b, groups=4, **kw)):
            np.testing.assert_allclose(a, e, atol=1e-12)


# ----------------------------------------------------------------------------- torch.nn.grad style
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_input_weight(isa, dtype):
    rng = np.random.default_rng(6)
    cases = [
        (2, CONV2D[1]), (2, CONV2D[6]), (2, CONV2D[4]), (2, CONV2D[9]),
        (1, CONV1D[1]), (3, CONV3D[1]),
    ]
    for nd, case in cases:
        x, w, kw, k = _make(case, rng)
        kw.pop("bias")
        x, w = x.astype(dtype), w.astype(dtype)
        y = R.__dict__[f"conv{nd}d"](x.astype(np.float64), w.astype(np.float64), **kw)
        g = rng.standard_normal(y.shape).astype(dtype)
        g64, x64, w64 = g.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
        dx = getattr(F, f"conv{nd}d_input")(x.shape, w, g, **kw)
        dw = getattr(F, f"conv{nd}d_weight")(x, w.shape, g, **kw)
        assert dx.dtype == dtype and dw.dtype == dtype
        assert_close(dx, getattr(R, f"conv{nd}d_input")(x.shape, w64, g64, **kw), k=4 * k, case=str(case))
        assert_close(dw, getattr(R, f"conv{nd}d_weight")(x64, w.shape, g64, **kw), k=4 * k, case=str(case))
        # the reference's grad functions agree with its backward
        ref = R.__dict__[f"conv{nd}d_backward"](g64, x64, w64, None, **kw)
        np.testing.assert_allclose(getattr(R, f"conv{nd}d_input")(list(x.shape), w64, g64, **kw), ref[0], atol=1e-12)
        np.testing.assert_allclose(getattr(R, f"conv{nd}d_weight")(x64, list(w.shape), g64, **kw), ref[1], atol=1e-12)


# ----------------------------------------------------------------------------- gradcheck
GRADCHECK = [
    ("conv1d", (1, 2, 4, (6,), (3,), 2, 1, 2, 2, True, "c"), {}),
    ("conv2d", (1, 2, 2, (4, 5), (2, 3), (2, 1), 1, 1, 1, True, "c"), {"algo": "im2col"}),
    ("conv2d", (2, 2, 2, (4, 4), (2, 2), 1, "same", 2, 2, False, "c"), {"algo": "direct"}),
    ("conv2d", (1, 2, 4, (3, 3), (1, 1), 1, 0, 1, 2, True, "c"), {}),
    # 1x1 at batch > 1 (the batch-folded product): panels inside an image read in place and
    # panels crossing images packed (float64 AVX-512 panels are 16 wide; 20 positions per image)
    ("conv2d", (2, 3, 5, (4, 5), (1, 1), 1, 0, 1, 1, True, "c"), {}),
    # the channel-last kernel: forward and grad_input (16 channels, 36 positions)
    ("conv2d", (1, 16, 16, (6, 6), (3, 3), 1, 1, 1, 1, True, "c"), {"algo": "nhwc"}),
    ("conv3d", (1, 2, 2, (3, 3, 4), (2, 2, 2), (1, 1, 2), (1, 0, 1), 1, 1, True, "c"), {}),
]
TGRADCHECK = [
    ("conv_transpose2d", (1, 2, 2, (3, 3), (2, 3), 2, 1, 1, 1, 1, True)),
    ("conv_transpose2d", (1, 4, 2, (2, 3), (2, 2), 1, 0, 1, 2, 2, False)),
    ("conv_transpose1d", (2, 2, 3, (4,), (3,), 2, 1, 1, 1, 1, True)),
    ("conv_transpose3d", (1, 2, 2, (2, 2, 3), (2, 2, 2), 2, (0, 1, 0), 1, 1, 1, True)),
]


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("i", range(len(GRADCHECK) + len(TGRADCHECK)))
def test_gradcheck(module, i):
    rng = np.random.default_rng(50 + i)
    if i < len(GRADCHECK):
        op, case, extra = GRADCHECK[i]
        x, w, kw, _ = _make(case, rng)
        kw.update(extra)
    else:
        op, case = TGRADCHECK[i - len(GRADCHECK)]
        x, w, kw, _ = _tmake(case, rng)
    check_op(module, op, x, w, **kw)


# ----------------------------------------------------------------------------- torch cross-check of the oracle
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reference_matches_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(8)
    t = torch.from_numpy
    for nd, case in [(2, CONV2D[1]), (2, CONV2D[9]), (1, CONV1D[1]), (3, CONV3D[1])]:
        x, w, kw, _ = _make(case, rng)
        x = np.ascontiguousarray(x)
        want = getattr(tf, f"conv{nd}d")(t(x), t(w), None if kw["bias"] is None else t(kw["bias"]), kw["stride"],
                                          kw["padding"], kw["dilation"], kw["groups"]).numpy()
        np.testing.assert_allclose(getattr(R, f"conv{nd}d")(x, w, **kw), want, atol=1e-10)
    for nd, case in [(2, TCONV2D[2]), (2, TCONV2D[3]), (2, TCONV2D[7])]:
        x, w, kw, _ = _tmake(case, rng)
        b = kw["bias"]
        want = tf.conv_transpose2d(t(x), t(w), None if b is None else t(b), kw["stride"], kw["padding"],
                                   kw["output_padding"], kw["groups"], kw["dilation"]).numpy()
        np.testing.assert_allclose(R.conv_transpose2d(x, w, **kw), want, atol=1e-10)


# ----------------------------------------------------------------------------- bad inputs
X = np.zeros((2, 4, 8, 8), np.float32)
Wt = np.zeros((6, 2, 3, 3), np.float32)
BAD = [
    (TypeError, "input", lambda: F.conv2d([[1.0]], Wt)),
    (TypeError, "input", lambda: F.conv2d(X.astype(np.int64), Wt)),
    (TypeError, "weight", lambda: F.conv2d(X, Wt.astype(np.float64), groups=2)),
    (TypeError, "bias", lambda: F.conv2d(X, Wt, np.zeros(6), groups=2)),
    (ValueError, "input", lambda: F.conv2d(X[0, 0], Wt, groups=2)),
    (ValueError, "weight", lambda: F.conv2d(X, Wt[0], groups=2)),
    (ValueError, "input", lambda: F.conv2d(X, Wt)),                                   # 4 != 2 * 1
    (ValueError, "weight", lambda: F.conv2d(X, np.zeros((5, 2, 3, 3), np.float32), groups=2)),
    (ValueError, "bias", lambda: F.conv2d(X, Wt, np.zeros(5, np.float32), groups=2)),
    (ValueError, "bias", lambda: F.conv2d(X, Wt, np.zeros((6, 1), np.float32), groups=2)),
    (ValueError, "stride", lambda: F.conv2d(X, Wt, groups=2, stride=0)),
    (ValueError, "dilation", lambda: F.conv2d(X, Wt, groups=2, dilation=(1, 0))),
    (ValueError, "padding", lambda: F.conv2d(X, Wt, groups=2, padding=-1)),
    (ValueError, "padding", lambda: F.conv2d(X, Wt, groups=2, padding=(1, 2, 3))),
    (ValueError, "padding", lambda: F.conv2d(X, Wt, groups=2, padding="full")),
    (ValueError, "padding", lambda: F.conv2d(X, Wt, groups=2, padding="same", stride=2)),
    (TypeError, "stride", lambda: F.conv2d(X, Wt, groups=2, stride=1.5)),
    (ValueError, "groups", lambda: F.conv2d(X, Wt, groups=0)),
    (ValueError, "algo", lambda: F.conv2d(X, Wt, groups=2, algo="fft")),
    (ValueError, "input", lambda: F.conv2d(X, Wt, groups=2, dilation=4)),             # empty output
    (ValueError, "weight", lambda: F.conv2d(X, np.zeros((6, 2, 0, 3), np.float32), groups=2)),
    (ValueError, "input", lambda: F.conv2d(np.zeros((2, 4, 0, 8), np.float32), Wt, groups=2)),
    (ValueError, "input", lambda: F.conv1d(X, Wt[..., 0], groups=2)),
    (ValueError, "weight", lambda: F.conv3d(X[:, :, None], Wt, groups=2)),
    (ValueError, "grad_output", lambda: F.conv2d_backward(np.zeros((2, 6, 5, 6), np.float32), X, Wt, groups=2)),
    (TypeError, "grad_output", lambda: F.conv2d_backward(np.zeros((2, 6, 6, 6)), X, Wt, groups=2)),
    (ValueError, "input_size", lambda: F.conv2d_input((2, 4, 8), Wt, np.zeros((2, 6, 6, 6), np.float32), groups=2)),
    (ValueError, "grad_output", lambda: F.conv2d_input((2, 4, 8, 8), Wt, np.zeros((2, 6, 6, 5), np.float32), groups=2)),
    (ValueError, "weight_size", lambda: F.conv2d_weight(X, (6, 2, 3), np.zeros((2, 6, 6, 6), np.float32), groups=2)),
    (ValueError, "weight", lambda: F.conv_transpose2d(X, Wt)),                        # dim 0 must be 4
    (ValueError, "groups", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), groups=3)),
    (ValueError, "output_padding", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), stride=2,
                                                              output_padding=2)),
    (ValueError, "input", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), padding=9)),
    (ValueError, "bias", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3), np.float32), np.zeros(2, np.float32),
                                                    groups=2)),
    (TypeError, "weight", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3)))),
]


@pytest.mark.parametrize("exc,name,fn", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_inputs(exc, name, fn):
    with pytest.raises(exc, match=name):
        fn()


def test_native_binding_rejects_bad_buffers():
    import convkern._C as C
    x = np.zeros((1, 2, 1, 5, 5), np.float32)
    w = np.zeros((3, 2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="output"):
        C.conv_forward(x, w, None, np.zeros((1, 4, 1, 3, 3), np.float32), (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    with pytest.raises(ValueError, match="bias"):
        C.conv_forward(x, w, np.zeros(2, np.float32), np.zeros((1, 3, 1, 3, 3), np.float32), (1, 1, 1), (0, 0, 0),
                       (1, 1, 1), 1)
    with pytest.raises(ValueError, match="weight"):
        C.conv_backward_data(np.zeros((1, 3, 1, 3, 3), np.float32), w, np.zeros((1, 4, 1, 5, 5), np.float32),
                             (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
    with pytest.raises(TypeError, match="grad_weight"):
        C.conv_backward_weight(x, np.zeros((1, 3, 1, 3, 3), np.float32), np.zeros(w.shape), None, (1, 1, 1),
                               (0, 0, 0), (1, 1, 1), 1)
    with pytest.raises(ValueError, match="stride"):
        C.conv_forward(x, w, None, np.zeros((1, 3, 1, 3, 3), np.float32), (1, 0, 1), (0, 0, 0), (1, 1, 1), 1)


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_counts(threads):
    """Batch-parallel (N >= threads, uneven chunks) and GEMM-parallel (N < threads) paths."""
    import convkern
    rng = np.random.default_rng(9)
    old = convkern.get_num_threads()
    convkern.set_num_threads(threads)
    try:
        for N in (1, 2, 5):
            x = rng.standard_normal((N, 4, 9, 10))
            w = rng.standard_normal((6, 2, 3, 3))
            b = rng.standard_normal(6)
            kw = dict(stride=(1, 2), padding=1, dilation=(2, 1), groups=2)
            for algo in ("im2col", "direct"):
                np.testing.assert_allclose(F.conv2d(x, w, b, algo=algo, **kw), R.conv2d(x, w, b, **kw), atol=1e-12)
            y = R.conv2d(x, w, b, **kw)
            g = rng.standard_normal(y.shape)
            for a, e in zip(F.conv2d_backward(g, x, w, b, **kw), R.conv2d_backward(g, x, w, b, **kw)):
                np.testing.assert_allclose(a, e, atol=1e-12)
            w1 = rng.standard_normal((8, 4, 1, 1))
            g1 = rng.standard_normal((N, 8, 9, 10))
            for a, e in zip(F.conv2d_backward(g1, x, w1, b[:1].repeat(8)), R.conv2d_backward(g1, x, w1, b[:1].repeat(8))):
                np.testing.assert_allclose(a, e, atol=1e-12)
    finally:
        convkern.set_num_threads(old)


# ----------------------------------------------------------------------------- implicit im2col
# (N, C, K, spatial, kernel, stride, padding, dilation, groups): outputs of a few hundred
# positions at batch 1, so the weight gradient splits the positions among threads; narrow
# (Q < one vector) and wide rows, strides 1-4 (1, 4 or 16 phases), dilation, asymmetric pads.
IMPLICIT = [
    (1, 3, 14, (29, 31), (7, 7), 2, 3, 1, 1),       # a stem: 4 phases
    (1, 3, 13, (47, 45), (11, 11), 4, 2, 1, 1),     # AlexNet-like: 16 phases
    (1, 17, 5, (14, 14), (5, 5), 1, 2, 1, 1),       # narrow rows (14 < 16 lanes)
    (1, 4, 6, (9, 40), (3, 3), 1, (1, 0), 2, 1),    # wide rows, dilation 2, asymmetric pad
    (1, 6, 4, (21, 19), (3, 2), (2, 3), (1, 2), (1, 2), 2),  # mixed strides, groups
    (2, 5, 7, (18, 18), (3, 3), 1, 1, 1, 1),        # batch 2
    (1, 2, 3, (40, 3), (3, 3), 1, 1, 1, 1),         # 3-wide rows: many runs per vector
    (3, 5, 7, (7, 7), (3, 3), 1, 1, 1, 1),          # small planes: the batch folded into the columns
    (4, 4, 6, (13, 11), (3, 3), 2, 1, 1, 1),        # ... strided, runs crossing images
    (1, 6, 20, (15, 70), (1, 1), 2, 0, 1, 1),       # strided 1x1 (a downsampling shortcut): gathered
    (3, 5, 7, (13, 13), (1, 1), 2, 0, 1, 1),        # ... small planes, batch folded
    (2, 4, 6, (9, 10), (1, 1), (2, 3), 1, 1, 2),    # ... padded, mixed strides, groups
    # batch 1 channel-last products (output positions as micro-tile rows, channels as lanes):
    (1, 9, 62, (7, 7), (3, 3), 1, 1, 1, 1),         # 49 positions, 62 channels (a lane tail)
    (1, 5, 64, (14, 14), (3, 3), 2, 1, 1, 1),       # ... strided
    (1, 70, 64, (5, 5), (3, 3), 1, 1, 1, 1),        # ... 630-deep reduction (one slice, y written by the tiles)
    (1, 230, 40, (5, 3), (3, 3), 1, 1, 1, 1),       # ... 2070 deep: 256-deep slices, then transpose_epilogue
    (1, 7, 64, (9, 9), (2, 2), 2, 0, 1, 1),         # ... 2x2 stride 2 (16 positions)
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_implicit_forward_and_weight_gradient(isa, dtype, threads):
    """The phase-split implicit im2col (forward and weight gradient, positions split among
    threads), and the batch folded into the columns of small planes (forward and input
    gradient), against the NumPy reference."""
    import convkern

    rng = np.random.default_rng(11)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        for N, C, K, sp, ks, stride, padding, dilation, groups in IMPLICIT:
            kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
            x = rng.standard_normal((N, C) + sp)
            w = rng.standard_normal((K, C // groups) + ks)
            y64 = R.conv2d(x, w, **kw)
            g = rng.standard_normal(y64.shape)
            k = (C // groups) * _prod(ks)
            y = F.conv2d(x.astype(dtype), w.astype(dtype), algo="im2col", **kw)
            assert_close(y, y64, k=k, case=str((sp, ks, stride)))
            dw = F.conv2d_weight(x.astype(dtype), w.shape, g.astype(dtype), **kw)
            assert_close(dw, R.conv2d_weight(x, w.shape, g, **kw), k=4 * y64[0, 0].size,
                         case=str((sp, ks, stride)))
            dx = F.conv2d_input(x.shape, w.astype(dtype), g.astype(dtype), **kw)
            assert_close(dx, R.conv2d_input(x.shape, w, g, **kw), k=4 * K * _prod(ks), case=str((sp, ks, stride)))
    finally:
        convkern.set_num_threads(old)


# ----------------------------------------------------------------------------- packed weights, fused relu
# (N, C, K, spatial, kernel, stride, padding, dilation, groups): every forward path of the im2col
# kernel (pointwise per image and batch-folded, implicit per image and batch-folded, explicit
# im2col, the transposed product, one output channel) with bias, tails of the 12-row panels
# (K % 12 != 0), KC slices (C*kernel > 256), groups, 1-d and 3-d.
PACKED = [
    (1, 40, 30, (7, 7), (1, 1), 1, 0, 1, 1),          # pointwise, one image
    (3, 40, 30, (7, 7), (1, 1), 1, 0, 1, 1),          # pointwise, batch folded into the columns
    (1, 300, 25, (9, 11), (3, 3), 1, 1, 1, 1),        # implicit, 2700-deep reduction (11 KC slices)
    (4, 20, 13, (7, 7), (3, 3), 1, 1, 1, 1),          # implicit, batch folded
    (2, 6, 26, (13, 11), (3, 2), (2, 3), (1, 2), (1, 2), 2),  # mixed strides, groups
    (2, 8, 24, (5, 6), (3, 3), 1, 0, 1, 4),           # 6 outputs per group
    (1, 5, 1, (13, 13), (3, 3), 1, 1, 1, 1),          # one output channel (a gemv)
    (1, 64, 200, (2, 2), (1, 1), 1, 0, 1, 1),         # 4 outputs: the transposed product
    (1, 6, 20, (9, 40), (1, 1), 2, 0, 1, 1),          # strided 1x1: gathered, then pointwise
    (3, 6, 20, (9, 9), (1, 1), 2, 0, 1, 1),           # ... batch folded
    (2, 3, 16, (9,), (4,), 2, 1, 1, 1),               # 1-d
    (1, 4, 14, (4, 5, 6), (2, 3, 3), 1, 1, 1, 2),     # 3-d, groups
    (1, 40, 64, (7, 7), (3, 3), 1, 1, 1, 1),          # channel-last product (batch 1, small plane)
    (1, 33, 94, (7, 7), (3, 3), 1, 1, 1, 1),          # ... 94 channels (a lane tail)
]


def _packed_case(case, dtype, rng):
    N, C, K, sp, ks, stride, padding, dilation, groups = case
    x = rng.standard_normal((N, C) + sp).astype(dtype)
    w = rng.standard_normal((K, C // groups) + ks).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(sp)]
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if len(sp) == 2:
        kw["algo"] = "im2col"
    return x, w, b, fn, kw


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_weight_and_fused_relu(isa, dtype, threads):
    """A PackedConvWeight gives bit for bit the plain weight's result on every forward path
    (im2col + GEMM, and the channel-last implicit GEMM for 2-d one-group layers), and the relu
    and residual fused into the epilogue the result of separate passes (NaN kept); both against
    the float64 NumPy reference."""
    import convkern
    from convkern._ops.conv import _conv

    rng = np.random.default_rng(5)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        for case in PACKED:
            x, w, b, fn, kw = _packed_case(case, dtype, rng)
            if case[1] == 300:
                x[0, 0, 4, 5] = np.nan  # NaN through the fused relu
            pw = F.PackedConvWeight(w, kw["groups"])
            nd = len(case[3])
            geo = {k: v for k, v in kw.items() if k != "algo"}
            algos = ["im2col", "nhwc"] if nd == 2 and kw["groups"] == 1 else ["im2col"]
            for algo in algos:
                msg = f"{case} {algo}"
                if nd == 2:
                    kw["algo"] = algo
                plain = fn(x, w, b, **kw)
                np.testing.assert_array_equal(fn(x, pw, b, **kw), plain, err_msg=msg)

                def fused(weight, **ex):
                    return _conv(nd, x, weight, b, geo["stride"], geo["padding"], geo["dilation"], geo["groups"],
                                 algo, **ex)

                relu = np.maximum(plain, 0, where=~np.isnan(plain), out=plain.copy())
                np.testing.assert_array_equal(fused(pw, relu=True), relu, err_msg=msg)
                np.testing.assert_array_equal(fused(w, relu=True), relu, err_msg=msg)
                # the residual join: + r in the epilogue, with and without the relu
                r = rng.standard_normal(plain.shape).astype(dtype)
                joined = plain + r
                np.testing.assert_array_equal(fused(pw, residual=r), joined, err_msg=msg)
                np.testing.assert_array_equal(fused(w, relu=True, residual=r),
                                              np.maximum(joined, 0, where=~np.isnan(joined), out=joined.copy()),
                                              err_msg=msg)
                ref = getattr(R, fn.__name__)(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                              **geo)
                ok = ~np.isnan(ref)
                assert_close(plain[ok], ref[ok], k=(case[1] // case[8]) * _prod(case[4]), case=msg)
                assert np.isnan(plain).sum() == np.isnan(ref).sum()
    finally:
        convkern.set_num_threads(old)


def test_channel_last_packed_weight():
    """Batch-1 small planes run channel-last and read the weight's channel-last layout, packed at
    the first such call (a zeroed one leaves only the bias; another ISA's is ignored); batch 2,
    groups and strided 1x1 kernels do not; the layout exists for one group only."""
    import convkern
    from convkern import _C

    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 40, 1, 7, 7)).astype(np.float32)
    w = rng.standard_normal((64, 40, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    y = np.empty((1, 64, 1, 7, 7), np.float32)
    geo = ((1, 1, 1), (0, 1, 1), (1, 1, 1), 1)
    pw = F.PackedConvWeight(w[:, :, 0], 1)
    assert pw.data_cl is None
    want = F.conv2d(x[:, :, 0], w[:, :, 0], b, padding=1, algo="im2col")
    np.testing.assert_array_equal(F.conv2d(x[:, :, 0], pw, b, padding=1, algo="im2col"), want)
    assert pw.data_cl is not None and pw.data_cl.size >= w.size
    for name in convkern.available_isas():
        with convkern.isa(name):
            cl = _C.conv_channel_last(x, w, y, *geo)
            n, isa = _C.conv_packed_size(w, 1, True)
            plain = np.empty_like(y)
            _C.conv_forward(x, w, b, plain, *geo)
            _C.conv_forward(x, w, b, y, *geo, False, False, None, -1, None, np.zeros(n, np.float32), isa)
            if cl:  # read: only the bias is left
                np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None, None], y.shape))
            else:
                np.testing.assert_array_equal(y, plain)
            _C.conv_forward(x, w, b, y, *geo, False, False, None, -1, None, np.zeros(n, np.float32), isa + 1)
            np.testing.assert_array_equal(y, plain)  # another ISA's layout: not read
            packed = np.empty(n, np.float32)
            _C.conv_pack_weight(w, packed, 1, True)
            _C.conv_forward(x, w, b, y, *geo, False, False, None, -1, None, packed, isa)
            np.testing.assert_array_equal(y, plain)
    with convkern.isa(convkern.available_isas()[-1]):
        assert _C.conv_channel_last(x, w, y, *geo)  # 49 positions, 64 channels
        x2, y2 = np.concatenate([x, x]), np.concatenate([y, y])
        assert not _C.conv_channel_last(x2, w, y2, *geo)  # batch 2: the batch folds into the columns
        assert not _C.conv_channel_last(x, w[:, :20].copy(), y, *geo[:3], 2)  # groups
        w1 = w[:, :, :, :1, :1].copy()
        assert _C.conv_channel_last(x, w1, y, geo[0], (0, 0, 0), geo[2], 1)  # 1x1: x read in place as A^T
        y4 = np.empty((1, 64, 1, 4, 4), np.float32)  # a strided 1x1 gathers its columns: not channel-last
        assert not _C.conv_channel_last(x, w1, y4, (1, 2, 2), (0, 0, 0), geo[2], 1)
    with pytest.raises(ValueError, match="groups"):
        _C.conv_packed_size(w[:, :20].copy(), 2, True)
    with pytest.raises(ValueError, match="packed"):
        _C.conv_pack_weight(w, np.zeros(3, np.float32), 1, True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, H, W, K", [(40, 7, 7, 64), (33, 5, 9, 96), (1, 7, 7, 64), (64, 14, 14, 17),
                                        (300, 3, 1, 29), (2100, 3, 5, 40)])
def test_pointwise_channel_last(dtype, C, H, W, K):
    """Batch-1 1x1 layers on small planes run channel-last (Y^T = X^T W^T, x read in place as the
    product's A): plain and packed weights, bias, residual and relu, under every ISA, against
    the reference."""
    import convkern
    from convkern import _C

    rng = np.random.default_rng(C * 1000 + K)
    x = rng.standard_normal((1, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 1, 1)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    res = rng.standard_normal((1, K, H, W)).astype(dtype)
    ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64))
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(C)) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for name in convkern.available_isas():
        with convkern.isa(name):
            cl = _C.conv_channel_last(x[:, :, None], w[:, :, None], np.empty((1, K, 1, H, W), dtype),
                                      (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)
            pk = F.PackedConvWeight(w)
            for wt in (w, pk, pk):  # the packed one twice: its channel-last layout made, then reused
                np.testing.assert_allclose(F.conv2d(x, wt, b), ref, **tol)
                y = convops.conv_nd(2, x, wt, b, relu=True, residual=res)
                np.testing.assert_allclose(y, np.maximum(ref + res, 0), **tol)
            if cl:
                assert pk.data_cl is not None


def test_packed_weight_semantics():
    """The packed copy is the weight at packing time; another ISA, dtype or groups falls back or
    is refused; the backward functions take it as the plain weight."""
    import convkern

    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 6, 9, 9)).astype(np.float32)
    w = rng.standard_normal((14, 3, 3, 3)).astype(np.float32)
    pw = F.PackedConvWeight(w, groups=2)
    assert pw.shape == w.shape and pw.dtype == w.dtype and pw.packed_size >= w.size and "groups=2" in repr(pw)
    want = F.conv2d(x, w, padding=1, groups=2, algo="im2col")
    w[:] = 0  # not seen: packed (and kept) at construction
    np.testing.assert_array_equal(F.conv2d(x, pw, padding=1, groups=2, algo="im2col"), want)
    np.testing.assert_array_equal(F.conv2d(x, pw, padding=1, groups=2), F.conv2d(x, pw.weight, padding=1, groups=2))
    for name in convkern.available_isas():  # packed under the best ISA, used under any
        with convkern.isa(name):
            assert_close(F.conv2d(x, pw, padding=1, groups=2, algo="im2col"), want, k=27)
    from convkern._ops.conv import conv_nd

    with pytest.raises(ValueError, match="residual"):
        conv_nd(2, x, pw, padding=1, groups=2, residual=np.zeros((2, 14, 9, 8), np.float32))
    with pytest.raises(TypeError, match="residual"):
        conv_nd(2, x, pw, padding=1, groups=2, residual=np.zeros((2, 14, 9, 9)))
    r = rng.standard_normal((14, 9, 9)).astype(np.float32)  # unbatched input, unbatched residual
    np.testing.assert_array_equal(conv_nd(2, x[1], pw, padding=1, groups=2, residual=r), want[1] + r)
    # float64 input with a float32 packed weight: the usual dtype error, naming the weight
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(x.astype(np.float64), pw, padding=1, groups=2)
    with pytest.raises(ValueError, match="groups=2"):
        F.conv2d(x, pw, padding=1, groups=1)
    with pytest.raises(ValueError, match="weight"):
        F.PackedConvWeight(np.ones((3, 3), np.float32))
    with pytest.raises(TypeError, match="weight"):
        F.PackedConvWeight([[1.0]])
    g = rng.standard_normal(want.shape).astype(np.float32)
    got = F.conv2d_backward(g, x, pw, None, padding=1, groups=2)
    ref = F.conv2d_backward(g, x, pw.weight, None, padding=1, groups=2)
    for a, r in zip(got[:2], ref[:2]):
        np.testing.assert_array_equal(a, r)


def test_packed_weight_is_read_under_its_isa_only():
    """The native forward reads the packed array (a zeroed one leaves only the bias) when it was
    packed under the active ISA, and ignores it under another."""
    import convkern
    from convkern import _C

    rng = np.random.default_rng(7)
    # no ISA computes this one transposed or channel-last (64 positions fill whole NR-wide panels)
    x = rng.standard_normal((1, 8, 1, 8, 8)).astype(np.float32)
    w = rng.standard_normal((24, 8, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    geo = ((1, 1, 1), (0, 1, 1), (1, 1, 1), 1)
    for name in convkern.available_isas():
        with convkern.isa(name):
            n, isa = _C.conv_packed_size(w, 1)
            y = np.empty((1, 24, 1, 8, 8), np.float32)
            _C.conv_forward(x, w, b, y, *geo, False, False, np.zeros(n, np.float32), isa)
            np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None, None], y.shape))
            plain = np.empty_like(y)
            _C.conv_forward(x, w, b, plain, *geo)
            _C.conv_forward(x, w, b, y, *geo, False, False, np.zeros(n, np.float32), isa + 1)
            np.testing.assert_array_equal(y, plain)
            with pytest.raises(ValueError, match="packed"):
                _C.conv_pack_weight(w, np.zeros(n + 1, np.float32), 1)
