"""Boundaries: outputs whose element count overflows 32 (and 64) bits or exceeds this machine's
memory are refused with SizeError (a ValueError and a MemoryError) before anything is
allocated; zero-size batches and empty channels; NaN / infinity propagate as the reference
says; denormal inputs do not make kernels orders of magnitude slower."""
from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convkern
import convkern.functional as F
import convkern.reference as R
from check import check_against_reference
from test_fuzz import BUILDERS, OPS, QUICK_EXAMPLES, _COMMON

f32 = np.float32
BIG = 2**31 + 7  # > int32

# Each call asks for an output beyond 2**32 elements (or beyond the machine's memory) from
# inputs of a few bytes: it must fail with SizeError before allocating anything.
HUGE_CALLS = {
    "conv2d_padding": lambda: F.conv2d(np.ones((1, 1, 3, 3), f32), np.ones((1, 1, 1, 1), f32), padding=2**17),
    "conv2d_padding_int64": lambda: F.conv2d(np.ones((1, 1, 3, 3), f32), np.ones((1, 1, 1, 1), f32),
                                             padding=2**40),
    "conv1d_padding": lambda: F.conv1d(np.ones((1, 1, 3), f32), np.ones((1, 1, 1), f32), padding=2**40),
    "conv3d_padding": lambda: F.conv3d(np.ones((1, 1, 2, 2, 2), f32), np.ones((1, 1, 1, 1, 1), f32), padding=2**12),
    "conv_transpose2d_stride": lambda: F.conv_transpose2d(np.ones((1, 1, 3, 3), f32), np.ones((1, 1, 1, 1), f32),
                                                          stride=BIG),
    "conv_transpose1d_stride": lambda: F.conv_transpose1d(np.ones((1, 1, 3), f32), np.ones((1, 1, 1), f32),
                                                          stride=2**62),
    "conv_transpose3d_dilation": lambda: F.conv_transpose3d(np.ones((1, 1, 1, 1, 1), f32),
                                                            np.ones((1, 1, 2, 2, 2), f32), dilation=2**12),
    "depthwise_padding": lambda: F.depthwise_conv2d(np.ones((1, 1, 3, 3), f32), np.ones((1, 1, 1, 1), f32),
                                                    padding=2**17),
    # pooling outputs are at most input + 1 per side (padding <= kernel/2): huge windows are refused
    "max_pool2d_kernel": lambda: F.max_pool2d(np.ones((1, 1, 3, 3), f32), BIG, stride=1, padding=2**30),
    "avg_pool2d_kernel": lambda: F.avg_pool2d(np.ones((1, 1, 3, 3), f32), 2**62, stride=2**62, padding=2**61),
    "adaptive_avg_huge": lambda: F.adaptive_avg_pool2d(np.ones((1, 1, 3, 3), f32), (2**17, 2**17)),
    "adaptive_max_huge": lambda: F.adaptive_max_pool2d(np.ones((1, 1, 3, 3), f32), (BIG, BIG), return_indices=True),
    "adaptive_avg_memory": lambda: F.adaptive_avg_pool2d(np.ones((1, 1, 3, 3), f32), (2**19, 2**19)),
    "conv2d_input_size": lambda: F.conv2d_input((1, 1, 2**17, 2**17), np.ones((1, 1, 1, 1), f32),
                                                np.ones((1, 1, 1, 1), f32), padding=0),
    "conv2d_weight_size": lambda: F.conv2d_weight(np.ones((1, 1, 3, 3), f32), (2**16, 1, 2**16, 1),
                                                  np.ones((1, 2**16, 1, 1), f32)),
}


@pytest.mark.parametrize("name", sorted(HUGE_CALLS))
def test_huge_outputs_refused_before_allocating(name):
    tracemalloc.start()
    try:
        with pytest.raises((ValueError, MemoryError)) as info:
            HUGE_CALLS[name]()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, ValueError), f"{name}: {type(info.value).__name__} is not a ValueError"
    assert peak < 64 << 20, f"{name}: {peak} bytes traced before the error"
    if "SizeError" in type(info.value).__name__:
        assert isinstance(info.value, MemoryError)


def test_conv_workspace_counts_against_memory(monkeypatch):
    """Found by the fuzz campaign: conv1d(padding=2**31-1) in float32 asked 16 GiB for the
    output (accepted on a 23 GiB machine) plus 16 GiB of im2col columns: OOM-killed. The output
    and the workspace are now checked together (here against a pretend 8 GiB machine)."""
    from convkern._ops import _util as U

    monkeypatch.setattr(U, "_physical_memory", lambda: 8 << 30)
    monkeypatch.setattr(U, "_available_memory", lambda: 8 << 30)
    x, w = np.ones((1, 1, 3), f32), np.ones((1, 1, 1), f32)
    p = 2**29  # output 2**30 floats = 4 GiB (fits alone), + 4 GiB of columns
    tracemalloc.start()
    try:
        with pytest.raises(F.SizeError, match="workspace"):
            F.conv1d(x, w, padding=p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_size_error_is_value_and_memory_error():
    assert issubclass(F.SizeError, ValueError) and issubclass(F.SizeError, MemoryError)
    with pytest.raises(F.SizeError, match="too large"):
        F.adaptive_avg_pool2d(np.ones((1, 1, 3, 3), f32), (2**19, 2**19))


@pytest.mark.parametrize("op", ["conv2d", "max_pool2d", "relu", "linear", "batch_norm"])
def test_huge_zero_stride_input_is_refused_before_copying(op):
    """A 2**36-element (256 GiB) zero-stride broadcast view as input: making it contiguous is
    itself an allocation larger than the machine, refused with SizeError (not numpy's
    MemoryError, and never an OOM kill half-way through the copy)."""
    x = np.broadcast_to(np.ones((1, 1, 1, 1), f32), (1, 1, 2**18, 2**18))
    calls = {
        "conv2d": lambda: F.conv2d(x, np.ones((1, 1, 1, 1), f32)),
        "max_pool2d": lambda: F.max_pool2d(x, 2),
        "relu": lambda: F.relu(x),
        "linear": lambda: F.linear(x, np.ones((1, 2**18), f32)),
        "batch_norm": lambda: F.batch_norm(x, np.zeros(1, f32), np.ones(1, f32)),
    }
    tracemalloc.start()
    try:
        with pytest.raises(F.SizeError, match="input: a contiguous copy of shape"):
            calls[op]()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak} bytes traced before the error"


def test_lrn_window_wider_than_the_channels():
    """size may exceed C (torch allows it; the window is clipped to the channels): a huge size
    is not a huge allocation, it only scales alpha."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    for size in (7, 2**31 + 1, 2**62):
        for dtype in (np.float32, np.float64):
            check_against_reference("local_response_norm", (x, size), dict(alpha=0.5), dtype=dtype, k=8,
                                    case=f"size={size}")


# ---------------------------------------------------------------------------------------------
# zero-size batch / empty channels: either a clear ValueError, or the reference's empty result

def _zero_axis(case, axis):
    op, args, kw, k = case
    x = args[0]
    if not isinstance(x, np.ndarray) or x.ndim <= axis:
        return None
    shape = list(x.shape)
    shape[axis] = 0
    args = (np.zeros(shape, x.dtype),) + tuple(args[1:])
    if op in ("cross_entropy",) and args[1].ndim and axis == 0:
        args = (args[0], np.zeros((0,) + args[1].shape[1:], np.int64)) + tuple(args[2:])
    if op == "mse_loss":
        args = (args[0], np.zeros(shape, x.dtype))
    return op, args, kw, k


@pytest.mark.parametrize("axis", [0, 1], ids=["batch", "channels"])
@pytest.mark.parametrize("op", OPS)
def test_empty_dimension(op, axis):
    @settings(max_examples=QUICK_EXAMPLES, derandomize=True, database=None, **_COMMON)
    @given(case=BUILDERS[op])
    def run(case):
        case = _zero_axis(case, axis)
        if case is None:
            return
        _, args, kw, _ = case
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                y = getattr(F, op)(*args, **kw)
            except ValueError as e:
                assert str(e)
                return
            try:
                y_ref = getattr(R, op)(*args, **kw)
            except (ValueError, ZeroDivisionError, IndexError):
                return  # the reference refuses it; the native op returned something sane
            ys, rs = (y, y_ref) if isinstance(y, tuple) else ((y,), (y_ref,))
            for a, e in zip(ys, rs):
                a, e = np.asarray(a), np.asarray(e)
                assert a.shape == e.shape, f"{op}: {a.shape} vs reference {e.shape}"
                if a.dtype.kind == "f":
                    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6, equal_nan=True)
            if op in F.DIFFERENTIABLE:
                g = np.zeros(ys[0].shape, ys[0].dtype)
                grads = getattr(F, op + "_backward")(g, *args, **kw)
                for n, gr, a in zip(F.DIFFERENTIABLE[op], grads, [args[0]]):
                    assert gr.shape == a.shape, f"{op}: grad {n} shape {gr.shape}"
    run()


# ---------------------------------------------------------------------------------------------
# NaN / infinity: the native ops agree with the reference (NaN where it has NaN, the same
# infinities), forward and backward, every ISA.

def _poison(case, rng, what):
    op, args, kw, k = case
    x = np.array(args[0], dtype=np.float64, copy=True)
    if x.size == 0:
        return case
    n = max(1, x.size // 7)
    idx = rng.choice(x.size, size=n, replace=False)
    vals = {"nan": [np.nan], "inf": [np.inf, -np.inf], "mixed": [np.nan, np.inf, -np.inf, 1e300]}[what]
    x.flat[idx] = rng.choice(vals, size=n)
    return op, (x,) + tuple(args[1:]), kw, k


@pytest.mark.parametrize("what", ["nan", "inf", "mixed"])
@pytest.mark.parametrize("op", OPS)
def test_nonfinite_like_reference(op, what, isa):
    @settings(max_examples=QUICK_EXAMPLES, derandomize=True, database=None, **_COMMON)
    @given(case=BUILDERS[op], seed=st.integers(0, 2**32 - 1))
    def run(case, seed):
        op_, args, kw, k = _poison(case, np.random.default_rng(seed), what)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for dtype in (np.float32, np.float64):
                check_against_reference(op_, args, kw, dtype=dtype, k=k, case=f"{op} {what} {isa}",
                                        backward=True)
    run()


# ---------------------------------------------------------------------------------------------
# Denormals. convkern does not set FTZ/DAZ (flush-to-zero would change results against the
# IEEE reference and would leak into NumPy in the same thread): denormal inputs are computed
# exactly like the reference, and the FP environment is left as found. Their speed is
# measured, not asserted (project rule: no timed assertions); ``-m slow`` prints the
# denormal/normal time ratios recorded in docs/RELIABILITY.md.

DENORMAL_OPS = {  # op -> fn(module, x): the same call on convkern.functional or convkern.reference
    "conv2d": lambda M, x: M.conv2d(x, np.full((8, 8, 3, 3), 1e-3, x.dtype), padding=1),
    "depthwise_conv2d": lambda M, x: M.depthwise_conv2d(x, np.full((8, 1, 3, 3), 1e-3, x.dtype), padding=1),
    "linear": lambda M, x: M.linear(x.reshape(-1, x.shape[-1]), np.full((64, x.shape[-1]), 1e-3, x.dtype)),
    "avg_pool2d": lambda M, x: M.avg_pool2d(x, 3, 1, 1),
    "batch_norm": lambda M, x: M.batch_norm(x, np.zeros(8, x.dtype), np.ones(8, x.dtype), training=True),
    "sigmoid": lambda M, x: M.sigmoid(x),
    "gelu": lambda M, x: M.gelu(x),
    "softmax": lambda M, x: M.softmax(x, 1),
    "layer_norm": lambda M, x: M.layer_norm(x, (x.shape[-1],)),
}


def _denormal_pair(dtype, shape=(4, 8, 64, 64)):
    rng = np.random.default_rng(0)
    normal = rng.uniform(0.5, 1.0, shape).astype(dtype)
    tiny = np.finfo(dtype).tiny
    denormal = (normal * (tiny / 4)).astype(dtype)
    assert np.all(denormal != 0) and np.all(np.abs(denormal) < tiny)
    return normal, denormal


@pytest.mark.parametrize("op", sorted(DENORMAL_OPS))
def test_denormal_inputs_exact_and_fp_environment_untouched(op, isa):
    """Results on subnormal inputs match the reference (nothing flushed to zero), and after the
    call NumPy in this thread still produces subnormals (no FTZ/DAZ left set)."""
    for dtype in (np.float32, np.float64):
        _, x = _denormal_pair(dtype, (2, 8, 8, 8))
        y, y_ref = DENORMAL_OPS[op](F, x), DENORMAL_OPS[op](R, x)
        y, y_ref = np.asarray(y, np.float64), np.asarray(y_ref, np.float64)
        scale = max(float(np.abs(y_ref).max()), np.finfo(dtype).smallest_subnormal)
        np.testing.assert_allclose(y, y_ref, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=scale * 1e-3,
                                   err_msg=f"{op} {np.dtype(dtype).name} on subnormal inputs")
        tiny = np.finfo(dtype).tiny
        assert (np.array([tiny], dtype) * dtype(0.5))[0] != 0, "FTZ is set after the call"


def _best(fn, x, reps=5, batch=1):
    """Best time per call over `reps` batches of `batch` calls (batches long enough for a
    coarse clock: some VMs tick perf_counter in 4 ms steps)."""
    fn(x)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(batch):
            fn(x)
        best = min(best, (time.perf_counter() - t) / batch)
    return best


def _batch_for(fn, x, target=0.1):
    t = time.perf_counter()
    fn(x)
    one = max(time.perf_counter() - t, 1e-4)
    return max(1, int(target / one))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("op", sorted(DENORMAL_OPS))
def test_denormal_speed_ratio_report(op, dtype, record_property):
    """Reports (never asserts) denormal/normal time per call, best of 5 batches of ~0.1 s
    (docs/RELIABILITY.md)."""
    normal, denormal = _denormal_pair(dtype)
    fn = lambda x: DENORMAL_OPS[op](F, x)  # noqa: E731
    with np.errstate(all="ignore"):
        batch = _batch_for(fn, normal)
        t_n, t_d = _best(fn, normal, 5, batch), _best(fn, denormal, 5, batch)
    record_property("denormal_ratio", t_d / t_n)
    print(f"[denormal] {op} {np.dtype(dtype).name}: normal {t_n * 1e3:.2f} ms, denormal {t_d * 1e3:.2f} ms, "
          f"ratio {t_d / t_n:.2f}")


# ---------------------------------------------------------------------------------------------
# Huge strides / padding / dilation with a small output: index arithmetic must not overflow.
# Regressions found by the fuzz campaign: conv3d with stride 2**63-1 overflowed ceil_div in the
# im2col kernel (segfault), conv2d(algo="direct") with a huge stride sized its zero-padded copy
# of the input from the stride (std::bad_alloc, overflow, heap corruption).

_HUGE = [2**31, 2**32 + 3, 2**61, 2**62 + 1, 2**63 - 1]


def _huge_param_calls(s, p):
    x = np.arange(70, dtype=np.float64).reshape(1, 2, 5, 7) / 70
    w = np.linspace(-1, 1, 36).reshape(2, 2, 3, 3)
    return {
        "conv1d": ("conv1d", (x[:, :, 0], w[:, :, 0]), dict(stride=s, padding=p)),
        "conv2d": ("conv2d", (x, w), dict(stride=s, padding=p)),
        "conv2d_direct": ("conv2d", (x, w), dict(stride=s, padding=p, algo="direct")),
        "conv3d": ("conv3d", (x[:, :, None], w[:, :, None]), dict(stride=s, padding=(0, p, p))),
        "conv3d_stride_d": ("conv3d", (x[:, :, None], w[:, :, None]), dict(stride=(s, 1, 1), dilation=(3, 1, 1),
                                                                          padding=(2, 0, 0))),
        "depthwise_conv2d": ("depthwise_conv2d", (x, w[:, :1]), dict(stride=s, padding=p)),
        "conv_transpose2d_dilation": ("conv_transpose2d", (x, w), dict(dilation=s, padding=p)),
        "max_pool2d": ("max_pool2d", (x, 3), dict(stride=s, padding=1)),
        "avg_pool2d": ("avg_pool2d", (x, 3), dict(stride=s, padding=1)),
    }


@pytest.mark.parametrize("name", sorted(_huge_param_calls(1, 0)))
def test_huge_parameters_small_output(name):
    for s in _HUGE:
        for p in (0, s // 4, s // 2 - 1):
            op, args, kw = _huge_param_calls(s, p)[name]
            try:
                y = getattr(F, op)(*args, **kw)
            except ValueError as e:  # refused (e.g. the output would be too large): fine, not a crash
                assert str(e)
                continue
            y0 = y[0] if isinstance(y, tuple) else y
            assert y0.size < 10**6 and np.all(np.isfinite(y0))
            getattr(F, op + "_backward")(np.ones_like(y0), *args, **kw)
            if p == 0 or op.endswith("pool2d"):  # (the NumPy reference materializes the padding)
                check_against_reference(op, args, kw, dtype=np.float64, k=64, case=f"{name} s={s} p={p}")


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
def test_batch_zero_gives_empty_outputs_like_torch(module):
    """Batch 0: empty outputs of torch's shapes, empty grad_input, zero parameter gradients
    (batch_norm in training mode refuses it: no batch statistics)."""
    x = np.zeros((0, 3, 8, 8))
    cases = [
        ("max_pool2d", (x, 2), {}, (0, 3, 4, 4)), ("avg_pool2d", (x, 3, 2, 1), {}, (0, 3, 4, 4)),
        ("adaptive_avg_pool2d", (x, 3), {}, (0, 3, 3, 3)), ("adaptive_max_pool2d", (x, 1), {}, (0, 3, 1, 1)),
        ("global_avg_pool2d", (x,), {}, (0, 3, 1, 1)), ("global_max_pool2d", (x,), {}, (0, 3, 1, 1)),
        ("batch_norm", (x, np.zeros(3), np.ones(3), np.ones(3), np.zeros(3)), {}, (0, 3, 8, 8)),
        ("local_response_norm", (x, 3), {}, (0, 3, 8, 8)),
        ("layer_norm", (x, (8,), np.ones(8), np.zeros(8)), {}, (0, 3, 8, 8)),
        ("linear", (np.zeros((0, 4)), np.ones((5, 4)), np.ones(5)), {}, (0, 5)),
    ]
    for op, args, kw, shape in cases:
        y = getattr(module, op)(*args, **kw)
        assert y.shape == shape, op
        grads = getattr(module, op + "_backward")(np.zeros(shape), *args, **kw)
        assert grads[0].shape == args[0].shape, op
        for g in grads[1:]:
            assert g is None or (g.shape and not np.any(g)), op
    with pytest.raises(ValueError, match="input"):
        module.batch_norm(x, None, None, training=True)
