"""Pooling: native kernels vs the NumPy reference over a grid of shapes and parameters,
on every ISA and both dtypes; gradchecks; NaN/inf semantics; torch cross-check (when
torch is installed); bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close, check_against_reference

import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]


def _make(shape, layout, rng, ties=False):
    """A float64 array of `shape` in a given memory layout: 'c' C-contiguous, 't' transposed
    view (H and W axes swapped in memory), 'p' channels-last view."""
    if ties:
        data = rng.integers(0, 3, size=shape).astype(np.float64)
    else:
        data = rng.standard_normal(shape)
    if layout == "t":
        return np.ascontiguousarray(np.swapaxes(data, -1, -2)).swapaxes(-1, -2)
    if layout == "p" and len(shape) == 4:
        return np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return data


def _window_cases(seed, dilation):
    """(shape, kwargs, layout) for max (dilation=True) or avg pooling."""
    rng = np.random.default_rng(seed)
    cases = [
        # small, odd, degenerate
        ((1, 1, 1, 1), dict(kernel_size=1), "c"),
        ((2, 3, 5, 7), dict(kernel_size=2), "c"),
        ((1, 2, 1, 9), dict(kernel_size=(1, 3), stride=1, padding=(0, 1)), "c"),
        ((2, 1, 9, 1), dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)), "t"),
        ((1, 1, 3, 3), dict(kernel_size=3), "c"),                     # 1x1 output
        ((1, 1, 2, 2), dict(kernel_size=5, padding=2, stride=3), "c"),  # kernel larger than input
        ((3, 5), dict(kernel_size=2), "c"),                           # placeholder replaced below
        # ResNet-like and vector paths (wide rows)
        ((2, 3, 19, 37), dict(kernel_size=3, stride=2, padding=1), "c"),
        ((1, 2, 13, 64), dict(kernel_size=2, stride=2), "c"),
        ((1, 2, 11, 45), dict(kernel_size=3, stride=1, padding=1), "t"),
        ((2, 2, 9, 70), dict(kernel_size=(2, 5), stride=(1, 3), padding=(1, 2)), "p"),
        ((1, 3, 7, 33), dict(kernel_size=(3, 4), stride=(2, 2), padding=(0, 2), ceil_mode=True), "c"),
        ((1, 1, 16, 53), dict(kernel_size=4, stride=None, padding=2, ceil_mode=True), "c"),
    ]
    cases[6] = ((3, 5, 6), dict(kernel_size=2, stride=(1, 2)), "c")  # unbatched (C, H, W)
    if dilation:
        cases += [
            ((2, 2, 11, 41), dict(kernel_size=3, stride=1, padding=1, dilation=2), "c"),
            ((1, 2, 12, 50), dict(kernel_size=(2, 3), stride=2, padding=1, dilation=(3, 2), ceil_mode=True), "t"),
            ((1, 1, 4, 4), dict(kernel_size=2, stride=1, padding=1, dilation=5), "c"),  # empty window
            ((1, 2, 6, 4), dict(kernel_size=2, stride=1, padding=(0, 1), dilation=(1, 5)), "c"),  # empty columns
        ]
    else:
        cases += [
            ((2, 2, 9, 40), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), "c"),
            ((1, 2, 10, 43), dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True,
                                  count_include_pad=False), "t"),
            ((1, 2, 10, 43), dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True,
                                  count_include_pad=True), "c"),
            ((2, 1, 7, 21), dict(kernel_size=3, stride=1, padding=1, divisor_override=4), "c"),
            ((1, 1, 5, 5), dict(kernel_size=2, ceil_mode=True, divisor_override=-3), "c"),
        ]
    # random grid
    while len(cases) < 46:
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        kw_ = dict(kernel_size=(kh, kw) if rng.random() < 0.6 else kh)
        kw = kh if isinstance(kw_["kernel_size"], int) else kw
        st = rng.integers(0, 4)
        kw_["stride"] = None if st == 0 else (int(st), int(rng.integers(1, 4))) if rng.random() < 0.5 else int(st)
        kw_["padding"] = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1)))
        kw_["ceil_mode"] = bool(rng.integers(2))
        if dilation:
            kw_["dilation"] = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        else:
            kw_["count_include_pad"] = bool(rng.integers(2))
            if rng.random() < 0.2:
                kw_["divisor_override"] = int(rng.integers(1, 7))
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        h = int(rng.integers(1, 14))
        w = int(rng.integers(1, 14)) if rng.random() < 0.5 else int(rng.integers(14, 60))
        shape = (n, c, h, w)
        try:
            F.max_pool2d(np.zeros(shape), **{k: v for k, v in kw_.items() if k in
                                             ("kernel_size", "stride", "padding", "dilation", "ceil_mode")})
        except ValueError:
            continue  # empty output: covered by the bad-input tests
        cases.append((shape, kw_, "ctp"[len(cases) % 3]))
    return cases


MAX_CASES = _window_cases(1, True)
AVG_CASES = _window_cases(2, False)


def _ids(cases):
    return [f"{i}-{'x'.join(map(str, c[0]))}" for i, c in enumerate(cases)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # -inf outputs (empty windows)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,kw,layout", MAX_CASES, ids=_ids(MAX_CASES))
def test_max_pool2d(isa, dtype, shape, kw, layout):
    rng = np.random.default_rng(hash((shape, layout)) % 2**32)
    x = _make(shape, layout, rng)
    case = f"{isa} {shape} {kw} {layout}"
    check_against_reference("max_pool2d", (x,), dict(kw, return_indices=True), dtype=dtype, case=case)
    check_against_reference("max_pool2d", (x,), kw, dtype=dtype, case=case)
    # integer-valued input: many ties (first maximum must win, indices exact)
    xt = _make(shape, layout, rng, ties=True)
    check_against_reference("max_pool2d", (xt,), dict(kw, return_indices=True), dtype=dtype, case=case + " ties")


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,kw,layout", AVG_CASES, ids=_ids(AVG_CASES))
def test_avg_pool2d(isa, dtype, shape, kw, layout):
    rng = np.random.default_rng(hash((shape, layout)) % 2**32)
    x = _make(shape, layout, rng)
    k = kw["kernel_size"]
    k = k[0] * k[1] if isinstance(k, tuple) else k * k
    check_against_reference("avg_pool2d", (x,), kw, dtype=dtype, k=k, case=f"{isa} {shape} {kw} {layout}")


ADAPTIVE_CASES = [
    ((1, 1, 1, 1), 1), ((2, 3, 7, 9), 3), ((2, 3, 8, 12), (4, 6)), ((1, 2, 5, 5), (7, 3)), ((2, 2, 10, 37), (3, None)),
    ((1, 3, 13, 11), (None, 5)), ((3, 6, 6), (2, 4)), ((1, 2, 17, 40), (1, 7)), ((2, 1, 9, 1), (4, 1)),
    ((1, 2, 1, 29), 1), ((1, 1, 6, 64), (6, 64)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,size", ADAPTIVE_CASES, ids=[str(i) for i in range(len(ADAPTIVE_CASES))])
def test_adaptive_pool2d(isa, dtype, shape, size, rng):
    case = f"{isa} {shape} {size}"
    for layout in "ct":
        x = _make(shape, layout, rng)
        k = -(-shape[-2] // 1) * shape[-1]
        check_against_reference("adaptive_avg_pool2d", (x, size), {}, dtype=dtype, k=k, case=case)
        check_against_reference("adaptive_max_pool2d", (x, size), dict(return_indices=True), dtype=dtype, case=case)
        check_against_reference("adaptive_max_pool2d", (x, size), {}, dtype=dtype, case=case)
    xt = _make(shape, "c", rng, ties=True)
    check_against_reference("adaptive_max_pool2d", (xt, size), dict(return_indices=True), dtype=dtype,
                            case=case + " ties")


GLOBAL_SHAPES = [(1, 1, 1, 1), (2, 3, 7, 9), (1, 2, 1, 131), (2, 1, 56, 56), (3, 5, 4), (4, 8, 3, 3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=["x".join(map(str, s)) for s in GLOBAL_SHAPES])
def test_global_pool2d(isa, dtype, shape, rng):
    case = f"{isa} {shape}"
    for layout in "ct":
        x = _make(shape, layout, rng)
        check_against_reference("global_avg_pool2d", (x,), {}, dtype=dtype, k=shape[-1] * shape[-2], case=case)
        check_against_reference("global_max_pool2d", (x,), {}, dtype=dtype, case=case)
    xt = _make(shape, "c", rng, ties=True)
    check_against_reference("global_max_pool2d", (xt,), {}, dtype=dtype, case=case + " ties")
    # same as adaptive pooling to 1x1
    y = F.global_avg_pool2d(x.astype(dtype))
    assert y.shape == x.shape[:-2] + (1, 1)
    assert_close(y, F.adaptive_avg_pool2d(x.astype(dtype), 1), k=shape[-1] * shape[-2], case=case)
    np.testing.assert_array_equal(F.global_max_pool2d(x.astype(dtype)), F.adaptive_max_pool2d(x.astype(dtype), 1))


def test_strided_inputs(rng):
    """Sliced (non-contiguous) inputs give the same results as their contiguous copies."""
    big = rng.standard_normal((3, 4, 22, 50))
    x = big[::2, 1:, ::2, 3::2]
    xc = np.ascontiguousarray(x)
    for op, args, kw in [("max_pool2d", (3,), dict(stride=2, padding=1, return_indices=True)),
                         ("avg_pool2d", (2,), dict(ceil_mode=True)),
                         ("adaptive_avg_pool2d", ((3, 5),), {}), ("adaptive_max_pool2d", (4,), {}),
                         ("global_avg_pool2d", (), {}), ("global_max_pool2d", (), {})]:
        a = getattr(F, op)(x, *args, **kw)
        b = getattr(F, op)(xc, *args, **kw)
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(u, v, err_msg=op)
        g = rng.standard_normal(np.shape(a[0] if isinstance(a, tuple) else a))
        np.testing.assert_array_equal(getattr(F, op + "_backward")(g[:, :, ::-1][:, :, ::-1], x, *args, **kw)[0],
                                      getattr(F, op + "_backward")(g, xc, *args, **kw)[0], err_msg=op)


# ---------------------------------------------------------------- gradcheck (float64)

def _no_ties(shape, rng):
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)).astype(np.float64)


GRADCHECK = [
    ("max_pool2d", (1, 2, 5, 6), (3,), dict(stride=2, padding=1)),
    ("max_pool2d", (1, 1, 6, 5), ((2, 3),), dict(stride=1, padding=(1, 1), dilation=(2, 1), ceil_mode=True)),
    ("max_pool2d", (2, 4, 5), (2,), dict(ceil_mode=True)),
    ("avg_pool2d", (1, 2, 5, 6), (3,), dict(stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    ("avg_pool2d", (1, 1, 5, 4), ((2, 3),), dict(stride=1, padding=(1, 1))),
    ("avg_pool2d", (1, 1, 4, 4), (2,), dict(divisor_override=3)),
    ("adaptive_avg_pool2d", (1, 2, 5, 7), ((3, 4),), {}),
    ("adaptive_max_pool2d", (1, 2, 5, 7), ((2, 3),), {}),
    ("global_avg_pool2d", (2, 2, 3, 4), (), {}),
    ("global_max_pool2d", (2, 2, 3, 4), (), {}),
]


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("op,shape,args,kw", GRADCHECK, ids=[f"{g[0]}{i}" for i, g in enumerate(GRADCHECK)])
def test_gradcheck(module, op, shape, args, kw, rng):
    assert check_op(module, op, _no_ties(shape, rng), *args, **kw)


# ---------------------------------------------------------------- NaN / inf

@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_max_nan_inf(isa, dtype, rng):
    x = rng.standard_normal((2, 3, 9, 40))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[1, 2] = -np.inf  # an all -inf plane: indices are each window's first in-bounds position
    for kw in [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2), dict(kernel_size=3, stride=1, dilation=2)]:
        check_against_reference("max_pool2d", (x,), dict(kw, return_indices=True), dtype=dtype, case=str(kw))
    check_against_reference("adaptive_max_pool2d", (x, (4, 7)), dict(return_indices=True), dtype=dtype)
    check_against_reference("adaptive_max_pool2d", (x, (3, 11)), {}, dtype=dtype)
    check_against_reference("max_pool2d", (x, 3), dict(stride=1, padding=1), dtype=dtype)
    check_against_reference("global_max_pool2d", (x,), {}, dtype=dtype)
    y, i = F.max_pool2d(x.astype(dtype), 2, return_indices=True)
    win = x[:, :, :8, :40].reshape(2, 3, 4, 2, 20, 2)
    assert np.array_equal(np.isnan(y), np.isnan(win).any(axis=(3, 5)))
    assert np.all(np.isneginf(F.global_max_pool2d(x.astype(dtype))[1, 2]))
    assert np.isnan(F.global_max_pool2d(x.astype(dtype))[0, 0, 0, 0]) == np.isnan(x[0, 0]).any()


def test_avg_nan_inf():
    x = np.zeros((1, 1, 4, 20))
    x[0, 0, 1, 3] = np.nan
    x[0, 0, 2, 10] = np.inf
    y = F.avg_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 1]) and np.isposinf(y[0, 0, 1, 5]) and np.sum(np.isfinite(y)) == y.size - 2
    assert np.isnan(F.global_avg_pool2d(x)).all()


def test_against_torch(rng):
    """Indices, values and gradients match torch (when installed), ties and NaN included."""
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.integers(0, 3, (2, 3, 11, 37)).astype(np.float64)
    x[0, 1, 2, 3] = x[1, 0, 5, 5] = x[1, 0, 5, 6] = np.nan
    for kw in [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1),
                                                              ceil_mode=True)]:
        ty, ti = TF.max_pool2d(torch.from_numpy(x), return_indices=True, **kw)
        y, i = F.max_pool2d(x, return_indices=True, **kw)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(i, ti.numpy())
    ty, ti = TF.adaptive_max_pool2d(torch.from_numpy(x), (4, 5), return_indices=True)
    y, i = F.adaptive_max_pool2d(x, (4, 5), return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    xr = rng.standard_normal((2, 3, 10, 13))
    for kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
               dict(kernel_size=(2, 3), stride=2, padding=1, ceil_mode=True)]:
        xt = torch.from_numpy(xr).requires_grad_()
        ty = TF.avg_pool2d(xt, **kw)
        g = rng.standard_normal(ty.shape)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(F.avg_pool2d(xr, **kw), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(F.avg_pool2d_backward(g, xr, **kw)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- bad inputs

X = np.zeros((1, 2, 6, 6))
BAD = [
    (lambda: F.max_pool2d(X, 0), ValueError, "kernel_size"),
    (lambda: F.max_pool2d(X, 2.5), TypeError, "kernel_size"),
    (lambda: F.max_pool2d(X, (2, 2, 2)), ValueError, "kernel_size"),
    (lambda: F.max_pool2d(X, 2, stride=0), ValueError, "stride"),
    (lambda: F.max_pool2d(X, 3, padding=-1), ValueError, "padding"),
    (lambda: F.max_pool2d(X, 3, padding=2), ValueError, "padding"),
    (lambda: F.max_pool2d(X, 2, dilation=0), ValueError, "dilation"),
    (lambda: F.max_pool2d(X, 7), ValueError, "input"),
    (lambda: F.max_pool2d(X, 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: F.max_pool2d(X, 2, return_indices="yes"), TypeError, "return_indices"),
    (lambda: F.max_pool2d(np.zeros((6, 6)), 2), ValueError, "input"),
    (lambda: F.max_pool2d(np.zeros((1, 1, 1, 6, 6)), 2), ValueError, "input"),
    (lambda: F.max_pool2d(np.zeros((1, 2, 6, 6), dtype=np.int64), 2), TypeError, "input"),
    (lambda: F.max_pool2d(np.zeros((1, 0, 6, 6)), 2), ValueError, "input"),
    (lambda: F.max_pool2d([[1.0]], 2), TypeError, "input"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=1.5), TypeError, "divisor_override"),
    (lambda: F.avg_pool2d(X, 3, padding=2), ValueError, "padding"),
    (lambda: F.avg_pool2d(X, 2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda: F.avg_pool2d(X, 9, padding=1), ValueError, "input"),
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, "output_size"),
    (lambda: F.adaptive_avg_pool2d(X, (2, 3, 4)), ValueError, "output_size"),
    (lambda: F.adaptive_max_pool2d(X, None), TypeError, "output_size"),
    (lambda: F.adaptive_max_pool2d(X, 2.0), TypeError, "output_size"),
    (lambda: F.global_avg_pool2d(np.zeros((2, 3), dtype=np.float32)), ValueError, "input"),
    (lambda: F.global_max_pool2d(np.zeros((1, 2, 3, 3), dtype=np.int32)), TypeError, "input"),
    (lambda: F.max_pool2d_backward(np.zeros((1, 2, 2, 2)), X, 2), ValueError, "grad_output"),
    (lambda: F.avg_pool2d_backward(np.zeros((1, 2, 3, 3), np.float32), X, 2), TypeError, "grad_output"),
    (lambda: F.adaptive_avg_pool2d_backward(np.zeros((2, 2)), X, 2), ValueError, "grad_output"),
    (lambda: F.global_max_pool2d_backward(np.zeros((1, 2, 1)), X), ValueError, "grad_output"),
]


@pytest.mark.parametrize("fn,exc,match", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_inputs(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_native_binding_checks():
    """Direct _C calls with inconsistent buffers raise instead of touching memory."""
    from convkern import _C
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match="output"):
        _C.max_pool2d_forward(x, np.zeros((1, 2, 3, 2)), None, 2, 2, 2, 2, 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match="indices"):
        _C.max_pool2d_forward(x, np.zeros((1, 2, 3, 3)), np.zeros(5, np.int64), 2, 2, 2, 2, 0, 0, 1, 1, False)
    with pytest.raises(ValueError, match="padding"):
        _C.avg_pool2d_forward(x, np.zeros((1, 2, 3, 3)), 2, 2, 2, 2, 2, 0, False, True, 0)
    with pytest.raises(ValueError, match="grad_output"):
        _C.adaptive_avg_pool2d_backward(np.zeros(3), np.zeros((1, 2, 6, 6)), 2, 2)
    with pytest.raises(TypeError, match="output"):
        _C.global_max_pool2d_forward(x, np.zeros((1, 2, 1, 1), np.float32))


# ---------------------------------------------------------------- whole-plane (separable) path

# Value-only forward over >= 2*threads planes takes the whole-plane path (row by row: a
# vertical pass from the input into a padded row, a horizontal pass into the output, masked
# tails): narrow and wide rows, rows of whole vectors, strides 1/2/3, dilation, ceil_mode,
# both padding rules, and planes with and without NaN in one call.
SEP_CASES = [
    ((1, 8, 14, 14), dict(kernel_size=3, stride=1, padding=1)),
    ((1, 8, 7, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 5, 14, 14), dict(kernel_size=5, stride=3)),
    ((1, 6, 57, 61), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 9, 23, 40), dict(kernel_size=(2, 4), stride=(3, 2), padding=(1, 2))),
    ((3, 4, 5, 33), dict(kernel_size=(3, 1), stride=(1, 3), padding=(1, 0), ceil_mode=True)),
    ((1, 8, 1, 17), dict(kernel_size=1, stride=1)),
    ((1, 8, 16, 16), dict(kernel_size=2, stride=2)),
    ((1, 4, 40, 48), dict(kernel_size=3, stride=2, padding=1)),
    # "same" unit-stride windows on narrow planes: the flattened passes
    ((2, 8, 7, 7), dict(kernel_size=3, stride=1, padding=1)),
    ((1, 8, 28, 28), dict(kernel_size=3, stride=1, padding=1)),
    ((1, 8, 9, 11), dict(kernel_size=5, stride=1, padding=2)),
    ((1, 8, 2, 31), dict(kernel_size=(5, 3), stride=1, padding=(2, 1))),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("i", range(len(SEP_CASES)))
def test_whole_plane_path(isa, dtype, threads, i, rng):
    import convkern
    shape, kw = SEP_CASES[i]
    x = rng.standard_normal(shape)
    x[0, 1][rng.random(shape[2:]) < 0.2] = np.nan      # one plane with NaN: torch's NaN rule
    x[0, 2][rng.random(shape[2:]) < 0.3] = -np.inf
    x[0, 3] = np.round(x[0, 3])                         # ties
    x[-1, -1][rng.random(shape[2:]) < 0.3] = np.inf
    case = f"{isa} {shape} {kw}"
    old = convkern.get_num_threads()
    convkern.set_num_threads(threads)
    try:
        y = F.max_pool2d(x.astype(dtype), **kw)
        y_ref = R.max_pool2d(x.astype(dtype).astype(np.float64), **kw)
        np.testing.assert_array_equal(y, y_ref.astype(dtype), err_msg=f"max exact [{case}]")
        dil = dict(kw, dilation=2, padding=0)
        if all(np.array(x.shape[2:]) >= 2 * np.array(np.broadcast_to(kw["kernel_size"], 2))):
            np.testing.assert_array_equal(F.max_pool2d(x.astype(dtype), **dil),
                                          R.max_pool2d(x.astype(dtype).astype(np.float64), **dil).astype(dtype),
                                          err_msg=f"max dilated [{case}]")
        xf = np.nan_to_num(x, nan=0.5, posinf=3.0, neginf=-3.0)
        for cip in (True, False):
            check_against_reference("avg_pool2d", (xf,), dict(kw, count_include_pad=cip), dtype=dtype,
                                    k=int(np.prod(np.broadcast_to(kw["kernel_size"], 2))), case=case, backward=False)
        check_against_reference("avg_pool2d", (xf,), dict(kw, divisor_override=3), dtype=dtype,
                                k=int(np.prod(np.broadcast_to(kw["kernel_size"], 2))), case=case, backward=False)
    finally:
        convkern.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_flat_planes_dilated(isa, dtype, rng):
    """'Same' dilated windows (P == H, Q == W) on narrow planes, with NaN, -inf and ties."""
    x = np.round(rng.standard_normal((2, 6, 10, 13)) * 2)
    x[0, 1, 3, 4] = np.nan
    x[1, 2, 5] = -np.inf
    # (padding is at most half the kernel: only 2-wide kernels dilate to a 'same' window)
    for kw in (dict(kernel_size=2, padding=1, dilation=2), dict(kernel_size=(3, 2), padding=1, dilation=(1, 2))):
        kw = dict(kw, stride=1)
        np.testing.assert_array_equal(F.max_pool2d(x.astype(dtype), **kw),
                                      R.max_pool2d(x.astype(dtype).astype(np.float64), **kw).astype(dtype),
                                      err_msg=f"{isa} {kw}")


def test_whole_plane_signed_zero():
    """Ties keep the first element of the window, as torch does: -0.0 before +0.0 gives -0.0."""
    x = np.zeros((1, 8, 6, 20), np.float32)
    x[..., ::2] = -0.0
    y = F.max_pool2d(x, 2)            # windows hold -0 (first column) and +0
    assert np.all(np.signbit(y))
    y = F.max_pool2d(x[..., 1:], 2)   # windows start at +0
    assert not np.any(np.signbit(y))
