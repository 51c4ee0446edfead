#include "bind/common.h"
#include "ops/gemm.h"

namespace ck {

CK_BIND(gemm) {
  // gemm(a, b, c, alpha, beta, trans_a, trans_b): c = alpha * op(a) @ op(b) + beta * c,
  // op(x) = x.T when trans_x. All arrays 2-d, C-contiguous, same float dtype.
  m.def(
      "gemm",
      [](py::object a_, py::object b_, py::object c_, double alpha, double beta, bool ta, bool tb) {
        Arr a = arr(a_, "a"), b = arr(b_, "b"), c = arr(c_, "c", true);
        check_float(a, "a");
        check_same_dtype(b, a, "b");
        check_same_dtype(c, a, "c");
        CK_CHECK(a.ndim() == 2, "a", "must be 2-d");
        CK_CHECK(b.ndim() == 2, "b", "must be 2-d");
        CK_CHECK(c.ndim() == 2, "c", "must be 2-d");
        const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
        const int64_t Kb = tb ? b.dim(1) : b.dim(0), N = tb ? b.dim(0) : b.dim(1);
        CK_CHECK(K == Kb, "b", "inner dimensions differ");
        CK_CHECK(c.dim(0) == M && c.dim(1) == N, "c", "shape must be (M, N)");
        const int64_t rsa = ta ? 1 : K, csa = ta ? M : 1;
        const int64_t rsb = tb ? 1 : N, csb = tb ? K : 1;
        py::gil_scoped_release nogil;
        dispatch_float(a, "a", [&](auto t) {
          using T = decltype(t);
          gemm_stub.get<T>()(M, N, K, T(alpha), a.ptr<T>(), rsa, csa, b.ptr<T>(), rsb, csb, T(beta),
                             c.ptr<T>(), N, 1);
        });
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
      py::arg("trans_a") = false, py::arg("trans_b") = false);
  m.def("gemm_tile", [](int isa, bool f64) {
    CK_CHECK(isa >= 0 && isa < kNumIsa, "isa", "unknown ISA");
    int64_t t[3];
    if (f64) gemm_tile_stub.get<double>(Isa(isa))(t);
    else gemm_tile_stub.get<float>(Isa(isa))(t);
    return py::make_tuple(t[0], t[1], t[2]);
  });
}

}  // namespace ck
