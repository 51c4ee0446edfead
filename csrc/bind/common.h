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

namespace ck {
namespace py = pybind11;

enum class DType { f32, f64, i64, u8, other };

// A C-contiguous NumPy array seen as a raw buffer.
struct Arr {
  void* data = nullptr;
  DType dtype = DType::other;
  std::vector<int64_t> shape;
  int64_t size = 0;
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

// `name` is the argument name used in error messages; outputs must be writable.
inline Arr arr(const py::handle& obj, const char* name, bool writable = false) {
  CK_CHECK_TYPE(py::isinstance<py::array>(obj), name, "expected a numpy.ndarray");
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

// Optional input: None gives an Arr with data == nullptr.
inline Arr arr_opt(const py::handle& obj, const char* name) {
  if (obj.is_none()) return Arr{};
  return arr(obj, name);
}

inline void check_float(const Arr& a, const char* name) {
  CK_CHECK_TYPE(a.dtype == DType::f32 || a.dtype == DType::f64, name, "must be float32 or float64");
}
inline void check_same_dtype(const Arr& a, const Arr& b, const char* name) {
  CK_CHECK_TYPE(a.dtype == b.dtype, name, "dtype differs from the input's");
}
inline void check_size(const Arr& a, int64_t n, const char* name) {
  CK_CHECK(a.size == n, name, "has " + std::to_string(a.size) + " elements, expected " + std::to_string(n));
}

// Calls f(float{}) or f(double{}) for a float32 / float64 array.
template <class F>
void dispatch_float(const Arr& a, const char* name, F&& f) {
  check_float(a, name);
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
