"""convkern.functional against torch.nn.functional on random shapes (skipped without PyTorch).

Forward and backward (torch autograd) of every operator, float32 and float64, random
stride/padding/dilation/groups drawn per seed."""
import numpy as np
import pytest

import convkern.functional as F
from check import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SEEDS = range(12)
DTYPES = [np.float32, np.float64]


def _t(a, grad=True):
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.requires_grad_(grad and t.dtype.is_floating_point)


def _compare(ck_out, ck_grads, t_out, t_inputs, names, k, case):
    assert_close(ck_out, t_out.detach().numpy(), k=k, case=case, name="forward")
    for n, g in zip(names, ck_grads):
        ti = t_inputs.get(n)
        if ti is None or g is None:
            continue
        assert_close(g, ti.grad.numpy(), k=4 * k, case=case, name=f"grad {n}")


def _backward(t_out, seed, dtype):
    gy = np.random.default_rng(seed + 99).standard_normal(tuple(t_out.shape)).astype(dtype)
    t_out.backward(torch.from_numpy(gy))
    return gy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d(seed, dtype):
    r = np.random.default_rng(seed)
    g = int(r.choice([1, 1, 2, 3]))
    c, k = g * int(r.integers(1, 5)), g * int(r.integers(1, 5))
    kh, kw = int(r.integers(1, 6)), int(r.integers(1, 6))
    st, dl = (int(r.integers(1, 4)), int(r.integers(1, 4))), (int(r.integers(1, 3)), int(r.integers(1, 3)))
    pd = (int(r.integers(0, kh)), int(r.integers(0, kw)))
    h = (kh - 1) * dl[0] + 1 + int(r.integers(0, 9))
    w = (kw - 1) * dl[1] + 1 + int(r.integers(0, 9))
    n = int(r.integers(1, 4))
    x, wt = r.standard_normal((n, c, h, w)).astype(dtype), r.standard_normal((k, c // g, kh, kw)).astype(dtype)
    b = r.standard_normal(k).astype(dtype)
    kw_ = dict(stride=st, padding=pd, dilation=dl, groups=g)
    case = f"n{n} c{c} k{k} {h}x{w} kernel {kh}x{kw} {kw_}"
    tx, tw, tb = _t(x), _t(wt), _t(b)
    ty = TF.conv2d(tx, tw, tb, **kw_)
    gy = _backward(ty, seed, dtype)
    for algo in ("auto", "im2col", "direct"):
        y = F.conv2d(x, wt, b, algo=algo, **kw_)
        grads = F.conv2d_backward(gy, x, wt, b, **kw_)
        _compare(y, grads, ty, dict(input=tx, weight=tw, bias=tb), ("input", "weight", "bias"),
                 (c // g) * kh * kw, case + f" algo={algo}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_depthwise_as_conv2d(seed, dtype):
    r = np.random.default_rng(seed)
    c, m = int(r.integers(1, 6)), int(r.integers(1, 3))
    kh = int(r.choice([1, 3, 5]))
    st, pd, dl = int(r.integers(1, 3)), int(r.integers(0, kh)), int(r.integers(1, 3))
    h, w = int(r.integers(kh * dl, 20)), int(r.integers(kh * dl, 20))
    x, wt = r.standard_normal((2, c, h, w)).astype(dtype), r.standard_normal((c * m, 1, kh, kh)).astype(dtype)
    b = r.standard_normal(c * m).astype(dtype)
    tx, tw, tb = _t(x), _t(wt), _t(b)
    ty = TF.conv2d(tx, tw, tb, st, pd, dl, c)
    gy = _backward(ty, seed, dtype)
    y = F.conv2d(x, wt, b, st, pd, dl, c)
    grads = F.conv2d_backward(gy, x, wt, b, st, pd, dl, c)
    _compare(y, grads, ty, dict(input=tx, weight=tw, bias=tb), ("input", "weight", "bias"), kh * kh, f"dw seed {seed}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_conv_transpose2d(seed, dtype):
    r = np.random.default_rng(seed)
    g = int(r.choice([1, 2]))
    c, k = g * int(r.integers(1, 4)), g * int(r.integers(1, 4))
    kh = int(r.integers(1, 5))
    st, dl = int(r.integers(1, 4)), int(r.integers(1, 3))
    pd = int(r.integers(0, kh))
    op = int(r.integers(0, max(st, dl)))
    h, w = int(r.integers(2, 9)), int(r.integers(2, 9))
    x, wt = r.standard_normal((2, c, h, w)).astype(dtype), r.standard_normal((c, k // g, kh, kh)).astype(dtype)
    b = r.standard_normal(k).astype(dtype)
    kw_ = dict(stride=st, padding=pd, output_padding=op, groups=g, dilation=dl)
    tx, tw, tb = _t(x), _t(wt), _t(b)
    try:
        ty = TF.conv_transpose2d(tx, tw, tb, **kw_)
    except RuntimeError:
        ty = None
    if ty is None or 0 in ty.shape:  # convkern refuses parameters that give an empty output
        with pytest.raises(ValueError, match="output"):
            F.conv_transpose2d(x, wt, b, **kw_)
        return
    gy = _backward(ty, seed, dtype)
    y = F.conv_transpose2d(x, wt, b, **kw_)
    grads = F.conv_transpose2d_backward(gy, x, wt, b, **kw_)
    _compare(y, grads, ty, dict(input=tx, weight=tw, bias=tb), ("input", "weight", "bias"), c * kh * kh, str(kw_))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_conv1d_conv3d(seed, dtype):
    r = np.random.default_rng(seed)
    c, k = int(r.integers(1, 4)), int(r.integers(1, 4))
    kk, st, pd = int(r.integers(1, 4)), int(r.integers(1, 3)), 0
    pd = int(r.integers(0, kk))
    x1, w1 = r.standard_normal((2, c, 11)).astype(dtype), r.standard_normal((k, c, kk)).astype(dtype)
    tx, tw = _t(x1), _t(w1)
    ty = TF.conv1d(tx, tw, None, st, pd)
    gy = _backward(ty, seed, dtype)
    _compare(F.conv1d(x1, w1, None, st, pd), F.conv1d_backward(gy, x1, w1, None, st, pd), ty,
             dict(input=tx, weight=tw), ("input", "weight", "bias"), c * kk, "conv1d")
    x3, w3 = r.standard_normal((1, c, 5, 6, 7)).astype(dtype), r.standard_normal((k, c, kk, kk, kk)).astype(dtype)
    tx, tw = _t(x3), _t(w3)
    ty = TF.conv3d(tx, tw, None, st, pd)
    gy = _backward(ty, seed, dtype)
    _compare(F.conv3d(x3, w3, None, st, pd), F.conv3d_backward(gy, x3, w3, None, st, pd), ty,
             dict(input=tx, weight=tw), ("input", "weight", "bias"), c * kk ** 3, "conv3d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_pooling(seed, dtype):
    r = np.random.default_rng(seed)
    k = int(r.integers(1, 5))
    st = int(r.integers(1, 4))
    pd = int(r.integers(0, k // 2 + 1))
    dl = int(r.integers(1, 3))
    ceil = bool(r.integers(0, 2))
    h, w = int(r.integers((k - 1) * dl + 1, 16)), int(r.integers((k - 1) * dl + 1, 16))
    x = r.permutation(2 * 3 * h * w).reshape(2, 3, h, w).astype(dtype)  # no ties
    case = f"{h}x{w} k{k} s{st} p{pd} d{dl} ceil={ceil}"
    tx = _t(x)
    ty, ti = TF.max_pool2d(tx, k, st, pd, dl, ceil, return_indices=True)
    gy = _backward(ty, seed, dtype)
    y, idx = F.max_pool2d(x, k, st, pd, dl, ceil, return_indices=True)
    np.testing.assert_array_equal(idx, ti.numpy(), err_msg=case)
    _compare(y, F.max_pool2d_backward(gy, x, k, st, pd, dl, ceil), ty, dict(input=tx), ("input",), 1, case)
    for cip in (True, False):
        tx = _t(x)
        ty = TF.avg_pool2d(tx, k, st, pd, ceil, cip)
        gy = _backward(ty, seed, dtype)
        _compare(F.avg_pool2d(x, k, st, pd, ceil, cip), F.avg_pool2d_backward(gy, x, k, st, pd, ceil, cip), ty,
                 dict(input=tx), ("input",), k * k, case + f" cip={cip}")
    osz = (int(r.integers(1, h + 1)), int(r.integers(1, w + 1)))
    tx = _t(x)
    ty = TF.adaptive_avg_pool2d(tx, osz)
    gy = _backward(ty, seed, dtype)
    _compare(F.adaptive_avg_pool2d(x, osz), F.adaptive_avg_pool2d_backward(gy, x, osz), ty, dict(input=tx),
             ("input",), h * w, f"adaptive {osz}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_and_lrn(seed, dtype):
    r = np.random.default_rng(seed)
    n, c, h, w = int(r.integers(2, 5)), int(r.integers(1, 7)), int(r.integers(1, 9)), int(r.integers(1, 9))
    x = r.standard_normal((n, c, h, w)).astype(dtype)
    gm, bt = r.standard_normal(c).astype(dtype), r.standard_normal(c).astype(dtype)
    for training in (True, False):
        rm, rv = r.standard_normal(c).astype(dtype), (r.random(c) + 0.5).astype(dtype)
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        tx, tg, tb = _t(x), _t(gm), _t(bt)
        ty = TF.batch_norm(tx, trm, trv, tg, tb, training, 0.1, 1e-5)
        gy = _backward(ty, seed, dtype)
        y = F.batch_norm(x, rm, rv, gm, bt, training, 0.1, 1e-5)
        assert_close(rm, trm.numpy(), k=n * h * w, name="running_mean")
        assert_close(rv, trv.numpy(), k=n * h * w, name="running_var")
        grads = F.batch_norm_backward(gy, x, rm, rv, gm, bt, training, 0.1, 1e-5)
        _compare(y, grads, ty, dict(input=tx, weight=tg, bias=tb), ("input", "weight", "bias"), n * h * w,
                 f"bn training={training}")
    size = int(r.integers(1, 8))
    tx = _t(x)
    ty = TF.local_response_norm(tx, size, 1e-2, 0.75, 2.0)
    gy = _backward(ty, seed, dtype)
    _compare(F.local_response_norm(x, size, 1e-2, 0.75, 2.0), F.local_response_norm_backward(gy, x, size, 1e-2, 0.75, 2.0),
             ty, dict(input=tx), ("input",), size, f"lrn size {size}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_activations_softmax_losses_linear(seed, dtype):
    r = np.random.default_rng(seed)
    shape = tuple(int(v) for v in r.integers(1, 9, size=int(r.integers(2, 5))))
    x = (3 * r.standard_normal(shape)).astype(dtype)
    for name, args in [("relu", ()), ("relu6", ()), ("leaky_relu", (0.2,)), ("elu", (1.3,)), ("sigmoid", ()), ("tanh", ()),
                       ("gelu", ()), ("softmax", (1,)), ("log_softmax", (-1,))]:
        tx = _t(x)
        ty = getattr(TF, name)(tx, *args) if name not in ("sigmoid", "tanh") else getattr(torch, name)(tx)
        gy = _backward(ty, seed, dtype)
        _compare(getattr(F, name)(x, *args), getattr(F, name + "_backward")(gy, x, *args), ty, dict(input=tx),
                 ("input",), shape[1] if "softmax" in name else 1, name)
    slope = r.standard_normal(shape[1]).astype(dtype)
    tx, ts = _t(x), _t(slope)
    ty = TF.prelu(tx, ts)
    gy = _backward(ty, seed, dtype)
    _compare(F.prelu(x, slope), F.prelu_backward(gy, x, slope), ty, dict(input=tx, weight=ts), ("input", "weight"),
             x.size, "prelu")
    logits = r.standard_normal((shape[0], 5) + shape[2:]).astype(dtype)
    target = r.integers(0, 5, (shape[0],) + shape[2:])
    target.reshape(-1)[0] = -100
    wcls = r.random(5).astype(dtype) + 0.1
    for red in ("mean", "sum", "none"):
        tl = _t(logits)
        ty = TF.cross_entropy(tl, torch.from_numpy(target), torch.from_numpy(wcls), reduction=red,
                              label_smoothing=0.1)
        gy = _backward(ty, seed, dtype)
        gy = gy if red == "none" else np.asarray(gy, dtype)
        y = F.cross_entropy(logits, target, wcls, reduction=red, label_smoothing=0.1)
        grads = F.cross_entropy_backward(gy, logits, target, wcls, reduction=red, label_smoothing=0.1)
        _compare(y, grads, ty, dict(input=tl), ("input",), logits.size, f"cross_entropy {red}")
        t2 = r.standard_normal(x.shape).astype(dtype)
        tx, tt = _t(x), _t(t2)
        ty = TF.mse_loss(tx, tt, reduction=red)
        gy = np.asarray(_backward(ty, seed, dtype), dtype)
        _compare(F.mse_loss(x, t2, red), F.mse_loss_backward(gy, x, t2, red), ty, dict(input=tx, target=tt),
                 ("input", "target"), x.size, f"mse {red}")
    fin, fout = shape[-1], int(r.integers(1, 20))
    wl, bl = r.standard_normal((fout, fin)).astype(dtype), r.standard_normal(fout).astype(dtype)
    tx, tw, tb = _t(x), _t(wl), _t(bl)
    ty = TF.linear(tx, tw, tb)
    gy = _backward(ty, seed, dtype)
    _compare(F.linear(x, wl, bl), F.linear_backward(gy, x, wl, bl), ty, dict(input=tx, weight=tw, bias=tb),
             ("input", "weight", "bias"), fin, "linear")
