"""Runtime controls: which CPU ISA the kernels use, how many threads, and build facts."""
from __future__ import annotations

import contextlib
import os
import warnings

from . import _C

ISA_NAMES = tuple(_C.isa_names())  # ("scalar", "avx2", "avx512")


def available_isas() -> list:
    """The ISAs this CPU can run, worst to best."""
    return [n for i, n in enumerate(ISA_NAMES) if _C.isa_supported(i)]


def get_isa() -> str:
    return ISA_NAMES[_C.get_isa()]


def set_isa(name: str) -> None:
    """Force the kernels of one ISA ('scalar', 'avx2', 'avx512') for all later calls."""
    if name not in ISA_NAMES:
        raise ValueError(f"isa: expected one of {', '.join(ISA_NAMES)}, got {name!r}")
    if name not in available_isas():
        raise ValueError(f"isa: {name} is not supported by this CPU (available: {', '.join(available_isas())})")
    _C.set_isa(ISA_NAMES.index(name))


@contextlib.contextmanager
def isa(name: str):
    """Context manager: run the block with the kernels of ISA ``name``."""
    old = get_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(old)


def set_num_threads(n: int) -> None:
    """Threads used by the native kernels (also set by CONVKERN_NUM_THREADS)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"num_threads: expected an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def get_num_threads() -> int:
    return _C.get_num_threads()


def _check_env_isa() -> None:
    want = os.environ.get("CONVKERN_ISA", "")
    if want and want != get_isa():
        warnings.warn(
            f"CONVKERN_ISA={want!r} is not available here (available: {', '.join(available_isas())}); "
            f"using {get_isa()}",
            RuntimeWarning,
            stacklevel=3,
        )


def info() -> dict:
    """Version, ISAs, threads and CUDA facts, as a dict (``python -m convkern info`` prints it)."""
    ngpu = _C.cuda_device_count()
    return {
        "version": _C.__version__,
        "isa": get_isa(),
        "available_isas": available_isas(),
        "compiled_isas": list(ISA_NAMES),
        "num_threads": get_num_threads(),
        "openmp": _C.has_openmp(),
        "cuda_built": _C.cuda_built(),
        "cuda_devices": [_C.cuda_device_name(i) for i in range(ngpu)],
        "cuda_compute_capabilities": [_C.cuda_compute_capability(i) for i in range(ngpu)],
    }


def format_info() -> str:
    d = info()
    gpus = ", ".join(f"{name} (sm_{cc})" for name, cc in zip(d["cuda_devices"], d["cuda_compute_capabilities"]))
    gpus = gpus or "none visible"
    return "\n".join([
        f"convkern {d['version']}",
        f"  isa:             {d['isa']} (available: {', '.join(d['available_isas'])}; compiled: {', '.join(d['compiled_isas'])})",
        f"  threads:         {d['num_threads']} (OpenMP: {'yes' if d['openmp'] else 'no'})",
        f"  cuda built:      {'yes' if d['cuda_built'] else 'no'}",
        f"  gpus:            {gpus}",
    ])
