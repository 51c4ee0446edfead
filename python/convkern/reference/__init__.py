"""Plain NumPy forward and backward of every operator: the executable specification.

Written to be read (loops over kernel offsets, einsum), float64-capable, and never calling
native code. Same signatures as ``convkern.functional``: ``<op>(...)`` and
``<op>_backward(grad_output, ...)`` returning the gradients named in
``DIFFERENTIABLE[op]``.
"""
from __future__ import annotations

from . import activation as _activation
from . import conv as _conv
from . import depthwise as _depthwise
from . import linear as _linear
from . import loss as _loss
from . import norm as _norm
from . import pool as _pool

_FAMILIES = (_conv, _depthwise, _pool, _norm, _linear, _activation, _loss)

DIFFERENTIABLE: dict = {}
__all__ = ["DIFFERENTIABLE"]
for _fam in _FAMILIES:
    for _name in _fam.__all__:
        globals()[_name] = getattr(_fam, _name)
    __all__ += list(_fam.__all__)
    DIFFERENTIABLE.update(_fam.DIFFERENTIABLE)
