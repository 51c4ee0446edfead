#include "core/memory_pool.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "core/check.h"

namespace ck {
namespace {

// Every block starts with a 64-byte header holding its size class; callers get header + 64.
constexpr size_t kHeader = 64;

// Size classes: powers of two from one page. A block is reused for any request of its class,
// so consecutive layers of different sizes more often get memory another array just freed
// (still in cache) than with four classes per octave (MobileNetV2 through the ONNX backend:
// new/old 0.97-0.99, interleaved). A block's pages past the largest array it has held are
// not touched by convkern, so they take address space only.
size_t size_class(size_t bytes) {
  size_t pow = 4096;
  while (pow < bytes) pow *= 2;
  return pow;
}

struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free;  // size class -> free blocks (header pointers)
  int64_t cached = 0, blocks = 0, hits = 0, misses = 0;
  int64_t limit = -1;  // bytes; -1: not yet read from the environment

  int64_t get_limit() {
    if (limit < 0) {
      limit = int64_t(1024) << 20;
      if (const char* e = std::getenv("CONVKERN_CACHE_MB")) {
        char* end = nullptr;
        const long long mb = std::strtoll(e, &end, 10);
        if (end != e && mb >= 0) limit = int64_t(mb) << 20;
      }
    }
    return limit;
  }
  void trim_to(int64_t target) {  // caller holds mu: frees the largest blocks first
    while (cached > target && !free.empty()) {
      auto it = std::prev(free.end());
      std::free(it->second.back());
      it->second.pop_back();
      cached -= int64_t(it->first);
      --blocks;
      if (it->second.empty()) free.erase(it);
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: arrays may outlive static destructors
  return *p;
}

}  // namespace

void* pool_alloc(size_t bytes) {
  const size_t cls = size_class(bytes);
  Pool& P = pool();
  {
    std::lock_guard<std::mutex> lock(P.mu);
    auto it = P.free.find(cls);
    if (it != P.free.end() && !it->second.empty()) {
      void* h = it->second.back();
      it->second.pop_back();
      if (it->second.empty()) P.free.erase(it);
      P.cached -= int64_t(cls);
      --P.blocks;
      ++P.hits;
      return static_cast<char*>(h) + kHeader;
    }
    ++P.misses;
  }
  void* h = std::aligned_alloc(64, cls + kHeader);
  if (!h) throw std::bad_alloc();
  *static_cast<size_t*>(h) = cls;
  return static_cast<char*>(h) + kHeader;
}

void pool_free(void* p) {
  if (!p) return;
  void* h = static_cast<char*>(p) - kHeader;
  const size_t cls = *static_cast<size_t*>(h);
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  const int64_t limit = P.get_limit();
  if (int64_t(cls) > limit) {
    std::free(h);
    return;
  }
  P.trim_to(limit - int64_t(cls));
  P.free[cls].push_back(h);
  P.cached += int64_t(cls);
  ++P.blocks;
}

PoolStats pool_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  return PoolStats{P.cached, P.blocks, P.hits, P.misses, P.get_limit()};
}

void pool_empty_cache() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.trim_to(0);
}

void pool_set_limit(int64_t bytes) {
  CK_CHECK(bytes >= 0, "limit", "must be >= 0 bytes");
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  P.limit = bytes;
  P.trim_to(bytes);
}

}  // namespace ck
