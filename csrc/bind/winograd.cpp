#include "bind/common.h"
#include "ops/winograd.h"

namespace ck {
namespace {

// Values of the transformed filters of w (K, C, 3, 3) under the active ISA (a size query: no
// kernel runs).
int64_t transform_size(const Arr& w) {
  check_float(w, "weight");
  CK_CHECK(w.ndim() == 4 && w.dim(2) == 3 && w.dim(3) == 3, "weight", "must have shape (K, C, 3, 3)");
  CK_CHECK(w.dim(0) >= 1 && w.dim(1) >= 1, "weight", "sizes must be >= 1");
  int64_t n = 0;
  dispatch_float(w, "weight",
                 [&](auto t) { n = winograd_transform_stub.get<decltype(t)>()(w.dim(0), w.dim(1), nullptr, nullptr); });
  return n;
}

// The ConvParams of a 3x3 convolution of x (N, C, H, W) with K filters and leading padding
// (ph, pw), its output (or grad_output) `out` (N, K, P, Q) giving P and Q; checks the sizes.
ConvParams params_3x3(const Arr& x, const Arr& out, const char* out_name, int64_t K, int64_t ph, int64_t pw) {
  CK_CHECK(ph >= 0 && pw >= 0, "padding", "must be >= 0");
  for (int i = 1; i < 4; ++i) {
    CK_CHECK(x.dim(i) >= 1, "input", "sizes must be >= 1");
    CK_CHECK(out.dim(i) >= 1, out_name, "sizes must be >= 1");
  }
  ConvParams p;
  p.N = x.dim(0); p.C = x.dim(1); p.H = x.dim(2); p.W = x.dim(3);
  p.K = K; p.R = 3; p.S = 3;
  p.P = out.dim(2); p.Q = out.dim(3);
  p.pad[1] = ph;
  p.pad[2] = pw;
  return p;
}

}  // namespace

CK_BIND(winograd) {
  // conv_winograd_forward(x (N,C,H,W), w (K,C,3,3), b or None, y (N,K,P,Q), pad_h, pad_w,
  // relu=False, residual=None, u=None, u_isa=-1, relu_max=inf): y = conv2d(x, w, b, stride 1,
  // leading padding (pad_h, pad_w)); P, Q taken from y. Then + residual (None, or an array of y's
  // shape) and, when relu, clamped to [0, relu_max], if the kernel can fuse them (the CPU
  // kernel does). u: the filters as winograd_transform wrote them under ISA u_isa (used when
  // that is still the active ISA and the array has the right size; None: transformed per call).
  // Returns whether the residual and relu were applied (False: the caller applies them).
  // flipped_weight: w is (C, K, 3, 3), another layer's weight, used flipped and transposed (the
  // convolution is then that layer's grad_input); CPU only, without u.
  m.def(
      "conv_winograd_forward",
      [](py::object x_, py::object w_, py::object b_, py::object y_, int64_t ph, int64_t pw, bool relu,
         py::object res_, py::object u_, int u_isa, double relu_max, bool flipped) {
        check_relu_max(relu_max);
        Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
        Arr res = arr_opt(res_, "residual"), u = arr_opt(u_, "u");
        check_float(x, "input");
        check_same_dtype(w, x, "weight");
        check_same_dtype(y, x, "output");
        CK_CHECK(x.ndim() == 4, "input", "must be 4-d (N, C, H, W)");
        CK_CHECK(w.ndim() == 4 && w.dim(2) == 3 && w.dim(3) == 3, "weight", "must have shape (K, C, 3, 3)");
        CK_CHECK(y.ndim() == 4, "output", "must be 4-d (N, K, P, Q)");
        const int wc = flipped ? 0 : 1, wk = flipped ? 1 : 0;  // w's input- and output-channel dims
        CK_CHECK(w.dim(wc) == x.dim(1), "weight", flipped ? "dim 0 must equal the input channels (flipped_weight)"
                                                          : "dim 1 must equal the input channels");
        CK_CHECK(y.dim(0) == x.dim(0) && y.dim(1) == w.dim(wk), "output", "must have shape (N, K, P, Q)");
        CK_CHECK(!flipped || (!u.data && !x.on_device()), "flipped_weight",
                 "needs host (NumPy) arrays and no transformed filters (u)");
        CK_CHECK(w.dim(0) >= 1 && w.dim(1) >= 1, "weight", "sizes must be >= 1");
        const ConvParams p = params_3x3(x, y, "output", w.dim(wk), ph, pw);
        if (b.data) {
          check_same_dtype(b, x, "bias");
          check_size(b, p.K, "bias");
        }
        if (u.data) check_same_dtype(u, x, "u");
        check_residual(res, x, y);
        const bool ex = !x.on_device();  // the CPU kernel takes the options
        const int64_t u_size = u.data && ex ? transform_size(w) : -1;
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          if (!ex) {
            winograd3x3_fwd_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
            return;
          }
          WinogradOpts<T> o;
          o.flipped = flipped;
          o.relu = relu;
          o.relu_max = T(relu_max);
          o.residual = res.data ? res.ptr<T>() : nullptr;
          if (u.data && u_isa == int(active_isa()) && !u.on_device() && u.size == u_size) o.u = u.ptr<T>();
          winograd3x3_fwd_ex_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>(), o);
        });
        return ex;
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("pad_h"), py::arg("pad_w"),
      py::arg("relu") = false, py::arg("residual") = py::none(), py::arg("u") = py::none(), py::arg("u_isa") = -1,
      py::arg("relu_max") = std::numeric_limits<double>::infinity(), py::arg("flipped_weight") = false);

  // conv_winograd_backward_weight(x (N,C,H,W), dy (N,K,P,Q), dw (K,C,3,3), db (K,) or None,
  // pad_h, pad_w): dw (and db) overwritten with the weight (and bias) gradient of
  // conv_winograd_forward with the same padding (P, Q taken from dy). Host arrays only.
  m.def(
      "conv_winograd_backward_weight",
      [](py::object x_, py::object dy_, py::object dw_, py::object db_, int64_t ph, int64_t pw) {
        Arr x = arr(x_, "input"), dy = arr(dy_, "grad_output"), dw = arr(dw_, "grad_weight", true);
        Arr db = arr_opt(db_, "grad_bias", true);
        check_float(x, "input");
        check_same_dtype(dy, x, "grad_output");
        check_same_dtype(dw, x, "grad_weight");
        CK_CHECK(!x.on_device() && !dy.on_device() && !dw.on_device() && !(db.data && db.on_device()), "input",
                 "must be a host (NumPy) array, as must grad_output, grad_weight and grad_bias");
        CK_CHECK(x.ndim() == 4, "input", "must be 4-d (N, C, H, W)");
        CK_CHECK(dy.ndim() == 4, "grad_output", "must be 4-d (N, K, P, Q)");
        CK_CHECK(dw.ndim() == 4 && dw.dim(2) == 3 && dw.dim(3) == 3, "grad_weight", "must have shape (K, C, 3, 3)");
        CK_CHECK(dw.dim(1) == x.dim(1), "grad_weight", "dim 1 must equal the input channels");
        CK_CHECK(dy.dim(0) == x.dim(0) && dy.dim(1) == dw.dim(0), "grad_output", "must have shape (N, K, P, Q)");
        CK_CHECK(x.dim(0) >= 1, "input", "sizes must be >= 1");
        CK_CHECK(dw.dim(0) >= 1 && dw.dim(1) >= 1, "grad_weight", "sizes must be >= 1");
        const ConvParams p = params_3x3(x, dy, "grad_output", dw.dim(0), ph, pw);
        if (db.data) {
          check_same_dtype(db, x, "grad_bias");
          check_size(db, p.K, "grad_bias");
        }
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          winograd3x3_bwd_weight_stub.get<T>()(p, x.ptr<T>(), dy.ptr<T>(), dw.ptr<T>(),
                                                db.data ? db.ptr<T>() : nullptr);
        });
      },
      py::arg("input"), py::arg("grad_output"), py::arg("grad_weight"), py::arg("grad_bias"), py::arg("pad_h"),
      py::arg("pad_w"));

  // winograd_transform_size(weight (K, C, 3, 3)) -> (values, isa): the size of the transformed
  // filters under the active ISA, and that ISA's index.
  m.def(
      "winograd_transform_size",
      [](py::object w_) { return py::make_tuple(transform_size(arr(w_, "weight")), int(active_isa())); },
      py::arg("weight"));

  // winograd_transform(weight (K, C, 3, 3), u): u (1-d, winograd_transform_size's values, the
  // weight's dtype) = the filters transformed for conv_winograd_forward under the active ISA.
  m.def(
      "winograd_transform",
      [](py::object w_, py::object u_) {
        Arr w = arr(w_, "weight"), u = arr(u_, "u", true);
        const int64_t n = transform_size(w);
        check_same_dtype(u, w, "u");
        CK_CHECK(u.ndim() == 1, "u", "must be 1-d");
        CK_CHECK(!w.on_device() && !u.on_device(), "u", "must be a host (NumPy) array");
        CK_CHECK(u.size == n, "u", "has the wrong size (see winograd_transform_size)");
        py::gil_scoped_release nogil;
        dispatch_float(w, "weight", [&](auto t) {
          using T = decltype(t);
          winograd_transform_stub.get<T>()(w.dim(0), w.dim(1), w.ptr<T>(), u.ptr<T>());
        });
      },
      py::arg("weight"), py::arg("u"));
}

}  // namespace ck
