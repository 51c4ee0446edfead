import numpy as np
import pytest

import convkern.functional as F
import convkern.reference as R
from check import check_against_reference
from convkern.gradcheck import check_op

CE_CASES = [((4, 5), None), ((1, 1), None), ((3, 7, 2, 3), None), ((2, 4, 9), None), ((6,), None), ((5, 1000), None)]


def _ce_args(shape, rng, ignore=True):
    x = rng.standard_normal(shape) * 3
    C = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng.integers(0, C, tshape)
    if ignore and t.size > 1:
        t.reshape(-1)[0] = -100
    return x, t, C


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [c[0] for c in CE_CASES], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (True, 0.15), (False, 0.3)])
def test_cross_entropy_vs_reference(isa, shape, reduction, weighted, smoothing, dtype):
    rng = np.random.default_rng(len(shape))
    x, t, C = _ce_args(shape, rng)
    w = rng.random(C) + 0.1 if weighted else None
    check_against_reference("cross_entropy", (x, t), dict(weight=w, reduction=reduction, label_smoothing=smoothing),
                            dtype=dtype, k=x.size, case=f"{shape} {reduction} w={weighted} ls={smoothing}")


def test_cross_entropy_noncontiguous_and_ignore_index(isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6)).T  # (6, 8): 6 samples, 8 classes, transposed memory
    t = np.array([1, 7, 3, 3, 0, 2])
    check_against_reference("cross_entropy", (x, t), dict(ignore_index=3), dtype=np.float32, k=48)


def test_cross_entropy_all_ignored_mean_is_nan():
    x = np.zeros((2, 3), np.float32)
    assert np.isnan(F.cross_entropy(x, np.array([-100, -100])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (17,), (3, 4, 5), (2, 70000)], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_vs_reference(isa, shape, reduction, dtype):
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    check_against_reference("mse_loss", (x, t), dict(reduction=reduction), dtype=dtype, k=x.size,
                            case=f"{shape} {reduction}")


@pytest.mark.parametrize("module", [F, R], ids=["native", "reference"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(module, reduction):
    rng = np.random.default_rng(5)
    x, t, C = _ce_args((3, 4, 2), rng)
    check_op(module, "cross_entropy", x, t, weight=rng.random(4) + 0.5, reduction=reduction, label_smoothing=0.1)
    check_op(module, "cross_entropy", x[:, :, 0], t[:, 0], reduction=reduction)
    check_op(module, "mse_loss", rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), reduction=reduction)


def test_loss_bad_inputs():
    x = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([0, 5, 1]))
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([0, -2, 1]))
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="target"):
        F.cross_entropy(x, np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(x, np.array([0, 1, 2]), weight=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="grad_output"):
        F.cross_entropy_backward(np.ones(3, np.float32), x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        F.mse_loss(x, np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="target"):
        F.mse_loss(x, np.zeros((3, 5), np.float64))
