import numpy as np
import pytest

import convkern.functional as F
import convkern.reference as R
from check import check_against_reference
from convkern.gradcheck import check_op

# (N, C, M, H, W, kernel (R, S), stride, padding, dilation)
CASES = [
    (2, 3, 1, 9, 11, (3, 3), 1, 1, 1),
    (1, 4, 2, 17, 40, (3, 3), 2, 1, 1),
    (2, 2, 3, 8, 7, (5, 5), 2, 2, 2),
    (1, 1, 1, 1, 5, (1, 1), 1, 0, 1),
    (1, 1, 1, 5, 1, (3, 1), 1, 1, 1),
    (2, 5, 1, 12, 17, (7, 7), 1, 3, 1),
    (1, 3, 2, 10, 10, (2, 2), 1, 0, 1),
    (1, 3, 1, 10, 10, (4, 2), 3, (1, 0), (1, 2)),
    (3, 2, 1, 6, 6, (3, 3), 1, "same", 3),
    (1, 6, 1, 9, 9, (4, 4), 1, "same", 1),
    (2, 3, 1, 8, 8, (3, 3), 1, "valid", 1),
    (1, 8, 1, 3, 3, (3, 3), 1, 0, 1),   # 1x1 output
    (1, 2, 1, 33, 33, (3, 3), 2, 2, 1),
    (1, 16, 1, 14, 14, (3, 3), 1, 1, 1),
]


def _args(case, rng, dtype=np.float64):
    N, C, M, H, W, k, s, p, d = case
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((C * M, 1) + k)
    b = rng.standard_normal(C * M)
    return (x, w, b), dict(stride=s, padding=p, dilation=d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_depthwise_vs_reference(isa, case, dtype):
    args, kw = _args(case, np.random.default_rng(0))
    k = case[5][0] * case[5][1]
    check_against_reference("depthwise_conv2d", args, kw, dtype=dtype, k=k, case=str(case))
    # the same through conv2d(groups=C), which routes to the depthwise kernel
    y = F.conv2d(args[0].astype(dtype), args[1].astype(dtype), args[2].astype(dtype), groups=case[1], **kw)
    y_ref = R.depthwise_conv2d(*args, **kw)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-4 if dtype == np.float32 else 1e-10)


def test_depthwise_noncontiguous_no_bias_and_unbatched(isa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 12, 9, 4)).transpose(0, 3, 2, 1)  # (2, 4, 9, 12), channels-last memory
    w = rng.standard_normal((8, 3, 3, 1)).transpose(0, 3, 1, 2)   # (8, 1, 3, 3), non-contiguous
    check_against_reference("depthwise_conv2d", (x, w, None), dict(padding=1), dtype=np.float32, k=9)
    check_against_reference("depthwise_conv2d", (x[0], w, None), dict(padding=1, stride=2), dtype=np.float64, k=9)


def test_depthwise_matches_grouped_im2col(isa):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 6, 13, 10)), rng.standard_normal((12, 1, 3, 3))
    a = F.conv2d(x, w, None, 2, 1, 1, 6, algo="auto")
    b = F.conv2d(x, w, None, 2, 1, 1, 6, algo="im2col")
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("case", [(2, 2, 2, 5, 6, (3, 3), 2, 1, 1), (1, 3, 1, 6, 5, (2, 3), 1, "same", 2),
                                  (1, 1, 3, 4, 4, (3, 3), 1, 0, 1)], ids=str)
def test_gradcheck(module, case):
    args, kw = _args(case, np.random.default_rng(3))
    check_op(module, "depthwise_conv2d", *args, **kw)


def test_depthwise_bad_inputs():
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="weight"):
        F.depthwise_conv2d(x, np.ones((6, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="weight"):
        F.depthwise_conv2d(x, np.ones((8, 2, 3, 3), np.float32))
    with pytest.raises(TypeError, match="weight"):
        F.depthwise_conv2d(x, np.ones((8, 1, 3, 3), np.float64))
    with pytest.raises(ValueError, match="bias"):
        F.depthwise_conv2d(x, np.ones((8, 1, 3, 3), np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="stride"):
        F.depthwise_conv2d(x, np.ones((8, 1, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match="input"):
        F.depthwise_conv2d(x, np.ones((8, 1, 9, 9), np.float32))
    with pytest.raises(ValueError, match="padding"):
        F.depthwise_conv2d(x, np.ones((8, 1, 3, 3), np.float32), stride=2, padding="same")
    with pytest.raises(ValueError, match="grad_output"):
        F.depthwise_conv2d_backward(np.ones((1, 8, 7, 7), np.float32), x, np.ones((8, 1, 3, 3), np.float32), padding=1)


def test_native_binding_rejects_wrong_sizes():
    from convkern import _C

    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="output"):
        _C.depthwise_forward(x, w, None, np.ones((1, 2, 2, 2), np.float32), 3, 3, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="bias"):
        _C.depthwise_forward(x, w, np.ones(5, np.float32), np.ones((1, 2, 3, 3), np.float32), 3, 3, 1, 1, 0, 0, 1, 1)
