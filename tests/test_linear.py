"""linear: native (gemm) vs the NumPy reference over a grid of shapes on every ISA and both
dtypes; gradchecks; torch cross-check; bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
from check import check_against_reference

import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]

# (input shape, out_features)
CASES = [((1,), 1), ((7,), 5), ((1, 1), 1), ((3, 1), 4), ((1, 9), 1), ((5, 7), 17), ((2, 3, 33), 5),
         ((4, 1, 6), 3), ((2, 2, 2, 5), 9), ((65, 31), 47), ((3, 130), 260), ((300, 3), 2),
         ((2000, 3), 17)]  # parallel bias sums with the rows split


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("layout", ["c", "t"])
def test_linear_grid(isa, dtype, bias, layout, rng):
    for xs, O in CASES:
        K = xs[-1]
        x = rng.standard_normal(xs)
        w = rng.standard_normal((O, K))
        if layout == "t":  # transposed views: weight stored (K, O), input with last two axes swapped
            w = np.ascontiguousarray(w.T).T
            if x.ndim >= 2:
                x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
        b = rng.standard_normal(O) if bias else None
        M = x.size // K
        check_against_reference("linear", (x, w), dict(bias=b), dtype=dtype, k=max(K, M, O),
                                case=f"{xs} O={O} bias={bias} {layout}")


GC = [((4,), 3, True), ((2, 3), 2, False), ((2, 1, 3), 4, True), ((1, 1), 1, True)]


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("xs,O,bias", GC, ids=[str(i) for i in range(len(GC))])
def test_gradcheck(module, xs, O, bias, rng):
    x = rng.standard_normal(xs)
    w = rng.standard_normal((O, xs[-1]))
    b = rng.standard_normal(O) if bias else None
    assert check_op(module, "linear", x, w, b)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    T = torch.from_numpy
    for dtype in DTYPES:
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        for xs, O in [((5,), 3), ((4, 6), 7), ((2, 3, 19), 11)]:
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal((O, xs[-1])).astype(dtype)
            b = rng.standard_normal(O).astype(dtype)
            g = rng.standard_normal(xs[:-1] + (O,)).astype(dtype)
            xt, wt, bt = T(x).requires_grad_(), T(w).requires_grad_(), T(b).requires_grad_()
            yt = torch.nn.functional.linear(xt, wt, bt)
            yt.backward(T(g))
            np.testing.assert_allclose(F.linear(x, w, b), yt.detach().numpy(), **tol)
            for a, e in zip(F.linear_backward(g, x, w, b), (xt.grad, wt.grad, bt.grad)):
                np.testing.assert_allclose(a, e.numpy(), **tol)


X = np.zeros((2, 3))
W = np.zeros((4, 3))
BAD = [
    (lambda: F.linear(X, np.zeros((4, 2))), ValueError, "weight"),
    (lambda: F.linear(X, np.zeros(3)), ValueError, "weight"),
    (lambda: F.linear(X, W.astype(np.float32)), TypeError, "weight"),
    (lambda: F.linear(X, W, np.zeros(3)), ValueError, "bias"),
    (lambda: F.linear(X, W, np.zeros(4, np.float32)), TypeError, "bias"),
    (lambda: F.linear(X.astype(np.int32), W), TypeError, "input"),
    (lambda: F.linear(np.float64(1.0), W), TypeError, "input"),
    (lambda: F.linear(np.zeros(()), W), ValueError, "input"),
    (lambda: F.linear(np.zeros((2, 0)), np.zeros((4, 0))), ValueError, "input"),
    (lambda: F.linear(X, np.zeros((0, 3))), ValueError, "weight"),
    (lambda: F.linear([[1.0]], W), TypeError, "input"),
    (lambda: F.linear_backward(np.zeros((2, 3)), X, W), ValueError, "grad_output"),
    (lambda: F.linear_backward(np.zeros((2, 4), np.float32), X, W), TypeError, "grad_output"),
]


@pytest.mark.parametrize("fn,exc,match", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_inputs(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_native_binding_checks():
    from convkern import _C
    with pytest.raises(ValueError, match="output"):
        _C.linear_forward(X, W, None, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="weight"):
        _C.linear_forward(X, np.zeros((4, 2)), None, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="grad_weight"):
        _C.linear_backward(np.zeros((2, 4)), X, W, None, np.zeros(3), None)
