#include <pybind11/stl.h>

#include <array>
#include <cmath>

#include "bind/common.h"
#include "ops/conv.h"

namespace ck {
namespace {

using I3 = std::array<int64_t, 3>;

// Params from x (N, C, D, H, W), w (K, C/G, T, R, S), y (N, K, O, P, Q) shapes (all 5-d).
// Any output size >= 1 is accepted: kernels only touch in-bounds input positions.
ConvParams make_params(const Arr& x, const Arr& w, const Arr& y, const char* xn, const char* wn, const char* yn,
                       const I3& stride, const I3& pad, const I3& dil, int64_t groups) {
  CK_CHECK(x.ndim() == 5, xn, "must be 5-d (N, C, D, H, W)");
  CK_CHECK(w.ndim() == 5, wn, "must be 5-d (K, C/groups, T, R, S)");
  CK_CHECK(y.ndim() == 5, yn, "must be 5-d (N, K, O, P, Q)");
  CK_CHECK(groups >= 1, "groups", "must be >= 1");
  // (<= 2**60: with sizes of allocatable arrays, every index sum/product stays inside int64)
  constexpr int64_t kMaxParam = int64_t(1) << 60;
  for (int i = 0; i < 3; ++i) {
    CK_CHECK(stride[i] >= 1 && stride[i] <= kMaxParam, "stride", "must be in [1, 2**60]");
    CK_CHECK(dil[i] >= 1 && dil[i] <= kMaxParam, "dilation", "must be in [1, 2**60]");
    CK_CHECK(pad[i] >= 0 && pad[i] <= kMaxParam, "padding", "must be in [0, 2**60]");
  }
  ConvParams p;
  p.N = x.dim(0); p.C = x.dim(1); p.D = x.dim(2); p.H = x.dim(3); p.W = x.dim(4);
  p.K = w.dim(0); p.T = w.dim(2); p.R = w.dim(3); p.S = w.dim(4);
  p.O = y.dim(2); p.P = y.dim(3); p.Q = y.dim(4);
  p.G = groups;
  for (int i = 0; i < 3; ++i) {
    p.stride[i] = stride[i];
    p.pad[i] = pad[i];
    p.dilation[i] = dil[i];
  }
  for (int i = 1; i < 5; ++i) {
    CK_CHECK(x.dim(i) >= 1, xn, "sizes must be >= 1");
    CK_CHECK(w.dim(i) >= 1, wn, "sizes must be >= 1");
    CK_CHECK(y.dim(i) >= 1, yn, "sizes must be >= 1");
  }
  CK_CHECK(w.dim(0) >= 1, wn, "sizes must be >= 1");
  CK_CHECK(p.C % groups == 0 && w.dim(1) * groups == p.C, wn, "dim 1 times groups must equal the input channels");
  CK_CHECK(p.K % groups == 0, wn, "output channels must be divisible by groups");
  CK_CHECK(y.dim(0) == p.N && y.dim(1) == p.K, yn, "must have shape (N, K, ...) matching input and weight");
  return p;
}

// The parameters a packed weight depends on (K, C, G, kernel sizes) from a host weight.
ConvParams weight_params(const Arr& w, int64_t groups) {
  check_float(w, "weight");
  CK_CHECK(!w.on_device(), "weight", "must be a numpy.ndarray (packed weights are for the CPU kernels)");
  CK_CHECK(w.ndim() == 5, "weight", "must be 5-d (K, C/groups, T, R, S)");
  CK_CHECK(groups >= 1 && w.dim(0) % groups == 0, "groups", "must divide the output channels");
  ConvParams p;
  p.K = w.dim(0); p.G = groups; p.C = w.dim(1) * groups;
  p.T = w.dim(2); p.R = w.dim(3); p.S = w.dim(4);
  return p;
}

// Values of the weight packed under the active ISA (channel_last: in the channel-last
// product's layout, which exists for one group only).
int64_t packed_size(const Arr& w, const ConvParams& p, bool channel_last) {
  CK_CHECK(!channel_last || p.G == 1, "groups", "must be 1 for the channel-last layout");
  int64_t n = 0;
  dispatch_float(w, "weight",
                 [&](auto t) { n = conv_pack_weight_stub.get<decltype(t)>()(p, nullptr, nullptr, channel_last); });
  return n;
}

// Whether conv_nhwc_forward's channel-last copy (N x Hp x Wp x C: the rows and columns the taps
// of the outputs read) stays near the input's size: 2-d, one group, and no huge strides,
// dilations or paddings (which would make it absurd, or overflow its size).
bool nhwc_fits(const ConvParams& p) {
  if (p.D != 1 || p.T != 1 || p.O != 1 || p.G != 1) return false;
  const double Hp = double(p.P - 1) * double(p.stride[1]) + double(p.R - 1) * double(p.dilation[1]) + 1;
  const double Wp = double(p.Q - 1) * double(p.stride[2]) + double(p.S - 1) * double(p.dilation[2]) + 1;
  return Hp * Wp <= 4.0 * double(p.H) * double(p.W) + 4096.0;
}

// Values of the weight (K, C, 1, R, S) packed for conv_nhwc_forward under the active ISA.
int64_t nhwc_packed_size(const Arr& w) {
  const ConvParams p = weight_params(w, 1);
  CK_CHECK(p.T == 1, "weight", "must be a 2-d kernel (K, C, 1, R, S) for the channel-last forward");
  int64_t n = 0;
  dispatch_float(w, "weight", [&](auto t) { n = conv_nhwc_pack_stub.get<decltype(t)>()(p, nullptr, nullptr); });
  return n;
}

}  // namespace

CK_BIND(conv) {
  // conv_forward(x, w, b, y, stride, padding, dilation, groups, direct, relu, packed, packed_isa,
  // residual, packed_cl, packed_cl_isa, relu_max=inf): y = conv(x, w) + b, then + residual (None,
  // or an array of y's shape) and, when relu, clamped to [0, relu_max] (inf: ReLU; 6: ReLU6), if
  // the kernel can fuse them. packed: the weight as conv_pack_weight
  // wrote it under ISA packed_isa (used when that is still the active ISA, the im2col kernel
  // runs and the array has the packed size; None: packed per call). packed_cl, packed_cl_isa: the
  // same in the channel-last layout, read instead when conv_channel_last is true. Returns whether
  // the residual and relu were applied (False: the caller applies them; True for the CPU im2col
  // kernel).
  m.def(
      "conv_forward",
      [](py::object x_, py::object w_, py::object b_, py::object y_, I3 stride, I3 pad, I3 dil, int64_t groups,
         bool direct, bool relu, py::object packed_, int packed_isa, py::object res_, py::object packed_cl_,
         int packed_cl_isa, double relu_max) {
        check_relu_max(relu_max);
        Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
        Arr pk = arr_opt(packed_, "packed"), res = arr_opt(res_, "residual"), pkc = arr_opt(packed_cl_, "packed_cl");
        check_float(x, "input");
        check_same_dtype(w, x, "weight");
        check_same_dtype(y, x, "output");
        ConvParams p = make_params(x, w, y, "input", "weight", "output", stride, pad, dil, groups);
        if (b.data) {
          check_same_dtype(b, x, "bias");
          check_size(b, p.K, "bias");
        }
        if (pk.data) check_same_dtype(pk, x, "packed");
        if (pkc.data) check_same_dtype(pkc, x, "packed_cl");
        check_residual(res, x, y);
        if (direct) {
          // The direct kernel copies the input into a zero-padded buffer covering every tap of
          // the (vector-rounded) outputs: with huge strides/padding that buffer is absurd or its
          // size overflows (found by tests/test_fuzz.py). Such geometries use im2col instead.
          const double QT = 32;  // widest register tile of conv_direct (AVX-512 float: 16 x 2)
          const double Dp = double(p.O - 1) * p.stride[0] + double(p.T - 1) * p.dilation[0] + 1;
          const double Hp = double(p.P - 1) * p.stride[1] + double(p.R - 1) * p.dilation[1] + 1;
          const double Wp = (std::ceil(double(p.Q) / QT) * QT - 1) * p.stride[2] + double(p.S - 1) * p.dilation[2] + 1;
          const double padded = double(p.N) * double(p.C) * Dp * Hp * Wp;
          if (padded > 4.0 * (double(x.size) + double(y.size)) + 65536.0) direct = false;
        }
        const bool ex = !direct && !x.on_device();  // the CPU im2col kernel takes the options
        bool fused = false;
        {
          py::gil_scoped_release nogil;
          dispatch_float(x, "input", [&](auto t) {
            using T = decltype(t);
            if (!ex) {
              auto* fn = direct ? conv_direct_fwd_stub.get<T>() : conv_fwd_stub.get<T>();
              fn(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>());
              return;
            }
            ConvFwdOpts<T> o;
            o.relu = relu;
            o.relu_max = T(relu_max);
            o.residual = res.data ? res.ptr<T>() : nullptr;
            if (pk.data && packed_isa == int(active_isa()) && !pk.on_device() &&
                pk.size == conv_pack_weight_stub.get<T>()(p, nullptr, nullptr, false))
              o.wpacked = pk.ptr<T>();
            if (pkc.data && packed_cl_isa == int(active_isa()) && !pkc.on_device() && p.G == 1 &&
                pkc.size == conv_pack_weight_stub.get<T>()(p, nullptr, nullptr, true))
              o.wpacked_cl = pkc.ptr<T>();
            conv_fwd_ex_stub.get<T>()(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>(), o);
            fused = true;
          });
        }
        return fused;
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("direct") = false,
      py::arg("relu") = false, py::arg("packed") = py::none(), py::arg("packed_isa") = -1,
      py::arg("residual") = py::none(), py::arg("packed_cl") = py::none(), py::arg("packed_cl_isa") = -1,
      py::arg("relu_max") = std::numeric_limits<double>::infinity());

  // conv_nhwc_forward(x, w, b, y, stride, padding, dilation, relu=False, residual=None,
  // packed=None, packed_isa=-1, flipped_weight=False, relu_max=inf): y = conv2d(x, w) + b (5-d
  // arrays of a 2-d convolution, one group, NumPy), then + residual and, when relu, clamped to
  // [0, relu_max], through the channel-last implicit
  // GEMM (cpu/conv_nhwc.cpp). packed: the weight as conv_nhwc_pack_weight wrote it under ISA
  // packed_isa (used when that is still the active ISA and the size matches; None: packed per
  // call). A geometry whose channel-last copy would be far larger than the input (huge strides,
  // dilations or padding) runs the im2col kernel instead. flipped_weight: w is (C, K, 1, R, S),
  // the weight of the convolution whose grad_input this computes, read transposed with its taps
  // reversed (packed is then ignored; refused where the im2col kernel would run). Returns True
  // (residual and relu applied).
  m.def(
      "conv_nhwc_forward",
      [](py::object x_, py::object w_, py::object b_, py::object y_, I3 stride, I3 pad, I3 dil, bool relu,
         py::object res_, py::object packed_, int packed_isa, bool flipped, double relu_max) {
        check_relu_max(relu_max);
        Arr x = arr(x_, "input"), w = arr(w_, "weight"), b = arr_opt(b_, "bias"), y = arr(y_, "output", true);
        Arr pk = arr_opt(packed_, "packed"), res = arr_opt(res_, "residual");
        check_float(x, "input");
        check_same_dtype(w, x, "weight");
        check_same_dtype(y, x, "output");
        CK_CHECK(!x.on_device() && !w.on_device() && !y.on_device(), "input",
                 "must be a host (NumPy) array for the channel-last forward");
        Arr wk = w;  // flipped: (C, K, 1, R, S), checked as the (K, C, 1, R, S) it stands for
        if (flipped && wk.ndim() == 5) std::swap(wk.shape[0], wk.shape[1]);
        const ConvParams p = make_params(x, wk, y, "input", "weight", "output", stride, pad, dil, 1);
        if (flipped) pk = Arr();  // a packed weight is of the plain layout
        CK_CHECK(p.D == 1 && p.T == 1 && p.O == 1, "weight", "must be a 2-d kernel for the channel-last forward");
        if (b.data) {
          check_same_dtype(b, x, "bias");
          check_size(b, p.K, "bias");
        }
        if (pk.data) check_same_dtype(pk, x, "packed");
        check_residual(res, x, y);
        const bool fits = nhwc_fits(p);
        const bool use_pk = pk.data && fits && packed_isa == int(active_isa()) && !pk.on_device() &&
                            pk.size == nhwc_packed_size(w);
        CK_CHECK(fits || !flipped, "weight", "flipped: only for geometries the channel-last forward runs");
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          ConvFwdOpts<T> o;
          o.relu = relu;
          o.relu_max = T(relu_max);
          o.residual = res.data ? res.ptr<T>() : nullptr;
          if (use_pk) o.wpacked = pk.ptr<T>();
          o.w_flipped = flipped;
          auto* fn = fits ? conv_nhwc_fwd_stub.get<T>() : conv_fwd_ex_stub.get<T>();
          fn(p, x.ptr<T>(), w.ptr<T>(), b.data ? b.ptr<T>() : nullptr, y.ptr<T>(), o);
        });
        return true;
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("relu") = false, py::arg("residual") = py::none(),
      py::arg("packed") = py::none(), py::arg("packed_isa") = -1, py::arg("flipped_weight") = false,
      py::arg("relu_max") = std::numeric_limits<double>::infinity());

  // conv_nhwc_packed_size(weight (K, C, 1, R, S)) -> (values, isa): the size of the weight packed
  // for conv_nhwc_forward under the active ISA, and that ISA.
  m.def(
      "conv_nhwc_packed_size",
      [](py::object w_) { return py::make_tuple(nhwc_packed_size(arr(w_, "weight")), int(active_isa())); },
      py::arg("weight"));

  // conv_nhwc_pack_weight(weight, packed): packed (1-d, conv_nhwc_packed_size's values) = the
  // weight in conv_nhwc_forward's channel blocks under the active ISA.
  m.def(
      "conv_nhwc_pack_weight",
      [](py::object w_, py::object out_) {
        Arr w = arr(w_, "weight"), out = arr(out_, "packed", true);
        const int64_t n = nhwc_packed_size(w);
        const ConvParams p = weight_params(w, 1);
        check_same_dtype(out, w, "packed");
        CK_CHECK(out.ndim() == 1 && out.size == n, "packed", "has the wrong size (see conv_nhwc_packed_size)");
        py::gil_scoped_release nogil;
        dispatch_float(w, "weight", [&](auto t) {
          using T = decltype(t);
          conv_nhwc_pack_stub.get<T>()(p, w.ptr<T>(), out.ptr<T>());
        });
      },
      py::arg("weight"), py::arg("packed"));

  // conv_channel_last(input, weight, output, stride, padding, dilation, groups): whether
  // conv_forward's CPU im2col kernel computes this forward channel-last under the active ISA
  // (and so reads packed_cl rather than packed).
  m.def(
      "conv_channel_last",
      [](py::object x_, py::object w_, py::object y_, I3 stride, I3 pad, I3 dil, int64_t groups) {
        Arr x = arr(x_, "input"), w = arr(w_, "weight"), y = arr(y_, "output");
        check_float(x, "input");
        const ConvParams p = make_params(x, w, y, "input", "weight", "output", stride, pad, dil, groups);
        bool cl = false;
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) { cl = conv_channel_last_stub.get<decltype(t)>()(p); });
        return cl;
      },
      py::arg("input"), py::arg("weight"), py::arg("output"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"));

  // conv_packed_size(weight, groups, channel_last=False) -> (values, isa): the size of the
  // packed weight under the active ISA (channel_last: the channel-last layout, groups 1), and
  // that ISA.
  m.def(
      "conv_packed_size",
      [](py::object w_, int64_t groups, bool cl) {
        Arr w = arr(w_, "weight");
        return py::make_tuple(packed_size(w, weight_params(w, groups), cl), int(active_isa()));
      },
      py::arg("weight"), py::arg("groups"), py::arg("channel_last") = false);

  // conv_pack_weight(weight, packed, groups, channel_last=False): packed (1-d, conv_packed_size's
  // values) = the weight in the active ISA's GEMM panels, for conv_forward(packed=...) (or, with
  // channel_last, packed_cl=...).
  m.def(
      "conv_pack_weight",
      [](py::object w_, py::object out_, int64_t groups, bool cl) {
        Arr w = arr(w_, "weight"), out = arr(out_, "packed", true);
        const ConvParams p = weight_params(w, groups);
        check_same_dtype(out, w, "packed");
        CK_CHECK(out.size == packed_size(w, p, cl), "packed", "has the wrong size (see conv_packed_size)");
        py::gil_scoped_release nogil;
        dispatch_float(w, "weight", [&](auto t) {
          using T = decltype(t);
          conv_pack_weight_stub.get<T>()(p, w.ptr<T>(), out.ptr<T>(), cl);
        });
      },
      py::arg("weight"), py::arg("packed"), py::arg("groups"), py::arg("channel_last") = false);

  // conv_backward_data(dy, w, dx, ...): dx = conv^T(dy) (overwritten); dx is the conv input.
  m.def(
      "conv_backward_data",
      [](py::object dy_, py::object w_, py::object dx_, I3 stride, I3 pad, I3 dil, int64_t groups) {
        Arr dy = arr(dy_, "grad_output"), w = arr(w_, "weight"), dx = arr(dx_, "grad_input", true);
        check_float(dy, "grad_output");
        check_same_dtype(w, dy, "weight");
        check_same_dtype(dx, dy, "grad_input");
        ConvParams p = make_params(dx, w, dy, "grad_input", "weight", "grad_output", stride, pad, dil, groups);
        py::gil_scoped_release nogil;
        dispatch_float(dy, "grad_output", [&](auto t) {
          using T = decltype(t);
          conv_bwd_data_stub.get<T>()(p, dy.ptr<T>(), w.ptr<T>(), dx.ptr<T>());
        });
      },
      py::arg("grad_output"), py::arg("weight"), py::arg("grad_input"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"));

  // conv_backward_weight(x, dy, dw, db, ...): dw (and db unless None) overwritten.
  m.def(
      "conv_backward_weight",
      [](py::object x_, py::object dy_, py::object dw_, py::object db_, I3 stride, I3 pad, I3 dil, int64_t groups) {
        Arr x = arr(x_, "input"), dy = arr(dy_, "grad_output"), dw = arr(dw_, "grad_weight", true);
        Arr db = arr_opt(db_, "grad_bias", true);
        check_float(x, "input");
        check_same_dtype(dy, x, "grad_output");
        check_same_dtype(dw, x, "grad_weight");
        ConvParams p = make_params(x, dw, dy, "input", "grad_weight", "grad_output", stride, pad, dil, groups);
        if (db.data) {
          check_same_dtype(db, x, "grad_bias");
          check_size(db, p.K, "grad_bias");
        }
        py::gil_scoped_release nogil;
        dispatch_float(x, "input", [&](auto t) {
          using T = decltype(t);
          conv_bwd_weight_stub.get<T>()(p, x.ptr<T>(), dy.ptr<T>(), dw.ptr<T>(), db.data ? db.ptr<T>() : nullptr);
        });
      },
      py::arg("input"), py::arg("grad_output"), py::arg("grad_weight"), py::arg("grad_bias"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"));
}

}  // namespace ck
