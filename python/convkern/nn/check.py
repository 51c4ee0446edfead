"""Whole-model gradient checks.

``gradcheck_model``: the gradients that back-propagation through a model computes (w.r.t.
its input and every parameter) match central finite differences in float64 (a random sample
of elements per tensor, so large models stay fast). ``compare_backends``: the same model run
on two op backends (native ``convkern.functional`` and the NumPy ``convkern.reference``)
gives the same output and gradients.
"""
from __future__ import annotations

import numpy as np

from .. import autograd as A
from ..gradcheck import GradcheckError
from .layers import Dropout
from .module import Module

__all__ = ["gradcheck_model", "compare_backends", "model_grads"]


def _fix_dropout(model, seed=1234):
    for i, m in enumerate(model.modules()):
        if isinstance(m, Dropout) and m.seed is None:
            m.seed = seed + i


def _out(y):
    return y[0] if isinstance(y, (tuple, list)) else y


def model_grads(model: Module, x, grad_output=None, seed: int = 0):
    """(output, grad_output, {"input": dx, name: dparam, ...}) by back-propagation."""
    model.zero_grad()
    xt = A.Tensor(np.asarray(x), requires_grad=True)
    y = _out(model(xt))
    if grad_output is None:
        grad_output = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y.backward(grad_output)
    grads = {"input": xt.grad}
    for name, p in model.named_parameters():
        if p.requires_grad:
            grads[name] = p.grad
    return y.data, grad_output, grads


def gradcheck_model(model: Module, x, samples: int = 6, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
                    seed: int = 0, raise_exception: bool = True) -> dict:
    """Finite differences (float64) vs back-propagation for the input and every parameter of
    ``model`` on input ``x``. Checks ``samples`` random elements of each tensor (all of them
    when smaller). The model is cast to float64 (BatchNorm in training mode uses batch
    statistics; dropout masks are fixed). Returns {tensor name: max abs error}."""
    model.double()
    _fix_dropout(model)
    x = np.array(x, dtype=np.float64)
    _, g, grads = model_grads(model, x, seed=seed)
    params = dict(model.named_parameters())
    rng = np.random.default_rng(seed + 1)

    def loss():
        with A.no_grad():
            return float(np.sum(g * _out(model(A.Tensor(x))).data))

    errors = {}
    for name, analytic in grads.items():
        arr = x if name == "input" else params[name].data
        if analytic is None:
            msg = f"{name}: no gradient was computed"
            if raise_exception:
                raise GradcheckError(msg)
            errors[name] = np.inf
            continue
        flat = arr.reshape(-1)
        if not flat.flags.writeable or not np.shares_memory(flat, arr):
            raise ValueError(f"model: {name} is not a writable contiguous array")
        idx = np.arange(flat.size) if flat.size <= samples else rng.choice(flat.size, samples, replace=False)
        worst = 0.0
        for j in idx:
            orig = flat[j]
            flat[j] = orig + eps
            fp = loss()
            flat[j] = orig - eps
            fm = loss()
            flat[j] = orig
            num = (fp - fm) / (2 * eps)
            a = float(analytic.reshape(-1)[j])
            err = abs(a - num)
            worst = max(worst, err)
            if err > atol + rtol * abs(num) and raise_exception:
                raise GradcheckError(f"{name}: gradient mismatch at flat index {int(j)}: analytic {a:.10g}, "
                                     f"numerical {num:.10g}")
        errors[name] = worst
    return errors


def compare_backends(model: Module, x, backend_a=None, backend_b=None, seed: int = 0, dtype=np.float64) -> dict:
    """Run forward + backward of ``model`` on two op backends (default: convkern.functional and
    convkern.reference) with the same input, parameters and output gradient; returns
    {"output": max relative difference, name: max relative difference of that gradient}."""
    from .. import functional, reference

    backend_a = backend_a or functional
    backend_b = backend_b or reference
    model.to(dtype)
    _fix_dropout(model)
    x = np.asarray(x, dtype=dtype)
    state = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    with A.use_backend(backend_a):
        ya, g, ga = model_grads(model, x, seed=seed)
    model.load_state_dict(state)  # BatchNorm running statistics back to where they were
    with A.use_backend(backend_b):
        yb, _, gb = model_grads(model, x, grad_output=g, seed=seed)
    model.load_state_dict(state)

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b))))) if np.size(b) else 0.0

    out = {"output": rel(ya, yb)}
    for k in ga:
        out[k] = rel(ga[k], gb[k])
    return out
