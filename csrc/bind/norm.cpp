// Normalization bindings: inputs and preallocated C-contiguous outputs; every buffer is
// checked to hold exactly the number of elements the kernel touches.
#include "bind/common.h"
#include "ops/norm.h"

namespace ck {
namespace {

Arr opt(const py::object& o, const char* name, bool writable = false) {
  if (o.is_none()) return Arr{};
  return arr(o, name, writable);
}

void check_opt(const Arr& a, const Arr& like, int64_t n, const char* name) {
  if (!a.data) return;
  check_same_dtype(a, like, name);
  check_size(a, n, name);
}

template <class T>
T* p_or_null(const Arr& a) {
  return a.data ? a.ptr<T>() : nullptr;
}

// (N, C, S) of an input of at least `min_dim` dimensions.
void ncs(const Arr& x, int min_dim, int64_t& N, int64_t& C, int64_t& S) {
  check_float(x, "input");
  CK_CHECK(x.ndim() >= min_dim, "input", "expected at least " + std::to_string(min_dim) + " dimensions");
  CK_CHECK(x.size > 0, "input", "must not be empty");
  N = x.dim(0);
  C = x.dim(1);
  S = x.size / (N * C);
}

void check_bn_params(bool training, double momentum, double eps, const Arr& rm, const Arr& rv) {
  CK_CHECK(std::isfinite(eps) && eps >= 0, "eps", "must be a finite number >= 0");
  CK_CHECK(std::isfinite(momentum), "momentum", "must be finite");
  if (!training) {
    CK_CHECK(rm.data != nullptr, "running_mean", "required when not training");
    CK_CHECK(rv.data != nullptr, "running_var", "required when not training");
  }
}

void check_lrn(int64_t size, double alpha, double beta, double k) {
  CK_CHECK(size >= 1, "size", "must be >= 1");
  CK_CHECK(std::isfinite(alpha), "alpha", "must be finite");
  CK_CHECK(std::isfinite(beta), "beta", "must be finite");
  CK_CHECK(std::isfinite(k), "k", "must be finite");
}

}  // namespace

CK_BIND(norm) {
  m.def("batch_norm_forward", [](py::object x_, py::object y_, py::object w_, py::object b_, py::object rm_,
                                 py::object rv_, bool training, double momentum, double eps) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    Arr w = opt(w_, "weight"), b = opt(b_, "bias"), rm = opt(rm_, "running_mean", training),
        rv = opt(rv_, "running_var", training);
    int64_t N, C, S;
    ncs(x, 2, N, C, S);
    check_same_dtype(y, x, "output");
    check_size(y, x.size, "output");
    check_opt(w, x, C, "weight");
    check_opt(b, x, C, "bias");
    check_opt(rm, x, C, "running_mean");
    check_opt(rv, x, C, "running_var");
    check_bn_params(training, momentum, eps, rm, rv);
    CK_CHECK(!training || N * S > 1, "input", "expected more than 1 value per channel when training");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      batch_norm_fwd_stub.get<T>()(N, C, S, x.ptr<T>(), p_or_null<T>(w), p_or_null<T>(b), p_or_null<T>(rm),
                                   p_or_null<T>(rv), training, momentum, eps, y.ptr<T>());
    });
  });
  m.def("batch_norm_backward", [](py::object gy_, py::object x_, py::object w_, py::object rm_, py::object rv_,
                                  py::object gx_, py::object gw_, py::object gb_, bool training, double eps) {
    Arr gy = arr(gy_, "grad_output"), x = arr(x_, "input");
    Arr w = opt(w_, "weight"), rm = opt(rm_, "running_mean"), rv = opt(rv_, "running_var");
    Arr gx = opt(gx_, "grad_input", true), gw = opt(gw_, "grad_weight", true), gb = opt(gb_, "grad_bias", true);
    int64_t N, C, S;
    ncs(x, 2, N, C, S);
    check_same_dtype(gy, x, "grad_output");
    check_size(gy, x.size, "grad_output");
    check_opt(gx, x, x.size, "grad_input");
    check_opt(gw, x, C, "grad_weight");
    check_opt(gb, x, C, "grad_bias");
    check_opt(w, x, C, "weight");
    check_opt(rm, x, C, "running_mean");
    check_opt(rv, x, C, "running_var");
    check_bn_params(training, 0.0, eps, rm, rv);
    CK_CHECK(!training || N * S > 1, "input", "expected more than 1 value per channel when training");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      batch_norm_bwd_stub.get<T>()(N, C, S, gy.ptr<T>(), x.ptr<T>(), p_or_null<T>(w), p_or_null<T>(rm),
                                   p_or_null<T>(rv), training, eps, p_or_null<T>(gx), p_or_null<T>(gw),
                                   p_or_null<T>(gb));
    });
  });
  m.def("local_response_norm_forward",
        [](py::object x_, py::object y_, int64_t size, double alpha, double beta, double k) {
          Arr x = arr(x_, "input"), y = arr(y_, "output", true);
          int64_t N, C, S;
          ncs(x, 3, N, C, S);
          check_same_dtype(y, x, "output");
          check_size(y, x.size, "output");
          check_lrn(size, alpha, beta, k);
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            lrn_fwd_stub.get<T>()(N, C, S, size, alpha, beta, k, x.ptr<T>(), y.ptr<T>());
          });
        });
  m.def("local_response_norm_backward",
        [](py::object gy_, py::object x_, py::object gx_, int64_t size, double alpha, double beta, double k) {
          Arr gy = arr(gy_, "grad_output"), x = arr(x_, "input"), gx = arr(gx_, "grad_input", true);
          int64_t N, C, S;
          ncs(x, 3, N, C, S);
          check_same_dtype(gy, x, "grad_output");
          check_size(gy, x.size, "grad_output");
          check_same_dtype(gx, x, "grad_input");
          check_size(gx, x.size, "grad_input");
          check_lrn(size, alpha, beta, k);
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            lrn_bwd_stub.get<T>()(N, C, S, size, alpha, beta, k, gy.ptr<T>(), x.ptr<T>(), gx.ptr<T>());
          });
        });
  m.def("layer_norm_forward", [](py::object x_, py::object y_, py::object w_, py::object b_, int64_t D, double eps) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true), w = opt(w_, "weight"), b = opt(b_, "bias");
    check_float(x, "input");
    CK_CHECK(x.size > 0, "input", "must not be empty");
    CK_CHECK(D >= 1 && x.size % D == 0, "normalized_shape", "does not match the input's trailing dimensions");
    CK_CHECK(std::isfinite(eps) && eps >= 0, "eps", "must be a finite number >= 0");
    check_same_dtype(y, x, "output");
    check_size(y, x.size, "output");
    check_opt(w, x, D, "weight");
    check_opt(b, x, D, "bias");
    const int64_t M = x.size / D;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      layer_norm_fwd_stub.get<T>()(M, D, x.ptr<T>(), p_or_null<T>(w), p_or_null<T>(b), eps, y.ptr<T>());
    });
  });
  m.def("layer_norm_backward", [](py::object gy_, py::object x_, py::object w_, py::object gx_, py::object gw_,
                                  py::object gb_, int64_t D, double eps) {
    Arr gy = arr(gy_, "grad_output"), x = arr(x_, "input"), w = opt(w_, "weight");
    Arr gx = opt(gx_, "grad_input", true), gw = opt(gw_, "grad_weight", true), gb = opt(gb_, "grad_bias", true);
    check_float(x, "input");
    CK_CHECK(x.size > 0, "input", "must not be empty");
    CK_CHECK(D >= 1 && x.size % D == 0, "normalized_shape", "does not match the input's trailing dimensions");
    CK_CHECK(std::isfinite(eps) && eps >= 0, "eps", "must be a finite number >= 0");
    check_same_dtype(gy, x, "grad_output");
    check_size(gy, x.size, "grad_output");
    check_opt(w, x, D, "weight");
    check_opt(gx, x, x.size, "grad_input");
    check_opt(gw, x, D, "grad_weight");
    check_opt(gb, x, D, "grad_bias");
    const int64_t M = x.size / D;
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      layer_norm_bwd_stub.get<T>()(M, D, gy.ptr<T>(), x.ptr<T>(), p_or_null<T>(w), eps, p_or_null<T>(gx),
                                   p_or_null<T>(gw), p_or_null<T>(gb));
    });
  });
}

}  // namespace ck
