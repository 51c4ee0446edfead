// Bindings of the loss family: cross_entropy (fused log-softmax) and mse_loss.
#include "bind/common.h"
#include "ops/loss.h"

namespace ck {
namespace {

int64_t checked_prod3_loss(int64_t a, int64_t b, int64_t c, const char* name) {
  CK_CHECK(a >= 0 && b >= 0 && c >= 0, name, "sizes must be non-negative");
  int64_t ab = 0, abc = 0;
  CK_CHECK(!__builtin_mul_overflow(a, b, &ab) && !__builtin_mul_overflow(ab, c, &abc), name, "sizes overflow");
  return abc;
}

}  // namespace

CK_BIND(loss) {
  // cross_entropy_forward(x, target, weight|None, loss, wt, N, C, inner, ignore_index, label_smoothing)
  //   -> number of targets outside [0, C) other than ignore_index (never used as indices).
  m.def("cross_entropy_forward", [](py::object x_, py::object t_, py::object w_, py::object loss_, py::object wt_,
                                    int64_t N, int64_t C, int64_t inner, int64_t ignore_index, double eps) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), w = arr_opt(w_, "weight");
    Arr loss = arr(loss_, "loss", true), wt = arr(wt_, "wt", true);
    check_float(x, "input");
    CK_CHECK_TYPE(t.dtype == DType::i64, "target", "must be int64");
    check_same_place(t, x, "target");
    if (w.data) check_same_dtype(w, x, "weight"), check_size(w, C, "weight");
    check_same_dtype(loss, x, "loss");
    check_same_dtype(wt, x, "wt");
    CK_CHECK(C >= 1, "input", "needs at least one class");
    check_size(x, checked_prod3_loss(N, C, inner, "input"), "input");
    const int64_t P = N * inner;
    check_size(t, P, "target");
    check_size(loss, P, "loss");
    check_size(wt, P, "wt");
    int64_t bad = 0;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      bad = cross_entropy_fwd_stub.get<T>()(N, C, inner, x.ptr<T>(), t.ptr<int64_t>(), w.data ? w.ptr<T>() : nullptr,
                                            ignore_index, T(eps), loss.ptr<T>(), wt.ptr<T>());
    });
    return bad;
  });
  // cross_entropy_backward(x, target, weight|None, g, gx, N, C, inner, ignore_index, label_smoothing, gscale)
  //   g: one value (shared) or N*inner values (one per position). Returns the bad-target count.
  m.def("cross_entropy_backward", [](py::object x_, py::object t_, py::object w_, py::object g_, py::object gx_,
                                     int64_t N, int64_t C, int64_t inner, int64_t ignore_index, double eps,
                                     double gscale) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), w = arr_opt(w_, "weight");
    Arr g = arr(g_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_float(x, "input");
    CK_CHECK_TYPE(t.dtype == DType::i64, "target", "must be int64");
    check_same_place(t, x, "target");
    if (w.data) check_same_dtype(w, x, "weight"), check_size(w, C, "weight");
    check_same_dtype(g, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    CK_CHECK(C >= 1, "input", "needs at least one class");
    const int64_t n = checked_prod3_loss(N, C, inner, "input");
    check_size(x, n, "input");
    check_size(gx, n, "grad_input");
    const int64_t P = N * inner;
    check_size(t, P, "target");
    CK_CHECK(g.size == P || g.size == 1, "grad_output", "must have 1 or N*inner values");
    const int64_t gstride = g.size == P ? 1 : 0;
    int64_t bad = 0;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      bad = cross_entropy_bwd_stub.get<T>()(N, C, inner, x.ptr<T>(), t.ptr<int64_t>(), w.data ? w.ptr<T>() : nullptr,
                                            ignore_index, T(eps), g.ptr<T>(), gstride, T(gscale), gx.ptr<T>());
    });
    return bad;
  });
  // mse_forward(x, t, out, reduce): reduce false: out = (x - t)^2; true: out[0] = sum (x - t)^2.
  m.def("mse_forward", [](py::object x_, py::object t_, py::object out_, bool reduce) {
    Arr x = arr(x_, "input"), t = arr(t_, "target"), out = arr(out_, "output", true);
    check_float(x, "input");
    check_same_dtype(t, x, "target");
    check_same_dtype(out, x, "output");
    check_size(t, x.size, "target");
    check_size(out, reduce ? 1 : x.size, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      mse_fwd_stub.get<T>()(x.size, x.ptr<T>(), t.ptr<T>(), out.ptr<T>(), reduce ? 1 : 0);
    });
  });
  // mse_backward(g, x, t, gx, gt, gscale): gx = 2 gscale g (x - t), gt = -gx; g: 1 or n values.
  m.def("mse_backward", [](py::object g_, py::object x_, py::object t_, py::object gx_, py::object gt_,
                           double gscale) {
    Arr g = arr(g_, "grad_output"), x = arr(x_, "input"), t = arr(t_, "target");
    Arr gx = arr(gx_, "grad_input", true), gt = arr(gt_, "grad_target", true);
    check_float(x, "input");
    check_same_dtype(g, x, "grad_output");
    check_same_dtype(t, x, "target");
    check_same_dtype(gx, x, "grad_input");
    check_same_dtype(gt, x, "grad_target");
    check_size(t, x.size, "target");
    check_size(gx, x.size, "grad_input");
    check_size(gt, x.size, "grad_target");
    CK_CHECK(g.size == x.size || g.size == 1, "grad_output", "must have 1 or input.size values");
    const int64_t gstride = g.size == x.size ? 1 : 0;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto tag) {
      using T = decltype(tag);
      mse_bwd_stub.get<T>()(x.size, g.ptr<T>(), gstride, T(gscale), x.ptr<T>(), t.ptr<T>(), gx.ptr<T>(), gt.ptr<T>());
    });
  });
}

}  // namespace ck
