"""Losses (native kernels): cross_entropy with class-index targets, mse_loss.

Losses with reduction 'mean' or 'sum' return 0-d arrays (like torch's scalar tensors);
their backward takes a 0-d (or size-1) grad_output, or one shaped like the per-sample
loss for reduction='none'.
"""
from __future__ import annotations

import numpy as np

from .. import _C
from ._util import as_float, as_int, as_number, check_choice, empty

__all__ = ["cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward"]
DIFFERENTIABLE = {"cross_entropy": ("input",), "mse_loss": ("input", "target")}
_REDUCTIONS = ("mean", "sum", "none")


def _ce_prep(input, target, weight, ignore_index, reduction, label_smoothing):
    x = as_float(input, "input")
    if not isinstance(target, np.ndarray):
        raise TypeError(f"target: expected a numpy.ndarray of class indices, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"target: class indices must be an integer array, got dtype {target.dtype}")
    t = np.asarray(target, dtype=np.int64, order="C")
    w = None if weight is None else as_float(weight, "weight", like=x)
    ignore_index = as_int(ignore_index, "ignore_index")
    check_choice(reduction, _REDUCTIONS, "reduction")
    eps = as_number(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: must be in [0, 1], got {eps}")
    if x.ndim == 0:
        raise ValueError("input: expected (C,), (N, C) or (N, C, d1, ...), got a 0-d array")
    if x.ndim == 1:  # unbatched: (C,) with a 0-d target
        if t.ndim != 0:
            raise ValueError(f"target: expected a 0-d class index for a 1-d input, got shape {t.shape}")
        x4, t4 = x.reshape(1, -1, 1), t.reshape(1, 1)
    else:
        want = (x.shape[0],) + x.shape[2:]
        if t.shape != want:
            raise ValueError(f"target: expected shape {want} for input of shape {x.shape}, got {t.shape}")
        x4, t4 = x.reshape(x.shape[0], x.shape[1], -1), t.reshape(x.shape[0], -1)
    N, C, inner = x4.shape
    if x.size == 0:
        raise ValueError(f"input: must not be empty (shape {x.shape})")
    if w is not None and w.shape != (C,):
        raise ValueError(f"weight: expected shape ({C},), got {w.shape}")
    bad = (t4 != ignore_index) & ((t4 < 0) | (t4 >= C))
    if bad.any():
        raise ValueError(f"target: class index {int(t4[bad][0])} is out of range [0, {C})")
    return x, t, x4, t4, w, N, C, inner, ignore_index, eps


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (N, C, ...) against class indices ``target`` (N, ...)."""
    x, t, x4, t4, w, N, C, inner, ii, eps = _ce_prep(input, target, weight, ignore_index, reduction, label_smoothing)
    nll, sm, wt = (empty((N, inner), x.dtype) for _ in range(3))
    _C.cross_entropy_forward(x4, t4, w, nll, sm, wt, N, C, inner, ii)
    if reduction == "none":
        return ((1 - eps) * nll + (eps / C) * sm).astype(x.dtype).reshape(t.shape)
    total = (1 - eps) * nll.sum(dtype=np.float64) + (eps / C) * sm.sum(dtype=np.float64)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / wt.sum(dtype=np.float64)
    return np.asarray(total, dtype=x.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """(grad_input,)."""
    x, t, x4, t4, w, N, C, inner, ii, eps = _ce_prep(input, target, weight, ignore_index, reduction, label_smoothing)
    g = as_float(grad_output, "grad_output", like=x)
    if reduction == "none":
        if g.shape != t.shape:
            raise ValueError(f"grad_output: expected shape {t.shape}, got {g.shape}")
        coef = np.ascontiguousarray(g.reshape(N, inner))
    else:
        if g.size != 1 or g.ndim > 1:
            raise ValueError(f"grad_output: expected a scalar for reduction={reduction!r}, got shape {g.shape}")
        scale = float(g.reshape(()))
        if reduction == "mean":
            wsum = float(np.where(t4 == ii, 0.0, 1.0 if w is None else w[np.clip(t4, 0, C - 1)]).sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.float64(scale) / wsum
        coef = np.full((N, inner), scale, dtype=x.dtype)
    gx = empty(x4.shape, x.dtype, "grad_input")
    _C.cross_entropy_backward(x4, t4, w, coef, gx, N, C, inner, ii, eps)
    return (gx.reshape(x.shape),)


def _mse_prep(input, target, reduction):
    x = as_float(input, "input")
    t = as_float(target, "target", like=x)
    if t.shape != x.shape:
        raise ValueError(f"target: expected the input's shape {x.shape}, got {t.shape}")
    check_choice(reduction, _REDUCTIONS, "reduction")
    return x, t


def mse_loss(input, target, reduction="mean"):
    """Mean (or sum, or elementwise) squared error."""
    x, t = _mse_prep(input, target, reduction)
    if reduction == "none":
        y = empty(x.shape, x.dtype)
        _C.mse_forward(x, t, y)
        return y
    total = _C.mse_forward(x, t, None)
    if reduction == "mean":
        total = total / x.size if x.size else float("nan")
    return np.asarray(total, dtype=x.dtype)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    """(grad_input, grad_target)."""
    x, t = _mse_prep(input, target, reduction)
    g = as_float(grad_output, "grad_output", like=x)
    if reduction == "none":
        if g.shape != x.shape:
            raise ValueError(f"grad_output: expected shape {x.shape}, got {g.shape}")
    elif g.size != 1 or g.ndim > 1:
        raise ValueError(f"grad_output: expected a scalar for reduction={reduction!r}, got shape {g.shape}")
    scale = 1.0 / x.size if reduction == "mean" and x.size else 1.0
    gx = empty(x.shape, x.dtype, "grad_input")
    if x.size:
        _C.mse_backward(x, t, np.ascontiguousarray(g.reshape(-1) if g.ndim else g.reshape(1)), gx, scale)
    return gx, -gx
