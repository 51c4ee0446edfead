"""The CUDA path of convkern.functional: CuPy arrays in, CuPy arrays out.

Every op of ``convkern.functional`` is wrapped by :func:`routed`. When one of its array
arguments is a device array (anything with ``__cuda_array_interface__``, e.g. a CuPy array),
the call runs on that array's GPU:

* all array arguments must be device arrays on the same GPU: a NumPy array among them is a
  ``TypeError`` naming the argument (NumPy arrays are never moved to the GPU implicitly);
* the op's own Python code runs unchanged (same validation, same error messages as on the
  CPU): ``_ops._util.as_float`` accepts device arrays and ``_util.empty`` / ``zeros`` allocate
  CuPy arrays while the call is "on device" (a context variable set here);
* the native bindings read the arrays through ``__cuda_array_interface__`` (zero copy) and
  run the CUDA kernels registered in each op's dispatch stub, on the arrays' stream (CuPy's
  current stream), asynchronously.

Kernel launch errors and out-of-memory become RuntimeError / MemoryError.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect

import numpy as np

from . import _C

# None: the current op runs on the CPU; an int: on that CUDA device.
_DEVICE: contextvars.ContextVar = contextvars.ContextVar("convkern_cuda_device", default=None)

_ALGOS = {"auto": 0, "im2col": 1, "implicit": 2}


def is_device_array(a) -> bool:
    return not isinstance(a, np.ndarray) and hasattr(a, "__cuda_array_interface__")


def cupy():
    """The cupy module (ImportError with a hint when it is missing)."""
    try:
        import cupy as cp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("convkern's CUDA path takes CuPy arrays: pip install cupy-cuda12x") from e
    return cp


def current_device():
    """The CUDA device of the op being run, or None on the CPU."""
    return _DEVICE.get()


def xp_of(a):
    """numpy or cupy, whichever owns ``a``."""
    return cupy() if is_device_array(a) else np


def device_of(a) -> int:
    dev = getattr(a, "device", None)
    if dev is not None and hasattr(dev, "id"):
        return int(dev.id)
    return int(cupy().asarray(a).device.id)


def ascontiguous(a):
    """A C-contiguous version of a NumPy or device array (no copy when it already is one)."""
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a) if a.ndim else a
    if a.flags.c_contiguous:
        return a
    return cupy().ascontiguousarray(a)


def as_float(x, name: str, like=None):
    """_util.as_float for a device array."""
    cp = cupy()
    if not isinstance(x, cp.ndarray):
        x = cp.asarray(x)  # zero copy through __cuda_array_interface__
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {x.dtype}")
    if like is not None:
        if not is_device_array(like):
            raise TypeError(f"{name}: is a CUDA array but input is a numpy.ndarray (all arrays of one call must be "
                            f"on the same device)")
        if x.dtype != like.dtype:
            raise TypeError(f"{name}: dtype {x.dtype} differs from input dtype {like.dtype}")
    dev = current_device()
    if dev is not None and x.device.id != dev:
        raise ValueError(f"{name}: is on GPU {x.device.id} but the call runs on GPU {dev}")
    return ascontiguous(x)


def check_host_array(name: str) -> None:
    """Called for a NumPy array argument: refuse it inside a call that runs on a GPU."""
    dev = current_device()
    if dev is not None:
        raise TypeError(f"{name}: is a numpy.ndarray but the other arrays of this call are CUDA arrays on GPU {dev}; "
                        f"NumPy arrays are never moved to the GPU implicitly (use cupy.asarray)")


def empty(shape, dtype, zero: bool = False):
    cp = cupy()
    return (cp.zeros if zero else cp.empty)(shape, dtype=dtype)


def device_memory() -> int:
    """Total memory of the current device in bytes."""
    return int(_C.cuda_mem_info()[1])


@contextlib.contextmanager
def on_device(device: int):
    """Run the block's ops on CUDA device ``device`` (allocations included)."""
    cp = cupy()
    token = _DEVICE.set(int(device))
    try:
        with cp.cuda.Device(int(device)):
            # the kernels run on CuPy's current stream of this device
            prev = _C.cuda_set_call_stream(int(cp.cuda.get_current_stream().ptr))
            try:
                yield
            finally:
                _C.cuda_set_call_stream(prev)
    finally:
        _DEVICE.reset(token)


def _arrays(fn, args, kwargs):
    """(name, value) of every array-like argument (including sequences of arrays)."""
    try:
        bound = _signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None
    out = []
    for name, v in bound.arguments.items():
        if isinstance(v, (list, tuple)):
            out += [(f"{name}[{i}]", e) for i, e in enumerate(v) if isinstance(e, np.ndarray) or is_device_array(e)]
        elif isinstance(v, np.ndarray) or is_device_array(v):
            out.append((name, v))
    return out


@functools.lru_cache(maxsize=None)
def _signature(fn):
    return inspect.signature(fn)


def _run_on_device(fn, args, kwargs):
    if _DEVICE.get() is not None:  # already inside an op running on a GPU
        return fn(*args, **kwargs)
    arrays = _arrays(fn, args, kwargs)
    if arrays is None:  # bad call: let the op raise its own TypeError
        return fn(*args, **kwargs)
    dev_name, dev = None, None
    for name, v in arrays:
        if is_device_array(v):
            d = device_of(v)
            if dev is None:
                dev_name, dev = name, d
            elif d != dev:
                raise ValueError(f"{name}: is on GPU {d} but {dev_name} is on GPU {dev}")
    for name, v in arrays:
        if isinstance(v, np.ndarray):
            raise TypeError(f"{name}: is a numpy.ndarray but {dev_name} is a CUDA array on GPU {dev}; NumPy arrays are "
                            f"never moved to the GPU implicitly (use cupy.asarray, or cupy.asnumpy the others)")
    with on_device(dev):
        return fn(*args, **kwargs)


def routed(fn):
    """Wrap a functional op so that device-array arguments run it on their GPU. The CPU path
    pays one loop over the arguments (NumPy arrays are recognized by their exact type)."""
    nd = np.ndarray

    @functools.wraps(fn)
    def op(*args, **kwargs):
        for a in args:
            if a.__class__ is not nd and hasattr(a, "__cuda_array_interface__"):
                return _run_on_device(fn, args, kwargs)
        if kwargs:
            for a in kwargs.values():
                if a.__class__ is not nd and hasattr(a, "__cuda_array_interface__"):
                    return _run_on_device(fn, args, kwargs)
        return fn(*args, **kwargs)

    return op


# ----------------------------------------------------------------------------- public helpers
def available() -> bool:
    """True when convkern was built with CUDA and a GPU is visible."""
    return bool(_C.cuda_built()) and _C.cuda_device_count() > 0


def synchronize() -> None:
    """Wait for all convkern (and other) work on the current device; raises pending kernel errors."""
    _C.cuda_synchronize()


def get_conv_algo() -> str:
    v = _C.cuda_get_conv_algo()
    return next(k for k, i in _ALGOS.items() if i == v)


def set_conv_algo(name: str) -> None:
    """Forward algorithm of the CUDA conv kernel: 'auto' (plain GEMM for pointwise convolutions,
    implicit GEMM otherwise), 'im2col' (im2col + tiled GEMM) or 'implicit' (implicit GEMM)."""
    if name not in _ALGOS:
        raise ValueError(f"algo: expected one of {', '.join(map(repr, _ALGOS))}, got {name!r}")
    _C.cuda_set_conv_algo(_ALGOS[name])


@contextlib.contextmanager
def conv_algo(name: str):
    old = get_conv_algo()
    set_conv_algo(name)
    try:
        yield
    finally:
        set_conv_algo(old)
