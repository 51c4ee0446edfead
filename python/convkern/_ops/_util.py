"""Argument normalization and validation shared by the functional operators.

Every error names the argument at fault, the way torch.nn.functional does, and is a
``TypeError`` (wrong type or dtype) or a ``ValueError`` (wrong rank, shape or value).
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from .. import _C, _cuda

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Largest number of elements one output may have before we refuse to allocate it.
_MAX_ELEMENTS = 2**40


class SizeError(ValueError, MemoryError):
    """An output or workspace would be larger than this machine can hold."""


_PHYS = []


def _physical_memory() -> int:
    if not _PHYS:
        try:
            _PHYS.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            _PHYS.append(1 << 46)
    return _PHYS[0]


def _available_memory() -> int:
    """Memory a new allocation can get now (MemAvailable + SwapFree), else the physical size."""
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ln.split()[1:2]}
        return info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return _physical_memory()


def as_float(x, name: str, like: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous float32/float64 ndarray (copied only when needed).

    ``like``: the array whose dtype ``x`` must share (the op's input). A CUDA (CuPy) array
    gives a C-contiguous CuPy array (convkern._cuda: the op then runs on its GPU)."""
    if not isinstance(x, np.ndarray):
        if _cuda.is_device_array(x):
            return _cuda.as_float(x, name, like)
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    _cuda.check_host_array(name)
    if like is not None and not isinstance(like, np.ndarray):
        raise TypeError(f"{name}: is a numpy.ndarray but input is a CUDA array (all arrays of one call must be on "
                        f"the same device)")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: dtype must be float32 or float64, got {x.dtype}")
    if like is not None and x.dtype != like.dtype:
        raise TypeError(f"{name}: dtype {x.dtype} differs from input dtype {like.dtype}")
    if not x.flags.c_contiguous:  # the copy is an allocation too: refuse absurd ones (e.g. a
        check_elements(x.shape, name, x.dtype.itemsize, "a contiguous copy")  # huge zero-stride view)
    return np.asarray(x, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)


def as_float_opt(x, name: str, like: np.ndarray | None = None):
    return None if x is None else as_float(x, name, like)


def check_ndim(x: np.ndarray, ndims, name: str, what: str = "") -> None:
    ndims = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected {want} dimensions{extra}, got {x.ndim} with shape {x.shape}")


def check_shape(x: np.ndarray, shape, name: str) -> None:
    if tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")


def check_nonempty(x: np.ndarray, name: str, dims=None) -> None:
    dims = range(x.ndim) if dims is None else dims
    for d in dims:
        if x.shape[d] == 0:
            raise ValueError(f"{name}: dimension {d} has size 0 (shape {x.shape})")


def as_int(v, name: str, minimum: int | None = None) -> int:
    if type(v) is int:  # the common case, without the ABC checks
        if minimum is not None and v < minimum:
            raise ValueError(f"{name}: must be >= {minimum}, got {v}")
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral,)):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return v


def as_number(v, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    return float(v)


def ntuple(v, n: int, name: str, minimum: int | None = None) -> tuple:
    """An int or a length-n sequence of ints -> n-tuple (torch's _pair/_triple)."""
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise ValueError(f"{name}: expected an int or {n} ints, got {v!r}")
        return tuple(as_int(e, name, minimum) for e in v)
    return (as_int(v, name, minimum),) * n


def out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (convolution / pooling), torch's formula."""
    span = dilation * (kernel - 1) + 1
    num = size + pad_lo + pad_hi - span
    if num < 0:
        return 0
    if ceil_mode:
        out = -(-num // stride) + 1
        # the last window must start inside the input or the left padding (torch rule)
        if (out - 1) * stride >= size + pad_lo:
            out -= 1
        return out
    return num // stride + 1


def check_elements(shape, name: str, itemsize: int = 8, what: str = "an output") -> None:
    """Refuse outputs that overflow or cannot fit in this machine's (or the GPU's) memory, before
    allocating."""
    n = 1
    for s in shape:
        n *= int(s)
    nbytes = n * itemsize
    if _cuda.current_device() is not None:
        if n > _MAX_ELEMENTS or nbytes > _cuda.device_memory():
            raise SizeError(f"{name}: {what} of shape {tuple(shape)} ({nbytes} bytes) is too large for the GPU")
        return
    # (a request the machine has but cannot give right now would end in the OOM killer: checked
    # only for big requests, reading /proc/meminfo costs ~20 us)
    if n > _MAX_ELEMENTS or nbytes > _physical_memory() or (nbytes > 1 << 30 and nbytes > _available_memory()):
        raise SizeError(f"{name}: {what} of shape {tuple(shape)} ({nbytes} bytes) is too large for this machine")


def empty(shape, dtype, name: str = "output"):
    """An uninitialised C-contiguous output. Large ones come from convkern's caching allocator
    (their pages stay resident between calls: see convkern.memory_stats). While the op runs on
    a GPU (convkern._cuda), a CuPy array instead."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    check_elements(shape, name, dtype.itemsize)
    return empty_unchecked(shape, dtype)


def empty_unchecked(shape, dtype):
    """empty() for a size the caller has already checked (a tuple of ints): no size check."""
    dtype = np.dtype(dtype)
    if _cuda.current_device() is not None:
        return _cuda.empty(shape, dtype)
    return _C.empty(shape, dtype)


def same_array(a, shape, dtype) -> bool:
    """``a`` is a C-contiguous NumPy array of this shape and dtype: a kernel call worked out
    once for them can be repeated on it without the checks (ConvPlan, the ONNX nodes)."""
    return type(a) is np.ndarray and a.shape == shape and a.dtype == dtype and a.flags.c_contiguous


def zeros(shape, dtype, name: str = "output"):
    out = empty(shape, dtype, name)
    out.fill(0)
    return out


def ascontiguous(a):
    """np.ascontiguousarray for NumPy or CuPy arrays (0-d arrays stay 0-d)."""
    return _cuda.ascontiguous(a)


def xp_of(a):
    """The array module (numpy or cupy) of ``a``."""
    return _cuda.xp_of(a)


def check_flag(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return bool(v)


def check_choice(v, choices, name: str):
    if v not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {v!r}")
    return v
