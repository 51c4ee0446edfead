"""torch.nn.functional-shaped operators on NumPy arrays, running on convkern's native kernels.

Import as ``import convkern.functional as F``. Inputs may have any strides (they are
copied to C order when needed) and must be float32 or float64; outputs are new NumPy
arrays of the input's dtype.

Gradients: every differentiable op ``F.<op>`` has ``F.<op>_backward(grad_output, *args,
**kwargs)`` taking the forward's own arguments, returning one gradient per name in
``F.DIFFERENTIABLE['<op>']`` (None where that input was None). ``F.grad(op, grad_output,
*args, **kwargs)`` calls it by op. ``conv2d_input`` / ``conv2d_weight`` (and the 1-d/3-d
ones) follow ``torch.nn.grad``.

CUDA: given CuPy arrays (anything with ``__cuda_array_interface__``), every op runs its CUDA
kernels on their GPU and returns CuPy arrays (zero copy, on CuPy's current stream); mixing
NumPy and CuPy arrays in one call is a TypeError naming the argument. See convkern._cuda.
"""
from __future__ import annotations

from ._ops import activation as _activation
from ._ops import conv as _conv
from ._ops import depthwise as _depthwise
from ._ops import linear as _linear
from ._ops import loss as _loss
from ._ops import norm as _norm
from ._ops import pool as _pool
from ._backend import get_num_threads, set_num_threads
from ._cuda import routed as _routed
from ._ops._util import SizeError
from ._ops.conv import PackedConvWeight

_FAMILIES = (_conv, _depthwise, _pool, _norm, _linear, _activation, _loss)

DIFFERENTIABLE: dict = {}
__all__ = ["DIFFERENTIABLE", "grad", "SizeError", "PackedConvWeight", "set_num_threads", "get_num_threads"]
for _fam in _FAMILIES:
    for _name in _fam.__all__:
        globals()[_name] = _routed(getattr(_fam, _name))
    __all__ += list(_fam.__all__)
    DIFFERENTIABLE.update(_fam.DIFFERENTIABLE)


def grad(op, grad_output, *args, **kwargs):
    """All gradients of ``op`` (a function of this module or its name) at ``args``.

    Returns a dict {argument name: gradient} over ``DIFFERENTIABLE[op]``."""
    name = op if isinstance(op, str) else op.__name__
    if name not in DIFFERENTIABLE:
        raise ValueError(f"op: {name!r} has no backward (differentiable ops: {', '.join(sorted(DIFFERENTIABLE))})")
    grads = globals()[name + "_backward"](grad_output, *args, **kwargs)
    return dict(zip(DIFFERENTIABLE[name], grads))
