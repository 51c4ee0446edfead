#include "bind/common.h"
#include "ops/winograd.h"

namespace ck {

CK_BIND(winograd) {
  // conv_winograd_forward(x (N,C,H,W), w (K,C,3,3), b or None, y (N,K,P,Q), pad_h, pad_w):
  // y = conv2d(x, w, b, stride 1, leading padding (pad_h, pad_w)); P, Q taken from y.
  m.def(
      "conv_winograd_forward",
      [](py::object x_, py::object w_, py::object b_, py::object y_, int64_t ph, int64_t pw) {
        Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
        check_float(x, "input");
        check_same_dtype(w, x, "weight");
        check_same_dtype(y, x, "output");
        CK_CHECK(x.ndim() == 4, "input", "must be 4-d (N, C, H, W)");
        CK_CHECK(w.ndim() == 4 && w.dim(2) == 3 && w.dim(3) == 3, "weight", "must have shape (K, C, 3, 3)");
        CK_CHECK(y.ndim() == 4, "output", "must be 4-d (N, K, P, Q)");
        CK_CHECK(w.dim(1) == x.dim(1), "weight", "dim 1 must equal the input channels");
        CK_CHECK(y.dim(0) == x.dim(0) && y.dim(1) == w.dim(0), "output", "must have shape (N, K, P, Q)");
        CK_CHECK(ph >= 0 && pw >= 0, "padding", "must be >= 0");
        for (int i = 1; i < 4; ++i) {
          CK_CHECK(x.dim(i) >= 1, "input", "sizes must be >= 1");
          CK_CHECK(y.dim(i) >= 1, "output", "sizes must be >= 1");
        }
        CK_CHECK(w.dim(0) >= 1, "weight", "sizes must be >= 1");
        ConvParams p;
        p.N = x.dim(0); p.C = x.dim(1); p.H = x.dim(2); p.W = x.dim(3);
        p.K = w.dim(0); p.R = 3; p.S = 3;
        p.P = y.dim(2); p.Q = y.dim(3);
        p.pad[1] = ph;
        p.pad[2] = pw;
        if (b.data) {
          check_same_dtype(b, x, "bias");
          check_size(b, p.K, "bias");
        }
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          winograd3x3_fwd_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
        });
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("pad_h"), py::arg("pad_w"));
}

}  // namespace ck
