// Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016, "Fast Algorithms for Convolutional
// Neural Networks"): 3x3 kernels, stride 1, dilation 1, one group, 2-d (D = T = O = 1).
//
// Each 6x6 input tile d (stride 4) and each 3x3 filter g are transformed, V = B^T d B and
// U = G g G^T; the 36 elementwise products, summed over input channels, are 36 GEMMs
// M[xi] = U[xi] (K x C) * V[xi] (C x tiles); each 6x6 m gives a 4x4 output tile A^T m A.
// 36 multiplies per 16 outputs instead of 144: 4x fewer, at the price of rounding error
// larger than the direct sum's (see docs/WINOGRAD.md for the measured error).
#pragma once
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "core/params.h"

namespace ck {
// y = conv3x3(x, w) + b (b may be null); p as for conv_fwd (leading pads, P and Q given).
template <class T>
using winograd_fwd_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y);
CK_DECLARE_STUB(winograd3x3_fwd_stub, winograd_fwd_sig);

// The CPU forward with options (no CUDA slot): u = the filters as winograd_transform_stub
// transformed them under the active ISA (null: transformed per call); residual (y's shape, not
// overlapping y): y += residual after the bias; relu: y clamped to [0, relu_max] last (NaN stays NaN), in
// the output transform (the order of conv_fwd_ex's epilogue).
template <class T>
struct WinogradOpts {
  const T* u = nullptr;
  const T* residual = nullptr;
  bool relu = false;
  T relu_max = std::numeric_limits<T>::infinity();
  // w is another layer's (C x K x 3 x 3) weight, used flipped and transposed (w'[k][c][r][s] =
  // w[c][k][2-r][2-s]): the forward computes that layer's grad_input. Not with u.
  bool flipped = false;
};
template <class T>
using winograd_fwd_ex_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y,
                                 const WinogradOpts<T>& o);
// The K x C filters (w: K x C x 3 x 3) transformed into the 36 matrices U[xi] in the GEMM's
// packed-A layout of the active ISA: returns how many values (dst null), or writes them.
template <class T>
using winograd_transform_sig = int64_t(int64_t K, int64_t C, const T* w, T* dst);
CK_DECLARE_STUB(winograd3x3_fwd_ex_stub, winograd_fwd_ex_sig);
CK_DECLARE_STUB(winograd_transform_stub, winograd_transform_sig);

// The weight gradient of the same convolution (CPU only): dw (K x C x 3 x 3) = the sum over
// images and output positions of dy times the input window; db (null: none) = dy summed per
// output channel. Through F(3x3, 4x4), the forward's matrices used the other way round (the
// transposition principle): each 4x4 tile e of dy and the 6x6 input tile d under it give
// E = A e A^T and V = B^T d B (the forward's input transform); M[xi] (K x C) = the sum over
// tiles of E[xi] V[xi]^T, 36 GEMMs as deep as there are tiles; dw = G^T M G. 36 multiplies
// per tile and filter tap pair instead of 144.
template <class T>
using winograd_bwd_weight_sig = void(const ConvParams& p, const T* x, const T* dy, T* dw, T* db);
CK_DECLARE_STUB(winograd3x3_bwd_weight_stub, winograd_bwd_weight_sig);
}  // namespace ck
