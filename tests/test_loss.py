"""cross_entropy and mse_loss: native vs reference, torch's weight / ignore_index /
label_smoothing semantics, gradchecks, thread-count independence and bad inputs."""
import numpy as np
import pytest

import convkern
import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op

from check import assert_close, check_against_reference

DTYPES = [np.float32, np.float64]

# input shapes: (C,), (N, C), (N, C, d1, ...); the d-dims > 256 exercise the blocked kernel
CE_SHAPES = [(7,), (1, 1), (1, 7), (5, 8), (3, 9), (4, 17), (2, 33), (3, 4, 5), (2, 3, 2, 3), (2, 5, 300)]
CE_OPTS = [(False, 0.0), (True, 0.0), (False, 0.2), (True, 0.3)]  # (weighted, label_smoothing)


def _ce_case(shape, rng, ignore=-100, n_ignored=1, scale=2.0):
    x = rng.standard_normal(shape) * scale
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng.integers(0, C, tshape).astype(np.int64)
    if t.size > 1:
        t.reshape(-1)[:n_ignored] = ignore
    return x, t, C


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", CE_OPTS, ids=lambda o: f"w{int(o[0])}-ls{o[1]}")
@pytest.mark.parametrize("shape", CE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_entropy_vs_reference(isa, shape, opts, reduction, dtype):
    rng = np.random.default_rng(sum(shape) + 10 * len(shape))
    x, t, C = _ce_case(shape, rng)
    weighted, ls = opts
    kw = {"reduction": reduction, "label_smoothing": ls}
    if weighted:
        kw["weight"] = rng.uniform(0.2, 2.0, C)
    P = max(t.size, 1)
    check_against_reference("cross_entropy", (x, t), kw, dtype=dtype, k=C * P,
                            case=f"ce {shape} {opts} {reduction} {isa}")
    if x.ndim >= 2:  # non-contiguous input
        xt = np.ascontiguousarray(x.T).T
        check_against_reference("cross_entropy", (xt, t), kw, dtype=dtype, k=C * P, case=f"ce T {shape} {isa}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_large_logits_and_ignore_index(isa, dtype):
    rng = np.random.default_rng(3)
    x, t, C = _ce_case((6, 5, 3), rng, scale=500.0)  # stability: no overflow in exp
    t.reshape(-1)[:4] = 2  # ignore_index that is also a valid class
    for red in ("mean", "sum", "none"):
        for ls in (0.0, 0.1):
            kw = {"reduction": red, "ignore_index": 2, "label_smoothing": ls, "weight": rng.uniform(0.5, 1.5, 5)}
            check_against_reference("cross_entropy", (x, t), kw, dtype=dtype, k=C * t.size, case=f"large {red}")
            kw["weight"] = kw["weight"].astype(dtype)
            y = F.cross_entropy(x.astype(dtype), t, **kw)
            assert np.all(np.isfinite(y))
    # ignored positions have zero loss and zero gradient
    y = F.cross_entropy(x, t, ignore_index=2, reduction="none")
    assert np.all(y[t == 2] == 0)
    gx = F.cross_entropy_backward(np.ones(t.shape), x, t, ignore_index=2, reduction="none")[0]
    assert np.all(np.moveaxis(gx, 1, -1)[t == 2] == 0)


def test_cross_entropy_mean_semantics():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 4))
    t = np.array([0, 1, -100, 3, 2, -100], dtype=np.int64)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    per = F.cross_entropy(x, t, weight=w, reduction="none")
    valid = t != -100
    # 'mean' divides by the sum of the weights of the non-ignored targets (torch)
    np.testing.assert_allclose(F.cross_entropy(x, t, weight=w), per.sum() / w[t[valid]].sum(), rtol=1e-13)
    np.testing.assert_allclose(F.cross_entropy(x, t, weight=w, reduction="sum"), per.sum(), rtol=1e-13)
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    np.testing.assert_allclose(per[valid], -w[t[valid]] * logp[valid, t[valid]], rtol=1e-13)
    # every target ignored: mean is NaN (0/0, as torch), gradients are zero
    t_all = np.full(6, -100, dtype=np.int64)
    assert np.isnan(F.cross_entropy(x, t_all))
    assert np.isnan(R.cross_entropy(x, t_all))
    np.testing.assert_array_equal(F.cross_entropy_backward(np.array(1.0), x, t_all)[0], np.zeros_like(x))
    # scalar outputs are 0-d arrays of the input's dtype
    y = F.cross_entropy(x.astype(np.float32), t)
    assert y.shape == () and y.dtype == np.float32


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck_cross_entropy(module):
    rng = np.random.default_rng(5)
    x, t, C = _ce_case((3, 4), rng)
    w = rng.uniform(0.5, 2.0, C)
    assert check_op(module, "cross_entropy", x, t)
    assert check_op(module, "cross_entropy", x, t, weight=w, label_smoothing=0.2)
    assert check_op(module, "cross_entropy", x, t, weight=w, reduction="none")
    x3, t3, C3 = _ce_case((2, 3, 2, 2), rng)
    assert check_op(module, "cross_entropy", x3, t3, weight=rng.uniform(0.5, 2.0, C3), reduction="sum",
                    label_smoothing=0.1)
    x1, t1, _ = _ce_case((5,), rng)
    assert check_op(module, "cross_entropy", x1, t1, label_smoothing=0.3)


def test_cross_entropy_threads_and_isas_agree():
    rng = np.random.default_rng(6)
    x, t, C = _ce_case((64, 10, 120), rng, n_ignored=5)
    x2, t2, _ = _ce_case((3000, 37), rng, n_ignored=5)
    old = convkern.get_num_threads()
    try:
        outs = []
        for name in convkern.available_isas():
            with convkern.isa(name):
                for nt in (1, 2):
                    convkern.set_num_threads(nt)
                    outs.append((name, nt, F.cross_entropy(x, t, reduction="none", label_smoothing=0.1),
                                 F.cross_entropy_backward(np.array(1.0), x, t)[0],
                                 F.cross_entropy(x2, t2, reduction="none"),
                                 F.cross_entropy_backward(np.array(1.0), x2, t2)[0]))
        for o in outs:  # threads never change a result; ISAs agree within rounding
            same_isa = [p for p in outs if p[0] == o[0]][0]
            for a, b in zip(o[2:], same_isa[2:]):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(o[2:], outs[0][2:]):
                assert_close(a, b, k=37)
    finally:
        convkern.set_num_threads(old)
    y_ref = R.cross_entropy(x, t, reduction="none", label_smoothing=0.1)
    assert_close(outs[0][2], y_ref, k=10)


# ---------------------------------------------------------------------------------------------
MSE_SHAPES = [(1,), (7,), (8,), (9,), (16,), (17,), (33,), (3, 17), (2, 3, 4, 5), (3, 9000)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", MSE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_mse_vs_reference(isa, shape, reduction, dtype):
    rng = np.random.default_rng(sum(shape))
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    n = x.size
    check_against_reference("mse_loss", (x, t), {"reduction": reduction}, dtype=dtype, k=n,
                            case=f"mse {shape} {reduction} {isa}")
    if x.ndim >= 2:
        check_against_reference("mse_loss", (np.ascontiguousarray(x.T).T, t), {"reduction": reduction}, dtype=dtype,
                                k=n, case=f"mse T {shape} {isa}")


def test_mse_special_values_and_threads():
    x = np.array([1.0, np.inf, np.nan, 2.0])
    t = np.array([1.0, 0.0, 0.0, np.inf])
    y = F.mse_loss(x, t, reduction="none")
    assert y[0] == 0 and y[1] == np.inf and np.isnan(y[2]) and y[3] == np.inf
    assert np.isnan(F.mse_loss(x, t))
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal(300_001).astype(np.float32), rng.standard_normal(300_001).astype(np.float32)
    old = convkern.get_num_threads()
    try:
        vals = []
        for nt in (1, 2, 3):
            convkern.set_num_threads(nt)
            vals.append(F.mse_loss(a, b))
    finally:
        convkern.set_num_threads(old)
    assert vals[0] == vals[1] == vals[2]
    assert_close(vals[0], R.mse_loss(a.astype(np.float64), b.astype(np.float64)), k=4)


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck_mse(module):
    rng = np.random.default_rng(9)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for red in ("mean", "sum", "none"):
        assert check_op(module, "mse_loss", x, t, reduction=red)


# ---------------------------------------------------------------------------------------------
def test_bad_inputs():
    x = np.zeros((4, 3))
    t = np.array([0, 1, 2, 1], dtype=np.int64)
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, t.astype(np.int32))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, t.astype(np.float64))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, [0, 1, 2, 1])
    with pytest.raises(TypeError, match="input"):
        F.cross_entropy(x.astype(np.int64), t)
    for bad in (3, -1, 10**12, -(2**63)):
        tb = t.copy()
        tb[2] = bad
        with pytest.raises(ValueError, match="target"):
            F.cross_entropy(x, tb)
        with pytest.raises(ValueError, match="target"):
            F.cross_entropy_backward(np.array(1.0), x, tb)
        with pytest.raises(ValueError, match="target"):
            R.cross_entropy(x, tb)
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, t[:3])
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(np.zeros((4, 3, 2)), t)
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(x, t, weight=np.ones(4))
    with pytest.raises(TypeError, match="weight"):
        F.cross_entropy(x, t, weight=np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index"):
        F.cross_entropy(x, t, ignore_index=1.0)
    with pytest.raises(ValueError, match="input"):
        F.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="input"):
        F.cross_entropy(np.array(1.0), np.array(0))
    with pytest.raises(ValueError, match="grad_output"):
        F.cross_entropy_backward(np.ones(4), x, t)  # 'mean' has a scalar gradient
    with pytest.raises(ValueError, match="grad_output"):
        F.cross_entropy_backward(np.ones(3), x, t, reduction="none")
    # a direct native call with a bad target counts it instead of reading out of bounds
    loss, wt = np.empty(4), np.empty(4)
    tb = t.copy()
    tb[1] = 1 << 40
    assert convkern._C.cross_entropy_forward(x, tb, None, loss, wt, 4, 3, 1, -100, 0.0) == 1
    assert convkern._C.cross_entropy_backward(x, tb, None, np.ones(1), np.empty_like(x), 4, 3, 1, -100, 0.0, 1.0) == 1
    with pytest.raises(ValueError, match="target"):
        convkern._C.cross_entropy_forward(x, t[:3], None, loss, wt, 4, 3, 1, -100, 0.0)

    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match="target"):
        F.mse_loss(a, np.zeros((3, 2)))
    with pytest.raises(TypeError, match="target"):
        F.mse_loss(a, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="input"):
        F.mse_loss(a.astype(np.int32), a)
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(a, a, reduction="max")
    with pytest.raises(ValueError, match="grad_output"):
        F.mse_loss_backward(np.ones((2, 3)), a, a)
    with pytest.raises(ValueError, match="input"):
        F.mse_loss(np.zeros(0), np.zeros(0))
