#include "bind/common.h"
#include "ops/depthwise.h"

namespace ck {
namespace {

// Geometry from the input / weight shapes and the parameters; checks every size the
// kernels will touch. P and Q come from Python (asymmetric 'same' padding), and are
// re-checked to stay within what the leading pad and the image allow.
DwParams dw_params(const Arr& x, const Arr& w, int64_t P, int64_t Q, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t dh, int64_t dw) {
  check_float(x, "input");
  check_same_dtype(w, x, "weight");
  CK_CHECK(x.ndim() == 4, "input", "must be 4-d (N, C, H, W)");
  CK_CHECK(w.ndim() == 4 && w.dim(1) == 1, "weight", "must be (C*multiplier, 1, R, S)");
  DwParams p;
  p.N = x.dim(0); p.C = x.dim(1); p.H = x.dim(2); p.W = x.dim(3);
  CK_CHECK(p.C >= 1 && p.H >= 1 && p.W >= 1, "input", "must not be empty");
  CK_CHECK(w.dim(0) >= p.C && w.dim(0) % p.C == 0, "weight", "out channels must be a multiple of the input channels");
  p.M = w.dim(0) / p.C; p.R = w.dim(2); p.S = w.dim(3);
  CK_CHECK(p.R >= 1 && p.S >= 1, "weight", "kernel must not be empty");
  CK_CHECK(sh >= 1 && sw >= 1, "stride", "must be >= 1");
  CK_CHECK(dh >= 1 && dw >= 1, "dilation", "must be >= 1");
  CK_CHECK(ph >= 0 && pw >= 0, "padding", "must be >= 0");
  CK_CHECK(P >= 1 && Q >= 1, "output", "would be empty");
  // The last window must start inside the padded extent: (P-1)*s - pad <= H - 1 + (right pad).
  CK_CHECK((P - 1) * sh - ph <= p.H - 1 + ph + dh * (p.R - 1) && (Q - 1) * sw - pw <= p.W - 1 + pw + dw * (p.S - 1),
           "output", "size inconsistent with the input and padding");
  p.P = P; p.Q = Q; p.sh = sh; p.sw = sw; p.ph = ph; p.pw = pw; p.dh = dh; p.dw = dw;
  return p;
}

}  // namespace

CK_BIND(depthwise) {
  m.def("depthwise_forward", [](py::object x_, py::object w_, py::object b_, py::object y_, int64_t P, int64_t Q,
                                int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
    Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
    DwParams p = dw_params(x, w, P, Q, sh, sw, ph, pw, dh, dw);
    if (b.data) {
      check_same_dtype(b, x, "bias");
      check_size(b, p.K(), "bias");
    }
    check_same_dtype(y, x, "output");
    check_size(y, p.N * p.K() * P * Q, "output");
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      dw_fwd_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
    });
  });
  m.def("depthwise_backward_data", [](py::object gy_, py::object w_, py::object gx_, int64_t P, int64_t Q, int64_t sh,
                                      int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
    Arr gx = arr(gx_, "grad_input", true), w = arr(w_, "weight"), gy = arr(gy_, "grad_output");
    DwParams p = dw_params(gx, w, P, Q, sh, sw, ph, pw, dh, dw);
    check_same_dtype(gy, gx, "grad_output");
    check_size(gy, p.N * p.K() * P * Q, "grad_output");
    py::gil_scoped_release nogil;
    dispatch_float(gx, "grad_input", [&](auto t) {
      using T = decltype(t);
      dw_bwd_data_stub.get<T>()(p, gy.ptr<T>(), w.ptr<T>(), gx.ptr<T>());
    });
  });
  m.def("depthwise_backward_weight", [](py::object x_, py::object gy_, py::object gw_, py::object gb_, int64_t P,
                                        int64_t Q, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                        int64_t dw) {
    Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gw = arr(gw_, "grad_weight", true);
    Arr gb = gb_.is_none() ? Arr{} : arr(gb_, "grad_bias", true);
    DwParams p = dw_params(x, gw, P, Q, sh, sw, ph, pw, dh, dw);
    check_same_dtype(gy, x, "grad_output");
    check_size(gy, p.N * p.K() * P * Q, "grad_output");
    if (gb.data) {
      check_same_dtype(gb, x, "grad_bias");
      check_size(gb, p.K(), "grad_bias");
    }
    py::gil_scoped_release nogil;
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      dw_bwd_weight_stub.get<T>()(p, x.ptr<T>(), gy.ptr<T>(), gw.ptr<T>(), gb.data ? gb.ptr<T>() : nullptr);
    });
  });
}

}  // namespace ck
