// The extension module convkern._C. Each bind/<family>.cpp adds its functions through
// CK_BIND; this file adds the runtime controls (ISA, threads, build info) and maps
// convkern's C++ exceptions to Python ones.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <string>

#include "bind/common.h"
#include "core/check.h"
#include "core/dispatch.h"
#include "core/runtime.h"
#include "cuda/api.h"

#ifndef CK_VERSION
#define CK_VERSION "0.0.0+dev"
#endif

namespace ck {
std::vector<Binder>& binders() {
  static std::vector<Binder> list;
  return list;
}
int add_binder(Binder b) {
  binders().push_back(b);
  return 0;
}
}  // namespace ck

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "convkern native kernels (use convkern.functional, not this module)";
  py::register_exception<ck::ValueError>(m, "_ValueError", PyExc_ValueError);
  py::register_exception<ck::TypeError>(m, "_TypeError", PyExc_TypeError);

  m.attr("__version__") = CK_VERSION;
  m.def("isa_names", [] {
    std::vector<std::string> r;
    for (int i = 0; i < ck::kNumIsa; ++i) r.push_back(ck::isa_name(ck::Isa(i)));
    return r;
  });
  m.def("isa_supported", [](int i) { return i >= 0 && i < ck::kNumIsa && ck::isa_supported(ck::Isa(i)); });
  m.def("get_isa", [] { return int(ck::active_isa()); });
  m.def("set_isa", [](int i) { ck::set_active_isa(ck::Isa(i)); });
  m.def("set_num_threads", &ck::set_num_threads);
  m.def("get_num_threads", &ck::get_num_threads);
  m.def("has_openmp", &ck::has_openmp);
  m.def("cuda_built", &ck::cuda_built);
  m.def("cuda_device_count", &ck::cuda_device_count);
  m.def("cuda_device_name", &ck::cuda_device_name, py::arg("device") = 0);
  // CUDA runtime helpers (no-ops / zeros in a CPU-only build).
  m.def("cuda_synchronize", [] {
    py::gil_scoped_release nogil;
    ck::cuda::synchronize();
  });
  m.def("cuda_set_call_stream", [](intptr_t s) { return ck::cuda::set_call_stream(s); }, py::arg("stream"));
  m.def("cuda_set_conv_algo", &ck::cuda::set_conv_algo, py::arg("algo"));
  m.def("cuda_get_conv_algo", &ck::cuda::get_conv_algo);
  m.def("cuda_mem_info", [] {
    int64_t f = 0, t = 0;
    ck::cuda::mem_info(&f, &t);
    return py::make_tuple(f, t);
  });
  m.def("cuda_compute_capability", &ck::cuda::compute_capability, py::arg("device") = 0);

  for (auto b : ck::binders()) b(m);
}
