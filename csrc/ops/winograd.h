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

#include "core/dispatch.h"
#include "core/params.h"

namespace ck {
// y = conv3x3(x, w) + b (b may be null); p as for conv_fwd (leading pads, P and Q given).
template <class T>
using winograd_fwd_sig = void(const ConvParams& p, const T* x, const T* w, const T* b, T* y);
CK_DECLARE_STUB(winograd3x3_fwd_stub, winograd_fwd_sig);
}  // namespace ck
