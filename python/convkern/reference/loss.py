"""Losses: plain NumPy forward and backward (torch's definitions)."""
from __future__ import annotations

import numpy as np

from .activation import log_softmax

__all__ = ["cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward"]
DIFFERENTIABLE = {"cross_entropy": ("input",), "mse_loss": ("input", "target")}


def _as_ncs(input, target):
    """(N, C, S) logits and (N, S) targets, S the flattened extra dims (1-d input: N = S = 1)."""
    if input.ndim == 1:
        return input.reshape(1, -1, 1), np.asarray(target).reshape(1, 1)
    return input.reshape(input.shape[0], input.shape[1], -1), target.reshape(input.shape[0], -1)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    x, t = _as_ncs(input, target)
    C = x.shape[1]
    w = np.ones(C, x.dtype) if weight is None else weight
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    logp = log_softmax(x, 1)                                               # (N, C, S)
    picked = np.take_along_axis(logp, tc[:, None, :], axis=1)[:, 0, :]     # logp[n, t[n, s], s]
    nll = np.where(keep, -w[tc] * picked, 0)
    smooth = np.where(keep, -(logp * w[None, :, None]).sum(1), 0)
    eps = label_smoothing
    if reduction == "none":
        return ((1 - eps) * nll + eps / C * smooth).reshape(np.shape(target))
    total = (1 - eps) * nll.sum() + eps / C * smooth.sum()
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / np.where(keep, w[tc], 0).sum()
    return np.asarray(total, dtype=x.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    x, t = _as_ncs(input, target)
    C = x.shape[1]
    w = np.ones(C, x.dtype) if weight is None else weight
    keep = t != ignore_index
    tc = np.where(keep, t, 0)
    p = np.exp(log_softmax(x, 1))
    g = np.asarray(grad_output, dtype=x.dtype)
    if reduction == "none":
        coef = g.reshape(t.shape)
    elif reduction == "sum":
        coef = np.full(t.shape, g.reshape(()))
    else:
        coef = np.full(t.shape, g.reshape(()) / np.where(keep, w[tc], 0).sum())
    coef = np.where(keep, coef, 0)
    eps = label_smoothing
    onehot = np.arange(C)[None, :, None] == tc[:, None, :]
    wt = w[tc][:, None, :]
    # d/dx_j of (1-eps)(-w_t logp_t) + eps/C (-sum_c w_c logp_c), with dlogp_c/dx_j = [c == j] - p_j
    grad = (1 - eps) * wt * (p - onehot) + eps / C * (p * w.sum() - w[None, :, None])
    return ((coef[:, None, :] * grad).reshape(input.shape),)


def mse_loss(input, target, reduction="mean"):
    d = (input - target) ** 2
    if reduction == "none":
        return d
    return np.asarray(d.sum() if reduction == "sum" else d.mean(), dtype=input.dtype)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    g = np.asarray(grad_output, dtype=input.dtype)
    scale = 1.0 / input.size if reduction == "mean" else 1.0
    gx = g * scale * 2 * (input - target)
    return gx, -gx
