"""loss: plain NumPy forward and backward (the oracle; never calls native code).

cross_entropy follows torch (aten/src/ATen/native/LossNLL.cpp): with logp = log_softmax over
the class dim, per position p with target t

    nll[p]    = -w[t] logp[t]                  (0 where t == ignore_index)
    smooth[p] = -sum_c w[c] logp[c]            (0 where t == ignore_index)
    loss[p]   = (1 - ls) nll[p] + ls / C smooth[p]

and 'mean' divides the sum by the summed w[t] of the non-ignored positions.
"""
from __future__ import annotations

import numpy as np

__all__ = ["cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward"]

DIFFERENTIABLE = {
    "cross_entropy": ("input",),
    "mse_loss": ("input", "target"),
}


def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")


def _ce_setup(input, target, weight, ignore_index):
    """Moves classes last: x (P, C) logits, t (P,) targets, w (C,), valid (P,) mask, target shape."""
    x = np.asarray(input)
    t = np.asarray(target)
    if t.dtype != np.int64:
        raise TypeError(f"target: expected int64, got {t.dtype}")
    if x.ndim == 1:
        xc = x.reshape(1, -1)
    else:
        xc = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    C = xc.shape[1]
    tf = t.reshape(-1)
    valid = tf != ignore_index
    if np.any(valid & ((tf < 0) | (tf >= C))):
        raise ValueError("target: class index out of range")
    w = np.ones(C, dtype=np.float64) if weight is None else np.asarray(weight, dtype=np.float64)
    return xc.astype(np.float64), np.where(valid, tf, 0), w, valid, t.shape


def _log_softmax_rows(xc):
    shifted = xc - xc.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    _check_reduction(reduction)
    xc, t, w, valid, tshape = _ce_setup(input, target, weight, ignore_index)
    C = xc.shape[1]
    logp = _log_softmax_rows(xc)
    rows = np.arange(xc.shape[0])
    nll = np.where(valid, -w[t] * logp[rows, t], 0.0)
    smooth = np.where(valid, -(logp * w).sum(axis=1), 0.0)
    loss = (1 - label_smoothing) * nll + label_smoothing / C * smooth
    dtype = np.asarray(input).dtype
    if reduction == "none":
        return loss.reshape(tshape).astype(dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(loss.sum() / np.where(valid, w[t], 0.0).sum(), dtype=dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    _check_reduction(reduction)
    x = np.asarray(input)
    xc, t, w, valid, tshape = _ce_setup(input, target, weight, ignore_index)
    P, C = xc.shape
    g = np.asarray(grad_output, dtype=np.float64)
    if reduction == "none":
        gp = g.reshape(-1)
    else:
        gp = np.full(P, float(g))
        if reduction == "mean":
            denom = np.where(valid, w[t], 0.0).sum()
            gp = gp / denom if denom != 0 else np.zeros(P)
    gp = np.where(valid, gp, 0.0)
    p = np.exp(_log_softmax_rows(xc))
    onehot = np.zeros((P, C))
    onehot[np.arange(P), t] = 1.0
    # d nll / dx = w[t] (p - onehot);  d smooth / dx = sum(w) p - w
    d_nll = w[t][:, None] * (p - onehot)
    d_smooth = w.sum() * p - w[None, :]
    gxc = gp[:, None] * ((1 - label_smoothing) * d_nll + label_smoothing / C * d_smooth)
    if x.ndim == 1:
        gx = gxc.reshape(x.shape)
    else:
        moved = (x.shape[0],) + x.shape[2:] + (x.shape[1],)
        gx = np.moveaxis(gxc.reshape(moved), -1, 1)
    return (np.ascontiguousarray(gx).astype(x.dtype),)


def mse_loss(input, target, reduction="mean"):
    _check_reduction(reduction)
    x, t = np.asarray(input), np.asarray(target)
    if x.shape != t.shape:
        raise ValueError("target: shape differs from input")
    d2 = (x.astype(np.float64) - t) ** 2
    if reduction == "none":
        return d2.astype(x.dtype)
    return np.asarray(d2.mean() if reduction == "mean" else d2.sum(), dtype=x.dtype)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    _check_reduction(reduction)
    x, t = np.asarray(input), np.asarray(target)
    g = np.asarray(grad_output, dtype=np.float64)
    scale = 1.0 / x.size if reduction == "mean" else 1.0
    gx = 2.0 * scale * g * (x.astype(np.float64) - t)
    return gx.astype(x.dtype), (-gx).astype(x.dtype)
