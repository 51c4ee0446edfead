// Depthwise convolution bindings. Each function takes the inputs and preallocated
// C-contiguous outputs plus stride / padding (leading and trailing) / dilation, recomputes
// the geometry (torch's output-size formula) and checks every buffer's size against it, so
// that a direct call into convkern._C cannot read or write out of bounds.
#include "bind/common.h"
#include "ops/depthwise.h"

namespace ck {
namespace {

constexpr int64_t kMaxParam = int64_t(1) << 30;

// Validates input x (N, C, H, W) and weight (C*M, 1, R, S); fills DwParams.
DwParams dw_params(const Arr& x, const char* xname, const Arr& w, int64_t sh, int64_t sw, int64_t ph, int64_t ph_hi,
                   int64_t pw, int64_t pw_hi, int64_t dh, int64_t dw) {
  check_float(x, xname);
  check_same_dtype(w, x, "weight");
  CK_CHECK(x.ndim() == 4, xname, "must be 4-d (N, C, H, W)");
  CK_CHECK(w.ndim() == 4, "weight", "must be 4-d (C*M, 1, R, S)");
  CK_CHECK(x.size > 0, xname, "must not be empty");
  CK_CHECK(w.size > 0, "weight", "must not be empty");
  CK_CHECK(w.dim(1) == 1, "weight", "dim 1 must be 1 for a depthwise convolution");
  CK_CHECK(w.dim(0) % x.dim(1) == 0, "weight", "dim 0 must be a multiple of the input channels");
  CK_CHECK(sh >= 1 && sw >= 1 && sh <= kMaxParam && sw <= kMaxParam, "stride", "must be in [1, 2^30]");
  CK_CHECK(dh >= 1 && dw >= 1 && dh <= kMaxParam && dw <= kMaxParam, "dilation", "must be in [1, 2^30]");
  CK_CHECK(ph >= 0 && pw >= 0 && ph_hi >= 0 && pw_hi >= 0 && ph <= kMaxParam && pw <= kMaxParam &&
               ph_hi <= kMaxParam && pw_hi <= kMaxParam,
           "padding", "must be in [0, 2^30]");
  DwParams p;
  p.N = x.dim(0); p.C = x.dim(1); p.H = x.dim(2); p.W = x.dim(3);
  p.M = w.dim(0) / p.C; p.R = w.dim(2); p.S = w.dim(3);
  CK_CHECK(p.H <= kMaxParam && p.W <= kMaxParam && p.R <= kMaxParam && p.S <= kMaxParam, xname, "sizes too large");
  p.sh = sh; p.sw = sw; p.ph = ph; p.pw = pw; p.dh = dh; p.dw = dw;
  const int64_t nh = p.H + ph + ph_hi - dh * (p.R - 1) - 1, nw = p.W + pw + pw_hi - dw * (p.S - 1) - 1;
  CK_CHECK(nh >= 0 && nw >= 0, xname, "smaller than the dilated kernel (empty output)");
  p.P = nh / sh + 1;
  p.Q = nw / sw + 1;
  return p;
}

}  // namespace

CK_BIND(depthwise) {
  // depthwise_conv2d_forward(x, w, b, y, sh, sw, ph, ph_hi, pw, pw_hi, dh, dw, relu=False,
  // relu_max=inf): y = depthwise_conv2d(x, w) + b, then, when relu, clamped to [0, relu_max] if
  // the kernel can fuse it (the CPU kernel, on each plane while it is in cache). Returns whether
  // the relu was applied (False: the caller applies it).
  m.def("depthwise_conv2d_forward",
        [](py::object x_, py::object w_, py::object b_, py::object y_, int64_t sh, int64_t sw, int64_t ph, int64_t ph_hi,
           int64_t pw, int64_t pw_hi, int64_t dh, int64_t dw, bool relu, double relu_max) {
          check_relu_max(relu_max);
          Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
          DwParams p = dw_params(x, "input", w, sh, sw, ph, ph_hi, pw, pw_hi, dh, dw);
          p.relu = relu && !x.on_device();
          p.relu_max = relu_max;
          if (b.data) {
            check_same_dtype(b, x, "bias");
            check_size(b, p.C * p.M, "bias");
          }
          check_same_dtype(y, x, "output");
          check_size(y, p.N * p.C * p.M * p.P * p.Q, "output");
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            depthwise_fwd_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
          });
          return p.relu;
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("ph_hi"), py::arg("pw"), py::arg("pw_hi"), py::arg("dh"), py::arg("dw"),
        py::arg("relu") = false, py::arg("relu_max") = std::numeric_limits<double>::infinity());
  // grad_input has the forward input's shape (N, C, H, W).
  m.def("depthwise_conv2d_backward_input",
        [](py::object gy_, py::object w_, py::object gx_, int64_t sh, int64_t sw, int64_t ph, int64_t ph_hi, int64_t pw,
           int64_t pw_hi, int64_t dh, int64_t dw) {
          Arr gy = arr(gy_, "grad_output"), w = arr(w_, "weight"), gx = arr(gx_, "grad_input", true);
          DwParams p = dw_params(gx, "grad_input", w, sh, sw, ph, ph_hi, pw, pw_hi, dh, dw);
          check_same_dtype(gy, gx, "grad_output");
          check_size(gy, p.N * p.C * p.M * p.P * p.Q, "grad_output");
          py::gil_scoped_release nogil;
          dispatch_float(gx, "grad_input", [&](auto t) {
            using T = decltype(t);
            depthwise_bwd_input_stub.get<T>()(p, gy.ptr<T>(), w.ptr<T>(), gx.ptr<T>());
          });
        });
  // grad_weight has the weight's shape; grad_bias (or None) C*M elements.
  m.def("depthwise_conv2d_backward_weight",
        [](py::object x_, py::object gy_, py::object gw_, py::object gb_, int64_t sh, int64_t sw, int64_t ph,
           int64_t ph_hi, int64_t pw, int64_t pw_hi, int64_t dh, int64_t dw) {
          Arr x = arr(x_, "input"), gy = arr(gy_, "grad_output"), gw = arr(gw_, "grad_weight", true);
          Arr gb = gb_.is_none() ? Arr{} : arr(gb_, "grad_bias", true);
          DwParams p = dw_params(x, "input", gw, sh, sw, ph, ph_hi, pw, pw_hi, dh, dw);
          check_same_dtype(gy, x, "grad_output");
          check_size(gy, p.N * p.C * p.M * p.P * p.Q, "grad_output");
          if (gb.data) {
            check_same_dtype(gb, x, "grad_bias");
            check_size(gb, p.C * p.M, "grad_bias");
          }
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            depthwise_bwd_weight_stub.get<T>()(p, x.ptr<T>(), gy.ptr<T>(), gw.ptr<T>(),
                                               gb.data ? gb.ptr<T>() : nullptr);
          });
        });
}

}  // namespace ck
