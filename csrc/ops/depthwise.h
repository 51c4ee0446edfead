// Depthwise convolution with a channel multiplier M: input (N, C, H, W), weight (C*M, 1, R, S),
// output channel k = c*M + m reads input channel c only (torch's conv2d with groups = C).
// Its own kernels, not a grouped GEMM: each output row accumulates R*S shifted input rows.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

struct DwParams {
  int64_t N = 1, C = 1, M = 1, H = 1, W = 1, R = 1, S = 1, P = 1, Q = 1;
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;  // stride, leading pad, dilation
  int64_t K() const { return C * M; }
};

// y = depthwise(x, w) + b (b nullable).
template <class T> using dw_fwd_sig = void(const DwParams& p, const T* x, const T* w, const T* b, T* y);
// gx = d<gy, y>/dx (gx fully written).
template <class T> using dw_bwd_data_sig = void(const DwParams& p, const T* gy, const T* w, T* gx);
// gw = d<gy, y>/dw, gb (nullable) = sum of gy per output channel (both fully written).
template <class T> using dw_bwd_weight_sig = void(const DwParams& p, const T* x, const T* gy, T* gw, T* gb);

CK_DECLARE_STUB(dw_fwd_stub, dw_fwd_sig);
CK_DECLARE_STUB(dw_bwd_data_stub, dw_bwd_data_sig);
CK_DECLARE_STUB(dw_bwd_weight_stub, dw_bwd_weight_sig);

}  // namespace ck
