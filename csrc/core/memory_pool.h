// A caching allocator for output arrays (no pybind11).
//
// Page-faulting a fresh multi-megabyte output on every call costs as much as the kernel that
// fills it (up to 4x on small VMs): the kernel's first touch of each page traps. Freed output
// blocks are therefore kept, by size class, and handed out again; a block's pages stay
// resident. Only blocks of at least kMinPooledBytes are pooled. The pool holds at most
// cache_limit() bytes of free blocks (CONVKERN_CACHE_MB, default 1024; 0 disables it); a block
// freed beyond that goes back to the system. empty_cache() releases every free block.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ck {

constexpr size_t kMinPooledBytes = size_t(64) << 10;

// 64-byte aligned block of at least `bytes`; throws std::bad_alloc. Thread-safe.
void* pool_alloc(size_t bytes);
// Returns a block from pool_alloc to the pool (or to the system past the cache limit).
void pool_free(void* p);

struct PoolStats {
  int64_t cached_bytes, cached_blocks, hits, misses, limit_bytes;
};
PoolStats pool_stats();
void pool_empty_cache();
void pool_set_limit(int64_t bytes);  // ValueError if negative

}  // namespace ck
