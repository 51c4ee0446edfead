// convkern._C.empty: output arrays from the caching allocator (core/memory_pool.h).
#include "bind/common.h"
#include "core/memory_pool.h"

#include <pybind11/stl.h>

namespace ck {

CK_BIND(memory) {
  // empty(shape, dtype) -> a C-contiguous, writable, uninitialised array. Blocks of at least
  // kMinPooledBytes come from the pool and return to it when the array is freed (the array's
  // base is a capsule owning the block); smaller ones are plain NumPy allocations.
  m.def(
      "empty",
      [](std::vector<int64_t> shape, py::object dtype) {
        const py::dtype dt = py::dtype::from_args(dtype);
        const int64_t item = int64_t(dt.itemsize());
        int64_t n = 1;
        for (int64_t s : shape) {
          CK_CHECK(s >= 0, "shape", "sizes must be non-negative");
          CK_CHECK(s == 0 || n <= (int64_t(1) << 62) / s, "shape", "too many elements");
          n *= s;
        }
        CK_CHECK(item > 0 && n <= ((int64_t(1) << 62) / item), "shape", "too many bytes");
        const size_t bytes = size_t(n * item);
        if (bytes < kMinPooledBytes) return py::array(dt, shape);
        std::vector<int64_t> strides(shape.size());
        int64_t st = item;
        for (size_t i = shape.size(); i-- > 0;) {
          strides[i] = st;
          st *= shape[i];
        }
        void* p = pool_alloc(bytes);
        py::capsule owner(p, [](void* q) { pool_free(q); });
        return py::array(dt, shape, strides, p, owner);
      },
      py::arg("shape"), py::arg("dtype"));
  m.def("memory_stats", [] {
    const PoolStats s = pool_stats();
    py::dict d;
    d["cached_bytes"] = s.cached_bytes;
    d["cached_blocks"] = s.cached_blocks;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["limit_bytes"] = s.limit_bytes;
    return d;
  });
  m.def("empty_cache", &pool_empty_cache);
  m.def("set_cache_limit", &pool_set_limit, py::arg("bytes"));
}

}  // namespace ck
