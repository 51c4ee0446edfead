"""convkern: CNN kernels on AVX CPUs (and CUDA), with NumPy references and gradient checks."""
from __future__ import annotations

import os as _os

# OpenMP threads waiting at a barrier spin (libgomp: 300,000 iterations) before sleeping. When
# another process or another library's thread pool (ONNX Runtime, PyTorch) competes for the
# cores, a spinning thread holds the core its descheduled partner needs: on the 2-core AMD VM
# with one busy process, ShuffleNet took 4,468 ms instead of 12 ms. Too short a spin costs
# the quiet case instead: worker threads fall asleep between back-to-back kernel calls, and
# each call then waits for a wake-up (and the scheduler may stack both threads on one core).
# On the 2-core Intel VM, ShuffleNet (ONNX, batch 1) took 17.5 ms with 1,000 spins and
# 8.0 ms with 30,000 (9.6 with 10,000); next to a busy process, 15 ms and 20 ms (21 ms even
# with 300,000). Set before libgomp loads with _C; a user's OMP_WAIT_POLICY or
# GOMP_SPINCOUNT wins (see README, runtime controls).
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "30000"

from . import _C  # noqa: E402
from ._backend import (available_isas, format_info, get_isa, get_num_threads, info, isa, set_isa,
                       set_num_threads, _check_env_isa)
from . import functional
from . import functional as F
from . import _cuda as cuda
from . import gradcheck, reference
from . import autograd, io, nn, models
from .summary import flops, summary
from ._memory import empty_cache, memory_stats, set_cache_limit

__version__ = _C.__version__

__all__ = [
    "F", "functional", "reference", "gradcheck", "info", "format_info", "available_isas", "get_isa",
    "set_isa", "isa", "set_num_threads", "get_num_threads", "__version__",
    "autograd", "io", "nn", "models", "summary", "flops", "memory_stats", "empty_cache", "set_cache_limit",
    "cuda",
]

_check_env_isa()
