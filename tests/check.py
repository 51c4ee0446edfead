"""Shared test helpers: compare native results with the reference, with a tolerance that
grows with the reduction length (llm.c's atol + |ref|*eps shape), printing the whole case
on failure (ncnn's test_layer)."""
from __future__ import annotations

import inspect

import numpy as np

import convkern.functional as F
import convkern.reference as R

EPS = {np.dtype(np.float32): 1.2e-7, np.dtype(np.float64): 2.3e-16}


def assert_close(actual, expected, *, k: int = 1, case: str = "", name: str = "output"):
    """|actual - expected| <= 32*eps*sqrt(k)*max(1,|expected|max) + 64*eps*|expected|.

    k: the number of terms summed into each output (reduction length)."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape} [{case}]"
    eps = EPS[np.dtype(actual.dtype)] if actual.dtype.kind == "f" else 0.0
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    atol = 32 * eps * np.sqrt(max(k, 1)) * scale
    rtol = 64 * eps
    a64, e64 = actual.astype(np.float64), expected.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf; infinities are compared exactly below
        bad = ~(np.abs(a64 - e64) <= atol + rtol * np.abs(e64))
    # NaN must match NaN exactly; inf must match inf.
    both_nan = np.isnan(a64) & np.isnan(e64)
    same_inf = np.isinf(e64) & (a64 == e64)
    bad &= ~(both_nan | same_inf)
    if np.any(bad):
        idx = np.argwhere(bad)[:5]
        pairs = ", ".join(f"{tuple(int(v) for v in i)}: {a64[tuple(i)]:.8g} vs {e64[tuple(i)]:.8g}" for i in idx)
        raise AssertionError(f"{name}: {int(bad.sum())}/{bad.size} mismatches (atol {atol:.3g}) [{case}] first: {pairs}")


def random_like_args(args, rng, dtype):
    return [a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args]


def check_against_reference(op: str, args: tuple, kwargs: dict, *, dtype, k: int = 1, rng=None, case: str = "",
                            backward: bool = True):
    """F.<op> vs R.<op> forward (inputs cast to dtype; reference run in float64), then
    F.<op>_backward vs R.<op>_backward with a random grad_output."""
    rng = rng or np.random.default_rng(0)
    args_t = random_like_args(args, rng, dtype)
    args_64 = random_like_args(args, rng, np.float64)
    # the reference sees exactly the values the native path sees
    args_64 = [a.astype(dtype).astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
               for a in args_64]
    kw_t = {k_: (v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v) for k_, v in kwargs.items()}
    kw_64 = {k_: (v.astype(dtype).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
             for k_, v in kwargs.items()}
    y = getattr(F, op)(*args_t, **kw_t)
    y_ref = getattr(R, op)(*args_64, **kw_64)
    if isinstance(y, tuple):
        for i, (a, e) in enumerate(zip(y, y_ref)):
            if np.asarray(a).dtype.kind == "f":
                assert np.asarray(a).dtype == np.dtype(dtype), f"output {i} dtype {np.asarray(a).dtype} [{case}]"
                assert_close(a, e, k=k, case=case, name=f"{op} output {i}")
            else:
                np.testing.assert_array_equal(a, e, err_msg=f"{op} output {i} [{case}]")
        y = y[0]
        y_ref = y_ref[0]
    else:
        assert y.dtype == np.dtype(dtype), f"{op}: output dtype {y.dtype} != {np.dtype(dtype)} [{case}]"
        assert_close(y, y_ref, k=k, case=case, name=f"{op} forward")
    if not backward or op not in F.DIFFERENTIABLE:
        return
    g64 = rng.standard_normal(np.shape(y_ref)).astype(dtype).astype(np.float64)
    grads = getattr(F, op + "_backward")(g64.astype(dtype), *args_t, **kw_t)
    grads_ref = getattr(R, op + "_backward")(g64, *args_64, **kw_64)
    names = F.DIFFERENTIABLE[op]
    assert len(grads) == len(names) == len(grads_ref), f"{op}_backward returned {len(grads)} gradients [{case}]"
    for n, a, e in zip(names, grads, grads_ref):
        if e is None:
            assert a is None, f"{op}: gradient of {n} should be None [{case}]"
            continue
        assert a is not None, f"{op}: gradient of {n} is None [{case}]"
        assert np.asarray(a).dtype == np.dtype(dtype), f"{op}: grad {n} dtype {np.asarray(a).dtype} [{case}]"
        assert_close(a, e, k=k * 4, case=case, name=f"{op} grad {n}")


def signature_names(fn):
    return list(inspect.signature(fn).parameters)
