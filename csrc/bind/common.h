// Helpers shared by the binding files in bind/. Each bind/<family>.cpp converts NumPy
// arrays to raw pointers, checks that every buffer has the size the kernel will touch,
// releases the GIL and calls a stub. No computing happens here.
//
// Convention: Python (convkern/functional.py and convkern/_ops/) normalizes and validates
// arguments with user-facing messages and allocates outputs; the binding re-checks sizes
// so that a direct call into convkern._C cannot read or write out of bounds either.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/dispatch.h"
#include "cuda/api.h"

namespace ck {
namespace py = pybind11;

enum class DType { f32, f64, i64, u8, other };

constexpr int kHost = -1;       // Arr::device of a NumPy array
constexpr int kAnyDevice = -2;  // an empty device array (no pointer to ask about)

// A C-contiguous NumPy array, or a device array (__cuda_array_interface__, e.g. CuPy), seen
// as a raw buffer.
struct Arr {
  void* data = nullptr;
  DType dtype = DType::other;
  std::vector<int64_t> shape;
  int64_t size = 0;
  int device = kHost;     // CUDA device ordinal, kHost or kAnyDevice
  intptr_t stream = 0;    // device arrays: the producer's stream (CAI v3), 0 if not given
  bool on_device() const { return device != kHost; }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  int64_t dim(int i) const { return shape.at(size_t(i)); }
  int64_t ndim() const { return int64_t(shape.size()); }
};

inline DType dtype_of(const py::array& a) {
  auto dt = a.dtype();
  // equivalence, not identity: an equal dtype object that is not NumPy's canonical one
  // (e.g. unpickled or from a buffer) is still float32
  if (dt.equal(py::dtype::of<float>())) return DType::f32;
  if (dt.equal(py::dtype::of<double>())) return DType::f64;
  if (dt.equal(py::dtype::of<int64_t>())) return DType::i64;
  if (dt.equal(py::dtype::of<uint8_t>())) return DType::u8;
  return DType::other;
}

inline DType dtype_of_typestr(const std::string& t) {
  if (t == "<f4") return DType::f32;
  if (t == "<f8") return DType::f64;
  if (t == "<i8") return DType::i64;
  if (t == "|u1" || t == "<u1") return DType::u8;
  return DType::other;
}

// An object exposing __cuda_array_interface__ (versions 2 and 3), which must be C-contiguous.
inline Arr device_arr(const py::handle& obj, const char* name, bool writable) {
  py::dict d = obj.attr("__cuda_array_interface__");
  Arr r;
  r.dtype = dtype_of_typestr(py::cast<std::string>(d["typestr"]));
  CK_CHECK_TYPE(r.dtype != DType::other, name, "unsupported dtype");
  CK_CHECK(!d.contains("mask") || d["mask"].is_none(), name, "masked CUDA arrays are not supported");
  py::tuple shape = d["shape"];
  r.size = 1;
  for (auto e : shape) {
    r.shape.push_back(py::cast<int64_t>(e));
    r.size *= r.shape.back();
  }
  if (d.contains("strides") && !d["strides"].is_none()) {
    py::tuple st = d["strides"];
    int64_t item = (r.dtype == DType::f32) ? 4 : (r.dtype == DType::u8 ? 1 : 8);
    int64_t expect = item;
    for (int64_t i = int64_t(r.shape.size()) - 1; i >= 0; --i) {
      CK_CHECK(r.shape[size_t(i)] == 1 || py::cast<int64_t>(st[size_t(i)]) == expect || r.size == 0, name,
               "must be C-contiguous");
      expect *= r.shape[size_t(i)];
    }
  }
  py::tuple data = d["data"];
  r.data = reinterpret_cast<void*>(py::cast<uintptr_t>(data[0]));
  if (writable) CK_CHECK(!py::cast<bool>(data[1]), name, "must be writable");
  if (d.contains("stream") && !d["stream"].is_none()) r.stream = py::cast<intptr_t>(d["stream"]);
  r.device = (r.data == nullptr && r.size == 0) ? kAnyDevice : cuda::pointer_device(r.data, name);
  return r;
}

// `name` is the argument name used in error messages; outputs must be writable.
inline Arr arr(const py::handle& obj, const char* name, bool writable = false) {
  if (!py::isinstance<py::array>(obj) && py::hasattr(obj, "__cuda_array_interface__"))
    return device_arr(obj, name, writable);
  CK_CHECK_TYPE(py::isinstance<py::array>(obj), name, "expected a numpy.ndarray (or a CuPy array)");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  CK_CHECK((a.flags() & py::array::c_style) != 0, name, "must be C-contiguous");
  if (writable) CK_CHECK(a.writeable(), name, "must be writable");
  Arr r;
  r.dtype = dtype_of(a);
  CK_CHECK_TYPE(r.dtype != DType::other, name, "unsupported dtype");
  r.data = writable ? a.mutable_data() : const_cast<void*>(a.data());
  r.size = 1;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    r.shape.push_back(int64_t(a.shape(i)));
    r.size *= int64_t(a.shape(i));
  }
  return r;
}

// Optional array (an input, or a writable output): None gives an Arr with data == nullptr.
inline Arr arr_opt(const py::handle& obj, const char* name, bool writable = false) {
  if (obj.is_none()) return Arr{};
  return arr(obj, name, writable);
}

inline void check_float(const Arr& a, const char* name) {
  CK_CHECK_TYPE(a.dtype == DType::f32 || a.dtype == DType::f64, name, "must be float32 or float64");
}
// `a` lives where `b` does (both host, or both on the same CUDA device).
inline void check_same_place(const Arr& a, const Arr& b, const char* name) {
  if (!a.data || !b.data) return;  // absent optional arrays
  const bool same = a.device == b.device ||
                    (a.on_device() && b.on_device() && (a.device == kAnyDevice || b.device == kAnyDevice));
  if (same) return;
  auto where = [](const Arr& x) {
    return x.on_device() ? "a CUDA array on device " + std::to_string(x.device) : std::string("a numpy.ndarray");
  };
  throw TypeError(std::string(name) + ": is " + where(a) + " but the input is " + where(b) +
                  " (all arrays of one call must be on the same device)");
}
// Same dtype and same place (host / device) as `b`.
inline void check_same_dtype(const Arr& a, const Arr& b, const char* name) {
  CK_CHECK_TYPE(a.dtype == b.dtype, name, "dtype differs from the input's");
  check_same_place(a, b, name);
}
inline void check_size(const Arr& a, int64_t n, const char* name) {
  CK_CHECK(a.size == n, name, "has " + std::to_string(a.size) + " elements, expected " + std::to_string(n));
}

// relu_max of a fused relu (the epilogue clamps to [0, relu_max]): a number > 0 (NaN refused).
inline void check_relu_max(double relu_max) { CK_CHECK(relu_max > 0, "relu_max", "must be > 0"); }

// An epilogue's residual: None, or an array of y's shape and x's dtype that is not y itself.
inline void check_residual(const Arr& res, const Arr& x, const Arr& y) {
  if (!res.data) return;
  check_same_dtype(res, x, "residual");
  CK_CHECK(res.ndim() == y.ndim() && res.size == y.size, "residual", "must have the output's shape");
  for (int64_t i = 0; i < y.ndim(); ++i) CK_CHECK(res.dim(int(i)) == y.dim(int(i)), "residual", "must have the output's shape");
  CK_CHECK(res.data != y.data, "residual", "may not be the output array");
}

// Calls f(float{}) or f(double{}) for a float32 / float64 array. For a device array, inside
// a cuda::Scope on its device and stream: the stubs called by f then run their CUDA kernels.
template <class F>
void dispatch_float(const Arr& a, const char* name, F&& f) {
  check_float(a, name);
  if (a.on_device()) {
    cuda::Scope scope(a.device, a.stream);
    if (a.dtype == DType::f32) f(float{});
    else f(double{});
    return;
  }
  if (a.dtype == DType::f32) f(float{});
  else f(double{});
}

// Each bind/<family>.cpp registers one function that adds its m.def lines:
//   CK_BIND(pool) { m.def("max_pool_forward", ...); }
using Binder = void (*)(py::module_&);
int add_binder(Binder b);
std::vector<Binder>& binders();

}  // namespace ck

#define CK_BIND(family)                                                       \
  static void ck_bind_##family(::pybind11::module_& m);                      \
  static const int ck_bind_reg_##family = ::ck::add_binder(&ck_bind_##family); \
  static void ck_bind_##family(::pybind11::module_& m)
