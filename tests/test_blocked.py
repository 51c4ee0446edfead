"""Channel-blocked (NCHW16c) 1x1 and depthwise convolutions (convkern._ops.blocked) against
their NumPy specification (convkern.reference.blocked), under every ISA, and the ONNX
backend's blocked_layout pass."""
import numpy as np
import pytest

import convkern
import convkern.functional as F
from convkern import _C
from convkern._ops import blocked as B
from convkern.reference import blocked as RB


def _tol(dt, depth):
    return (2e-5 * max(1.0, np.sqrt(depth)), 1e-5 * max(1.0, np.sqrt(depth))) if dt == np.float32 else (1e-11, 1e-11)


def test_layout_round_trip(rng):
    x = rng.standard_normal((3, 32, 3, 5))
    xb = RB.to_blocked(x)
    assert xb.shape == (2, 3, 3, 5, 16)
    assert xb[1, 2, 2, 4, 3] == x[2, 19, 2, 4]
    np.testing.assert_array_equal(RB.from_blocked(xb), x)
    # 24 channels: two blocks, the second one's last 8 lanes zero padding
    x = rng.standard_normal((2, 24, 3, 4))
    xb = RB.to_blocked(x)
    assert xb.shape == (2, 2, 3, 4, 16)
    assert xb[1, 1, 2, 3, 7] == x[1, 23, 2, 3] and not xb[1, :, :, :, 8:].any()
    np.testing.assert_array_equal(RB.from_blocked(xb, 24), x)
    assert RB.from_blocked(xb).shape == (2, 32, 3, 4)
    with pytest.raises(ValueError, match="channels"):
        RB.from_blocked(xb, 16)


# (N, C, K, H, W, in_blocked, out_blocked, residual); C or K > 2048: several K slices
CASES_1X1 = [
    (1, 32, 16, 13, 11, False, True, False),     # 16 outputs: half a 32-lane tile (whole-vector partial tile)
    (1, 16, 96, 9, 9, True, True, False),
    (2, 96, 24, 7, 7, True, False, True),        # blocked in, NCHW out (24 channels: not blockable)
    (1, 64, 384, 14, 14, True, True, True),
    (3, 48, 32, 5, 3, False, False, True),
    (1, 16, 16, 1, 1, True, True, True),         # one position, one block
    (2, 32, 48, 3, 37, False, True, True),       # 111 positions: a partial row panel
    (1, 2064, 32, 3, 3, True, True, False),      # 2 K slices into a blocked C
    (1, 2064, 20, 2, 5, True, False, True),      # 2 K slices into a column-major C
    (1, 17, 32, 6, 6, False, True, False),       # 17 input channels (NCHW input)
    (1, 48, 24, 20, 20, True, False, True),      # blocked in, 24 NCHW channels: Y = W X (rows)
    (2, 32, 40, 9, 9, True, False, False),
    (3, 32, 48, 7, 7, True, True, True),         # blocked in and out: one product over the batch
    (2, 16, 16, 5, 5, True, True, False),
    # channels that are not a multiple of 16: a blocked tensor's last block padded
    (1, 24, 32, 7, 9, True, True, False),        # 24 blocked channels in (a reduction over 24 of 32 lanes)
    (2, 48, 24, 9, 9, True, True, True),         # 24 blocked channels out, with a residual
    (1, 24, 144, 20, 20, True, True, False),     # MobileNetV2's 24 -> 144 expansion
    (1, 144, 24, 20, 20, True, True, True),      # and its projection
    (1, 40, 24, 20, 20, True, False, True),      # 40 blocked in, 24 NCHW out: Y = W X (rows)
    (1, 8, 8, 3, 5, False, True, True),          # one half-padded block
    (2, 3, 20, 5, 5, False, True, False),
    (1, 2056, 24, 2, 3, True, True, False),      # 2 K slices, padded in and out
    (3, 24, 40, 7, 7, True, True, True),         # blocked in and out: one product over the batch
]


def test_product_orientation():
    """From a blocked input into few NCHW channels over many positions the product runs as
    Y = W X (rows); into many channels over a small plane, channel-last."""
    assert B.product_rows(True, False, 24, 3136, np.float32)
    assert not B.product_rows(True, False, 1280, 49, np.float32)
    assert not B.product_rows(True, True, 24 * 16, 3136, np.float32)
    assert not B.product_rows(False, False, 24, 3136, np.float32)


@pytest.mark.parametrize("case", CASES_1X1)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_conv1x1_blocked_matches_reference(isa, rng, case, dt):
    N, C, K, H, W, ib, ob, res = case
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = (rng.standard_normal((K, C, 1, 1)) / np.sqrt(C)).astype(dt)
    b = rng.standard_normal(K).astype(dt)
    r = rng.standard_normal((N, K, H, W)).astype(dt) if res else None
    xi = RB.to_blocked(x) if ib else x
    ri = None if r is None else (RB.to_blocked(r) if ob else r)
    rtol, atol = _tol(dt, C)
    for relu, relu_max in ((False, None), (True, None), (True, 0.5)):
        got = B.conv1x1_blocked(xi, w, b, ri, in_blocked=ib, out_blocked=ob, relu=relu, relu_max=relu_max)
        want = RB.conv1x1_blocked(xi.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                  None if ri is None else ri.astype(np.float64), in_blocked=ib, out_blocked=ob,
                                  relu=relu, relu_max=relu_max)
        assert got.dtype == dt and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    # no bias; the packed weight reused
    pk = B.pack_conv1x1_blocked(w)
    got = B.conv1x1_blocked(xi, pk, None, None, in_blocked=ib, out_blocked=ob)
    want = RB.conv1x1_blocked(xi.astype(np.float64), w.astype(np.float64), None, None, in_blocked=ib,
                              out_blocked=ob)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("c,k,h,n", [(64, 96, 28, 1), (960, 160, 7, 1), (576, 96, 14, 1), (24, 144, 56, 1),
                                      (16, 40, 5, 3), (32, 1280, 3, 2)])
def test_conv1x1_blocked_threads_agree(rng, c, k, h, n):
    """1-5 threads split the product differently (rows / columns of C; units of a block taken
    by the thread that is free first): the same values, with bias, residual and ReLU6 applied
    at each unit's place in the channel blocks."""
    x = RB.to_blocked(rng.standard_normal((n, c, h, h)).astype(np.float32))
    w = rng.standard_normal((k, c, 1, 1)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    res = RB.to_blocked(rng.standard_normal((n, k, h, h)).astype(np.float32))
    old = F.get_num_threads()
    outs = []
    try:
        for t in range(1, 6):
            F.set_num_threads(t)
            outs.append(B.conv1x1_blocked(x, w, b, res, in_blocked=True, out_blocked=True, relu=True, relu_max=6.0))
    finally:
        F.set_num_threads(old)
    want = RB.conv1x1_blocked(x, w, b, res, in_blocked=True, out_blocked=True, relu=True, relu_max=6.0)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


@pytest.mark.parametrize("kind,c,h,n,s", [("dw", 96, 112, 1, 2), ("dw", 40, 9, 3, 1), ("direct", 3, 224, 1, 2),
                                         ("direct", 3, 17, 2, 1)])
def test_window_kernels_threads_agree(rng, kind, c, h, n, s):
    """Depthwise and direct blocked kernels under 1-5 threads (each thread's share first, then
    tasks taken from the others' back): the same values as one thread, and as the reference."""
    if kind == "dw":
        x = RB.to_blocked(rng.standard_normal((n, c, h, h)).astype(np.float32))
        w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        k = c
    else:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        k = 32
        w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    fn, ref = ((B.depthwise_blocked, RB.depthwise_blocked) if kind == "dw"
               else (B.conv_direct_blocked, RB.conv_direct_blocked))
    old = F.get_num_threads()
    outs = []
    try:
        for t in range(1, 6):
            F.set_num_threads(t)
            outs.append(fn(x, w, b, stride=s, padding=1, relu=True, relu_max=6.0))
    finally:
        F.set_num_threads(old)
    want = ref(x, w, b, stride=s, padding=1, relu=True, relu_max=6.0)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_blocked_padding_is_never_read(rng):
    """A blocked 24-channel tensor's padding lanes hold NaN when a real channel is infinite (0 *
    inf in their zero weight rows): its consumers' reductions run over the 24 real channels
    only, so the infinity reaches them as it does through the NCHW layers, never NaN."""
    x = np.abs(rng.standard_normal((1, 32, 5, 5))).astype(np.float32)
    x[0, 3, 2, 2] = np.inf
    w1 = np.abs(rng.standard_normal((24, 32))).astype(np.float32)
    w2 = np.abs(rng.standard_normal((16, 24))).astype(np.float32)
    dw = np.abs(rng.standard_normal((24, 1, 3, 3))).astype(np.float32)
    t = B.conv1x1_blocked(RB.to_blocked(x), w1, in_blocked=True, out_blocked=True)
    assert np.isnan(t[1, 0, 2, 2, 8:]).all()  # (the padding, as documented: zero from finite inputs only)
    assert not t[1, 0, 1, 1, 8:].any()
    d = B.depthwise_blocked(t, dw, padding=1)
    for y, want in ((B.conv1x1_blocked(t, w2, in_blocked=True, out_blocked=False),
                     F.conv2d(F.conv2d(x, w1.reshape(24, 32, 1, 1)), w2.reshape(16, 24, 1, 1))),
                    (B.conv1x1_blocked(d, w2, in_blocked=True, out_blocked=True),
                     RB.to_blocked(F.conv2d(F.conv2d(F.conv2d(x, w1.reshape(24, 32, 1, 1)), dw, padding=1, groups=24),
                                            w2.reshape(16, 24, 1, 1))))):
        assert not np.isnan(y).any()
        assert (np.isinf(y) == np.isinf(want)).all() and np.isinf(y).any()
        np.testing.assert_allclose(y[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-4)
    # rows orientation: 24 blocked channels into 24 NCHW ones over many positions
    big = np.abs(rng.standard_normal((1, 32, 40, 40))).astype(np.float32)
    big[0, 5, 7, 9] = np.inf
    tb = B.conv1x1_blocked(RB.to_blocked(big), w1, in_blocked=True, out_blocked=True)
    assert B.product_rows(True, False, 24, 1600, np.float32)
    y = B.conv1x1_blocked(tb, w1[:, :24], in_blocked=True, out_blocked=False)
    want = F.conv2d(F.conv2d(big, w1.reshape(24, 32, 1, 1)), w1[:, :24].reshape(24, 24, 1, 1))
    assert not np.isnan(y).any() and (np.isinf(y) == np.isinf(want)).all()


# (N, C, H, W, kernel, stride, padding, dilation)
CASES_DW = [
    (1, 32, 112, 112, 3, 1, 1, 1),
    (1, 32, 28, 28, 3, 2, 1, 1),
    (2, 16, 7, 7, 3, 1, 1, 1),
    (1, 48, 9, 10, 3, 2, (0, 1, 1, 0), 1),     # ONNX SAME_UPPER-style asymmetric pads
    (1, 16, 8, 9, 5, 1, 2, 2),                 # 5x5, dilation 2: the generic kernel
    (1, 16, 3, 3, 1, 3, (0, 0, 5, 4), 1),      # outputs past the input (bias only)
    (3, 16, 1, 1, 3, 1, 1, 1),                 # one position
    (1, 32, 15, 4, 3, 1, 0, 1),                # no padding, narrow rows (no interior block of 4)
    (1, 16, 6, 40, 3, 2, 1, 1),                # long rows: 8-wide interior blocks at stride 2
    (1, 16, 5, 6, (3, 1), (1, 2), (1, 0), (2, 1)),
    (1, 256, 9, 20, 3, 1, 1, 1),               # tasks of 9 rows: row pairs and a single row
    (2, 128, 11, 17, 3, 1, (1, 0, 0, 2), 1),
    (1, 24, 14, 14, 3, 1, 1, 1),               # 24 channels: the second block half padding
    (2, 40, 9, 9, 3, 2, 1, 1),
    (1, 8, 5, 6, 5, 1, 2, 1),
]


@pytest.mark.parametrize("case", CASES_DW)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_depthwise_blocked_matches_reference(isa, rng, case, dt):
    N, C, H, W, k, s, pad, d = case
    kr, ks = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = rng.standard_normal((C, 1, kr, ks)).astype(dt)
    b = rng.standard_normal(C).astype(dt)
    xb = RB.to_blocked(x)
    rtol, atol = _tol(dt, kr * ks)
    for relu, relu_max in ((False, None), (True, 6.0)):
        got = B.depthwise_blocked(xb, w, b, s, pad, d, relu=relu, relu_max=relu_max)
        want = RB.depthwise_blocked(xb.astype(np.float64), w.astype(np.float64), b.astype(np.float64), s, pad, d,
                                    relu=relu, relu_max=relu_max)
        assert got.dtype == dt and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    got = B.depthwise_blocked(xb, w, None, s, pad, d)
    # against the NCHW depthwise kernel too
    p4 = pad if np.isscalar(pad) else tuple(pad)
    if np.isscalar(p4) or len(p4) == 2:
        ref = F.conv2d(x, w, None, stride=s, padding=p4, dilation=d, groups=C)
        np.testing.assert_allclose(RB.from_blocked(got, C), ref, rtol=rtol, atol=atol)


# (N, C, H, W, K, kernel, stride, padding, dilation)
CASES_DIRECT = [
    (1, 3, 32, 30, 32, 3, 2, 1, 1),            # MobileNetV2's stem (smaller plane)
    (2, 3, 23, 17, 64, 7, 2, 3, 1),            # ResNet's
    (1, 1, 9, 8, 8, 5, 3, (0, 1, 2, 3), 1),    # 8 channels: half a block of padding
    (1, 4, 12, 40, 48, 3, 1, 1, 1),            # 3 blocks: a pair of vectors and a single one (AVX-512)
    (1, 2, 7, 9, 24, (3, 1), (1, 2), (1, 0), (2, 1)),
    (3, 3, 5, 5, 16, 3, 1, (0, 0, 4, 4), 1),   # outputs past the input (bias only)
    (1, 3, 1, 1, 20, 3, 1, 1, 1),              # one position
    (1, 3, 6, 50, 32, 3, 1, 0, 2),             # dilation 2: the generic kernel's interior
]


@pytest.mark.parametrize("case", CASES_DIRECT)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_conv_direct_blocked_matches_reference(isa, rng, case, dt):
    N, C, H, W, K, k, s, pad, d = case
    kr, ks = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = rng.standard_normal((K, C, kr, ks)).astype(dt)
    b = rng.standard_normal(K).astype(dt)
    rtol, atol = _tol(dt, C * kr * ks)
    for bias, relu, relu_max in ((b, False, None), (b, True, 6.0), (None, True, None)):
        got = B.conv_direct_blocked(x, w, bias, s, pad, d, relu=relu, relu_max=relu_max)
        want = RB.conv_direct_blocked(x.astype(np.float64), w.astype(np.float64),
                                      None if bias is None else bias.astype(np.float64), s, pad, d, relu=relu,
                                      relu_max=relu_max)
        assert got.dtype == dt and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)  # (the padding lanes zero too)
    p4 = pad if np.isscalar(pad) else tuple(pad)
    if np.isscalar(p4) or len(p4) == 2:  # against the NCHW convolution
        ref = F.conv2d(x, w, b, stride=s, padding=p4, dilation=d)
        np.testing.assert_allclose(RB.from_blocked(B.conv_direct_blocked(x, w, b, s, pad, d), K), ref, rtol=rtol,
                                   atol=atol)


def test_blocked_bad_input(rng):
    x = rng.standard_normal((1, 32, 4, 4)).astype(np.float32)
    xb = RB.to_blocked(x)
    w = rng.standard_normal((16, 32, 1, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="input"):
        B.conv1x1_blocked(x, w, in_blocked=True, out_blocked=True)  # NCHW given as blocked
    with pytest.raises(ValueError, match="input"):
        B.conv1x1_blocked(xb[..., :8], w, in_blocked=True, out_blocked=True)
    with pytest.raises(ValueError, match="weight"):
        B.conv1x1_blocked(xb, w[:, :16], in_blocked=True, out_blocked=True)
    with pytest.raises(ValueError, match="weight"):  # 40 channels are not held in 2 blocks
        B.conv1x1_blocked(xb, np.ones((16, 40), np.float32), in_blocked=True, out_blocked=True)
    with pytest.raises(ValueError, match="weight"):
        B.conv1x1_blocked(xb, rng.standard_normal((16, 32, 3, 3)).astype(np.float32), in_blocked=True,
                          out_blocked=True)
    with pytest.raises(TypeError, match="weight"):
        B.conv1x1_blocked(xb, w.astype(np.float64), in_blocked=True, out_blocked=True)
    with pytest.raises(TypeError, match="input"):
        B.conv1x1_blocked(xb.astype(np.int32), w, in_blocked=True, out_blocked=True)
    with pytest.raises(ValueError, match="residual"):
        B.conv1x1_blocked(xb, w, None, x[:, :16], in_blocked=True, out_blocked=True)  # NCHW for a blocked output
    with pytest.raises(ValueError, match="bias"):
        B.conv1x1_blocked(xb, w, np.zeros(3, np.float32), in_blocked=True, out_blocked=True)
    with pytest.raises(ValueError, match="relu_max"):
        B.conv1x1_blocked(xb, w, in_blocked=True, out_blocked=True, relu=True, relu_max=-1.0)
    with pytest.raises(ValueError, match="input"):
        B.conv1x1_blocked(np.zeros((2, 0, 4, 4, 16), np.float32), w, in_blocked=True, out_blocked=True)
    dw = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="weight"):
        B.depthwise_blocked(xb, dw[:16], padding=1)
    with pytest.raises(ValueError, match="weight"):
        B.depthwise_blocked(xb, np.ones((32, 2, 3, 3), np.float32), padding=1)
    with pytest.raises(ValueError, match="input"):
        B.depthwise_blocked(xb, dw, padding=0, dilation=2)  # 4x4 input, 5x5 dilated kernel
    with pytest.raises(ValueError, match="padding"):
        B.depthwise_blocked(xb, dw, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="stride"):
        B.depthwise_blocked(xb, dw, stride=0)
    with pytest.raises(ValueError, match="input"):
        B.depthwise_blocked(x, dw)  # NCHW
    # the native entry points check every size themselves
    y = np.empty((2, 1, 4, 4, 16), np.float32)
    pk = B.pack_conv1x1_blocked(np.ones((32, 32), np.float32))
    with pytest.raises(ValueError, match="output"):
        _C.blk_conv1x1(xb, pk.packed(), None, None, y[:1], 1, 32, 32, 16, True, True)
    with pytest.raises(ValueError, match="input"):
        _C.blk_conv1x1(xb, pk.packed(), None, None, y, 1, 32, 32, 17, True, True)
    with pytest.raises(ValueError, match="weight"):
        _C.blk_conv1x1(xb, pk.packed()[:-1], None, None, y, 1, 32, 32, 16, True, True)
    with pytest.raises(ValueError, match="output"):
        _C.blk_conv1x1(xb, pk.packed(), None, None, xb, 1, 32, 32, 16, True, True)
    with pytest.raises(ValueError, match="rows"):
        _C.blk_conv1x1(xb, pk.packed(True), None, None, y, 1, 32, 32, 16, True, True, False, 1.0, True)
    with pytest.raises(ValueError, match="weight"):  # packed for the other orientation
        _C.blk_conv1x1(xb, pk.packed(True)[:-1], None, None, y.reshape(1, 32, 4, 4), 1, 32, 32, 16, True, False,
                       False, 1.0, True)
    with pytest.raises(ValueError, match="output"):
        _C.blk_depthwise(xb, dw, None, y, 1, 1, 1, 1, 5, 4, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        _C.blk_depthwise(xb, dw, None, y, 0, 1, 1, 1, 4, 4, 1, 1)
    # the direct convolution into a blocked output
    x3 = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w3 = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="weight"):
        B.conv_direct_blocked(x3, w3[:, :2])
    with pytest.raises(ValueError, match="input"):
        B.conv_direct_blocked(RB.to_blocked(x3), w3)
    with pytest.raises(ValueError, match="input"):
        B.conv_direct_blocked(x3, w3, padding=0, dilation=4)  # 8x8 input, 9x9 dilated kernel
    with pytest.raises(ValueError, match="bias"):
        B.conv_direct_blocked(x3, w3, np.zeros(16, np.float32))
    with pytest.raises(ValueError, match="stride"):
        B.conv_direct_blocked(x3, w3, stride=(1, 0))
    with pytest.raises(TypeError, match="weight"):
        B.conv_direct_blocked(x3, w3.astype(np.float64))
    y3 = np.empty((2, 1, 8, 8, 16), np.float32)
    with pytest.raises(ValueError, match="output"):
        _C.blk_conv_direct(x3, w3, None, y3[:1], 1, 1, 1, 1, 8, 8, 1, 1)
    with pytest.raises(ValueError, match="output"):
        _C.blk_conv_direct(x3, w3, None, y3, 1, 1, 1, 1, 8, 9, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        _C.blk_conv_direct(x3, w3, None, y3, 1, 1 << 39, 1, 1, 8, 8, 1, 1)
    with pytest.raises(ValueError, match="weight"):
        _C.blk_conv_direct(x3, w3[:, :2], None, y3, 1, 1, 1, 1, 8, 8, 1, 1)
    with pytest.raises(ValueError, match="weight"):  # 16 channels are one block, the input has 2
        _C.blk_depthwise(xb, dw[:16], None, y, 1, 1, 1, 1, 4, 4, 1, 1)
    with pytest.raises(ValueError, match="rows"):
        _C.blk_pack_1x1(np.ones((24, 32), np.float32), True, True)


# ----------------------------------------------------------------------------- the ONNX pass
def _mbv2_like(rng, batch=2, hw=9):
    """stem 3x3 -> [dw 3x3 -> 1x1 32->16] -> 1x1 16->48 (ReLU6) -> dw/2 -> 1x1 48->24 -> 1x1 24->32 ->
    1x1 32->32 + residual -> 1x1 32->32 (a graph output) -> GlobalAveragePool."""
    from onnx import TensorProto, helper, numpy_helper

    def W(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32),
                                       name)
    inits = [W("w0", (32, 3, 3, 3)), W("dw1", (32, 1, 3, 3)), W("p1", (16, 32, 1, 1)), W("e2", (48, 16, 1, 1)),
             W("dw2", (48, 1, 3, 3)), W("p2", (24, 48, 1, 1)), W("e3", (32, 24, 1, 1)), W("p3", (32, 32, 1, 1)),
             W("e4", (32, 32, 1, 1))]
    inits += [numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), f"b{n}") for n in (16, 24, 32, 48)]
    lo, hi = (numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((0.0, "lo"), (6.0, "hi")))
    inits += [lo, hi]
    N = helper.make_node
    nodes = [
        N("Conv", ["x", "w0", "b32"], ["s0"], pads=[1, 1, 1, 1]), N("Relu", ["s0"], ["a0"]),
        N("Conv", ["a0", "dw1", "b32"], ["d1"], pads=[1, 1, 1, 1], group=32), N("Clip", ["d1", "lo", "hi"], ["a1"]),
        N("Conv", ["a1", "p1", "b16"], ["q1"]),
        N("Conv", ["q1", "e2", "b48"], ["x2"]), N("Clip", ["x2", "lo", "hi"], ["a2"]),
        N("Conv", ["a2", "dw2", "b48"], ["d2"], pads=[0, 0, 1, 1], strides=[2, 2], group=48), N("Relu", ["d2"], ["a3"]),
        N("Conv", ["a3", "p2", "b24"], ["q2"]),
        N("Conv", ["q2", "e3", "b32"], ["x3"]), N("LeakyRelu", ["x3"], ["a4"], alpha=0.1),
        N("Conv", ["a4", "p3", "b32"], ["q3"]), N("Add", ["q3", "a4"], ["r3"]),
        N("Conv", ["r3", "e4"], ["side"]),  # a graph output (and GlobalAveragePool's input)
        N("GlobalAveragePool", ["side"], ["y"]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("side", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_onnx_blocked_chain_matches_unoptimized(isa, rng):
    from convkern import onnx as ckonnx

    m = _mbv2_like(rng)
    opt = ckonnx.prepare(m)
    io = {n.inputs[1]: n.extra.get("blocked") for n in opt.graph.nodes if n.op_type == "Conv"}
    # the stem (3 input channels) runs direct and writes the chain's first blocked tensor; p2's
    # 24 channels are blocked in two blocks (8 padding lanes); p3 has a blocked residual (a4);
    # e4's output is a graph output (NCHW)
    assert io == {"w0": (False, True), "dw1": (True, True), "p1": (True, True), "e2": (True, True),
                  "dw2": (True, True), "p2": (True, True), "e3": (True, True), "p3": (True, True),
                  "e4": (True, False)}
    assert opt.stats["blocked"] == 8
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    got = opt.run([x])
    want = ckonnx.prepare(m, optimize=False).run([x])
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # a second run (the nodes' cached calls) and another batch (shapes worked out again)
    np.testing.assert_allclose(opt.run([x])[0], want[0], rtol=1e-4, atol=1e-5)
    x3 = rng.standard_normal((3, 3, 9, 9)).astype(np.float32)
    m3 = _mbv2_like(np.random.default_rng(7), batch=3)
    np.testing.assert_allclose(ckonnx.prepare(m3).run([x3])[0], ckonnx.prepare(m3, optimize=False).run([x3])[0],
                               rtol=1e-4, atol=1e-5)


def test_onnx_blocked_weight_repacked_after_isa_change(rng):
    from convkern import onnx as ckonnx

    isas = [i for i in convkern.available_isas()]
    if len(isas) < 2:
        pytest.skip("one ISA on this CPU")
    m = _mbv2_like(rng)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    want = ckonnx.prepare(m, optimize=False).run([x])[0]
    opt = ckonnx.prepare(m)
    with convkern.isa(isas[0]):
        np.testing.assert_allclose(opt.run([x])[0], want, rtol=1e-4, atol=1e-5)
    with convkern.isa(isas[-1]):
        np.testing.assert_allclose(opt.run([x])[0], want, rtol=1e-4, atol=1e-5)


def test_onnx_blocked_residual_layout_rule(rng):
    """A 1x1 node whose residual is NCHW (t: a graph output) writes NCHW, while it still reads
    the blocked output of the depthwise node before it."""
    from onnx import TensorProto, helper, numpy_helper

    from convkern import onnx as ckonnx

    def W(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.2, name)
    N = helper.make_node
    nodes = [N("Conv", ["x", "a"], ["t"]),                       # 16 -> 32, t is a graph output
             N("Conv", ["t", "b"], ["u"]),                       # 32 -> 32
             N("Conv", ["u", "d"], ["v"], pads=[1, 1, 1, 1], group=32),
             N("Conv", ["v", "c"], ["w"]), N("Add", ["w", "t"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
                          [W("a", (32, 16, 1, 1)), W("b", (32, 32, 1, 1)), W("d", (32, 1, 3, 3)),
                           W("c", (32, 32, 1, 1))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    opt = ckonnx.prepare(m)
    io = {n.inputs[1]: n.extra.get("blocked") for n in opt.graph.nodes}
    assert io == {"a": None, "b": (False, True), "d": (True, True), "c": (True, False)}
    x = rng.standard_normal((1, 16, 5, 5)).astype(np.float32)
    for a, b in zip(opt.run([x]), ckonnx.prepare(m, optimize=False).run([x])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_onnx_blocked_residual_that_broadcasts_falls_back(rng):
    """A fused residual of another shape (an Add that broadcasts (N, C, 1, 1)) runs the NCHW way
    on converted arrays, its output blocked again: the same values as without the passes."""
    from onnx import TensorProto, helper, numpy_helper

    from convkern import onnx as ckonnx

    def W(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.2, name)
    N = helper.make_node
    nodes = [N("Conv", ["x", "e"], ["t"]),                      # 16 -> 32, blocked
             N("GlobalAveragePool", ["x"], ["g"]),
             N("Conv", ["g", "s"], ["u"]),                      # (2, 32, 1, 1), blocked
             N("Conv", ["t", "p"], ["v"]), N("Add", ["v", "u"], ["r"]),   # broadcasting residual
             N("Conv", ["r", "q"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 5, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [W("e", (32, 16, 1, 1)), W("s", (32, 16, 1, 1)), W("p", (32, 32, 1, 1)),
                           W("q", (16, 32, 1, 1))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    opt = ckonnx.prepare(m)
    io = {n.inputs[1]: n.extra.get("blocked") for n in opt.graph.nodes if n.op_type == "Conv"}
    assert io == {"e": (False, True), "s": (False, True), "p": (True, True), "q": (True, False)}
    x = rng.standard_normal((2, 16, 5, 5)).astype(np.float32)
    want = ckonnx.prepare(m, optimize=False).run([x])[0]
    for _ in range(2):
        np.testing.assert_allclose(opt.run([x])[0], want, rtol=1e-4, atol=1e-5)


def test_onnx_blocked_strided_1x1_and_pooling(isa, rng):
    """A ResNet-like bottleneck: the residual stream stays blocked through a strided 1x1
    shortcut (its input subsampled in the blocked layout) into global pooling; an AveragePool
    whose window is not the whole plane runs on its input converted."""
    from onnx import TensorProto, helper, numpy_helper

    from convkern import onnx as ckonnx

    def W(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
    N = helper.make_node
    nodes = [N("Conv", ["x", "a"], ["t"]),                                      # 16 -> 32
             N("Conv", ["t", "s"], ["u"], strides=[2, 2]),                      # shortcut 32 -> 40, 9x9 -> 5x5
             N("Conv", ["t", "r"], ["q"]), N("Relu", ["q"], ["q1"]),            # reduce 32 -> 16 (to a 3x3)
             N("Conv", ["q1", "v"], ["w"], pads=[1, 1, 1, 1], strides=[2, 2]),  # 3x3/2: NCHW
             N("Conv", ["w", "e"], ["f"]), N("Add", ["f", "u"], ["g"]), N("Relu", ["g"], ["h"]),
             N("GlobalAveragePool", ["h"], ["y1"]),
             N("AveragePool", ["h"], ["y2"], kernel_shape=[5, 5]),              # global on 5x5
             N("AveragePool", ["h"], ["y3"], kernel_shape=[3, 3])]              # not global
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2", "y3")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 9, 9])], outs,
                          [W("a", (32, 16, 1, 1)), W("s", (40, 32, 1, 1)), W("r", (16, 32, 1, 1)),
                           W("v", (16, 16, 3, 3)), W("e", (40, 16, 1, 1))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    opt = ckonnx.prepare(m)
    io = {(n.inputs[1] if n.op_type == "Conv" else n.outputs[0]): n.extra.get("blocked") for n in opt.graph.nodes}
    assert io == {"a": (False, True), "s": (True, True), "r": (True, False), "v": None, "e": (False, True),
                  "y1": (True, False), "y2": (True, False), "y3": (True, False)}
    x = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
    want = ckonnx.prepare(m, optimize=False).run([x])
    for _ in range(2):
        for a, b in zip(opt.run([x]), want):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_blocked_subsample_and_gap(isa, rng):
    x = rng.standard_normal((2, 40, 7, 6)).astype(np.float32)
    xb = RB.to_blocked(x)
    ys = np.empty((3, 2, 3, 2, 16), np.float32)
    _C.blk_subsample(xb, ys, 3, 4)
    np.testing.assert_array_equal(RB.from_blocked(ys, 40), x[:, :, ::3, ::4])
    y = np.empty((2, 40, 1, 1), np.float32)
    _C.blk_gap(xb, y, 40)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="output"):
        _C.blk_subsample(xb, ys[:, :1], 3, 4)
    with pytest.raises(ValueError, match="stride"):
        _C.blk_subsample(xb, ys, 0, 4)
    with pytest.raises(ValueError, match="input"):
        _C.blk_subsample(x, ys, 3, 4)
    with pytest.raises(ValueError, match="C"):
        _C.blk_gap(xb, y, 32)  # 32 channels are 2 blocks, the input has 3
    with pytest.raises(ValueError, match="output"):
        _C.blk_gap(xb, y[:1], 40)


def test_blocked_window_index_range(rng):
    """A column stride times the output width past the kernels' index range (2^40; far enough
    past it, q * stride overflows) is refused by both window kernels, though each value alone
    is in range."""
    x = np.zeros((1, 3, 4, 4), np.float32)
    xb = np.zeros((1, 1, 4, 4, 16), np.float32)
    y = np.zeros((1, 1, 1, 2, 16), np.float32)
    with pytest.raises(ValueError, match="stride"):
        _C.blk_conv_direct(x, np.zeros((16, 3, 1, 1), np.float32), None, y, 1, 1 << 39, 0, 0, 1, 2, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        _C.blk_depthwise(xb, np.zeros((16, 1, 1, 1), np.float32), None, y, 1, 1 << 39, 0, 0, 1, 2, 1, 1)
