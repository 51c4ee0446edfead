"""``Module``, ``Parameter`` and the containers, with torch's naming rules.

Parameters and buffers are registered by attribute assignment, in order; ``state_dict()``
keys are the dotted attribute paths (``layer1.0.conv1.weight``, ``features.3.bias``,
``bn1.running_mean``, ``bn1.num_batches_tracked``) exactly as in torch/torchvision, so a
torchvision state dict saved as ``.npz`` or safetensors loads with ``load_state_dict``.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict

import numpy as np

from ..autograd import Tensor

__all__ = ["Parameter", "Module", "Sequential", "ModuleList", "ModuleDict", "skip_init", "manual_seed", "get_rng",
           "count_params"]


# ----------------------------------------------------------------------------- initialisation state

_RNG = [np.random.default_rng(0)]
_SKIP_INIT = [False]


def manual_seed(seed: int) -> None:
    """Seed the generator used by parameter initialisation and dropout masks."""
    _RNG[0] = np.random.default_rng(seed)


def get_rng() -> np.random.Generator:
    return _RNG[0]


@contextlib.contextmanager
def skip_init():
    """Build modules without allocating or initialising weights (like torch's meta device).

    Parameters and buffers are zero-strided read-only views of the right shape and dtype:
    parameter counting, ``flops`` and ``summary`` work, forward passes of real data do not
    (until ``load_state_dict`` gives them values)."""
    prev = _SKIP_INIT[0]
    _SKIP_INIT[0] = True
    try:
        yield
    finally:
        _SKIP_INIT[0] = prev


def is_skip_init() -> bool:
    return _SKIP_INIT[0]


def new_array(shape, dtype=np.float32, fill=None, init=None):
    """A parameter/buffer array: ``init(rng, shape)`` values, or a constant ``fill`` (zeros by default)."""
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    if _SKIP_INIT[0]:
        return np.broadcast_to(np.zeros((), dtype), shape)
    if init is not None:
        return np.ascontiguousarray(init(_RNG[0], shape), dtype=dtype)
    if fill is None or fill == 0:
        return np.zeros(shape, dtype)
    return np.full(shape, fill, dtype)


# ----------------------------------------------------------------------------- Parameter / Module

class Parameter(Tensor):
    """A trainable tensor (``requires_grad`` True unless frozen)."""

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"


class Module:
    """Base class of layers and models: override ``forward``; call the module to run it."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            bufs.pop(name, None), mods.pop(name, None), self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None), bufs.pop(name, None), self.__dict__.pop(name, None)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{name}: assign a Parameter (or None) to a parameter attribute")
            params[name] = None
        elif name in bufs:
            bufs[name] = None if value is None else np.asarray(value)
        elif name in mods and value is None:
            mods[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param if isinstance(param, Parameter) else Parameter(param))

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        self.__dict__.pop(name, None)
        self._buffers[name] = None if array is None else np.asarray(array)
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module) -> None:
        self._modules[str(name)] = module

    register_module = add_module

    # -- traversal
    def named_modules(self, prefix: str = "", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str):
        m = self
        for part in target.split(".") if target else []:
            m = m._modules[part] if part in m._modules else getattr(m, part)
        return m

    # -- modes
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, flag: bool = True):
        """Freeze (False) or unfreeze every parameter (transfer learning)."""
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def apply(self, fn):
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- dtype
    def to(self, dtype):
        """Cast floating parameters and buffers to ``dtype`` (np.float32 / np.float64)."""
        if isinstance(dtype, str) and dtype.split(":")[0] in ("cuda", "gpu", "cpu"):
            # convkern.functional runs on CuPy arrays (docs/CUDA.md); nn modules do not yet
            raise NotImplementedError("Module.to(device): nn modules run on NumPy (CPU) only so far; "
                                      "use convkern.functional with CuPy arrays for the GPU (docs/CUDA.md)")
        dtype = np.dtype(dtype)
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None and p.data.dtype.kind == "f":
                    p.data = p.data.astype(dtype)
                    p.grad = None
            for k, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    m._buffers[k] = b.astype(dtype)
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # -- state
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, np.ndarray]":
        """Parameters and persistent buffers, in registration order, torch's dotted names."""
        out = OrderedDict()
        for mp, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mp}.{name}" if mp else name] = p.data
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[f"{mp}.{name}" if mp else name] = b
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays into parameters/buffers (cast to their dtype). With ``strict``, missing or
        unexpected keys and shape mismatches raise KeyError/ValueError naming them. Returns
        (missing_keys, unexpected_keys)."""
        own = {}
        for mp, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    own[f"{mp}.{name}" if mp else name] = (m, name, True)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    own[f"{mp}.{name}" if mp else name] = (m, name, False)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict: missing keys {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                           f"unexpected keys {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
        for k, (m, name, is_param) in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            v = np.asarray(v.data if isinstance(v, Tensor) else v)
            cur = m._parameters[name].data if is_param else m._buffers[name]
            if v.dtype.kind not in "biuf":
                raise TypeError(f"state_dict: {k} has dtype {v.dtype}, expected a real number type")
            if v.shape != cur.shape:
                raise ValueError(f"state_dict: {k} has shape {v.shape}, the model expects {cur.shape}")
            arr = np.empty(v.shape, dtype=cur.dtype.type)  # canonical dtype object (the bindings compare by identity)
            arr[...] = v
            if is_param:
                m._parameters[name].data = arr
            else:
                m._buffers[name] = arr
        return missing, unexpected

    def save(self, path) -> None:
        """Write ``state_dict()`` to ``.npz`` (no pickle) or ``.safetensors`` (by extension)."""
        from .. import io

        io.save(self.state_dict(), path)

    def load(self, path, strict: bool = True):
        from .. import io

        self.load_state_dict(io.load(path), strict=strict)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return int(builtin_sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only))

    # -- calling
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if _HOOKS:
            for hook in list(_HOOKS):
                hook(self, args, out)
        return out

    # -- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            r = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {r}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


builtin_sum = sum

# Global forward hooks hook(module, inputs, output), used by convkern.summary / flops.
_HOOKS: list = []


@contextlib.contextmanager
def forward_hook(fn):
    _HOOKS.append(fn)
    try:
        yield fn
    finally:
        _HOOKS.remove(fn)


def count_params(model: Module, include_bn_stats: bool = False) -> int:
    """Number of parameters (torch's count); ``include_bn_stats`` adds BatchNorm running mean
    and variance, which is what Keras' ``count_params()`` reports."""
    n = model.num_parameters()
    if include_bn_stats:
        for name, b in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                n += int(b.size)
    return n


# ----------------------------------------------------------------------------- containers

class Sequential(Module):
    """Modules applied in order, named "0", "1", ... (or by an OrderedDict's keys)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for k, m in modules[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*list(self._modules.values())[i])
        if isinstance(i, str):
            return self._modules[i]
        return list(self._modules.values())[i]

    def __setitem__(self, i, module):
        key = list(self._modules.keys())[i]
        self._modules[key] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleDict(Module):
    def __init__(self, modules=None):
        super().__init__()
        for k, m in (modules or {}).items():
            self.add_module(k, m)

    def __getitem__(self, k):
        return self._modules[k]

    def __setitem__(self, k, m):
        self.add_module(k, m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def items(self):
        return self._modules.items()

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()
