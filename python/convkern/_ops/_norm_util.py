"""Argument handling shared by the native normalization / linear ops and their NumPy
reference (no native code here)."""
from __future__ import annotations

import numbers

import numpy as np

from ._util import ascontiguous, xp_of, as_float, as_float_opt, as_int, as_number, check_flag, check_nonempty, check_shape


def bn_args(input, running_mean, running_var, weight, bias, training, momentum, eps):
    """Validated batch_norm arguments: (x, running_mean, running_var, weight, bias, training,
    momentum, eps). The running stats are returned as given (not copied): they are updated
    in place."""
    x = as_float(input, "input")
    if x.ndim < 2:
        raise ValueError(f"input: expected at least 2 dimensions (N, C, ...), got {x.ndim} with shape {x.shape}")
    check_nonempty(x, "input", range(1, x.ndim))  # batch 0: an empty output (inference), like torch
    C = x.shape[1]
    training = check_flag(training, "training")
    if training and x.size == 0:
        raise ValueError(f"input: training needs at least one value per channel to compute batch statistics, "
                         f"got shape {x.shape}")
    momentum = as_number(momentum, "momentum")
    eps = as_number(eps, "eps")
    if not np.isfinite(momentum):
        raise ValueError(f"momentum: must be finite, got {momentum}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: must be a finite number >= 0, got {eps}")
    stats = []
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is None:
            if not training:
                raise ValueError(f"{name}: required when training=False")
            stats.append(None)
            continue
        on_gpu = xp_of(v) is not np
        if not isinstance(v, np.ndarray) and not on_gpu:
            raise TypeError(f"{name}: expected a numpy.ndarray or None, got {type(v).__name__}")
        if on_gpu != (xp_of(x) is not np):
            where = "a CUDA array" if on_gpu else "a numpy.ndarray"
            raise TypeError(f"{name}: is {where} but input is not (all arrays of one call must be on the same device)")
        if v.dtype != x.dtype:
            raise TypeError(f"{name}: dtype {v.dtype} differs from input dtype {x.dtype}")
        check_shape(v, (C,), name)
        if training and not getattr(v.flags, "writeable", True):
            raise ValueError(f"{name}: must be writable (it is updated in place when training)")
        stats.append(v)
    w = as_float_opt(weight, "weight", like=x)
    b = as_float_opt(bias, "bias", like=x)
    if w is not None:
        check_shape(w, (C,), "weight")
    if b is not None:
        check_shape(b, (C,), "bias")
    if training and x.size // C <= 1:
        raise ValueError(f"input: expected more than 1 value per channel when training, got input size {x.shape}")
    return x, stats[0], stats[1], w, b, training, momentum, eps


def lrn_args(input, size, alpha, beta, k):
    x = as_float(input, "input")
    if x.ndim < 3:
        raise ValueError(f"input: expected 3 or more dimensions (N, C, ...), got {x.ndim} with shape {x.shape}")
    check_nonempty(x, "input", range(1, x.ndim))  # batch 0: an empty output, like torch
    size = as_int(size, "size", 1)
    alpha, beta, k = (as_number(v, n) for v, n in ((alpha, "alpha"), (beta, "beta"), (k, "k")))
    for v, n in ((alpha, "alpha"), (beta, "beta"), (k, "k")):
        if not np.isfinite(v):
            raise ValueError(f"{n}: must be finite, got {v}")
    return x, size, alpha, beta, k


def normalized_shape_of(normalized_shape):
    if isinstance(normalized_shape, (numbers.Integral,)) and not isinstance(normalized_shape, (bool, np.bool_)):
        shape = (as_int(normalized_shape, "normalized_shape", 1),)
    elif isinstance(normalized_shape, (list, tuple)):
        if len(normalized_shape) == 0:
            raise ValueError("normalized_shape: must not be empty")
        shape = tuple(as_int(v, "normalized_shape", 1) for v in normalized_shape)
    else:
        raise TypeError(f"normalized_shape: expected an int or a sequence of ints, got {type(normalized_shape).__name__}")
    return shape


def ln_args(input, normalized_shape, weight, bias, eps):
    x = as_float(input, "input")
    shape = normalized_shape_of(normalized_shape)
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"normalized_shape: {shape} does not match the trailing dimensions of input shape {x.shape}")
    check_nonempty(x, "input", range(x.ndim - len(shape), x.ndim))  # empty leading dims: an empty output
    eps = as_number(eps, "eps")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps: must be a finite number >= 0, got {eps}")
    w = as_float_opt(weight, "weight", like=x)
    b = as_float_opt(bias, "bias", like=x)
    if w is not None:
        check_shape(w, shape, "weight")
    if b is not None:
        check_shape(b, shape, "bias")
    return x, shape, w, b, eps


def linear_args(input, weight, bias):
    x = as_float(input, "input")
    if x.ndim < 1:
        raise ValueError("input: expected at least 1 dimension (..., in_features), got a 0-d array")
    check_nonempty(x, "input", [x.ndim - 1])  # empty leading dims (batch 0): an empty output, like torch
    w = as_float(weight, "weight", like=x)
    if w.ndim != 2:
        raise ValueError(f"weight: expected 2 dimensions (out_features, in_features), got {w.ndim} with shape {w.shape}")
    check_nonempty(w, "weight")
    if w.shape[1] != x.shape[-1]:
        raise ValueError(f"weight: in_features {w.shape[1]} differs from the input's last dimension {x.shape[-1]} "
                         f"(input shape {x.shape}, weight shape {w.shape})")
    b = as_float_opt(bias, "bias", like=x)
    if b is not None:
        check_shape(b, (w.shape[0],), "bias")
    return x, w, b


def grad_like(grad_output, x, shape):
    g = as_float(grad_output, "grad_output", like=x)
    check_shape(g, shape, "grad_output")
    return g
