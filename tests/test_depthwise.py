"""Depthwise convolution: native kernels vs the NumPy reference over a grid of shapes and
parameters (kernel sizes, strides, padding, dilation, channel multiplier, layouts), on every
ISA and both dtypes; gradchecks; torch cross-check (when installed); conv2d dispatch; bad
inputs."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close, check_against_reference

import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import check_op

DTYPES = [np.float32, np.float64]
DT_IDS = ["f32", "f64"]


def _make(shape, layout, rng):
    """float64 array of `shape`: 'c' C-contiguous, 't' H/W-transposed view, 'p' channels-last
    view, 's' strided (every other column of a wider array)."""
    data = rng.standard_normal(shape)
    if layout == "t":
        return np.ascontiguousarray(np.swapaxes(data, -1, -2)).swapaxes(-1, -2)
    if layout == "p":
        return np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "s":
        wide = np.zeros(shape[:-1] + (2 * shape[-1],))
        wide[..., ::2] = data
        return wide[..., ::2]
    return data


def _cases():
    """(x shape, (M, R, S), kwargs, layout, bias)."""
    cases = [
        ((1, 1, 1, 1), (1, 1, 1), {}, "c", True),                                    # 1x1 everything
        ((1, 3, 3, 3), (1, 3, 3), {}, "c", True),                                    # 1x1 output
        ((2, 4, 7, 40), (1, 3, 3), dict(padding=1), "c", True),                      # MobileNet s1
        ((1, 3, 9, 17), (2, 3, 3), dict(stride=2, padding=1), "t", True),            # s2, M=2
        ((1, 2, 11, 40), (1, 3, 3), dict(stride=2, padding=1), "c", False),
        ((2, 2, 8, 5), (3, 5, 5), dict(padding=2), "p", True),
        ((1, 2, 13, 40), (1, 5, 5), dict(stride=2, padding=2), "c", True),
        ((1, 1, 12, 17), (1, 7, 7), dict(padding=3), "s", True),
        ((1, 2, 9, 40), (1, 7, 7), dict(stride=3, padding=6), "c", False),           # padding k-1
        ((1, 2, 8, 40), (2, 2, 2), dict(stride=2), "c", True),                       # even kernel
        ((1, 2, 9, 17), (1, 4, 4), dict(padding="same"), "c", True),                 # asymmetric same
        ((1, 2, 9, 40), (1, 2, 3), dict(padding="same", dilation=(2, 3)), "t", True),
        ((1, 2, 9, 17), (2, 3, 3), dict(padding="valid", dilation=2), "c", True),
        ((2, 3, 15, 40), (1, 3, 3), dict(padding=2, dilation=2), "c", True),
        ((1, 2, 15, 40), (1, 3, 3), dict(stride=(2, 3), padding=(2, 1), dilation=(3, 2)), "c", True),
        ((1, 1, 5, 1), (1, 3, 1), dict(padding=(1, 0)), "c", True),                  # W = 1
        ((1, 1, 1, 40), (2, 1, 3), dict(padding=(0, 1)), "c", True),                 # H = 1
        ((1, 2, 2, 2), (1, 3, 3), dict(padding=2, stride=3), "c", True),             # kernel > input
        ((1, 2, 6, 5), (1, 3, 3), dict(padding=2, stride=1), "c", True),             # border-only rows
        ((3, 1, 5, 17), (3, 3, 3), dict(padding=1), "c", True),                      # C = 1, M = 3
        ((1, 16, 14, 40), (1, 3, 3), dict(stride=2, padding=1), "p", True),
        ((1, 3, 20, 33), (1, 3, 3), dict(padding=(1, 0), dilation=(1, 3)), "c", True),
        ((1, 2, 10, 40), (1, 6, 6), dict(stride=1, padding=5), "c", True),
        ((1, 2, 5, 19), (1, 1, 1), dict(padding=2), "c", True),                      # padding > kernel
        ((1, 2, 6, 20), (2, 3, 3), dict(padding=(4, 5)), "t", False),
        ((1, 2, 9, 37), (1, 3, 3), dict(stride=2, padding=(3, 4), dilation=(1, 2)), "c", True),
        # wide rows: the in-place border path (narrower planes are copied into padded scratch)
        ((2, 3, 6, 150), (1, 3, 3), dict(padding=1), "c", True),
        ((1, 2, 7, 301), (2, 3, 3), dict(stride=2, padding=1), "t", True),
        ((1, 2, 9, 170), (1, 5, 5), dict(padding=2, dilation=(1, 2)), "c", False),
        ((1, 1, 5, 263), (1, 3, 7), dict(stride=(1, 3), padding=(1, 3)), "s", True),
    ]
    rng = np.random.default_rng(7)
    while len(cases) < 60:
        r, s = (int(v) for v in rng.choice([1, 2, 3, 4, 5, 7], 2))
        if rng.random() < 0.5:
            s = r
        kw = {}
        st = int(rng.integers(1, 4))
        kw["stride"] = st if rng.random() < 0.7 else (st, int(rng.integers(1, 4)))
        dl = int(rng.integers(1, 4)) if rng.random() < 0.4 else 1
        kw["dilation"] = dl
        kw["padding"] = (int(rng.integers(0, r)), int(rng.integers(0, s)))
        M = int(rng.integers(1, 4))
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        h = int(rng.integers(1, 16))
        w = int(rng.choice([1, 5, 17, 40, int(rng.integers(2, 64))]))
        if (h + 2 * kw["padding"][0] - dl * (r - 1) - 1 < 0 or
                w + 2 * kw["padding"][1] - dl * (s - 1) - 1 < 0):
            continue
        cases.append(((n, c, h, w), (M, r, s), kw, "ctps"[len(cases) % 4], bool(rng.integers(2))))
    return cases


CASES = _cases()


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("shape,mrs,kw,layout,bias", CASES,
                         ids=[f"{i}-{'x'.join(map(str, c[0]))}-k{c[1][1]}{c[1][2]}" for i, c in enumerate(CASES)])
def test_depthwise_conv2d(isa, dtype, shape, mrs, kw, layout, bias):
    rng = np.random.default_rng(abs(hash((shape, mrs))) % 2**32)
    M, r, s = mrs
    x = _make(shape, layout, rng)
    w = _make((shape[1] * M, 1, r, s), "c" if layout == "s" else layout, rng)
    b = rng.standard_normal(shape[1] * M) if bias else None
    case = f"{isa} x{shape} M{M} k{r}x{s} {kw} {layout} bias={bias}"
    check_against_reference("depthwise_conv2d", (x, w, b), kw, dtype=dtype, k=r * s, case=case)


def test_large_batch_gradient(isa):
    """grad_weight / grad_bias reduce over a long batch*P*Q sum (float32 accuracy)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4, 30, 41))
    w = rng.standard_normal((8, 1, 3, 3))
    b = rng.standard_normal(8)
    for kw in (dict(padding=1), dict(stride=2, padding=1)):
        check_against_reference("depthwise_conv2d", (x, w, b), kw, dtype=np.float32, k=8 * 30 * 41, case=str(kw))


# ---------------------------------------------------------------- gradcheck (float64)
GRADCHECK = [
    ((1, 2, 5, 6), (1, 3, 3), dict(padding=1), True),
    ((2, 1, 6, 5), (2, 2, 3), dict(stride=2, padding=(1, 2)), True),
    ((1, 2, 7, 6), (1, 3, 2), dict(dilation=(2, 1), padding="same"), False),
    ((1, 1, 6, 7), (3, 3, 3), dict(stride=(1, 2), padding=2, dilation=2), True),
    # at least half a vector of channels with M == 1: the channel-blocked path (float64: L <= 8)
    ((1, 5, 5, 6), (1, 3, 3), dict(padding=1), True),
    ((2, 4, 7, 6), (1, 3, 3), dict(stride=2, padding=1), False),
]


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("shape,mrs,kw,bias", GRADCHECK, ids=[str(i) for i in range(len(GRADCHECK))])
def test_gradcheck(module, shape, mrs, kw, bias, rng):
    M, r, s = mrs
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1] * M, 1, r, s))
    b = rng.standard_normal(shape[1] * M) if bias else None
    assert check_op(module, "depthwise_conv2d", x, w, b, **kw)


# ---------------------------------------------------------------- torch and conv2d

@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    for shape, (M, r, s), kw, layout, bias in CASES[:30]:
        x = _make(shape, layout, rng)
        w = rng.standard_normal((shape[1] * M, 1, r, s))
        b = rng.standard_normal(shape[1] * M) if bias else None
        xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
        wt = torch.from_numpy(w).requires_grad_()
        bt = torch.from_numpy(b).requires_grad_() if bias else None
        ty = TF.conv2d(xt, wt, bt, groups=shape[1], **kw)
        y = F.depthwise_conv2d(x, w, b, **kw)
        assert_close(y, ty.detach().numpy(), k=r * s, case=f"{shape} {kw}")
        g = rng.standard_normal(y.shape)
        ty.backward(torch.from_numpy(g))
        gx, gw, gb = F.depthwise_conv2d_backward(g, x, w, b, **kw)
        assert_close(gx, xt.grad.numpy(), k=4 * r * s, case=f"{shape} {kw}", name="grad_input")
        assert_close(gw, wt.grad.numpy(), k=4 * r * s, case=f"{shape} {kw}", name="grad_weight")
        if bias:
            assert_close(gb, bt.grad.numpy(), k=4 * r * s, case=f"{shape} {kw}", name="grad_bias")
        else:
            assert gb is None


def test_conv2d_uses_depthwise(rng):
    """conv2d(groups=C) (algo='auto') agrees with the grouped im2col path and the reference."""
    x = rng.standard_normal((2, 6, 11, 19))
    w = rng.standard_normal((12, 1, 3, 3))
    b = rng.standard_normal(12)
    for kw in (dict(padding=1), dict(stride=2, padding=1, dilation=2)):
        y = F.conv2d(x, w, b, groups=6, **kw)
        assert_close(y, R.conv2d(x, w, b, groups=6, **kw), k=9)
        assert_close(y, F.conv2d(x, w, b, groups=6, algo="im2col", **kw), k=9)
        g = rng.standard_normal(y.shape)
        for a, e in zip(F.conv2d_backward(g, x, w, b, groups=6, **kw),
                        R.conv2d_backward(g, x, w, b, groups=6, **kw)):
            assert_close(a, e, k=36)


@pytest.mark.parametrize("n,c,m,hw,kw", [
    (2, 6, 2, (11, 19), dict(padding=1)),
    (1, 5, 1, (7, 7), dict(stride=2, padding=1, dilation=2)),
    (1, 1, 3, (4, 9), dict(padding=(0, 2))),
    (0, 4, 1, (6, 6), dict(padding=1)),
])
def test_nn_grad_style_depthwise(isa, n, c, m, hw, kw, rng):
    """conv2d_input / conv2d_weight with groups=C take the depthwise kernels (batch 0 too)."""
    x = rng.standard_normal((n, c) + hw)
    w = rng.standard_normal((c * m, 1, 3, 3))
    g = rng.standard_normal(R.conv2d(x, w, None, groups=c, **kw).shape)
    assert_close(F.conv2d_input(x.shape, w, g, groups=c, **kw), R.conv2d_input(x.shape, w, g, groups=c, **kw), k=9)
    dw = F.conv2d_weight(x, w.shape, g, groups=c, **kw)
    assert_close(dw, R.conv2d_weight(x, w.shape, g, groups=c, **kw), k=max(1, g[:, :1].size))
    if n == 0:
        assert not dw.any()


# ---------------------------------------------------------------- bad inputs
X = np.zeros((1, 2, 5, 5))
W = np.zeros((4, 1, 3, 3))


@pytest.mark.parametrize("args,kw,exc,match", [
    ((X.astype(np.int64), W), {}, TypeError, "input"),
    (([[1.0]], W), {}, TypeError, "input"),
    ((X, W.astype(np.float32)), {}, TypeError, "weight"),
    ((X, W, np.zeros(4, np.float32)), {}, TypeError, "bias"),
    ((X, W[0]), {}, ValueError, "weight"),
    ((X, np.zeros((4, 2, 3, 3))), {}, ValueError, "weight"),
    ((X, np.zeros((3, 1, 3, 3))), {}, ValueError, "weight"),
    ((X, np.zeros((4, 1, 0, 3))), {}, ValueError, "weight"),
    ((np.zeros((1, 2, 0, 5)), W), {}, ValueError, "input"),
    ((X, W, np.zeros(3)), {}, ValueError, "bias"),
    ((X, W, np.zeros((4, 1))), {}, ValueError, "bias"),
    ((X, W), dict(stride=0), ValueError, "stride"),
    ((X, W), dict(stride=(1, -1)), ValueError, "stride"),
    ((X, W), dict(stride=1.5), TypeError, "stride"),
    ((X, W), dict(dilation=0), ValueError, "dilation"),
    ((X, W), dict(padding=-1), ValueError, "padding"),
    ((X, W), dict(padding=(1, 2, 3)), ValueError, "padding"),
    ((X, W), dict(padding="full"), ValueError, "padding"),
    ((X, W), dict(padding="same", stride=2), ValueError, "padding"),
    ((X, W), dict(dilation=3), ValueError, "input"),
    ((X, np.zeros((2, 1, 6, 6))), {}, ValueError, "input"),
])
def test_bad_inputs(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        F.depthwise_conv2d(*args, **kw)
    with pytest.raises(exc, match=match):
        F.depthwise_conv2d_backward(np.zeros((1, 4, 3, 3)), *args, **kw)


def test_bad_grad_output():
    with pytest.raises(ValueError, match="grad_output"):
        F.depthwise_conv2d_backward(np.zeros((1, 4, 3, 4)), X, W)
    with pytest.raises(TypeError, match="grad_output"):
        F.depthwise_conv2d_backward(np.zeros((1, 4, 3, 3), np.float32), X, W)
    with pytest.raises(TypeError, match="grad_output"):
        F.depthwise_conv2d_backward([0.0], X, W)


def test_native_binding_checks():
    """Direct _C calls with wrong buffer sizes raise instead of touching memory."""
    from convkern import _C
    y = np.zeros((1, 4, 3, 3))
    with pytest.raises(ValueError, match="output"):
        _C.depthwise_conv2d_forward(X, W, None, np.zeros((1, 4, 3, 2)), 1, 1, 0, 0, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="bias"):
        _C.depthwise_conv2d_forward(X, W, np.zeros(3), y, 1, 1, 0, 0, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="padding"):
        _C.depthwise_conv2d_forward(X, W, None, y, 1, 1, -1, 0, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="grad_output"):
        _C.depthwise_conv2d_backward_input(np.zeros(35), W, np.zeros_like(X), 1, 1, 0, 0, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="grad_bias"):
        _C.depthwise_conv2d_backward_weight(X, y, np.zeros_like(W), np.zeros(2), 1, 1, 0, 0, 0, 0, 1, 1)


# Padding beyond dilation*(k-1): the unit-stride backward input runs the forward plane kernel
# with padding dil*(k-1) - pad < 0. On narrow planes that kernel copies the plane into padded
# scratch, which once wrote before the scratch rows (heap corruption on AVX-512, where the
# wider vectors pick that path; found by tests/test_fuzz.py). ASan runs this file in CI.
NEG_PAD_CASES = [
    ((1, 4, 7, 24), (2, 5, 1), dict(stride=(2, 1), padding=(3, 1))),
    ((2, 2, 9, 13), (1, 3, 3), dict(padding=3)),
    ((1, 3, 5, 30), (2, 1, 1), dict(padding=(1, 1))),
    ((1, 2, 12, 17), (1, 3, 2), dict(padding=(2, 2), dilation=(1, 1))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("i", range(len(NEG_PAD_CASES)))
def test_backward_padding_beyond_kernel(isa, dtype, i, rng):
    shape, (m, r, s), kw = NEG_PAD_CASES[i]
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1] * m, 1, r, s))
    check_against_reference("depthwise_conv2d", (x, w, None), kw, dtype=dtype, k=r * s, case=f"{isa} {shape} {kw}")


# Channel-blocked small planes (csrc/cpu/depthwise.cpp, "channel-blocked small planes"): with
# M == 1, at least half a vector of channels and planes of up to 1024 outputs (4096 for the
# weight gradient and the strided forward), L channels run at once in an interleaved scratch.
# These shapes cover channel tails (C % L != 0, for every ISA's L), planes shorter than one
# vector and not a multiple of it, strides, dilation, asymmetric and oversized padding, batch,
# and 1-3 threads (the tasks are channel blocks of each image).
BLOCKED = [
    ((1, 16, 7, 7), (3, 3), dict(padding=1)),                               # MobileNetV2 b14
    ((1, 33, 14, 14), (3, 3), dict(stride=2, padding=1)),                   # b6, channel tail
    ((3, 17, 9, 13), (5, 5), dict(stride=2, padding=2)),
    ((2, 8, 5, 5), (3, 3), dict(dilation=2, padding=2)),
    ((1, 20, 12, 7), (3, 3), dict(stride=(2, 1), padding=(3, 0), dilation=(1, 2))),
    ((1, 19, 1, 1), (3, 3), dict(padding=1)),                               # 1x1 plane
    ((1, 24, 6, 9), (2, 4), dict(stride=3, padding=(2, 5))),                # padding > kernel
    ((2, 12, 11, 1), (3, 1), dict(padding=(1, 0))),                         # W = 1
    ((1, 9, 4, 6), (1, 1), {}),                                             # 1x1 kernel
    ((1, 40, 31, 33), (3, 3), dict(padding=1)),                             # 1023 outputs
    ((1, 18, 59, 61), (3, 3), dict(stride=2, padding=1)),                   # 1800 outputs: strided fwd, weight
    ((2, 10, 60, 50), (3, 3), dict(padding=1)),                             # 3000 outputs: weight only
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_channel_blocked(isa, dtype, threads):
    import convkern

    rng = np.random.default_rng(5)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        for shape, (r, s), kw in BLOCKED:
            x = rng.standard_normal(shape)
            w = rng.standard_normal((shape[1], 1, r, s))
            b = rng.standard_normal(shape[1])
            check_against_reference("depthwise_conv2d", (x, w, b), kw, dtype=dtype, k=r * s,
                                    case=f"{isa} {threads}t {shape} k{r}x{s} {kw}")
    finally:
        convkern.set_num_threads(old)


@pytest.mark.parametrize("channels", [1, 16], ids=["row-vectorized", "channel-blocked"])
def test_huge_padding_stride_dilation_on_small_planes(isa, channels):
    """A 5x5 plane with dilation 2^29 / padding 2^29, or stride 2^30 / padding 2^30 - 1 (legal,
    small outputs): the kernels once sized scratch by the padded geometry (gigabytes: the process
    was killed, or std::bad_alloc escaped an OpenMP region and aborted it). Checked against the
    few taps that land inside the input."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, channels, 5, 5))
    w = rng.standard_normal((channels, 1, 3, 3))
    kw = dict(dilation=2**29, padding=2**29)       # only the centre tap lands inside
    y = F.depthwise_conv2d(x, w, **kw)
    np.testing.assert_allclose(y, w[None, :, 0, 1:2, 1:2] * x, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx, gw, _ = F.depthwise_conv2d_backward(g, x, w, **kw)
    np.testing.assert_allclose(gx, w[None, :, 0, 1:2, 1:2] * g, rtol=1e-12, atol=1e-12)
    want_gw = np.zeros_like(w)
    want_gw[:, 0, 1, 1] = (g * x).sum((0, 2, 3))
    np.testing.assert_allclose(gw, want_gw, rtol=1e-12, atol=1e-12)

    kw = dict(stride=2**30, padding=2**30 - 1)     # 3x3 outputs; only output (1, 1) sees the input
    y = F.depthwise_conv2d(x, w, **kw)
    want = np.zeros((1, channels, 3, 3))
    want[0, :, 1, 1] = (w[:, 0] * x[0, :, 1:4, 1:4]).sum((1, 2))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx, gw, _ = F.depthwise_conv2d_backward(g, x, w, **kw)
    want_gx = np.zeros_like(x)
    want_gx[0, :, 1:4, 1:4] = w[:, 0] * g[0, :, 1, 1][:, None, None]
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw[:, 0], g[0, :, 1, 1][:, None, None] * x[0, :, 1:4, 1:4], rtol=1e-12, atol=1e-12)


# Unit-stride, unit-dilation 3x3 and 5x5 planes and stride-2 3x3 planes on AVX-512
# (csrc/cpu/depthwise.cpp, masked_plane): every column straight from the unpadded plane, edge
# blocks through masked loads. Widths around the vector lengths (8 and 16 lanes) and below one vector, every padding
# from 0 to past the kernel (the input gradient then runs with negative padding), heights that
# leave 1-3 rows after the 4-row blocks, and M = 2 / C = 1 / large planes so that the
# channel-blocked path does not take them. The other ISAs run the same shapes through the
# row-vectorized kernel.
def _masked_cases():
    cases = []
    widths = [1, 2, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 49, 70]
    rng = np.random.default_rng(11)
    for i, w in enumerate(widths):
        k = 3 if i % 3 else 5
        ph, pw = int(rng.integers(0, k + 1)), (i % (k + 2))
        h = int(rng.integers(max(1, k - 2 * ph), 12))
        if w + 2 * pw < k:
            pw = (k - w + 1) // 2
        m, c = ((2, 2) if i % 2 else (1, 1))
        cases.append(((1 + i % 2, c, h, w), (m, k, k), dict(padding=(ph, pw))))
    cases.append(((1, 8, 37, 45), (1, 3, 3), dict(padding=1)))       # M = 1, 1665 outputs
    cases.append(((1, 3, 33, 50), (1, 5, 5), dict(padding=(0, 3))))
    # stride 2, 3x3 (s2_rows): input widths around 2 and 4 vectors, odd and even sizes
    for i, w in enumerate([1, 3, 16, 17, 31, 32, 33, 34, 35, 63, 64, 65, 66, 67, 97, 130]):
        ph, pw = i % 4, (i // 2) % 4
        if w + 2 * pw < 3:
            pw = 1
        h = 3 + (i * 5) % 19
        m, c = ((2, 2) if i % 2 else (1, 1))
        cases.append(((1 + i % 2, c, h, w), (m, 3, 3), dict(stride=2, padding=(ph, pw))))
    cases.append(((1, 4, 70, 66), (1, 3, 3), dict(stride=2, padding=1)))   # M = 1, 1155 outputs
    return cases


MASKED = _masked_cases()


@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("i", range(len(MASKED)), ids=[f"{i}-{'x'.join(map(str, c[0]))}-k{c[1][1]}-p{c[2]['padding']}"
                                                        for i, c in enumerate(MASKED)])
def test_unit_stride_masked_rows(isa, dtype, i, rng):
    shape, (m, r, s), kw = MASKED[i]
    x = rng.standard_normal(shape)
    w = rng.standard_normal((shape[1] * m, 1, r, s))
    b = rng.standard_normal(shape[1] * m)
    check_against_reference("depthwise_conv2d", (x, w, b), kw, dtype=dtype, k=r * s, case=f"{isa} {shape} {kw}")
