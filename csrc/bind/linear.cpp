// Linear bindings: x (..., K) seen as M x K, weight (O, K), bias (O,) or None.
#include "bind/common.h"
#include "ops/linear.h"

namespace ck {
namespace {

Arr opt_l(const py::object& o, const char* name, bool writable = false) {
  if (o.is_none()) return Arr{};
  return arr(o, name, writable);
}

// M, K, O from input and weight.
void dims(const Arr& x, const Arr& w, int64_t& M, int64_t& K, int64_t& O) {
  check_float(x, "input");
  check_same_dtype(w, x, "weight");
  CK_CHECK(x.ndim() >= 1, "input", "expected at least 1 dimension");
  CK_CHECK(w.ndim() == 2, "weight", "expected 2 dimensions (out_features, in_features)");
  K = x.dim(int(x.ndim() - 1));
  O = w.dim(0);
  CK_CHECK(w.dim(1) == K, "weight", "in_features differs from the input's last dimension");
  CK_CHECK(x.size > 0, "input", "must not be empty");
  CK_CHECK(O > 0, "weight", "must not be empty");
  M = x.size / K;
}

}  // namespace

CK_BIND(linear) {
  m.def("linear_forward", [](py::object x_, py::object w_, py::object b_, py::object y_) {
    Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = opt_l(b_, "bias"), y = arr(y_, "output", true);
    int64_t M, K, O;
    dims(x, w, M, K, O);
    if (b.data) {
      check_same_dtype(b, x, "bias");
      check_size(b, O, "bias");
    }
    check_same_dtype(y, x, "output");
    check_size(y, M * O, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      linear_fwd_stub.get<T>()(M, K, O, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
    });
  });
  m.def("linear_backward", [](py::object gy_, py::object x_, py::object w_, py::object gx_, py::object gw_,
                              py::object gb_) {
    Arr gy = arr(gy_, "grad_output"), x = arr(x_, "input"), w = arr(w_, "weight");
    Arr gx = opt_l(gx_, "grad_input", true), gw = opt_l(gw_, "grad_weight", true), gb = opt_l(gb_, "grad_bias", true);
    int64_t M, K, O;
    dims(x, w, M, K, O);
    check_same_dtype(gy, x, "grad_output");
    check_size(gy, M * O, "grad_output");
    if (gx.data) { check_same_dtype(gx, x, "grad_input"); check_size(gx, M * K, "grad_input"); }
    if (gw.data) { check_same_dtype(gw, x, "grad_weight"); check_size(gw, O * K, "grad_weight"); }
    if (gb.data) { check_same_dtype(gb, x, "grad_bias"); check_size(gb, O, "grad_bias"); }
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      linear_bwd_stub.get<T>()(M, K, O, gy.ptr<T>(), x.ptr<T>(), w.ptr<T>(), gx.data ? gx.ptr<T>() : nullptr,
                               gw.data ? gw.ptr<T>() : nullptr, gb.data ? gb.ptr<T>() : nullptr);
    });
  });
}

}  // namespace ck
