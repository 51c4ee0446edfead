// Channel-blocked (NCHW16c) convolution bindings (ops/blocked.h), CPU only. Sizes are given
// explicitly and every buffer is checked against them, so that a direct call into convkern._C
// cannot read or write out of bounds; convkern._ops.blocked checks the shapes.
#include <algorithm>
#include <tuple>
#include <utility>

#include "bind/common.h"
#include "ops/blocked.h"

namespace ck {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

void check_host(const Arr& a, const char* name) {
  CK_CHECK_TYPE(!a.data || !a.on_device(), name, "channel-blocked kernels run on the CPU: expected a numpy.ndarray");
}

void check_dim(int64_t v, const char* name) {
  CK_CHECK(v >= 1 && v <= kMaxDim, name, "must be in [1, 2^40]");
}

// c channels as a blocked tensor holds them: whole blocks
int64_t padded(int64_t c) { return (c + kBlk - 1) / kBlk * kBlk; }

template <class T>
py::array pack_1x1(const Arr& w, int64_t K, int64_t C, bool rows, bool out_blk) {
  const int64_t n = blk_pack_1x1_stub.get<T>()(C, K, nullptr, nullptr, rows, out_blk);
  py::array_t<T> out(py::ssize_t{n});
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    blk_pack_1x1_stub.get<T>()(C, K, w.ptr<T>(), dst, rows, out_blk);
  }
  return out;
}

// The arrays of a window kernel (blk_conv_direct, blk_depthwise): x, w, bias, y of one float
// dtype on the host.
struct WindowArrays {
  Arr x, w, b, y;
};
WindowArrays window_arrays(py::object x_, py::object w_, py::object b_, py::object y_, double relu_max) {
  check_relu_max(relu_max);
  WindowArrays a{arr(x_, "input"), arr(w_, "weight"), arr_opt(b_, "bias"), arr(y_, "output", true)};
  check_float(a.x, "input");
  for (const Arr* v : {&a.x, &a.w, &a.b, &a.y}) check_host(*v, "input");
  check_same_dtype(a.w, a.x, "weight");
  check_same_dtype(a.y, a.x, "output");
  return a;
}

// Strides, dilations and pads in range, and the index arithmetic of P x Q outputs of an R x S
// window too (any P and Q: taps outside the input are skipped).
void check_window(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t P, int64_t Q,
                  int64_t R, int64_t S) {
  for (int64_t v : {sh, sw, dh, dw}) CK_CHECK(v >= 1 && v <= kMaxDim, "stride", "stride and dilation must be >= 1");
  CK_CHECK(ph >= 0 && pw >= 0 && ph <= kMaxDim && pw <= kMaxDim, "padding", "must be >= 0");
  CK_CHECK(double(P) * double(sh) + double(R) * double(dh) <= double(kMaxDim) &&
               double(Q) * double(sw) + double(S) * double(dw) <= double(kMaxDim),
           "stride", "stride, dilation and output size too large");
}

// The last checks of a window kernel: y holds ysize values and is not x, the bias nb.
void check_window_out(const WindowArrays& a, int64_t ysize, int64_t nb) {
  check_size(a.y, ysize, "output");
  CK_CHECK(a.x.data != a.y.data, "output", "may not be the input array");
  if (a.b.data) {
    check_same_dtype(a.b, a.x, "bias");
    check_size(a.b, nb, "bias");
  }
}

// A channel-blocked array (C/16, N, H, W, 16) of sizes in range.
void check_blocked(const Arr& x, const char* name) {
  CK_CHECK(x.ndim() == 5 && x.dim(4) == kBlk, name, "must be channel-blocked (C/16, N, H, W, 16)");
  for (int64_t v : {x.dim(0), x.dim(1), x.dim(2), x.dim(3)}) check_dim(v, name);
}

// A float channel-blocked input and an output of its dtype, both on the host.
std::pair<Arr, Arr> blocked_in_out(py::object x_, py::object y_) {
  Arr x = arr(x_, "input"), y = arr(y_, "output", true);
  check_float(x, "input");
  check_host(x, "input");
  check_host(y, "output");
  check_same_dtype(y, x, "output");
  check_blocked(x, "input");
  return {x, y};
}

// A window kernel's geometry arguments.
struct WindowGeom {
  int64_t sh, sw, ph, pw, P, Q, dh, dw;
  bool relu;
  double relu_max;
};

// Registers a window kernel (blk_conv_direct, blk_depthwise), whose arguments are (input,
// weight, bias, output, sh, sw, ph, pw, P, Q, dh, dw, relu, relu_max): prepare(a, g) checks the
// arrays' shapes and returns (the kernel's parameters, the output's size, the bias's size);
// then check_window_out, and kernel(T{}, params, a) with the GIL released by the kernel lambda.
template <class Prepare, class Kernel>
void def_window(py::module_& m, const char* name, Prepare prepare, Kernel kernel) {
  m.def(name,
        [prepare, kernel](py::object x_, py::object w_, py::object b_, py::object y_, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t P, int64_t Q, int64_t dh, int64_t dw, bool relu,
                          double relu_max) {
          const WindowArrays a = window_arrays(x_, w_, b_, y_, relu_max);
          const auto r = prepare(a, WindowGeom{sh, sw, ph, pw, P, Q, dh, dw, relu, relu_max});
          check_window_out(a, std::get<1>(r), std::get<2>(r));
          dispatch_float(a.x, "input", [&](auto t) { kernel(t, std::get<0>(r), a); });
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("sh"), py::arg("sw"),
        py::arg("ph"), py::arg("pw"), py::arg("P"), py::arg("Q"), py::arg("dh"), py::arg("dw"), py::arg("relu") = false,
        py::arg("relu_max") = std::numeric_limits<double>::infinity());
}

}  // namespace

CK_BIND(blocked) {
  // blk_rows(K, P, f64): whether blk_conv1x1 from a blocked input into an NCHW output of K
  // channels and P positions runs with rows = True (this instruction set's tile decides).
  m.def("blk_rows", [](int64_t K, int64_t P, bool f64) {
    check_dim(K, "K");
    check_dim(P, "P");
    py::gil_scoped_release nogil;  // (a few operations; released as every stub call is)
    return f64 ? blk_rows_stub.get<double>()(K, P) : blk_rows_stub.get<float>()(K, P);
  }, py::arg("K"), py::arg("P"), py::arg("f64") = false);
  // blk_pack_1x1(weight, rows=False, out_blk=False): the weight (K, C) or (K, C, 1, 1) packed as
  // blk_conv1x1 reads it in that orientation, for a blocked output or not (for this
  // instruction set).
  m.def("blk_pack_1x1", [](py::object w_, bool rows, bool out_blk) -> py::array {
    Arr w = arr(w_, "weight");
    check_float(w, "weight");
    check_host(w, "weight");
    CK_CHECK(w.ndim() == 2 || (w.ndim() == 4 && w.dim(2) == 1 && w.dim(3) == 1), "weight",
             "must be (K, C) or (K, C, 1, 1)");
    const int64_t K = w.dim(0), C = w.dim(1);
    check_dim(K, "weight");
    check_dim(C, "weight");
    CK_CHECK(!rows || !out_blk, "rows", "needs an NCHW output");
    return w.dtype == DType::f32 ? pack_1x1<float>(w, K, C, rows, out_blk) : pack_1x1<double>(w, K, C, rows, out_blk);
  }, py::arg("weight"), py::arg("rows") = false, py::arg("out_blk") = false);
  // blk_conv1x1(x, wpk, bias, residual, y, N, C, K, P, in_blk, out_blk, relu, relu_max, rows):
  // y = conv1x1(x, w) + bias + residual, clamped to [0, relu_max] when relu; x (C channels)
  // blocked or NCHW, y and residual (K channels) blocked or NCHW (blocked: whole blocks of 16,
  // the last one's padding lanes included); wpk from blk_pack_1x1(w, rows, out_blk) (rows =
  // True: a blocked input and an NCHW output only).
  m.def("blk_conv1x1",
        [](py::object x_, py::object wpk_, py::object b_, py::object res_, py::object y_, int64_t N, int64_t C,
           int64_t K, int64_t P, bool in_blk, bool out_blk, bool relu, double relu_max, bool rows) {
          check_relu_max(relu_max);
          Arr x = arr(x_, "input"), wpk = arr(wpk_, "weight"), b = arr_opt(b_, "bias"), res = arr_opt(res_, "residual"),
              y = arr(y_, "output", true);
          check_float(x, "input");
          for (const Arr* a : {&x, &wpk, &b, &res, &y}) check_host(*a, "input");
          check_same_dtype(wpk, x, "weight");
          check_same_dtype(y, x, "output");
          check_dim(N, "N");
          check_dim(C, "C");
          check_dim(K, "K");
          check_dim(P, "P");
          CK_CHECK(double(N) * double(padded(std::max(C, K))) * double(P) <= double(kMaxDim), "input", "too large");
          CK_CHECK(!rows || (in_blk && !out_blk), "rows", "needs a channel-blocked input and an NCHW output");
          const int64_t XC = in_blk ? padded(C) : C, YK = out_blk ? padded(K) : K;  // channels held
          check_size(x, N * XC * P, "input");
          check_size(y, N * YK * P, "output");
          CK_CHECK(x.data != y.data, "output", "may not be the input array");
          if (b.data) {
            check_same_dtype(b, x, "bias");
            check_size(b, K, "bias");
          }
          if (res.data) {
            check_same_dtype(res, x, "residual");
            check_size(res, N * YK * P, "residual");
            CK_CHECK(res.data != y.data, "residual", "may not be the output array");
          }
          BlkConv1x1 q;
          q.N = N, q.C = C, q.K = K, q.P = P, q.in_blk = in_blk, q.out_blk = out_blk, q.relu = relu;
          q.relu_max = relu_max;
          q.rows = rows;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            py::gil_scoped_release nogil;  // (the size check below throws with it released: fine)
            check_size(wpk, blk_pack_1x1_stub.get<T>()(C, K, nullptr, nullptr, rows, out_blk), "weight");
            blk_conv1x1_stub.get<T>()(q, x.ptr<T>(), wpk.ptr<T>(), b.data ? b.ptr<T>() : nullptr,
                                      res.data ? res.ptr<T>() : nullptr, y.ptr<T>());
          });
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("residual"), py::arg("output"), py::arg("N"),
        py::arg("C"), py::arg("K"), py::arg("P"), py::arg("in_blk"), py::arg("out_blk"), py::arg("relu") = false,
        py::arg("relu_max") = std::numeric_limits<double>::infinity(), py::arg("rows") = false);
  // blk_conv_direct(x, w, bias, y, sh, sw, ph, pw, P, Q, dh, dw, relu, relu_max): x (N, C, H, W)
  // NCHW, w (K, C, R, S), bias (K), y (ceil(K/16), N, P, Q, 16); ph, pw the leading pads.
  def_window(
      m, "blk_conv_direct",
      [](const WindowArrays& a, const WindowGeom& g) {
        const Arr &x = a.x, &w = a.w;
        CK_CHECK(x.ndim() == 4, "input", "must be (N, C, H, W)");
        CK_CHECK(w.ndim() == 4 && w.dim(1) == x.dim(1), "weight", "must be (K, C, R, S) with the input's C");
        for (int64_t v : {x.dim(0), x.dim(1), x.dim(2), x.dim(3), g.P, g.Q}) check_dim(v, "input");
        for (int64_t v : {w.dim(0), w.dim(2), w.dim(3)}) check_dim(v, "weight");
        check_window(g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.P, g.Q, w.dim(2), w.dim(3));
        BlkConvDirect p;
        p.N = x.dim(0), p.C = x.dim(1), p.H = x.dim(2), p.W = x.dim(3), p.K = w.dim(0), p.R = w.dim(2);
        p.S = w.dim(3), p.P = g.P, p.Q = g.Q, p.sh = g.sh, p.sw = g.sw, p.ph = g.ph, p.pw = g.pw, p.dh = g.dh;
        p.dw = g.dw, p.relu = g.relu, p.relu_max = g.relu_max;
        CK_CHECK(double(p.N) * double(padded(p.K)) * double(p.P) * double(p.Q) <= double(kMaxDim) &&
                     double(p.K) * double(p.C) * double(p.R) * double(p.S) <= double(kMaxDim),
                 "output", "too large");
        return std::make_tuple(p, p.N * padded(p.K) * p.P * p.Q, p.K);
      },
      [](auto t, const BlkConvDirect& p, const WindowArrays& a) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        blk_conv_direct_stub.get<T>()(p, a.x.ptr<T>(), a.w.ptr<T>(), a.b.data ? a.b.ptr<T>() : nullptr,
                                      a.y.ptr<T>());
      });
  // blk_subsample(x, y, sh, sw): every sh-th row and sw-th column of a blocked x (CB, N, H, W,
  // 16) into y (CB, N, ceil(H/sh), ceil(W/sw), 16) (a strided 1x1 layer's input).
  m.def("blk_subsample", [](py::object x_, py::object y_, int64_t sh, int64_t sw) {
    const auto io = blocked_in_out(x_, y_);
    const Arr &x = io.first, &y = io.second;
    CK_CHECK(sh >= 1 && sw >= 1 && sh <= kMaxDim && sw <= kMaxDim, "stride", "must be >= 1");
    const int64_t H = x.dim(2), W = x.dim(3), P = (H - 1) / sh + 1, Q = (W - 1) / sw + 1;
    check_size(y, x.dim(0) * x.dim(1) * P * Q * kBlk, "output");
    CK_CHECK(x.data != y.data, "output", "may not be the input array");
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      py::gil_scoped_release nogil;
      blk_subsample_stub.get<T>()(x.dim(0) * x.dim(1), H, W, P, Q, sh, sw, x.ptr<T>(), y.ptr<T>());
    });
  }, py::arg("input"), py::arg("output"), py::arg("sh"), py::arg("sw"));
  // blk_gap(x, y, C): global average pooling of a blocked x (CB, N, H, W, 16) of C channels
  // into y (N, C) (any shape of N*C values: (N, C, 1, 1)).
  m.def("blk_gap", [](py::object x_, py::object y_, int64_t C) {
    const auto io = blocked_in_out(x_, y_);
    const Arr &x = io.first, &y = io.second;
    CK_CHECK(C >= 1 && padded(C) == x.dim(0) * kBlk, "C", "must be the channels the input's blocks hold");
    check_size(y, x.dim(1) * C, "output");
    dispatch_float(x, "input", [&](auto t) {
      using T = decltype(t);
      py::gil_scoped_release nogil;
      blk_gap_stub.get<T>()(x.dim(0), x.dim(1), x.dim(2) * x.dim(3), C, x.ptr<T>(), y.ptr<T>());
    });
  }, py::arg("input"), py::arg("output"), py::arg("C"));
  // blk_depthwise(x, w, bias, y, sh, sw, ph, pw, P, Q, dh, dw, relu, relu_max): x (ceil(C/16), N,
  // H, W, 16), w (C, 1, R, S), bias (C), y (ceil(C/16), N, P, Q, 16); ph, pw the leading pads (the
  // trailing ones follow from P and Q).
  def_window(
      m, "blk_depthwise",
      [](const WindowArrays& a, const WindowGeom& g) {
        const Arr &x = a.x, &w = a.w;
        check_blocked(x, "input");
        CK_CHECK(w.ndim() == 4 && w.dim(1) == 1, "weight", "must be (C, 1, R, S)");
        CK_CHECK(w.dim(0) >= 1 && padded(w.dim(0)) == x.dim(0) * kBlk, "weight",
                 "dim 0 must be the input's channels (its blocks' real lanes)");
        for (int64_t v : {w.dim(2), w.dim(3), g.P, g.Q}) check_dim(v, "input");
        check_window(g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.P, g.Q, w.dim(2), w.dim(3));
        DwParams p;
        p.N = x.dim(1), p.C = w.dim(0), p.M = 1, p.H = x.dim(2), p.W = x.dim(3), p.P = g.P, p.Q = g.Q;
        p.R = w.dim(2), p.S = w.dim(3), p.sh = g.sh, p.sw = g.sw, p.ph = g.ph, p.pw = g.pw, p.dh = g.dh;
        p.dw = g.dw, p.relu = g.relu, p.relu_max = g.relu_max;
        CK_CHECK(double(p.N) * double(x.dim(0) * kBlk) * double(p.P) * double(p.Q) <= double(kMaxDim), "output",
                 "too large");
        return std::make_tuple(p, p.N * x.dim(0) * kBlk * p.P * p.Q, p.C);
      },
      [](auto t, const DwParams& p, const WindowArrays& a) {
        using T = decltype(t);
        py::gil_scoped_release nogil;
        blk_depthwise_stub.get<T>()(p, a.x.ptr<T>(), a.w.ptr<T>(), a.b.data ? a.b.ptr<T>() : nullptr, a.y.ptr<T>());
      });
}

}  // namespace ck
