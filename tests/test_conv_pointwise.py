"""1x1 convolutions through the GEMM's in-place B panels (GemmEpi::bdirect, cpu/gemm.cpp) and the
batch-folded columns packed straight from N x C x PQ (FoldedColumns, cpu/conv.cpp): forward,
grad_input and grad_weight against the NumPy reference over output-channel counts on both
sides of one and two micro-tile row panels, a B larger than L2 (packed in groups of panels), planes smaller than a panel (a panel crosses
several images), an input too large for the caches (B packed by rows instead of read in
place), planes whose rows are powers of two apart, batch 1 and batch > 1, every ISA,
both dtypes, 1 and 2 threads; the fused bias, residual and relu bit for bit against separate
passes."""
from __future__ import annotations

import numpy as np
import pytest
from check import assert_close

import convkern
import convkern.functional as F
import convkern.reference as R
from convkern._ops.conv import _conv

CASES = [  # (N, C, K, H, W)
    (3, 40, 16, 14, 14),    # folded batch, 196 positions: panels inside images read in place
    (2, 33, 5, 7, 7),       # one partial row panel, 49 positions
    (5, 17, 24, 3, 3),      # 9 positions: each 32-column panel crosses several images
    (4, 9, 25, 4, 8),       # three row panels: every B panel packed
    (2, 300, 12, 5, 7),     # two K slices
    (1, 48, 20, 17, 17),    # batch 1, 289 positions (per image)
    (2, 64, 16, 16, 16),    # per image, rows 1 KB apart
    (2, 8, 13, 32, 32),     # rows 4 KB apart
    (3, 1, 3, 11, 9),       # one input channel
    (2, 7, 1, 6, 6),        # one output channel
    (1, 64, 40, 90, 90),    # B over 2 MB: packed ~512 KB of panels at a time, row by row, with a tail
    (5, 36, 20, 117, 113),  # input over 8 MB, two row panels: B packed by rows, not read in place (b_streamed)
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_pointwise_matches_reference(isa, dtype, case, threads, rng):
    n, c, k, h, w = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 1, 1)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    dy = rng.standard_normal((n, k, h, w)).astype(dtype)
    old = convkern.get_num_threads()
    try:
        convkern.set_num_threads(threads)
        y = F.conv2d(x, wt, b)
        dx = F.conv2d_input(x.shape, wt, dy)
        dw = F.conv2d_weight(x, wt.shape, dy)
    finally:
        convkern.set_num_threads(old)
    x64, w64, dy64 = x.astype(np.float64), wt.astype(np.float64), dy.astype(np.float64)
    ref = R.conv2d(x64, w64, b.astype(np.float64))
    rdx, rdw = R.conv2d_backward(dy64, x64, w64)[:2]
    for got, want, depth, what in ((y, ref, c, "forward"), (dx, rdx, k, "grad_input"), (dw, rdw, n * h * w, "grad_weight")):
        assert got.dtype == dtype and got.shape == want.shape, what
        assert_close(got, want, k=depth, case=f"{case} {what}")


@pytest.mark.parametrize("case", CASES[:6], ids=[str(c) for c in CASES[:6]])
def test_pointwise_fused_epilogue(isa, case, rng):
    """relu and residual fused into the product (or applied after the folded batch's copy back)
    give bit for bit the plain result followed by separate passes; NaN stays NaN."""
    n, c, k, h, w = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    wt = rng.standard_normal((k, c, 1, 1)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    r = rng.standard_normal((n, k, h, w)).astype(np.float32)
    plain = F.conv2d(x, wt, b)
    joined = plain + r
    for weight in (wt, F.PackedConvWeight(wt)):
        got = _conv(2, x, weight, b, (1, 1), (0, 0), (1, 1), 1, "auto", relu=True, residual=r)
        np.testing.assert_array_equal(got, np.maximum(joined, 0, where=~np.isnan(joined), out=joined.copy()))
        np.testing.assert_array_equal(_conv(2, x, weight, b, (1, 1), (0, 0), (1, 1), 1, "auto"), plain)
    assert np.isnan(plain[0]).any()
