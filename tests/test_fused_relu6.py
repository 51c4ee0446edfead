"""ReLU6 (a relu clamped to [0, relu_max]) fused into the convolution epilogues.

conv_nd(..., relu=True, relu_max=6) must give bit for bit what the same kernel's plain output
followed by separate passes gives (bias, then residual, then the clamp; NaN stays NaN), on every
forward route 'auto' picks (im2col GEMM, channel-last product, folded batch, channel-last
implicit GEMM, Winograd, depthwise, direct), every ISA, both dtypes, one and two threads; the
plain relu (relu_max None) keeps its result; bad relu_max values are refused. The ONNX backend's
Conv + Clip(0, 6) fusion matches the unoptimized graph and ONNX Runtime.
"""
from __future__ import annotations

import numpy as np
import pytest

import convkern
import convkern.functional as F
from convkern import reference as R
from convkern._ops import conv as C

from check import assert_close

# (N, C, K, H, W, R, S, stride, pad, groups, route wanted for float32)
CASES = [
    (1, 16, 40, 20, 20, 1, 1, 1, 0, 1, "im2col"),      # pointwise, large plane
    (1, 48, 70, 7, 7, 1, 1, 1, 0, 1, "im2col"),        # pointwise, channel-last product
    (3, 20, 50, 7, 7, 1, 1, 1, 0, 1, "im2col"),        # pointwise, batch folded
    (2, 16, 40, 18, 18, 3, 3, 1, 1, 1, "winograd"),    # 3x3 stride 1
    (2, 16, 24, 11, 11, 3, 3, 2, 1, 1, "nhwc"),        # strided 3x3
    (1, 3, 8, 33, 33, 3, 3, 2, 1, 1, "im2col"),        # MobileNetV2's stem
    (1, 4, 8, 40, 40, 3, 3, 1, 1, 1, "direct"),        # few channels: the direct kernel (not fused)
    (1, 32, 32, 30, 30, 3, 3, 1, 1, 32, "depthwise"),  # depthwise, row kernels
    (3, 24, 24, 17, 17, 3, 3, 2, 1, 24, "depthwise"),  # depthwise strided
    (2, 96, 96, 7, 7, 3, 3, 1, 1, 96, "depthwise"),    # depthwise, channel-blocked
    (1, 6, 12, 9, 9, 5, 5, 1, 2, 6, "depthwise"),      # channel multiplier 2
]


def _clamp(a, hi):
    """relu6 with NumPy, NaN kept."""
    out = a.copy()
    ok = ~np.isnan(a)
    out[ok] = np.minimum(np.maximum(a[ok], 0), hi)
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu6_fused_matches_separate_passes(isa, dtype, threads):
    rng = np.random.default_rng(11)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        for N, Ci, K, H, W, Rk, Sk, s, p, g, want in CASES:
            msg = f"{(N, Ci, K, H, W, Rk, Sk, s, p, g)}"
            x = (rng.standard_normal((N, Ci, H, W)) * 3).astype(dtype)
            x[0, 0, H // 2, W // 2] = np.nan  # NaN through the fused clamp
            w = rng.standard_normal((K, Ci // g, Rk, Sk)).astype(dtype)
            b = rng.standard_normal(K).astype(dtype)
            geom = C._geom(2, x.shape, w.shape, s, p, 1, g)
            if dtype == np.float32:
                assert C._route(geom, x, "auto") == want, msg
            kw = dict(stride=s, padding=p, groups=g)
            plain = C.conv_nd(2, x, w, b, **kw)
            assert np.isnan(plain).any() and (plain > 6).any() and (plain < 0).any(), msg
            for hi in (6.0, 0.5):
                got = C.conv_nd(2, x, w, b, relu=True, relu_max=hi, **kw)
                np.testing.assert_array_equal(got, _clamp(plain, hi), err_msg=f"{msg} relu_max={hi}")
            if g == 1:  # the packed weight reads the same values
                pk = F.PackedConvWeight(w, 1)
                np.testing.assert_array_equal(C.conv_nd(2, x, pk, b, relu=True, relu_max=6, **kw),
                                              _clamp(plain, 6.0), err_msg=msg)
            r = rng.standard_normal(plain.shape).astype(dtype) * 4
            np.testing.assert_array_equal(C.conv_nd(2, x, w, b, relu=True, relu_max=6.0, residual=r, **kw),
                                          _clamp(plain + r, 6.0), err_msg=f"{msg} residual")
            # the plain relu is unchanged
            np.testing.assert_array_equal(C.conv_nd(2, x, w, b, relu=True, **kw), _clamp(plain, np.inf), err_msg=msg)
            # and the plain output agrees with the float64 reference (without the NaN, which
            # Winograd's transforms spread over a whole tile)
            x[0, 0, H // 2, W // 2] = 0
            ref = R.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
            assert_close(C.conv_nd(2, x, w, b, **kw), ref, k=(Ci // g) * Rk * Sk, case=msg)
    finally:
        convkern.set_num_threads(old)


def test_depthwise_kernel_reports_the_fusion():
    """The native depthwise forward fuses the clamp on host arrays and says so."""
    from convkern import _C

    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32) * 4
    w = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    y = np.empty((1, 8, 12, 12), np.float32)
    assert _C.depthwise_conv2d_forward(x, w, None, y, 1, 1, 1, 1, 1, 1, 1, 1) is False
    plain = y.copy()
    assert _C.depthwise_conv2d_forward(x, w, None, y, 1, 1, 1, 1, 1, 1, 1, 1, relu=True, relu_max=6.0) is True
    np.testing.assert_array_equal(y, _clamp(plain, 6.0))


@pytest.mark.parametrize("bad, err", [(0, ValueError), (-6.0, ValueError), (float("nan"), ValueError),
                                      ("6", TypeError), (True, TypeError)])
def test_bad_relu_max_refused(bad, err):
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 1, 1), np.float32)
    with pytest.raises(err, match="relu_max"):
        C.conv_nd(2, x, w, relu=True, relu_max=bad)


@pytest.mark.parametrize("name", ["conv_forward", "conv_nhwc_forward", "conv_winograd_forward",
                                  "depthwise_conv2d_forward"])
def test_native_bad_relu_max_refused(name):
    """The bindings check relu_max themselves (before reading any array)."""
    from convkern import _C

    fn = getattr(_C, name)
    with pytest.raises(ValueError, match="relu_max"):
        if name == "conv_forward":
            fn(None, None, None, None, (1, 1, 1), (0, 0, 0), (1, 1, 1), 1, relu_max=-1.0)
        elif name == "conv_nhwc_forward":
            fn(None, None, None, None, (1, 1, 1), (0, 0, 0), (1, 1, 1), relu_max=0.0)
        elif name == "conv_winograd_forward":
            fn(None, None, None, None, 1, 1, relu_max=float("nan"))
        else:
            fn(None, None, None, None, 1, 1, 0, 0, 0, 0, 1, 1, relu_max=-2.0)


def test_onnx_conv_clip_fused_matches_unoptimized():
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    import convkern.onnx as ckonnx

    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((16, 3, 3, 3)) * 0.8).astype(np.float32)
    w2 = (rng.standard_normal((16, 1, 3, 3)) * 0.8).astype(np.float32)
    w3 = (rng.standard_normal((24, 16, 1, 1)) * 0.8).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(w3, "W3"), numpy_helper.from_array(np.float32(0), "lo"),
             numpy_helper.from_array(np.float32(6), "hi")]
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["a1"]),
             helper.make_node("Conv", ["a1", "W2"], ["c2"], pads=[1, 1, 1, 1], group=16),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["a2"]),
             helper.make_node("Conv", ["a2", "W3"], ["c3"]),
             helper.make_node("Clip", ["c3", "lo", "hi"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 17, 17])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = (rng.standard_normal((2, 3, 17, 17)) * 3).astype(np.float32)
    opt = ckonnx.prepare(m)
    ref = ckonnx.prepare(m, optimize=False)
    assert opt.stats["act_fused"] == 3
    got = opt.run([x])[0]
    assert got.max() == 6.0 and got.min() == 0.0
    np.testing.assert_array_equal(got, ref.run([x])[0])
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
