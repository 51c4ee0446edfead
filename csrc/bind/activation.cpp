#include "bind/common.h"
#include "ops/activation.h"

namespace ck {

CK_BIND(activation) {
  m.def("act_forward", [](int kind, py::object x_, py::object y_, double alpha) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(y, x, "output");
    check_size(y, x.size, "output");
    CK_CHECK(kind >= kRelu && kind <= kGeluTanh, "kind", "unknown activation");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      act_fwd_stub.get<T>()(kind, x.size, T(alpha), x.ptr<T>(), y.ptr<T>());
    });
  });
  m.def("act_backward", [](int kind, py::object x_, py::object gy_, py::object gx_, double alpha) {
    Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_float(x, "input");
    check_same_dtype(gy, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    check_size(gy, x.size, "grad_output");
    check_size(gx, x.size, "grad_input");
    CK_CHECK(kind >= kRelu && kind <= kGeluTanh, "kind", "unknown activation");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      act_bwd_stub.get<T>()(kind, x.size, T(alpha), x.ptr<T>(), gy.ptr<T>(), gx.ptr<T>());
    });
  });
  // x viewed as (N, C, inner); w has C entries (or 1: shared slope).
  m.def("prelu_forward", [](py::object x_, py::object w_, py::object y_, int64_t N, int64_t C, int64_t inner) {
    Arr x = arr(x_, "input"), w = arr(w_, "weight"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(w, x, "weight");
    check_same_dtype(y, x, "output");
    CK_CHECK(N >= 0 && C >= 1 && inner >= 0 && N * C * inner == x.size, "input", "shape does not match (N, C, inner)");
    CK_CHECK(w.size == C || w.size == 1, "weight", "must have 1 or C entries");
    check_size(y, x.size, "output");
    const int64_t ws = w.size == 1 ? 0 : 1;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      prelu_fwd_stub.get<T>()(N, C, inner, x.ptr<T>(), w.ptr<T>(), ws, y.ptr<T>());
    });
  });
  m.def("prelu_backward", [](py::object x_, py::object w_, py::object gy_, py::object gx_, py::object gw_, int64_t N,
                             int64_t C, int64_t inner) {
    Arr x = arr(x_, "input"), w = arr(w_, "weight"), gy = arr(gy_, "grad_output");
    Arr gx = arr(gx_, "grad_input", true), gw = arr(gw_, "grad_weight", true);
    check_float(x, "input");
    for (auto* a : {&w, &gy, &gx, &gw}) check_same_dtype(*a, x, "grad_output");
    CK_CHECK(N >= 0 && C >= 1 && inner >= 0 && N * C * inner == x.size, "input", "shape does not match (N, C, inner)");
    CK_CHECK(w.size == C || w.size == 1, "weight", "must have 1 or C entries");
    check_size(gy, x.size, "grad_output");
    check_size(gx, x.size, "grad_input");
    check_size(gw, C, "grad_weight");  // scratch of C entries; entry 0 holds the total for a shared slope
    const int64_t ws = w.size == 1 ? 0 : 1;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      prelu_bwd_stub.get<T>()(N, C, inner, x.ptr<T>(), w.ptr<T>(), ws, gy.ptr<T>(), gx.ptr<T>(), gw.ptr<T>());
    });
  });
  m.def("softmax_forward", [](bool log, py::object x_, py::object y_, int64_t outer, int64_t D, int64_t inner) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(y, x, "output");
    CK_CHECK(outer >= 0 && D >= 1 && inner >= 0 && outer * D * inner == x.size, "dim", "does not match the input");
    check_size(y, x.size, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      softmax_fwd_stub.get<T>()(log, outer, D, inner, x.ptr<T>(), y.ptr<T>());
    });
  });
  m.def("softmax_backward", [](bool log, py::object y_, py::object gy_, py::object gx_, int64_t outer, int64_t D,
                               int64_t inner) {
    Arr y = arr(y_, "output"), gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_float(y, "output");
    check_same_dtype(gy, y, "grad_output");
    check_same_dtype(gx, y, "grad_input");
    CK_CHECK(outer >= 0 && D >= 1 && inner >= 0 && outer * D * inner == y.size, "dim", "does not match the input");
    check_size(gy, y.size, "grad_output");
    check_size(gx, y.size, "grad_input");
    py::gil_scoped_release nogil;
    dispatch_float(y, "output", [&](auto t) {
      using T = decltype(t);
      softmax_bwd_stub.get<T>()(log, outer, D, inner, y.ptr<T>(), gy.ptr<T>(), gx.ptr<T>());
    });
  });
  m.def("dropout", [](py::object x_, py::object y_, uint64_t seed, uint64_t threshold, double scale) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(y, x, "output");
    check_size(y, x.size, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      dropout_stub.get<T>()(x.size, seed, threshold, T(scale), x.ptr<T>(), y.ptr<T>());
    });
  });
}

}  // namespace ck
