// Pooling bindings. Every function takes the input(s) and preallocated C-contiguous outputs
// and recomputes the output size from the parameters (torch's formula), so that the buffer
// sizes checked here are exactly what the kernels touch.
#include "bind/common.h"
#include "ops/pool.h"

namespace ck {
namespace {

// torch's pooling_output_shape (floor division, also of a negative numerator).
int64_t pool_out(int64_t n, int64_t k, int64_t s, int64_t pad, int64_t d, bool ceil_mode) {
  const int64_t num = n + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= n + pad) --out;
  return out;
}

// Validates a 4-d float input and the window parameters; fills NC, H, W, P, Q and the window.
PoolParams window_params(const Arr& x, const char* xname, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
  check_float(x, xname);
  CK_CHECK(x.ndim() == 4, xname, "must be 4-d (N, C, H, W)");
  CK_CHECK(x.size > 0, xname, "must not be empty");
  CK_CHECK(kh >= 1 && kw >= 1, "kernel_size", "must be >= 1");
  CK_CHECK(sh >= 1 && sw >= 1, "stride", "must be >= 1");
  CK_CHECK(dh >= 1 && dw >= 1, "dilation", "must be >= 1");
  CK_CHECK(ph >= 0 && pw >= 0, "padding", "must be >= 0");
  CK_CHECK(ph <= kh / 2 && pw <= kw / 2, "padding", "must be at most half of kernel_size");
  CK_CHECK(kh <= (int64_t(1) << 30) && kw <= (int64_t(1) << 30) && sh <= (int64_t(1) << 30) &&
               sw <= (int64_t(1) << 30) && dh <= (int64_t(1) << 30) && dw <= (int64_t(1) << 30),
           "kernel_size", "parameters too large");
  PoolParams p;
  p.NC = x.dim(0) * x.dim(1);
  p.H = x.dim(2);
  p.W = x.dim(3);
  p.R = kh; p.S = kw; p.sh = sh; p.sw = sw; p.ph = ph; p.pw = pw; p.dh = dh; p.dw = dw;
  p.P = pool_out(p.H, kh, sh, ph, dh, ceil_mode);
  p.Q = pool_out(p.W, kw, sw, pw, dw, ceil_mode);
  CK_CHECK(p.P >= 1 && p.Q >= 1, xname, "too small for the pooling window (empty output)");
  return p;
}

void check_4d_float(const Arr& a, const char* name) {
  check_float(a, name);
  CK_CHECK(a.ndim() == 4, name, "must be 4-d (N, C, H, W)");
  CK_CHECK(a.size > 0, name, "must not be empty");
}

void check_index(const Arr& idx, const Arr& x, int64_t n) {
  CK_CHECK_TYPE(idx.dtype == DType::i64, "indices", "must be int64");
  check_same_place(idx, x, "indices");
  check_size(idx, n, "indices");
}

}  // namespace

CK_BIND(pool) {
  m.def("max_pool2d_forward",
        [](py::object x_, py::object y_, py::object idx_, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
          Arr x = arr(x_, "input"), y = arr(y_, "output", true);
          Arr idx = idx_.is_none() ? Arr{} : arr(idx_, "indices", true);
          PoolParams p = window_params(x, "input", kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode);
          check_same_dtype(y, x, "output");
          check_size(y, p.NC * p.P * p.Q, "output");
          if (idx.data) check_index(idx, x, p.NC * p.P * p.Q);
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            max_pool2d_fwd_stub.get<T>()(p, x.ptr<T>(), y.ptr<T>(), idx.data ? idx.ptr<int64_t>() : nullptr);
          });
        });
  m.def("max_pool2d_backward",
        [](py::object x_, py::object gy_, py::object gx_, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
           int64_t pw, int64_t dh, int64_t dw, bool ceil_mode) {
          Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
          PoolParams p = window_params(x, "input", kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode);
          check_same_dtype(gy, x, "grad_output");
          check_same_dtype(gx, x, "grad_input");
          check_size(gy, p.NC * p.P * p.Q, "grad_output");
          check_size(gx, x.size, "grad_input");
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            max_pool2d_bwd_stub.get<T>()(p, x.ptr<T>(), gy.ptr<T>(), gx.ptr<T>());
          });
        });
  m.def("avg_pool2d_forward",
        [](py::object x_, py::object y_, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
           bool ceil_mode, bool cip, int64_t divisor_override) {
          Arr x = arr(x_, "input"), y = arr(y_, "output", true);
          PoolParams p = window_params(x, "input", kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
          check_same_dtype(y, x, "output");
          check_size(y, p.NC * p.P * p.Q, "output");
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            avg_pool2d_fwd_stub.get<T>()(p, cip, divisor_override, x.ptr<T>(), y.ptr<T>());
          });
        });
  // grad_input's shape is the forward input's shape.
  m.def("avg_pool2d_backward",
        [](py::object gy_, py::object gx_, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
           bool ceil_mode, bool cip, int64_t divisor_override) {
          Arr gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
          PoolParams p = window_params(gx, "grad_input", kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode);
          check_same_dtype(gy, gx, "grad_output");
          check_size(gy, p.NC * p.P * p.Q, "grad_output");
          py::gil_scoped_release nogil;
          dispatch_float(gx, "grad_input", [&](auto t) {
            using T = decltype(t);
            avg_pool2d_bwd_stub.get<T>()(p, cip, divisor_override, gy.ptr<T>(), gx.ptr<T>());
          });
        });
  m.def("adaptive_avg_pool2d_forward", [](py::object x_, py::object y_, int64_t P, int64_t Q) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    check_4d_float(x, "input");
    CK_CHECK(P >= 1 && Q >= 1, "output_size", "must be >= 1");
    check_same_dtype(y, x, "output");
    const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    check_size(y, NC * P * Q, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      adaptive_avg_pool2d_fwd_stub.get<T>()(NC, H, W, P, Q, x.ptr<T>(), y.ptr<T>());
    });
  });
  m.def("adaptive_avg_pool2d_backward", [](py::object gy_, py::object gx_, int64_t P, int64_t Q) {
    Arr gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_4d_float(gx, "grad_input");
    CK_CHECK(P >= 1 && Q >= 1, "output_size", "must be >= 1");
    check_same_dtype(gy, gx, "grad_output");
    const int64_t NC = gx.dim(0) * gx.dim(1), H = gx.dim(2), W = gx.dim(3);
    check_size(gy, NC * P * Q, "grad_output");
    py::gil_scoped_release nogil;
    dispatch_float(gx, "grad_input", [&](auto t) {
      using T = decltype(t);
      adaptive_avg_pool2d_bwd_stub.get<T>()(NC, H, W, P, Q, gy.ptr<T>(), gx.ptr<T>());
    });
  });
  m.def("adaptive_max_pool2d_forward", [](py::object x_, py::object y_, py::object idx_, int64_t P, int64_t Q) {
    Arr x = arr(x_, "input"), y = arr(y_, "output", true);
    Arr idx = idx_.is_none() ? Arr{} : arr(idx_, "indices", true);
    check_4d_float(x, "input");
    CK_CHECK(P >= 1 && Q >= 1, "output_size", "must be >= 1");
    check_same_dtype(y, x, "output");
    const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    check_size(y, NC * P * Q, "output");
    if (idx.data) check_index(idx, x, NC * P * Q);
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      adaptive_max_pool2d_fwd_stub.get<T>()(NC, H, W, P, Q, x.ptr<T>(), y.ptr<T>(),
                                            idx.data ? idx.ptr<int64_t>() : nullptr);
    });
  });
  m.def("adaptive_max_pool2d_backward", [](py::object x_, py::object gy_, py::object gx_, int64_t P, int64_t Q) {
    Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_4d_float(x, "input");
    CK_CHECK(P >= 1 && Q >= 1, "output_size", "must be >= 1");
    check_same_dtype(gy, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
    check_size(gy, NC * P * Q, "grad_output");
    check_size(gx, x.size, "grad_input");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      adaptive_max_pool2d_bwd_stub.get<T>()(NC, H, W, P, Q, x.ptr<T>(), gy.ptr<T>(), gx.ptr<T>());
    });
  });
  // global_{avg,max}_pool2d_forward(x, y): y has N*C elements.
  for (int is_max = 0; is_max < 2; ++is_max) {
    m.def(is_max ? "global_max_pool2d_forward" : "global_avg_pool2d_forward", [is_max](py::object x_, py::object y_) {
      Arr x = arr(x_, "input"), y = arr(y_, "output", true);
      check_4d_float(x, "input");
      check_same_dtype(y, x, "output");
      const int64_t NC = x.dim(0) * x.dim(1), HW = x.dim(2) * x.dim(3);
      check_size(y, NC, "output");
      py::gil_scoped_release nogil;
      dispatch_float(x, "input", [&](auto t) {
        using T = decltype(t);
        (is_max ? global_max_pool_fwd_stub : global_avg_pool_fwd_stub).get<T>()(NC, HW, x.ptr<T>(), y.ptr<T>());
      });
    });
  }
  m.def("global_avg_pool2d_backward", [](py::object gy_, py::object gx_) {
    Arr gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_4d_float(gx, "grad_input");
    check_same_dtype(gy, gx, "grad_output");
    const int64_t NC = gx.dim(0) * gx.dim(1), HW = gx.dim(2) * gx.dim(3);
    check_size(gy, NC, "grad_output");
    py::gil_scoped_release nogil;
    dispatch_float(gx, "grad_input", [&](auto t) {
      using T = decltype(t);
      global_avg_pool_bwd_stub.get<T>()(NC, HW, gy.ptr<T>(), gx.ptr<T>());
    });
  });
  m.def("global_max_pool2d_backward", [](py::object x_, py::object gy_, py::object gx_) {
    Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gx = arr(gx_, "grad_input", true);
    check_4d_float(x, "input");
    check_same_dtype(gy, x, "grad_output");
    check_same_dtype(gx, x, "grad_input");
    const int64_t NC = x.dim(0) * x.dim(1), HW = x.dim(2) * x.dim(3);
    check_size(gy, NC, "grad_output");
    check_size(gx, x.size, "grad_input");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      global_max_pool_bwd_stub.get<T>()(NC, HW, x.ptr<T>(), gy.ptr<T>(), gx.ptr<T>());
    });
  });
}

}  // namespace ck
