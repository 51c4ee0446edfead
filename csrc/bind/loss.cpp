#include "bind/common.h"
#include "ops/loss.h"

namespace ck {
namespace {
void check_targets(const Arr& target, int64_t C, int64_t ignore_index) {
  CK_CHECK_TYPE(target.dtype == DType::i64, "target", "must be int64 class indices");
  const int64_t* t = target.ptr<int64_t>();
  for (int64_t s = 0; s < target.size; ++s)
    CK_CHECK(t[s] == ignore_index || (t[s] >= 0 && t[s] < C), "target",
             "class index " + std::to_string(t[s]) + " out of range [0, " + std::to_string(C) + ")");
}
}  // namespace

CK_BIND(loss) {
  m.def("cross_entropy_forward", [](py::object x_, py::object t_, py::object w_, py::object nll_, py::object sm_,
                                    py::object wt_, int64_t N, int64_t C, int64_t inner, int64_t ignore_index) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), w = arr_opt(w_, "weight");
    Arr nll = arr(nll_, "nll", true), sm = arr(sm_, "smooth", true), wt = arr(wt_, "wt", true);
    check_float(x, "input");
    CK_CHECK(N >= 1 && C >= 1 && inner >= 1 && N * C * inner == x.size, "input", "shape does not match (N, C, ...)");
    check_size(t, N * inner, "target");
    check_targets(t, C, ignore_index);
    if (w.data) {
      check_same_dtype(w, x, "weight");
      check_size(w, C, "weight");
    }
    for (auto* a : {&nll, &sm, &wt}) {
      check_same_dtype(*a, x, "output");
      check_size(*a, N * inner, "output");
    }
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      cross_entropy_fwd_stub.get<T>()(N, C, inner, x.ptr<T>(), t.ptr<int64_t>(), ignore_index,
                                      w.data ? w.ptr<T>() : nullptr, nll.ptr<T>(), sm.ptr<T>(), wt.ptr<T>());
    });
  });
  m.def("cross_entropy_backward", [](py::object x_, py::object t_, py::object w_, py::object coef_, py::object gx_,
                                     int64_t N, int64_t C, int64_t inner, int64_t ignore_index, double eps) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), w = arr_opt(w_, "weight");
    Arr coef = arr(coef_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_float(x, "input");
    CK_CHECK(N >= 1 && C >= 1 && inner >= 1 && N * C * inner == x.size, "input", "shape does not match (N, C, ...)");
    check_size(t, N * inner, "target");
    check_targets(t, C, ignore_index);
    if (w.data) {
      check_same_dtype(w, x, "weight");
      check_size(w, C, "weight");
    }
    check_same_dtype(coef, x, "grad_output");
    check_size(coef, N * inner, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    check_size(gx, x.size, "grad_input");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      cross_entropy_bwd_stub.get<T>()(N, C, inner, x.ptr<T>(), t.ptr<int64_t>(), ignore_index,
                                      w.data ? w.ptr<T>() : nullptr, T(eps), coef.ptr<T>(), gx.ptr<T>());
    });
  });
  m.def("mse_forward", [](py::object x_, py::object t_, py::object sq_) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), sq = arr_opt(sq_, "output");
    check_float(x, "input");
    check_same_dtype(t, x, "target");
    check_size(t, x.size, "target");
    if (sq.data) {
      sq = arr(sq_, "output", true);
      check_same_dtype(sq, x, "output");
      check_size(sq, x.size, "output");
    }
    double total = 0;
    {
      py::gil_scoped_release nogil;
      dispatch_float(x, "input", [&](auto tag) {
        using T = decltype(tag);
        total = mse_fwd_stub.get<T>()(x.size, x.ptr<T>(), t.ptr<T>(), sq.data ? sq.ptr<T>() : nullptr);
      });
    }
    return total;
  });
  m.def("mse_backward", [](py::object x_, py::object t_, py::object coef_, py::object gx_, double scale) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), coef = arr(coef_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_float(x, "input");
    check_same_dtype(t, x, "target");
    check_same_dtype(coef, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    check_size(t, x.size, "target");
    check_size(gx, x.size, "grad_input");
    CK_CHECK(coef.size == 1 || coef.size == x.size, "grad_output", "must be a scalar or shaped like the input");
    const int64_t cs = coef.size == 1 ? 0 : 1;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      mse_bwd_stub.get<T>()(x.size, x.ptr<T>(), t.ptr<T>(), coef.ptr<T>(), cs, T(scale), gx.ptr<T>());
    });
  });
}

}  // namespace ck
