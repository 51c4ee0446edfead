"""The CUDA path: every op on CuPy arrays against convkern.reference (float64 NumPy), forward
and backward, float32 and float64, plus routing / error behaviour and float64 gradient checks.

Skips cleanly when CuPy is missing, convkern was built without CUDA, or no GPU is visible.
"""
from __future__ import annotations

import numpy as np
import pytest

import convkern
import convkern.functional as F
import convkern.reference as R

from check import assert_close

cp = pytest.importorskip("cupy")
if not convkern.info()["cuda_built"]:
    pytest.skip("convkern was built without CUDA", allow_module_level=True)
try:
    _NGPU = cp.cuda.runtime.getDeviceCount()
except Exception:  # no driver / no device
    _NGPU = 0
if _NGPU == 0 or not convkern.info()["cuda_devices"]:
    pytest.skip("no CUDA device visible", allow_module_level=True)

DTYPES = [np.float32, np.float64]


def _to_gpu(v, dtype):
    if isinstance(v, np.ndarray):
        return cp.asarray(v.astype(dtype) if v.dtype.kind == "f" else v)
    return v


def _to_ref(v, dtype):
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(dtype).astype(np.float64)
    return v


def _host(v):
    if v is None:
        return None
    assert isinstance(v, cp.ndarray), f"expected a CuPy result, got {type(v).__name__}"
    return cp.asnumpy(v)


def run_case(op, args, kwargs=None, *, dtype, k=1, case="", backward=True, rng=None, tol_scale=1.0):
    """F.<op> on CuPy arrays vs R.<op> on float64 NumPy arrays, forward then backward."""
    kwargs = kwargs or {}
    rng = rng or np.random.default_rng(0)
    ga = [_to_gpu(a, dtype) for a in args]
    gk = {n: _to_gpu(v, dtype) for n, v in kwargs.items()}
    ra = [_to_ref(a, dtype) for a in args]
    rk = {n: _to_ref(v, dtype) for n, v in kwargs.items()}
    y = getattr(F, op)(*ga, **gk)
    y_ref = getattr(R, op)(*ra, **rk)
    kk = int(k * tol_scale)
    if isinstance(y, tuple):
        for i, (a, e) in enumerate(zip(y, y_ref)):
            a = _host(a)
            if a.dtype.kind == "f":
                assert_close(a, e, k=kk, case=case, name=f"{op} output {i}")
            else:
                np.testing.assert_array_equal(a, e, err_msg=f"{op} output {i} [{case}]")
        y, y_ref = y[0], y_ref[0]
    else:
        assert y.dtype == np.dtype(dtype)
        assert_close(_host(y), y_ref, k=kk, case=case, name=f"{op} forward")
    if not backward or op not in F.DIFFERENTIABLE:
        return
    g64 = rng.standard_normal(np.shape(y_ref)).astype(dtype).astype(np.float64)
    grads = getattr(F, op + "_backward")(cp.asarray(g64.astype(dtype)), *ga, **gk)
    grads_ref = getattr(R, op + "_backward")(g64, *ra, **rk)
    for name, a, e in zip(F.DIFFERENTIABLE[op], grads, grads_ref):
        if e is None:
            assert a is None, f"{op}: gradient of {name} should be None [{case}]"
            continue
        assert_close(_host(a), e, k=kk, case=case, name=f"{op} grad {name}")


# ----------------------------------------------------------------------------- convolution
CONV2D_CASES = [
    # (N, C, H, W, K, R, S, stride, padding, dilation, groups, bias)
    (2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1, True),
    (1, 1, 7, 7, 1, 3, 3, 1, 0, 1, 1, False),         # batch 1, one channel
    (2, 4, 10, 9, 6, 3, 5, 2, (1, 2), 1, 2, True),    # groups, odd kernel, stride 2
    (1, 6, 13, 12, 6, 3, 3, 1, 2, 2, 3, True),        # dilation 2, padding 2
    (2, 8, 8, 8, 16, 1, 1, 1, 0, 1, 1, True),         # pointwise (plain GEMM path)
    (3, 5, 12, 11, 7, 5, 3, (3, 2), (2, 1), (1, 3), 1, False),
    (1, 4, 5, 5, 8, 5, 5, 1, 0, 1, 1, True),          # 1x1 output
    (2, 130, 9, 7, 133, 3, 3, 1, 1, 1, 1, True),      # > one GEMM tile in M and K
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", ["implicit", "im2col"])
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d(case, algo, dtype):
    N, C, H, W, K, Rk, S, st, pd, dl, g, bias = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, Rk, S))
    b = rng.standard_normal(K) if bias else None
    with convkern.cuda.conv_algo(algo):
        run_case("conv2d", (x, w, b), dict(stride=st, padding=pd, dilation=dl, groups=g, algo="im2col"),
                 dtype=dtype, k=C // g * Rk * S * N, case=f"{case} {algo}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV2D_CASES[:4])
def test_conv2d_direct(case, dtype):
    N, C, H, W, K, Rk, S, st, pd, dl, g, bias = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C // g, Rk, S))
    b = rng.standard_normal(K) if bias else None
    run_case("conv2d", (x, w, b), dict(stride=st, padding=pd, dilation=dl, groups=g, algo="direct"),
             dtype=dtype, k=C // g * Rk * S * N, case=str(case))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv1d_conv3d(dtype):
    rng = np.random.default_rng(3)
    run_case("conv1d", (rng.standard_normal((2, 3, 17)), rng.standard_normal((4, 3, 5)), rng.standard_normal(4)),
             dict(stride=2, padding=2, dilation=1), dtype=dtype, k=60)
    run_case("conv3d", (rng.standard_normal((1, 2, 5, 6, 7)), rng.standard_normal((4, 1, 3, 2, 3)), None),
             dict(stride=(1, 2, 1), padding=1, groups=2), dtype=dtype, k=60)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_transpose2d(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    run_case("conv_transpose2d", (x, w, rng.standard_normal(6)),
             dict(stride=2, padding=1, output_padding=1, groups=2), dtype=dtype, k=200)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # (N, C, M, H, W, R, S, stride, padding, dilation)
    (2, 3, 1, 9, 10, 3, 3, 1, 1, 1),
    (1, 4, 2, 11, 8, 5, 3, 2, (2, 1), 1),
    (2, 1, 3, 7, 7, 3, 3, 1, 2, 2),
])
def test_depthwise(case, dtype):
    N, C, M, H, W, Rk, S, st, pd, dl = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C * M, 1, Rk, S))
    run_case("depthwise_conv2d", (x, w, rng.standard_normal(C * M)), dict(stride=st, padding=pd, dilation=dl),
             dtype=dtype, k=Rk * S * N * H * W, case=str(case))
    run_case("conv2d", (x, w, None), dict(stride=st, padding=pd, dilation=dl, groups=C), dtype=dtype,
             k=Rk * S * N * H * W, case="conv2d groups=C " + str(case))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear(dtype):
    rng = np.random.default_rng(6)
    for M, Kin, O in [(1, 7, 5), (33, 129, 130), (4, 3, 1)]:
        run_case("linear", (rng.standard_normal((M, Kin)), rng.standard_normal((O, Kin)), rng.standard_normal(O)),
                 dtype=dtype, k=max(Kin, M), case=f"{M}x{Kin}->{O}")
    run_case("linear", (rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 9)), None), dtype=dtype, k=9)


# ----------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
    (2, 3, 9, 11, 3, 2, 1, 1, False),
    (1, 1, 7, 8, (2, 3), None, 0, 1, True),
    (2, 2, 12, 10, 3, 1, 1, 2, False),
    (1, 2, 5, 5, 5, 1, 2, 1, False),
])
def test_pool(case, dtype):
    N, C, H, W, k, s, p, d, ceil = case
    x = np.random.default_rng(7).standard_normal((N, C, H, W))
    run_case("max_pool2d", (x, k), dict(stride=s, padding=p, dilation=d, ceil_mode=ceil, return_indices=True),
             dtype=dtype, case=str(case))
    run_case("avg_pool2d", (x, k), dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=False),
             dtype=dtype, k=9, case=str(case))
    run_case("avg_pool2d", (x, k), dict(stride=s, padding=p, ceil_mode=ceil, divisor_override=7), dtype=dtype, k=9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_global_pool(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 11, 7))
    for out in [(3, 2), 5, (11, 9), 1]:
        run_case("adaptive_avg_pool2d", (x, out), dtype=dtype, k=77, case=str(out))
        run_case("adaptive_max_pool2d", (x, out), dict(return_indices=True), dtype=dtype, case=str(out))
    big = rng.standard_normal((2, 5, 40, 33))  # planes longer than one block
    for op in ["global_avg_pool2d", "global_max_pool2d"]:
        run_case(op, (x,), dtype=dtype, k=77)
        run_case(op, (big,), dtype=dtype, k=1320)


def test_max_pool_nan_and_ties():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 3] = np.nan
    y, i = F.max_pool2d(cp.asarray(x), 2, return_indices=True)
    y_ref, i_ref = R.max_pool2d(x.astype(np.float64), 2, return_indices=True)
    np.testing.assert_array_equal(cp.asnumpy(i), i_ref)
    g = F.global_max_pool2d(cp.asarray(x))
    assert np.isnan(cp.asnumpy(g)).all()


# ----------------------------------------------------------------------------- normalization
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (1, 2, 3), (7, 5), (3, 70, 33, 17)])
def test_batch_norm(shape, dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape) * 3 + 5
    C = shape[1]
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    M = x.size // C
    for training in (True, False):
        rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
        run_case("batch_norm", (x, rm, rv, w, b), dict(training=training, momentum=0.3, eps=1e-4), dtype=dtype, k=M,
                 case=f"{shape} training={training}")
    # running statistics are updated in place on the GPU, like the CPU path
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    rm_g, rv_g = cp.asarray(rm.astype(dtype)), cp.asarray(rv.astype(dtype))
    rm_r, rv_r = rm.astype(dtype).astype(np.float64), rv.astype(dtype).astype(np.float64)
    F.batch_norm(cp.asarray(x.astype(dtype)), rm_g, rv_g, training=True, momentum=0.2)
    R.batch_norm(x.astype(dtype).astype(np.float64), rm_r, rv_r, training=True, momentum=0.2)
    assert_close(cp.asnumpy(rm_g), rm_r, k=M, name="running_mean")
    assert_close(cp.asnumpy(rv_g), rv_r, k=M, name="running_var")


@pytest.mark.parametrize("dtype", DTYPES)
def test_lrn_layer_norm(dtype):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 7, 4, 5))
    for size in (1, 2, 5, 9):
        run_case("local_response_norm", (x, size), dict(alpha=1e-2, beta=0.75, k=2.0), dtype=dtype, k=size * 4,
                 case=f"size={size}")
    run_case("layer_norm", (x, (4, 5), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))), dtype=dtype, k=40)
    run_case("layer_norm", (rng.standard_normal((3, 300)), 300), dtype=dtype, k=300)


# ----------------------------------------------------------------------------- activations, softmax, losses
ACTS = [("relu", {}), ("relu6", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.7}), ("sigmoid", {}),
        ("tanh", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,kw", ACTS)
def test_activation(op, kw, dtype):
    x = np.random.default_rng(11).standard_normal((3, 5, 7)) * 3
    x[0, 0, :3] = 0.0  # kinks
    run_case(op, (x,), kw, dtype=dtype, k=4, case=op)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_softmax(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 4, 5, 6))
    run_case("prelu", (x, rng.standard_normal(4)), dtype=dtype, k=90)
    run_case("prelu", (x, rng.standard_normal(1)), dtype=dtype, k=360)
    for dim in (0, 1, -1):
        run_case("softmax", (x,), dict(dim=dim), dtype=dtype, k=8, case=f"dim={dim}")
        run_case("log_softmax", (x,), dict(dim=dim), dtype=dtype, k=8, case=f"dim={dim}")
    wide = rng.standard_normal((5, 1000)) * 4
    run_case("log_softmax", (wide,), dict(dim=1), dtype=dtype, k=1000)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_cpu(dtype):
    x = np.random.default_rng(13).standard_normal((4, 33, 17)).astype(dtype)
    for p in (0.0, 0.3, 1.0):
        y_cpu = F.dropout(x, p=p, seed=1234)
        y_gpu = F.dropout(cp.asarray(x), p=p, seed=1234)
        np.testing.assert_array_equal(cp.asnumpy(y_gpu), y_cpu)
        g_cpu = F.dropout_backward(x, x, p=p, seed=1234)[0]
        g_gpu = F.dropout_backward(cp.asarray(x), cp.asarray(x), p=p, seed=1234)[0]
        np.testing.assert_array_equal(cp.asnumpy(g_gpu), g_cpu)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses(dtype):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((6, 5))
    t = rng.integers(0, 5, size=6)
    t[2] = -100
    w = rng.random(5) + 0.5
    for red in ("mean", "sum", "none"):
        run_case("cross_entropy", (x, t), dict(weight=w, reduction=red, label_smoothing=0.1), dtype=dtype, k=30,
                 case=red)
    x4 = rng.standard_normal((2, 4, 3, 5))
    t4 = rng.integers(0, 4, size=(2, 3, 5))
    run_case("cross_entropy", (x4, t4), dtype=dtype, k=120)
    run_case("cross_entropy", (rng.standard_normal((3, 1000)), rng.integers(0, 1000, size=3)), dtype=dtype, k=3000)
    for red in ("mean", "sum", "none"):
        run_case("mse_loss", (rng.standard_normal((4, 7)), rng.standard_normal((4, 7))), dict(reduction=red),
                 dtype=dtype, k=28)


# ----------------------------------------------------------------------------- routing and errors
def test_results_are_cupy_and_numpy_stays_on_cpu():
    x = np.random.default_rng(15).standard_normal((1, 2, 5, 5)).astype(np.float32)
    assert isinstance(F.relu(x), np.ndarray)
    assert isinstance(F.relu(cp.asarray(x)), cp.ndarray)


def test_mixing_numpy_and_cupy_is_a_type_error():
    x = cp.zeros((1, 2, 5, 5), cp.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="weight"):
        F.conv2d(x, w)
    with pytest.raises(TypeError, match="input"):
        F.conv2d(cp.asnumpy(x), cp.asarray(w))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(cp.zeros((2, 3), cp.float32), np.zeros(2, np.int64))


def test_noncontiguous_cupy_input():
    x = np.random.default_rng(16).standard_normal((2, 3, 6, 5)).astype(np.float32)
    xt = cp.asarray(x).transpose(0, 1, 3, 2)
    assert_close(cp.asnumpy(F.max_pool2d(xt, 2)), R.max_pool2d(x.transpose(0, 1, 3, 2).astype(np.float64), 2))


def test_runs_on_current_stream():
    x = cp.asarray(np.random.default_rng(17).standard_normal((64, 64)).astype(np.float32))
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        y = F.linear(x, x)
    s.synchronize()
    assert_close(cp.asnumpy(y), cp.asnumpy(x).astype(np.float64) @ cp.asnumpy(x).T.astype(np.float64), k=64)


def test_direct_binding_refuses_mixed_pointers():
    x = cp.zeros((1, 1, 4, 4), cp.float32)
    y = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="output"):
        convkern._C.max_pool2d_forward(x, y, None, 2, 2, 2, 2, 0, 0, 1, 1, False)


def test_out_of_memory_is_memory_error():
    """A workspace allocation that fails (cudaMallocAsync) surfaces as MemoryError, not an abort."""
    x = cp.zeros((1, 64, 256, 256), cp.float32)
    w = cp.zeros((64, 64, 3, 3), cp.float32)
    cp.cuda.Device().synchronize()
    free, _ = convkern._C.cuda_mem_info()
    hog = cp.empty(max(0, free - (80 << 20)), cp.uint8)  # leave ~80 MB: the 150 MB im2col buffer cannot fit
    try:
        with convkern.cuda.conv_algo("im2col"), pytest.raises(MemoryError):
            F.conv2d(x, w, padding=1, algo="im2col")
            convkern.cuda.synchronize()
    finally:
        del hog
        cp.get_default_memory_pool().free_all_blocks()
    F.relu(x)  # the device is still usable
    convkern.cuda.synchronize()


def test_info_reports_gpu():
    d = convkern.info()
    assert d["cuda_built"] and d["cuda_devices"]
    assert "sm_" in convkern.format_info()


# ----------------------------------------------------------------------------- gradient checks (float64)
@pytest.mark.parametrize("op,args,kw", [
    ("conv2d", lambda r: (r.standard_normal((1, 2, 5, 5)), r.standard_normal((3, 2, 3, 3)), r.standard_normal(3)),
     dict(stride=2, padding=1)),
    ("batch_norm", lambda r: (r.standard_normal((3, 2, 3)), None, None, r.standard_normal(2), r.standard_normal(2)),
     dict(training=True)),
    ("local_response_norm", lambda r: (r.standard_normal((1, 4, 3)), 3), {}),
    ("log_softmax", lambda r: (r.standard_normal((3, 4)),), dict(dim=1)),
    ("avg_pool2d", lambda r: (r.standard_normal((1, 1, 5, 5)), 3), dict(stride=2, padding=1)),
])
def test_gradcheck_gpu(op, args, kw):
    """Central differences through the GPU forward vs the GPU backward, in float64."""
    a = [cp.asarray(v) if isinstance(v, np.ndarray) else v for v in args(np.random.default_rng(18))]
    fwd = getattr(F, op)
    y = fwd(*a, **kw)
    g = cp.asarray(np.random.default_rng(19).standard_normal(y.shape))
    grads = getattr(F, op + "_backward")(g, *a, **kw)
    h = 1e-6
    for name, grad in zip(F.DIFFERENTIABLE[op], grads):
        if grad is None:
            continue
        idx = [i for i, n in enumerate(fwd.__wrapped__.__code__.co_varnames) if n == name][0]
        base = a[idx]
        num = np.zeros(base.shape)
        flat = base.reshape(-1)
        for j in range(flat.size):
            old = float(flat[j])
            flat[j] = old + h
            fp = float(cp.sum(fwd(*a, **kw) * g))
            flat[j] = old - h
            fm = float(cp.sum(fwd(*a, **kw) * g))
            flat[j] = old
            num.reshape(-1)[j] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(cp.asnumpy(grad), num, rtol=1e-5, atol=1e-6, err_msg=f"{op} d{name}")
