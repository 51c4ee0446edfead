// Depthwise 2-d convolution (NCHW) with channel multiplier M: input (N, C, H, W), weight
// (C*M, 1, R, S), output (N, C*M, P, Q); output channel oc = c*M + m reads input channel c
// (torch's conv2d with groups = C). A dedicated direct kernel, not a grouped GEMM.
#pragma once
#include <cstdint>
#include <limits>

#include "core/dispatch.h"

namespace ck {

// Geometry. ph, pw are the leading (top, left) pads; P and Q are given by the caller (the
// trailing pads are implied by them: every tap outside the input reads zero).
struct DwParams {
  int64_t N = 1, C = 1, M = 1;     // batch, input channels, channel multiplier
  int64_t H = 1, W = 1, P = 1, Q = 1;
  int64_t R = 1, S = 1;            // kernel height, width
  int64_t sh = 1, sw = 1;          // stride
  int64_t ph = 0, pw = 0;          // leading padding
  int64_t dh = 1, dw = 1;          // dilation
  // The forward's fused activation, CPU only (the CUDA kernel ignores it; the binding then
  // leaves it to the caller): y clamped to [0, relu_max] after the bias when relu (NaN stays NaN).
  bool relu = false;
  double relu_max = std::numeric_limits<double>::infinity();
};

// y = depthwise_conv2d(x, w) + b (b nullable).
template <class T> using depthwise_fwd_sig = void(const DwParams& p, const T* x, const T* w, const T* b, T* y);
// gx = d<gy, y>/dx (gx fully written).
template <class T> using depthwise_bwd_input_sig = void(const DwParams& p, const T* gy, const T* w, T* gx);
// gw = d<gy, y>/dw, gb (nullable) = sum of gy over (n, p, q) per output channel (fully written).
template <class T>
using depthwise_bwd_weight_sig = void(const DwParams& p, const T* x, const T* gy, T* gw, T* gb);

CK_DECLARE_STUB(depthwise_fwd_stub, depthwise_fwd_sig);
CK_DECLARE_STUB(depthwise_bwd_input_stub, depthwise_bwd_input_sig);
CK_DECLARE_STUB(depthwise_bwd_weight_stub, depthwise_bwd_weight_sig);

}  // namespace ck
