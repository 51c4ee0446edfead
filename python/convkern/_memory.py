"""The caching allocator behind convkern's output arrays.

Outputs of at least 64 KiB come from a pool of page-resident blocks: when an output array is
freed its block is kept for the next output of the same size class, so a kernel never pays
for page-faulting fresh memory (on small VMs that costs as much as the kernel itself). The
pool keeps at most ``CONVKERN_CACHE_MB`` (default 1024) MiB of free blocks; 0 disables it.
"""
from __future__ import annotations

from . import _C

__all__ = ["memory_stats", "empty_cache", "set_cache_limit"]


def memory_stats() -> dict:
    """cached_bytes / cached_blocks (free blocks held), hits / misses (allocations served from
    the pool / from the system), limit_bytes."""
    return dict(_C.memory_stats())


def empty_cache() -> None:
    """Return every free block of the pool to the system (arrays in use are untouched)."""
    _C.empty_cache()


def set_cache_limit(nbytes: int) -> None:
    """Hold at most ``nbytes`` of free blocks (0: never cache); trims the pool at once."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes: expected an int, got {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"nbytes: must be >= 0, got {nbytes}")
    _C.set_cache_limit(nbytes)
