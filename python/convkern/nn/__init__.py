"""convkern.nn: torch.nn-shaped modules on convkern's autograd and native kernels.

    import convkern.nn as nn
    model = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(1176, 10))
    loss = nn.CrossEntropyLoss()(model(nn.Tensor(x)), labels)
    loss.backward()

Parameters, buffers and state-dict keys follow torch's naming, so torchvision state dicts
load into the architectures of ``convkern.models``.
"""
from __future__ import annotations

from .. import autograd
from .. import autograd as functional
from ..autograd import Tensor, no_grad, enable_grad, use_backend
from .module import (Module, ModuleDict, ModuleList, Parameter, Sequential, count_params, forward_hook,
                     get_rng, manual_seed, skip_init)
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers_all
from .check import compare_backends, gradcheck_model

__all__ = ["Tensor", "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict", "no_grad", "enable_grad",
           "use_backend", "manual_seed", "get_rng", "skip_init", "count_params", "forward_hook", "functional",
           "autograd", "gradcheck_model", "compare_backends"] + list(_layers_all)
