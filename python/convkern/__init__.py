"""convkern: CNN kernels on AVX CPUs (and CUDA), with NumPy references and gradient checks."""
from __future__ import annotations

from . import _C
from ._backend import (available_isas, format_info, get_isa, get_num_threads, info, isa, set_isa,
                       set_num_threads, _check_env_isa)
from . import functional
from . import functional as F
from . import gradcheck, reference
from . import autograd, io, nn, models
from .summary import flops, summary

__version__ = _C.__version__

__all__ = [
    "F", "functional", "reference", "gradcheck", "info", "format_info", "available_isas", "get_isa",
    "set_isa", "isa", "set_num_threads", "get_num_threads", "__version__",
    "autograd", "io", "nn", "models", "summary", "flops",
]

_check_env_isa()
