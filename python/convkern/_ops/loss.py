"""Losses on native kernels (torch.nn.functional names and semantics).

``cross_entropy`` takes class-index targets (int64) and fuses the log-softmax into the
kernel; ``mse_loss`` needs input and target of the same shape. Reductions 'mean' and 'sum'
return 0-d arrays of the input's dtype; 'none' returns one loss per target position.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C
from . import _util as U

__all__ = ["cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward"]

DIFFERENTIABLE = {
    "cross_entropy": ("input",),
    "mse_loss": ("input", "target"),
}


def _as_float(x, name: str, like=None) -> np.ndarray:
    """U.as_float keeping 0-d arrays 0-d (np.ascontiguousarray makes them 1-d)."""
    y = U.as_float(x, name, like)
    return y.reshape(()) if x.ndim == 0 else y

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(reduction) -> str:
    if not isinstance(reduction, str):
        raise TypeError(f"reduction: expected a str, got {type(reduction).__name__}")
    return U.check_choice(reduction, _REDUCTIONS, "reduction")


def _grad_output(grad_output, x: np.ndarray, shape) -> np.ndarray:
    if isinstance(grad_output, np.generic):
        grad_output = np.asarray(grad_output)
    g = _as_float(grad_output, "grad_output", like=x)
    if g.shape != tuple(shape):
        raise ValueError(f"grad_output: expected shape {tuple(shape)} (the loss's), got {g.shape}")
    return g


# ---------------------------------------------------------------------------------------------
def _ce_args(input, target, weight, ignore_index, reduction, label_smoothing):
    x = _as_float(input, "input")
    target_on_gpu = U.xp_of(target) is not np
    if not isinstance(target, np.ndarray) and not target_on_gpu:
        raise TypeError(f"target: expected a numpy.ndarray, got {type(target).__name__}")
    if target_on_gpu != (U.xp_of(x) is not np):
        where = "a CUDA array" if target_on_gpu else "a numpy.ndarray"
        raise TypeError(f"target: is {where} but input is not (all arrays of one call must be on the same device)")
    if target.dtype != np.int64:
        raise TypeError(f"target: expected int64 class indices, got dtype {target.dtype}")
    if x.ndim < 1:
        raise ValueError(f"input: expected (C,), (N, C) or (N, C, d1, ...), got shape {x.shape}")
    if x.ndim == 1:  # unbatched (C,) with a 0-d target
        expected_t = ()
        N, C, inner = 1, x.shape[0], 1
    else:
        expected_t = (x.shape[0],) + x.shape[2:]
        N, C = x.shape[0], x.shape[1]
        inner = math.prod(x.shape[2:])
    if tuple(target.shape) != expected_t:
        raise ValueError(f"target: expected shape {expected_t} for input of shape {x.shape}, got {target.shape}")
    if C < 1:
        raise ValueError(f"input: needs at least one class (shape {x.shape})")
    if x.size == 0:
        raise ValueError(f"input: must not be empty (shape {x.shape})")
    w = None
    if weight is not None:
        w = _as_float(weight, "weight", like=x)
        if w.shape != (C,):
            raise ValueError(f"weight: expected shape ({C},) (one weight per class), got {w.shape}")
    ignore_index = U.as_int(ignore_index, "ignore_index")
    reduction = _reduction(reduction)
    eps = U.as_number(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: must be between 0.0 and 1.0, got {eps}")
    t = U.ascontiguous(target)
    if t.size and (int(t.min()) < 0 or int(t.max()) >= C):
        bad = (t != ignore_index) & ((t < 0) | (t >= C))
    else:
        bad = None
    if bad is not None and bool(U.xp_of(t).any(bad)):
        v = int(t[bad].reshape(-1)[0])
        raise ValueError(f"target: class index {v} is out of range for {C} classes (and is not ignore_index="
                         f"{ignore_index})")
    return x, t, w, ignore_index, reduction, eps, (N, C, inner), expected_t


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross entropy between logits ``input`` (C), (N, C) or (N, C, d1, ...) and class indices
    ``target`` (), (N) or (N, d1, ...), torch's semantics: per-class ``weight``; targets equal to
    ``ignore_index`` contribute nothing; 'mean' divides by the summed weights of the
    non-ignored targets; ``label_smoothing`` mixes in the uniform distribution."""
    x, t, w, ii, reduction, eps, (N, C, inner), tshape = _ce_args(input, target, weight, ignore_index, reduction,
                                                                    label_smoothing)
    loss = U.empty(tshape, x.dtype, "loss")
    wt = U.empty(tshape, x.dtype, "loss")
    bad = _C.cross_entropy_forward(x, t, w, loss, wt, N, C, inner, ii, eps)
    if bad:  # pragma: no cover - targets were checked above
        raise ValueError("target: class index out of range")
    if reduction == "none":
        return loss
    xp = U.xp_of(x)
    total = xp.sum(loss, dtype=np.float64)
    if reduction == "sum":
        return U.xp_of(x).asarray(total, dtype=x.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.asarray(total / xp.sum(wt, dtype=np.float64), dtype=x.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    x, t, w, ii, reduction, eps, (N, C, inner), tshape = _ce_args(input, target, weight, ignore_index, reduction,
                                                                    label_smoothing)
    g = _grad_output(grad_output, x, tshape if reduction == "none" else ())
    gscale = 1.0
    if reduction == "mean":
        if w is None:
            denom = float(U.xp_of(t).count_nonzero(t != ii))
        else:
            valid = t != ii
            denom = float(U.xp_of(w).sum(w.astype(np.float64)[t[valid]]))
        gscale = 1.0 / denom if denom != 0.0 else 0.0  # all ignored: every gradient is 0 anyway
    gx = U.empty(x.shape, x.dtype, "grad_input")
    g = U.ascontiguous(g.reshape(-1))
    _C.cross_entropy_backward(x, t, w, g, gx, N, C, inner, ii, eps, gscale)
    return (gx,)


# ---------------------------------------------------------------------------------------------
def _mse_args(input, target, reduction):
    x = _as_float(input, "input")
    t = _as_float(target, "target", like=x)
    if t.shape != x.shape:
        raise ValueError(f"target: shape {t.shape} differs from input shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"input: must not be empty (shape {x.shape})")
    return x, t, _reduction(reduction)


def mse_loss(input, target, reduction="mean"):
    """(input - target)^2, averaged ('mean'), summed ('sum') or elementwise ('none')."""
    x, t, reduction = _mse_args(input, target, reduction)
    if reduction == "none":
        out = U.empty(x.shape, x.dtype, "output")
        _C.mse_forward(x, t, out, False)
        return out
    out = U.empty((1,), x.dtype, "output")
    _C.mse_forward(x, t, out, True)
    if reduction == "mean":
        return U.xp_of(x).asarray(out.reshape(()).astype(np.float64) / x.size, dtype=x.dtype)
    return U.xp_of(x).asarray(out.reshape(()), dtype=x.dtype)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    x, t, reduction = _mse_args(input, target, reduction)
    g = _grad_output(grad_output, x, x.shape if reduction == "none" else ())
    gscale = 1.0 / x.size if reduction == "mean" else 1.0
    gx = U.empty(x.shape, x.dtype, "grad_input")
    gt = U.empty(x.shape, x.dtype, "grad_target")
    _C.mse_backward(U.ascontiguous(g.reshape(-1)), x, t, gx, gt, gscale)
    return gx, gt
