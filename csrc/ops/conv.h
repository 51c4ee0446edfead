// Convolution family (N-d, NCHW; 1-d and 2-d are 3-d with unit leading spatial dims).
//
// Layouts: x (N, C, D, H, W), w (K, C/G, T, R, S), y (N, K, O, P, Q), all C-contiguous.
// p.pad holds the LEADING pad per spatial dim; the output sizes O,P,Q are taken as given
// (so asymmetric 'same' padding and transposed-convolution output_padding need no extra
// parameter). Input positions outside [0, D) x [0, H) x [0, W) count as zeros.
#pragma once
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "core/params.h"

namespace ck {
// y = conv(x, w) + b (b may be null). im2col + GEMM (1x1/stride 1/pad 0: GEMM on x directly).
template <class T>
using conv_fwd_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y);
// Same result, direct (no im2col) kernel vectorized over the output width.
template <class T>
using conv_direct_fwd_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y);
// dx = d(conv)/dx applied to dy (overwrites dx). Also the forward of a transposed convolution.
template <class T>
using conv_bwd_data_sig = void(const ConvParams& p, const T* dy, const T* w, T* dx);
// dw = sum_n dy_n (x) col(x_n) (overwrites dw); db = sum of dy over N and space if db != null.
template <class T>
using conv_bwd_weight_sig = void(const ConvParams& p, const T* x, const T* dy, T* dw, T* db);

// The CPU forward with options (no CUDA slot): wpacked = w as conv_pack_weight_stub packed it
// under the active ISA (null: packed per call), wpacked_cl the same in the channel-last
// product's layout (used when conv_channel_last_stub says that product runs); residual (y's shape, not overlapping y): y +=
// residual after the bias; relu: y clamped to [0, relu_max] last (NaN stays NaN; relu_max = +inf
// is ReLU, 6 is ReLU6). ResNet's join, or MobileNetV2's ReLU6, in the product's pass.
template <class T>
struct ConvFwdOpts {
  const T* wpacked = nullptr;
  const T* wpacked_cl = nullptr;
  const T* residual = nullptr;
  bool relu = false;
  T relu_max = std::numeric_limits<T>::infinity();
  // conv_nhwc_fwd_stub only: w is (C, K, R, S), the weight of the convolution whose input
  // gradient this forward computes, read transposed and flipped (tap (r, s) of output channel k
  // from input channel c is w[c][k][R-1-r][S-1-s]); wpacked is then unused.
  bool w_flipped = false;
};
template <class T>
using conv_fwd_ex_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y, const ConvFwdOpts<T>& o);
// The weight packed for conv_fwd_ex: returns how many values (dst null), or writes them. The
// layout belongs to the ISA that packed it. Needs only p's K, C, G and kernel sizes.
// channel_last (groups 1 only): the layout of wpacked_cl (W^T as the product's B panels).
template <class T>
using conv_pack_weight_sig = int64_t(const ConvParams& p, const T* w, T* dst, bool channel_last);
// Whether conv_fwd_ex computes this forward channel-last (batch 1, one group, small planes:
// the output positions as the micro-tile's rows), i.e. reads wpacked_cl rather than wpacked.
template <class T>
using conv_channel_last_sig = bool(const ConvParams& p);

// The CPU forward as an implicit GEMM over a channel-last copy of the input (cpu/conv_nhwc.cpp;
// 2-d, one group: D = T = O = 1, G = 1): the same result as conv_fwd_ex up to the order of the
// sums. o.wpacked: w as conv_nhwc_pack_stub packed it under the active ISA (null: packed per
// call); o.wpacked_cl unused. The copy is N x Hp x Wp x C with Hp, Wp the rows and columns the
// taps of the outputs read: callers keep it near the input's size (conv_nhwc_fits in bind/).
template <class T>
using conv_nhwc_pack_sig = int64_t(const ConvParams& p, const T* w, T* dst);

CK_DECLARE_STUB(conv_fwd_stub, conv_fwd_sig);
CK_DECLARE_STUB(conv_nhwc_fwd_stub, conv_fwd_ex_sig);
CK_DECLARE_STUB(conv_nhwc_pack_stub, conv_nhwc_pack_sig);
CK_DECLARE_STUB(conv_fwd_ex_stub, conv_fwd_ex_sig);
CK_DECLARE_STUB(conv_pack_weight_stub, conv_pack_weight_sig);
CK_DECLARE_STUB(conv_channel_last_stub, conv_channel_last_sig);
CK_DECLARE_STUB(conv_direct_fwd_stub, conv_direct_fwd_sig);
CK_DECLARE_STUB(conv_bwd_data_stub, conv_bwd_data_sig);
CK_DECLARE_STUB(conv_bwd_weight_stub, conv_bwd_weight_sig);
}  // namespace ck
