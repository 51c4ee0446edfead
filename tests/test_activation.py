"""Activations, softmax / log_softmax and dropout: native vs reference, gradchecks, dropout
determinism, special values and bad inputs."""
import numpy as np
import pytest

import convkern
import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op
from convkern.reference.activation import dropout_mask

from check import assert_close, check_against_reference

DTYPES = [np.float32, np.float64]

# (shape, layout): layout "t" passes a transposed (non-contiguous) view
SHAPES = [((1,), ""), ((7,), ""), ((8,), ""), ((9,), ""), ((15,), ""), ((16,), ""), ((17,), ""), ((33,), ""),
          ((3, 17), "t"), ((2, 3, 4, 5), ""), ((2, 5, 3, 7), "t")]

UNARY = [
    ("relu", {}),
    ("relu6", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
]


def _input(shape, layout, rng, scale=3.0):
    x = rng.standard_normal(shape) * scale
    if layout == "t":
        x = np.ascontiguousarray(x.T).T  # same shape, Fortran order
        assert not x.flags.c_contiguous or x.ndim == 1 or x.size == 1
    return x


def _case_id(c):
    return "x".join(map(str, c[0])) + c[1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHAPES, ids=_case_id)
@pytest.mark.parametrize("op,kw", UNARY, ids=[f"{o}-{'-'.join(map(str, k.values()))}" for o, k in UNARY])
def test_unary_vs_reference(isa, op, kw, case, dtype):
    rng = np.random.default_rng(sum(case[0]) * 7 + len(op))
    x = _input(*case, rng)
    x.reshape(-1)[:1] = 0.0  # a kink
    check_against_reference(op, (x,), kw, dtype=dtype, case=f"{op} {kw} {case} {isa}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,kw", UNARY, ids=[f"{o}-{'-'.join(map(str, k.values()))}" for o, k in UNARY])
def test_unary_large_values_and_long_arrays(isa, op, kw, dtype):
    rng = np.random.default_rng(7)
    # large magnitudes (saturation of sigmoid / tanh / elu / gelu) and a parallel-sized array
    x = np.concatenate([np.linspace(-120, 120, 2001), rng.standard_normal(70001) * 10])
    check_against_reference(op, (x,), kw, dtype=dtype, case=f"{op} large {isa}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,kw", UNARY + [("prelu", {})], ids=[o for o, _ in UNARY] + ["prelu"])
def test_special_values_match_reference(isa, op, kw, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 80.0, -80.0, 700.0, -700.0] * 3)
    x = x.astype(dtype)
    args = (x, np.array([0.25], dtype=dtype)) if op == "prelu" else (x,)
    with np.errstate(all="ignore"):
        y = getattr(F, op)(*args, **kw)
        y_ref = getattr(R, op)(*[a.astype(np.float64) for a in args], **kw)
        g = np.linspace(-1, 1, x.size).astype(dtype)
        gx = getattr(F, op + "_backward")(g, *args, **kw)[0]
        gx_ref = getattr(R, op + "_backward")(g.astype(np.float64), *[a.astype(np.float64) for a in args], **kw)[0]
    assert_close(y, y_ref, case=f"{op} special", name=op)
    assert_close(gx, gx_ref, case=f"{op} special", name=op + " grad")
    assert np.array_equal(np.isnan(y), np.isnan(y_ref))


def test_relu_nan_and_kink_conventions():
    x = np.array([np.nan, 0.0, -1.0, 2.0])
    y = F.relu(x)
    assert np.isnan(y[0]) and list(y[1:]) == [0.0, 0.0, 2.0]
    g = np.ones(4)
    assert list(F.relu_backward(g, x)[0][1:]) == [0.0, 0.0, 1.0]
    assert F.leaky_relu_backward(g[:1], np.array([0.0]), 0.1)[0][0] == pytest.approx(0.1)
    x6 = np.array([np.nan, 0.0, -1.0, 2.0, 6.0, 7.5, np.inf, -np.inf])
    y6 = F.relu6(x6)
    assert np.isnan(y6[0]) and list(y6[1:]) == [0.0, 0.0, 2.0, 6.0, 6.0, 6.0, 0.0]
    assert list(F.relu6_backward(np.ones(8), x6)[0][1:]) == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # torch: 0 at both kinks
    assert F.elu_backward(g[:1], np.array([0.0]), alpha=0.7)[0][0] == pytest.approx(0.7)
    assert F.prelu_backward(g[:1], np.array([0.0]), np.array([0.3]))[0][0] == pytest.approx(0.3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,wsize", [((5,), 1), ((3, 4), 4), ((3, 4), 1), ((2, 3, 5, 7), 3), ((2, 9, 17), 9),
                                        ((1, 1, 1), 1), ((4, 16, 300), 16)])
def test_prelu_vs_reference(isa, shape, wsize, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    w = rng.uniform(-0.5, 0.5, wsize)
    k = x.size // wsize
    check_against_reference("prelu", (x, w), {}, dtype=dtype, k=k, case=f"prelu {shape} {wsize} {isa}")
    xt = np.ascontiguousarray(x.T).T
    check_against_reference("prelu", (xt, w), {}, dtype=dtype, k=k, case=f"prelu T {shape} {wsize} {isa}")


SOFTMAX_SHAPES = [(1,), (7,), (9,), (33,), (3, 17), (2, 3, 4, 5), (2, 300, 3), (3, 5, 270), (2, 1000)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 300.0])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_vs_reference(isa, op, shape, scale, dtype):
    rng = np.random.default_rng(len(shape) * 31 + shape[-1])
    x = rng.standard_normal(shape) * scale
    for dim in range(-len(shape), len(shape)):
        check_against_reference(op, (x,), {"dim": dim}, dtype=dtype, k=shape[dim],
                                case=f"{op} {shape} dim={dim} scale={scale} {isa}")
    if x.ndim >= 2:
        xt = np.ascontiguousarray(x.T).T
        check_against_reference(op, (xt,), {"dim": 1}, dtype=dtype, k=shape[1], case=f"{op} T {shape} {isa}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_stability_and_special_rows(isa, dtype):
    big = np.finfo(dtype).max / 4
    x = np.array([[1e4, 1e4 - 1, -1e4, 0.0],
                  [-np.inf, 0.0, 1.0, -np.inf],
                  [big, big, -big, 0.0],
                  [np.nan, 0.0, 1.0, 2.0]], dtype=dtype)
    for op in ("softmax", "log_softmax"):
        for dim in (0, 1):
            with np.errstate(all="ignore"):
                y = getattr(F, op)(x, dim=dim)
                y_ref = getattr(R, op)(x.astype(np.float64), dim=dim)
            assert_close(y, y_ref, k=4, case=f"{op} dim={dim}", name=op)
    y = F.softmax(x, dim=1)
    assert np.all(np.isfinite(y[:3])) and np.allclose(y[:3].sum(axis=1), 1.0)
    assert np.all(np.isnan(y[3]))
    assert F.log_softmax(x, dim=1)[1, 0] == -np.inf


def test_softmax_zero_d_and_unit_dim():
    assert F.softmax(np.array(3.0), dim=0) == 1.0
    assert F.softmax(np.array(3.0), dim=0).shape == ()
    np.testing.assert_array_equal(F.log_softmax(np.ones((3, 1)), dim=1), np.zeros((3, 1)))


# ---------------------------------------------------------------------------------------------
GRADCHECK = [
    ("relu", {}), ("relu6", {}), ("leaky_relu", {"negative_slope": 0.3}), ("elu", {"alpha": 1.3}), ("sigmoid", {}), ("tanh", {}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("op,kw", GRADCHECK, ids=[f"{o}-{'-'.join(map(str, k.values()))}" for o, k in GRADCHECK])
def test_gradcheck_unary(module, op, kw):
    rng = np.random.default_rng(11)
    x = rng.uniform(0.2, 2.0, (2, 3, 5)) * rng.choice([-1.0, 1.0], (2, 3, 5))  # away from the kink
    if op == "relu6":
        x = x * 4.0  # both sides of the upper kink too (none within 1e-3 of 6)
        assert (x > 6).any() and (np.abs(x - 6) > 1e-3).all()
    assert check_op(module, op, x, **kw)


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_gradcheck_prelu_softmax_dropout(module):
    rng = np.random.default_rng(12)
    x = rng.uniform(0.2, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))
    assert check_op(module, "prelu", x, rng.uniform(0.1, 0.5, 3))
    assert check_op(module, "prelu", x, np.array([0.25]))
    for dim in (0, 1, -1):
        assert check_op(module, "softmax", x, dim=dim)
        assert check_op(module, "log_softmax", x, dim=dim)
    assert check_op(module, "dropout", x, 0.4, True, 3)  # positional: check_op has its own seed


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (17,), (3, 33), (2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_vs_reference(isa, shape, p, dtype):
    x = np.random.default_rng(5).standard_normal(shape)
    check_against_reference("dropout", (x,), {"p": p, "seed": 1234}, dtype=dtype, case=f"dropout {shape} {p}")
    y = F.dropout(x.astype(dtype), p, seed=99)
    y_ref = R.dropout(x.astype(dtype), p, seed=99)
    np.testing.assert_array_equal(y, y_ref)  # bitwise


def test_dropout_deterministic_across_isas_and_threads():
    x = np.random.default_rng(0).standard_normal((3, 50001)).astype(np.float32)  # large: parallel path
    ref = R.dropout(x, 0.3, seed=2**63 + 17)
    old = convkern.get_num_threads()
    try:
        for name in convkern.available_isas():
            with convkern.isa(name):
                for nt in (1, 2, 3):
                    convkern.set_num_threads(nt)
                    np.testing.assert_array_equal(F.dropout(x, 0.3, seed=2**63 + 17), ref, err_msg=f"{name} {nt}")
                    g = np.ones_like(x)
                    np.testing.assert_array_equal(F.dropout_backward(g, x, 0.3, seed=2**63 + 17)[0],
                                                  R.dropout(g, 0.3, seed=2**63 + 17))
    finally:
        convkern.set_num_threads(old)


def test_dropout_mask_statistics():
    n = 200_000
    x = np.ones(n)
    for p in (0.1, 0.5, 0.8):
        y = F.dropout(x, p, seed=42)
        kept = y != 0
        frac = kept.mean()
        assert abs(frac - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n), (p, frac)
        np.testing.assert_array_equal(y[kept], 1.0 / (1.0 - p))
        assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
        # neighbouring elements are not correlated
        assert abs(np.corrcoef(kept[:-1], kept[1:])[0, 1]) < 0.02
    # different seeds give different masks, same seed the same one
    a, b = F.dropout(x[:1000], 0.5, seed=1), F.dropout(x[:1000], 0.5, seed=2)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, F.dropout(x[:1000], 0.5, seed=1))


def test_dropout_modes_and_seed_none():
    x = np.random.default_rng(1).standard_normal((4, 5))
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False), x)
    np.testing.assert_array_equal(F.dropout(x, 0.0), x)
    np.testing.assert_array_equal(F.dropout(x, 1.0), np.zeros_like(x))
    assert F.dropout(x, 0.5, training=False) is not x
    np.testing.assert_array_equal(F.dropout_backward(x, x, 0.5, training=False)[0], x)
    np.testing.assert_array_equal(F.dropout_backward(x, x, 1.0)[0], np.zeros_like(x))
    np.random.seed(123)
    a = F.dropout(x, 0.5)
    np.random.seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5), a)
    with pytest.raises(ValueError, match="seed"):
        F.dropout_backward(x, x, 0.5)
    with pytest.raises(ValueError, match="seed"):
        R.dropout_backward(x, x, 0.5)
    m = dropout_mask((4, 5), 0.5, 7)
    np.testing.assert_array_equal(F.dropout(x, 0.5, seed=7), np.where(m, 2 * x, 0 * x))


# ---------------------------------------------------------------------------------------------
def test_bad_inputs():
    x = np.ones((2, 3))
    for op in ("relu", "relu6", "sigmoid", "tanh", "gelu", "elu", "leaky_relu"):
        with pytest.raises(TypeError, match="input"):
            getattr(F, op)(np.ones((2, 3), dtype=np.int64))
        with pytest.raises(TypeError, match="input"):
            getattr(F, op)([1.0, 2.0])
        with pytest.raises(ValueError, match="grad_output"):
            getattr(F, op + "_backward")(np.ones((3, 2)), x)
        with pytest.raises(TypeError, match="grad_output"):
            getattr(F, op + "_backward")(np.ones((2, 3), dtype=np.float32), x)
    with pytest.raises(TypeError, match="negative_slope"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="alpha"):
        F.elu(x, None)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="weight"):
        F.prelu(x, np.ones(2))
    with pytest.raises(ValueError, match="weight"):
        F.prelu(np.ones(3), np.ones(3))  # 1-d input has one channel
    with pytest.raises(ValueError, match="weight"):
        F.prelu(x, np.ones((3, 1)))
    with pytest.raises(TypeError, match="weight"):
        F.prelu(x, np.ones(3, dtype=np.float32))
    for op in ("softmax", "log_softmax"):
        with pytest.raises(ValueError, match="dim"):
            getattr(F, op)(x, dim=2)
        with pytest.raises(ValueError, match="dim"):
            getattr(F, op)(x, dim=-3)
        with pytest.raises(ValueError, match="dim"):
            getattr(F, op)(x)
        with pytest.raises(TypeError, match="dim"):
            getattr(F, op)(x, dim=1.0)
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p"):
            F.dropout(x, p)
    with pytest.raises(TypeError, match="seed"):
        F.dropout(x, 0.5, seed=1.5)
    with pytest.raises(TypeError, match="training"):
        F.dropout(x, 0.5, training="yes")
    # direct native calls with wrong sizes are refused, never out of bounds
    with pytest.raises(ValueError, match="output"):
        convkern._C.act_forward(x, np.empty(5), 0, 0.0)
    with pytest.raises(ValueError, match="input"):
        convkern._C.softmax_forward(x, np.empty_like(x), 2, 4, 1, False)
    with pytest.raises(ValueError, match="weight"):
        convkern._C.prelu_forward(x, np.ones(2), np.empty_like(x), 2, 3, 1)
    with pytest.raises(ValueError, match="op"):
        convkern._C.act_forward(x, np.empty_like(x), 99, 0.0)


def test_empty_and_strided_inputs():
    assert F.relu(np.ones((0, 3))).shape == (0, 3)
    assert F.softmax(np.ones((0, 3)), dim=1).shape == (0, 3)
    x = np.random.default_rng(2).standard_normal((6, 10))
    for op in ("relu", "sigmoid", "gelu"):
        np.testing.assert_array_equal(getattr(F, op)(x[::2, 1::3]), getattr(F, op)(x[::2, 1::3].copy()))
    np.testing.assert_array_equal(F.softmax(x[:, ::2], dim=0), F.softmax(x[:, ::2].copy(), dim=0))
