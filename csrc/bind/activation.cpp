// Bindings of the activation family: elementwise activations, prelu, (log_)softmax, dropout.
#include "bind/common.h"
#include "ops/activation.h"

namespace ck {
namespace {

// a * b * c, refusing negative factors and int64 overflow (so a size check cannot be fooled).
int64_t checked_prod3(int64_t a, int64_t b, int64_t c, const char* name) {
  CK_CHECK(a >= 0 && b >= 0 && c >= 0, name, "sizes must be non-negative");
  int64_t ab = 0, abc = 0;
  CK_CHECK(!__builtin_mul_overflow(a, b, &ab) && !__builtin_mul_overflow(ab, c, &abc), name, "sizes overflow");
  return abc;
}

}  // namespace

CK_BIND(activation) {
  // act_forward(x, y, op, a): y = f_op(x); x, y same dtype and size.
  m.def(
      "act_forward",
      [](py::object x_, py::object y_, int op, double a) {
        Arr x = arr(x_, "input"), y = arr(y_, "output", true);
        check_float(x, "input");
        check_same_dtype(y, x, "output");
        check_size(y, x.size, "output");
        CK_CHECK(op >= 0 && op < kActCount, "op", "unknown activation");
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          act_fwd_stub.get<T>()(op, x.size, x.ptr<T>(), y.ptr<T>(), T(a));
        });
      },
      py::arg("x"), py::arg("y"), py::arg("op"), py::arg("a") = 0.0);
  // act_backward(g, x, gx, op, a): gx = g * f_op'(x).
  m.def(
      "act_backward",
      [](py::object g_, py::object x_, py::object gx_, int op, double a) {
        Arr g = arr(g_, "grad_output"), x = arr(x_, "input"), gx = arr(gx_, "grad_input", true);
        check_float(x, "input");
        check_same_dtype(g, x, "grad_output");
        check_same_dtype(gx, x, "grad_input");
        check_size(g, x.size, "grad_output");
        check_size(gx, x.size, "grad_input");
        CK_CHECK(op >= 0 && op < kActCount, "op", "unknown activation");
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          act_bwd_stub.get<T>()(op, x.size, g.ptr<T>(), x.ptr<T>(), gx.ptr<T>(), T(a));
        });
      },
      py::arg("grad_output"), py::arg("x"), py::arg("grad_input"), py::arg("op"), py::arg("a") = 0.0);
  // prelu_forward(x, w, y, outer, C, inner): x, y hold outer*C*inner values, w C values.
  m.def("prelu_forward", [](py::object x_, py::object w_, py::object y_, int64_t outer, int64_t C, int64_t inner) {
    Arr x = arr(x_, "input"), w = arr(w_, "weight"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(w, x, "weight");
    check_same_dtype(y, x, "output");
    const int64_t n = checked_prod3(outer, C, inner, "input");
    CK_CHECK(C >= 1, "weight", "needs at least one value");
    check_size(x, n, "input");
    check_size(y, n, "output");
    check_size(w, C, "weight");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      prelu_fwd_stub.get<T>()(outer, C, inner, x.ptr<T>(), w.ptr<T>(), y.ptr<T>());
    });
  });
  m.def("prelu_backward", [](py::object g_, py::object x_, py::object w_, py::object gx_, py::object gw_,
                             int64_t outer, int64_t C, int64_t inner) {
    Arr g = arr(g_, "grad_output"), x = arr(x_, "input"), w = arr(w_, "weight");
    Arr gx = arr(gx_, "grad_input", true), gw = arr(gw_, "grad_weight", true);
    check_float(x, "input");
    check_same_dtype(g, x, "grad_output");
    check_same_dtype(w, x, "weight");
    check_same_dtype(gx, x, "grad_input");
    check_same_dtype(gw, x, "grad_weight");
    const int64_t n = checked_prod3(outer, C, inner, "input");
    CK_CHECK(C >= 1, "weight", "needs at least one value");
    check_size(x, n, "input");
    check_size(g, n, "grad_output");
    check_size(gx, n, "grad_input");
    check_size(w, C, "weight");
    check_size(gw, C, "grad_weight");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      prelu_bwd_stub.get<T>()(outer, C, inner, g.ptr<T>(), x.ptr<T>(), w.ptr<T>(), gx.ptr<T>(), gw.ptr<T>());
    });
  });
  // softmax_forward(x, y, outer, D, inner, log): (log_)softmax over the middle axis.
  m.def("softmax_forward", [](py::object x_, py::object y_, int64_t outer, int64_t D, int64_t inner, bool log) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(y, x, "output");
    const int64_t n = checked_prod3(outer, D, inner, "input");
    check_size(x, n, "input");
    check_size(y, n, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      softmax_fwd_stub.get<T>()(outer, D, inner, x.ptr<T>(), y.ptr<T>(), log);
    });
  });
  m.def("softmax_backward", [](py::object g_, py::object x_, py::object gx_, int64_t outer, int64_t D, int64_t inner,
                               bool log) {
    Arr g = arr(g_, "grad_output"), x = arr(x_, "input"), gx = arr(gx_, "grad_input", true);
    check_float(x, "input");
    check_same_dtype(g, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    const int64_t n = checked_prod3(outer, D, inner, "input");
    check_size(x, n, "input");
    check_size(g, n, "grad_output");
    check_size(gx, n, "grad_input");
    CK_CHECK(gx.data != g.data && gx.data != x.data, "grad_input", "must not alias the inputs");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      softmax_bwd_stub.get<T>()(outer, D, inner, g.ptr<T>(), x.ptr<T>(), gx.ptr<T>(), log);
    });
  });
  // dropout(x, y, seed, threshold, scale): y = x * (keep ? scale : 0), keep from hash(seed, i).
  m.def("dropout", [](py::object x_, py::object y_, uint64_t seed, uint64_t threshold, double scale) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_float(x, "input");
    check_same_dtype(y, x, "output");
    check_size(y, x.size, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      dropout_stub.get<T>()(x.size, x.ptr<T>(), y.ptr<T>(), seed, threshold, T(scale));
    });
  });
}

}  // namespace ck
