"""Central finite differences in float64 against an analytic backward.

Works on any function of NumPy arrays: ``f(*inputs) -> array`` and
``backward(grad_output, *inputs) -> sequence of gradients`` (one per input in ``wrt``).
For a random ``grad_output`` g, the numerical gradient of <g, f(x)> with respect to each
element of each checked input is compared with the analytic one.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GradcheckError", "numerical_vjp", "gradcheck", "check_op"]


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def numerical_vjp(f, inputs, grad_output, wrt, eps: float = 1e-6):
    """d<grad_output, f(*inputs)>/d inputs[i] for i in wrt, by central differences."""
    inputs = list(inputs)
    g = np.asarray(grad_output, dtype=np.float64)
    out = []
    for i in wrt:
        x = np.array(inputs[i], dtype=np.float64, copy=True)
        inputs[i] = x
        grad = np.zeros_like(x)
        flat, gflat = x.reshape(-1), grad.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            fp = float(np.sum(g * np.asarray(f(*inputs), dtype=np.float64)))
            flat[j] = orig - eps
            fm = float(np.sum(g * np.asarray(f(*inputs), dtype=np.float64)))
            flat[j] = orig
            gflat[j] = (fp - fm) / (2 * eps)
        out.append(grad)
    return out


def gradcheck(f, backward, inputs, wrt=None, grad_output=None, *, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-4, seed: int = 0, raise_exception: bool = True) -> bool:
    """Compare ``backward(grad_output, *inputs)`` with central differences of ``f``.

    inputs: arrays (converted to float64) and other arguments passed through unchanged.
    wrt: indices of the inputs to check (default: every float ndarray). ``backward``
    returns one gradient per index in wrt, in that order. Returns True, or raises
    GradcheckError (False if ``raise_exception`` is off) naming the input and the worst
    element."""
    inputs = [np.array(a, dtype=np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in inputs]
    if wrt is None:
        wrt = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray)]
    y = np.asarray(f(*inputs), dtype=np.float64)
    if grad_output is None:
        grad_output = np.random.default_rng(seed).standard_normal(y.shape)
    analytic = list(backward(np.asarray(grad_output, dtype=np.float64), *inputs))
    if len(analytic) != len(wrt):
        raise ValueError(f"backward: returned {len(analytic)} gradients for {len(wrt)} checked inputs")
    numeric = numerical_vjp(f, inputs, grad_output, wrt, eps)
    for i, a, n in zip(wrt, analytic, numeric):
        if a is None:
            msg = f"input {i}: backward returned None"
        else:
            a = np.asarray(a, dtype=np.float64)
            if a.shape != n.shape:
                msg = f"input {i}: gradient shape {a.shape}, expected {n.shape}"
            else:
                err = np.abs(a - n) - (atol + rtol * np.abs(n))
                if not (err.size == 0 or np.all(err <= 0)):
                    k = np.unravel_index(int(np.argmax(err)), err.shape)
                    msg = (f"input {i}: gradient mismatch at {tuple(int(v) for v in k)}: analytic {a[k]:.10g}, "
                           f"numerical {n[k]:.10g} (max abs diff {np.max(np.abs(a - n)):.3g})")
                else:
                    continue
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def check_op(module, op: str, *args, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4,
             grad_seed: int = 0, **kwargs) -> bool:
    """Gradcheck ``module.<op>`` against ``module.<op>_backward`` (the convkern calling convention:
    ``module`` is convkern.functional or convkern.reference), over the inputs named in
    ``module.DIFFERENTIABLE[op]`` that are arrays. ``grad_seed`` seeds the random grad_output;
    every other keyword goes to the op."""
    import inspect

    fwd = getattr(module, op)
    bwd = getattr(module, op + "_backward")
    names = module.DIFFERENTIABLE[op]
    bound = inspect.signature(fwd).bind(*args, **kwargs)
    bound.apply_defaults()
    params = dict(bound.arguments)
    checked = [n for n in names if isinstance(params.get(n), np.ndarray)]
    for n in checked:
        params[n] = np.array(params[n], dtype=np.float64)

    def f(*xs):
        p = dict(params)
        p.update(zip(checked, xs))
        return fwd(**p)

    def b(g, *xs):
        p = dict(params)
        p.update(zip(checked, xs))
        grads = dict(zip(names, bwd(g, **p)))
        return [grads[n] for n in checked]

    return gradcheck(f, b, [params[n] for n in checked], eps=eps, atol=atol, rtol=rtol, seed=grad_seed)
