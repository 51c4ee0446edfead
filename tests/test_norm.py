"""Normalization: batch_norm, local_response_norm, layer_norm. Native kernels vs the NumPy
reference over grids of shapes/options on every ISA and both dtypes; running statistics
(in place, like the reference and torch); gradchecks; torch cross-check; bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close, check_against_reference

import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]


def _make(shape, layout, rng, loc=0.0):
    """float64 data in a layout: 'c' C-contiguous, 't' a view with the last two axes swapped
    in memory, 'r' a reversed (negative stride) view of the first axis."""
    data = rng.standard_normal(shape) + loc
    if layout == "t" and len(shape) >= 2:
        return np.ascontiguousarray(np.swapaxes(data, -1, -2)).swapaxes(-1, -2)
    if layout == "r":
        return np.ascontiguousarray(data[::-1])[::-1]
    return data


# ---------------------------------------------------------------- batch_norm grid

BN_SHAPES = [(2, 3), (5, 1), (1, 3), (1, 3, 7), (2, 1, 5), (3, 4, 5, 6), (1, 2, 3, 5, 7), (2, 3, 1, 1), (4, 5, 9),
             (2, 3, 17, 19), (4, 3, 40, 37), (8, 1, 60, 70)]  # the last two run in parallel (one channel: split planes)


def _bn_cases():
    cases = []
    for i, shape in enumerate(BN_SHAPES):
        layout = "ctr"[i % 3]
        M = int(np.prod(shape)) // shape[1]
        for training in (False, True):
            if training and M == 1:
                continue
            for affine in ("wb", "w", "b", ""):
                for stats in ((True, False) if training else (True,)):
                    cases.append((shape, layout, training, affine, stats))
    return cases


BN_CASES = _bn_cases()


def _bn_args(shape, affine, stats, rng, layout="c"):
    C = shape[1]
    x = _make(shape, layout, rng)
    rm = rng.standard_normal(C) * 0.5 if stats else None
    rv = rng.uniform(0.5, 2.0, C) if stats else None
    w = rng.standard_normal(C) if "w" in affine else None
    b = rng.standard_normal(C) if "b" in affine else None
    return x, rm, rv, w, b


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,layout,training,affine,stats", BN_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'train' if c[2] else 'eval'}-{c[3] or 'noaff'}-{'rs' if c[4] else 'nors'}"
                              for c in BN_CASES])
def test_batch_norm_grid(isa, dtype, shape, layout, training, affine, stats, rng):
    x, rm, rv, w, b = _bn_args(shape, affine, stats, rng, layout)
    M = x.size // shape[1]
    check_against_reference("batch_norm", (x, rm, rv), dict(weight=w, bias=b, training=training, momentum=0.3),
                            dtype=dtype, k=M, case=f"{shape} {layout} training={training} {affine} stats={stats}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_batch_norm_running_stats(isa, dtype, rng):
    """In-place update equals the reference's, several steps; backward leaves them alone;
    eval mode reads them; non-contiguous running stats are updated too."""
    shape = (4, 3, 5, 7)
    C = shape[1]
    rm0 = rng.standard_normal(C).astype(dtype)
    rv0 = rng.uniform(0.5, 2, C).astype(dtype)
    rm_f, rv_f, rm_r, rv_r = rm0.copy(), rv0.copy(), rm0.astype(np.float64), rv0.astype(np.float64)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        F.batch_norm(x, rm_f, rv_f, w, b, training=True, momentum=0.25, eps=1e-3)
        R.batch_norm(x.astype(np.float64), rm_r, rv_r, w.astype(np.float64), b.astype(np.float64), training=True,
                     momentum=0.25, eps=1e-3)
        assert rm_f.dtype == dtype and rv_f.dtype == dtype
        assert_close(rm_f, rm_r, k=x.size // C, name="running_mean", case=f"step {step}")
        assert_close(rv_f, rv_r, k=x.size // C, name="running_var", case=f"step {step}")
    before = (rm_f.copy(), rv_f.copy())
    F.batch_norm_backward(np.ones(shape, dtype), x, rm_f, rv_f, w, b, training=True)
    F.batch_norm_backward(np.ones(shape, dtype), x, rm_f, rv_f, w, b, training=False)
    F.batch_norm(x, rm_f, rv_f, w, b, training=False)
    np.testing.assert_array_equal(rm_f, before[0])
    np.testing.assert_array_equal(rv_f, before[1])
    # strided (non-contiguous) running stats
    big_m = np.zeros(2 * C, dtype)
    big_v = np.ones(2 * C, dtype)
    F.batch_norm(x, big_m[::2], big_v[::2], training=True, momentum=0.5)
    ref_m, ref_v = np.zeros(C), np.ones(C)
    R.batch_norm(x.astype(np.float64), ref_m, ref_v, training=True, momentum=0.5)
    assert_close(big_m[::2], ref_m, k=x.size // C, name="strided running_mean")
    assert_close(big_v[::2], ref_v, k=x.size // C, name="strided running_var")
    assert np.all(big_m[1::2] == 0) and np.all(big_v[1::2] == 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_batch_norm_large_mean(isa, dtype, rng):
    """Two-pass statistics: a mean far larger than the spread costs no accuracy (1e4 in float32;
    in float64 1e2, as rounding the mean itself already costs eps*|mean| there)."""
    x = rng.standard_normal((8, 3, 33)) + (1e4 if dtype == np.float32 else 1e2)
    rm, rv = np.zeros(3), np.ones(3)
    check_against_reference("batch_norm", (x, rm, rv), dict(training=True), dtype=dtype, k=8 * 33)
    check_against_reference("layer_norm", (x, 33), {}, dtype=dtype, k=33)


# ---------------------------------------------------------------- local_response_norm grid

LRN_SHAPES = [(2, 1, 5), (1, 3, 7), (2, 5, 4, 3), (1, 8, 3, 5), (2, 4, 2, 3, 3), (1, 13, 11), (2, 6, 13, 23), (2, 8, 35, 31)]
LRN_PARAMS = [dict(), dict(alpha=0.5, beta=0.75, k=2.0), dict(alpha=0.3, beta=0.6, k=1.5),
              dict(alpha=1.0, beta=1.0, k=1.0), dict(alpha=0.2, beta=0.5, k=0.5)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("size", range(1, 8))
def test_lrn_grid(isa, dtype, size, rng):
    for i, shape in enumerate(LRN_SHAPES):
        kw = LRN_PARAMS[(i + size) % len(LRN_PARAMS)]
        x = _make(shape, "ctr"[i % 3], rng)
        check_against_reference("local_response_norm", (x, size), kw, dtype=dtype, k=size,
                                case=f"{shape} size={size} {kw}")


# ---------------------------------------------------------------- layer_norm grid

LN_CASES = [((4, 7), (7,)), ((7,), 7), ((1, 1), [1]), ((2, 3, 5), (3, 5)), ((2, 3, 4, 5), (3, 4, 5)),
            ((3, 300), 300), ((2, 5, 600), (600,)), ((1, 3, 2, 9), (2, 9)), ((5, 1, 3), (1, 3)),
            ((300, 70), 70)]  # parallel, rows split for the weight/bias sums


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("affine", ["wb", "w", "b", ""])
def test_layer_norm_grid(isa, dtype, affine, rng):
    for i, (shape, ns) in enumerate(LN_CASES):
        nshape = (ns,) if isinstance(ns, int) else tuple(ns)
        x = _make(shape, "ctr"[i % 3], rng)
        w = rng.standard_normal(nshape) if "w" in affine else None
        b = rng.standard_normal(nshape) if "b" in affine else None
        D = int(np.prod(nshape))
        check_against_reference("layer_norm", (x, ns), dict(weight=w, bias=b, eps=1e-5 if i % 2 else 1e-3),
                                dtype=dtype, k=max(D, x.size // D), case=f"{shape} {ns} {affine}")


# ---------------------------------------------------------------- gradcheck (float64)

def _gc_cases():
    r = np.random.default_rng(7)
    C = 3
    x3 = r.standard_normal((2, C, 4))
    x4 = r.standard_normal((2, C, 2, 2))
    w, b = r.standard_normal(C), r.standard_normal(C)
    rm, rv = r.standard_normal(C), r.uniform(0.5, 2, C)
    return [
        ("batch_norm", (x3, rm.copy(), rv.copy()), dict(weight=w, bias=b, training=True)),
        ("batch_norm", (x4, None, None), dict(training=True, eps=1e-3)),
        ("batch_norm", (x3, rm, rv), dict(weight=w, bias=b, training=False)),
        ("batch_norm", (r.standard_normal((3, 2)), None, None), dict(weight=w[:2], training=True)),
        ("local_response_norm", (r.standard_normal((2, 5, 3)), 3), dict(alpha=0.5, beta=0.75, k=1.5)),
        ("local_response_norm", (r.standard_normal((1, 3, 2, 2)), 6), dict(alpha=0.8, beta=0.6, k=1.0)),
        ("local_response_norm", (r.standard_normal((1, 6, 2)), 2), dict(alpha=0.4, beta=1.3, k=0.7)),
        ("layer_norm", (r.standard_normal((2, 3, 4)), (3, 4)), dict(weight=r.standard_normal((3, 4)),
                                                                    bias=r.standard_normal((3, 4)))),
        ("layer_norm", (r.standard_normal((3, 5)), 5), dict(eps=1e-3)),
    ]


GC = _gc_cases()


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("op,args,kw", GC, ids=[f"{g[0]}{i}" for i, g in enumerate(GC)])
def test_gradcheck(module, op, args, kw):
    args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    assert check_op(module, op, *args, **kw)


# ---------------------------------------------------------------- torch

def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    T = torch.from_numpy
    for dtype in DTYPES:
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
        # batch norm, running stats over several steps, gradients
        for shape in [(4, 3), (2, 3, 7), (2, 3, 4, 5), (2, 3, 2, 3, 4)]:
            C = shape[1]
            w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
            rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
            trm, trv = T(rm.copy()), T(rv.copy())
            for training in (True, True, False):
                x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
                g = rng.standard_normal(shape).astype(dtype)
                xt, wt, bt = T(x).requires_grad_(), T(w).requires_grad_(), T(b).requires_grad_()
                yt = TF.batch_norm(xt, trm, trv, wt, bt, training=training, momentum=0.2, eps=1e-4)
                yt.backward(T(g))
                gx, gw, gb = F.batch_norm_backward(g, x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4)
                y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2, eps=1e-4)
                np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
                np.testing.assert_allclose(rm, trm.numpy(), **tol)
                np.testing.assert_allclose(rv, trv.numpy(), **tol)
                for a, e in [(gx, xt.grad), (gw, wt.grad), (gb, bt.grad)]:
                    np.testing.assert_allclose(a, e.numpy(), **tol)
        # LRN
        for shape, size in [((2, 5, 7), 3), ((2, 4, 3, 5), 6), ((1, 7, 2, 3, 2), 2), ((2, 3, 130), 5)]:
            x = rng.standard_normal(shape).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            xt = T(x).requires_grad_()
            yt = TF.local_response_norm(xt, size, alpha=0.3, beta=0.7, k=1.2)
            yt.backward(T(g))
            np.testing.assert_allclose(F.local_response_norm(x, size, 0.3, 0.7, 1.2), yt.detach().numpy(), **tol)
            np.testing.assert_allclose(F.local_response_norm_backward(g, x, size, 0.3, 0.7, 1.2)[0], xt.grad.numpy(),
                                       **tol)
        # layer norm
        x = rng.standard_normal((3, 4, 5)).astype(dtype)
        g = rng.standard_normal((3, 4, 5)).astype(dtype)
        w, b = rng.standard_normal((4, 5)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
        xt, wt, bt = T(x).requires_grad_(), T(w).requires_grad_(), T(b).requires_grad_()
        yt = TF.layer_norm(xt, (4, 5), wt, bt, 1e-4)
        yt.backward(T(g))
        np.testing.assert_allclose(F.layer_norm(x, (4, 5), w, b, 1e-4), yt.detach().numpy(), **tol)
        for a, e in zip(F.layer_norm_backward(g, x, (4, 5), w, b, 1e-4), (xt.grad, wt.grad, bt.grad)):
            np.testing.assert_allclose(a, e.numpy(), **tol)


# ---------------------------------------------------------------- bad inputs

X = np.zeros((2, 3, 4))
RM, RV = np.zeros(3), np.ones(3)
BAD = [
    (lambda: F.batch_norm(X, np.zeros(4), RV), ValueError, "running_mean"),
    (lambda: F.batch_norm(X, RM, np.ones((3, 1))), ValueError, "running_var"),
    (lambda: F.batch_norm(X, RM, RV.astype(np.float32)), TypeError, "running_var"),
    (lambda: F.batch_norm(X, [0.0, 0, 0], RV), TypeError, "running_mean"),
    (lambda: F.batch_norm(X, None, RV), ValueError, "running_mean"),
    (lambda: F.batch_norm(X, RM, None, training=False), ValueError, "running_var"),
    (lambda: F.batch_norm(X, RM, RV, weight=np.ones(2)), ValueError, "weight"),
    (lambda: F.batch_norm(X, RM, RV, bias=np.ones((3, 1))), ValueError, "bias"),
    (lambda: F.batch_norm(X, RM, RV, weight=np.ones(3, np.float32)), TypeError, "weight"),
    (lambda: F.batch_norm(X, RM, RV, training=1), TypeError, "training"),
    (lambda: F.batch_norm(X, RM, RV, momentum="x"), TypeError, "momentum"),
    (lambda: F.batch_norm(X, RM, RV, eps=-1.0), ValueError, "eps"),
    (lambda: F.batch_norm(np.zeros(3), RM, RV), ValueError, "input"),
    (lambda: F.batch_norm(np.zeros((2, 3), np.int64), RM, RV), TypeError, "input"),
    (lambda: F.batch_norm(np.zeros((0, 3)), None, None, training=True), ValueError, "input"),
    (lambda: F.batch_norm(np.zeros((1, 3)), None, None, training=True), ValueError, "more than 1 value per channel"),
    (lambda: F.batch_norm(np.zeros((1, 3, 1, 1)), RM.copy(), RV.copy(), training=True), ValueError, "input"),
    (lambda: F.batch_norm_backward(np.zeros((2, 3)), X, RM, RV), ValueError, "grad_output"),
    (lambda: F.batch_norm_backward(np.zeros((2, 3, 4), np.float32), X, RM, RV), TypeError, "grad_output"),
    (lambda: F.local_response_norm(X, 0), ValueError, "size"),
    (lambda: F.local_response_norm(X, 2.0), TypeError, "size"),
    (lambda: F.local_response_norm(np.zeros((2, 3)), 2), ValueError, "input"),
    (lambda: F.local_response_norm(X, 2, alpha=None), TypeError, "alpha"),
    (lambda: F.local_response_norm(X, 2, beta=float("nan")), ValueError, "beta"),
    (lambda: F.local_response_norm_backward(np.zeros((2, 3, 5)), X, 2), ValueError, "grad_output"),
    (lambda: F.layer_norm(X, (3, 5)), ValueError, "normalized_shape"),
    (lambda: F.layer_norm(X, (2, 2, 3, 4)), ValueError, "normalized_shape"),
    (lambda: F.layer_norm(X, ()), ValueError, "normalized_shape"),
    (lambda: F.layer_norm(X, 4.0), TypeError, "normalized_shape"),
    (lambda: F.layer_norm(X, 4, weight=np.ones(3)), ValueError, "weight"),
    (lambda: F.layer_norm(X, (3, 4), bias=np.ones(4)), ValueError, "bias"),
    (lambda: F.layer_norm(X, 4, eps=float("inf")), ValueError, "eps"),
    (lambda: F.layer_norm_backward(np.zeros((2, 3)), X, 4), ValueError, "grad_output"),
]


@pytest.mark.parametrize("fn,exc,match", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_inputs(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_readonly_running_stats():
    rm = np.zeros(3)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean"):
        F.batch_norm(X, rm, RV.copy(), training=True)
    F.batch_norm(X, rm, RV, training=False)  # eval only reads them


def test_native_binding_checks():
    from convkern import _C
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="output"):
        _C.batch_norm_forward(x, np.zeros(5), None, None, RM, RV, False, 0.1, 1e-5)
    with pytest.raises(ValueError, match="running_mean"):
        _C.batch_norm_forward(x, np.zeros_like(x), None, None, None, RV, False, 0.1, 1e-5)
    with pytest.raises(ValueError, match="weight"):
        _C.batch_norm_backward(x, x, np.ones(4), RM, RV, np.zeros_like(x), None, None, False, 1e-5)
    with pytest.raises(ValueError, match="size"):
        _C.local_response_norm_forward(x, np.zeros_like(x), 0, 1e-4, 0.75, 1.0)
    with pytest.raises(ValueError, match="normalized_shape"):
        _C.layer_norm_forward(x, np.zeros_like(x), None, None, 5, 1e-5)
    with pytest.raises(TypeError, match="grad_input"):
        _C.layer_norm_backward(x, x, None, np.zeros(24, np.float32), None, None, 4, 1e-5)
