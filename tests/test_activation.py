import numpy as np
import pytest

import convkern
import convkern.functional as F
import convkern.reference as R
from check import check_against_reference
from convkern.gradcheck import check_op

SHAPES = [(1,), (7,), (8,), (9,), (15,), (16,), (17,), (33,), (2, 3, 5, 7), (4, 1, 1, 1), (1, 70000)]
UNARY = [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 1.3}), ("sigmoid", {}),
         ("tanh", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"})]


def _x(shape, dtype, scale=3.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    x[np.abs(x) < 1e-3] = 0.5  # keep away from kinks
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op,kw", UNARY, ids=[f"{o}{'-' + str(k) if k else ''}" for o, k in UNARY])
def test_unary_vs_reference(isa, op, kw, shape, dtype):
    check_against_reference(op, (_x(shape, dtype),), kw, dtype=dtype, case=f"{op} {shape} {kw}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_noncontiguous(isa, dtype):
    x = _x((6, 10, 9), dtype)[:, ::2, 1:].transpose(2, 0, 1)
    for op, kw in UNARY:
        check_against_reference(op, (x,), kw, dtype=dtype, case=op)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 7), 1), ((3, 7), 0), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), -1),
                                       ((2, 3, 4, 5), 2), ((2, 300, 3), 1), ((1, 1), 1), ((4, 1000), 1)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_vs_reference(isa, op, shape, dim, dtype):
    x = _x(shape, dtype, scale=10.0)
    check_against_reference(op, (x, dim), {}, dtype=dtype, k=shape[dim], case=f"{op} {shape} dim={dim}")


def test_softmax_large_values_are_stable():
    x = np.array([[1000.0, 1001.0, 999.0], [-1e4, -1e4, -1e4]], np.float32)
    y = F.softmax(x, 1)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)
    assert np.all(np.isfinite(F.log_softmax(x, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,wsize", [((2, 3, 4, 5), 3), ((2, 3, 4, 5), 1), ((5, 7), 7), ((9,), 1), ((1, 1, 1), 1)])
def test_prelu_vs_reference(isa, shape, wsize, dtype):
    w = np.random.default_rng(1).standard_normal(wsize)
    check_against_reference("prelu", (_x(shape, dtype), w), {}, dtype=dtype, k=int(np.prod(shape)), case=str(shape))


def test_nan_and_inf_propagate_like_reference():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], np.float32)
    for op, kw in UNARY:
        with np.errstate(invalid="ignore"):
            ref = getattr(R, op)(x.astype(np.float64), **kw)
        y = F.__dict__[op](x, **kw)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref), err_msg=op)
        np.testing.assert_array_equal(y[np.isinf(ref)], ref[np.isinf(ref)], err_msg=op)
        fin = np.isfinite(ref)
        np.testing.assert_allclose(y[fin], ref[fin], rtol=2e-7, atol=1e-30, err_msg=op)
    assert np.isnan(F.relu(np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("op,kw", UNARY + [("softmax", {"dim": 1}), ("log_softmax", {"dim": 0})],
                         ids=[o + str(i) for i, (o, _) in enumerate(UNARY + [("softmax", 0), ("log_softmax", 0)])])
@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck(module, op, kw):
    check_op(module, op, _x((3, 4), np.float64, seed=3), **kw)


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck_prelu(module):
    check_op(module, "prelu", _x((2, 3, 4), np.float64), np.array([0.1, -0.3, 0.7]))
    check_op(module, "prelu", _x((2, 3), np.float64), np.array([0.25]))


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck_dropout(module):
    check_op(module, "dropout", _x((4, 5), np.float64), p=0.4, seed=11)


def test_dropout_mask_equals_reference_and_is_deterministic(isa):
    x = _x((3, 5, 40), np.float32) + 10  # no zeros in x
    y = F.dropout(x, 0.3, seed=123)
    np.testing.assert_array_equal(y, R.dropout(x, 0.3, seed=123))
    old = convkern.get_num_threads()
    try:
        for t in (1, 2, 3):
            convkern.set_num_threads(t)
            np.testing.assert_array_equal(F.dropout(x, 0.3, seed=123), y)
    finally:
        convkern.set_num_threads(old)
    assert not np.array_equal(F.dropout(x, 0.3, seed=124), y)
    (g,) = F.dropout_backward(np.ones_like(x), x, 0.3, seed=123)
    np.testing.assert_array_equal(g != 0, y != 0)


def test_dropout_statistics_and_edge_probabilities():
    x = np.ones(200000, np.float32)
    y = F.dropout(x, 0.25, seed=7)
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)
    assert abs(y.mean() - 1) < 0.02
    np.testing.assert_array_equal(F.dropout(x, 1.0, seed=1), 0)
    np.testing.assert_array_equal(F.dropout(x, 0.0, seed=1), x)
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False), x)


def test_activation_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(TypeError, match="negative_slope"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(ValueError, match="grad_output"):
        F.relu_backward(np.ones((3, 2), np.float32), x)
    with pytest.raises(TypeError, match="grad_output"):
        F.relu_backward(np.ones((2, 3), np.float64), x)
    with pytest.raises(ValueError, match="seed"):
        F.dropout_backward(x, x, 0.5)
    with pytest.raises(ValueError, match="dim"):
        F.softmax(x)
    with pytest.raises(ValueError, match="weight"):
        F.prelu(x, np.ones((3, 1), np.float32))
