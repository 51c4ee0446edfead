// Pooling over NCHW planes. Every kernel sees the input as NC = N*C independent planes of
// H x W and writes NC planes of P x Q. Indices are flat positions ih*W + iw within a plane
// (torch's convention).
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// Sliding-window pooling geometry (max: any dilation; avg: dilation 1). The caller
// guarantees pad <= kernel/2 and P, Q from torch's output-size formula.
struct PoolParams {
  int64_t NC = 1, H = 1, W = 1, P = 1, Q = 1;
  int64_t R = 1, S = 1;            // kernel height, width
  int64_t sh = 1, sw = 1;          // stride
  int64_t ph = 0, pw = 0;          // leading padding
  int64_t dh = 1, dw = 1;          // dilation
};

// y = max over each window; idx (nullable) = argmax (torch: first max in scan order, a NaN
// wins, the last NaN of the window; an all -inf window gives its first valid position).
template <class T> using max_pool2d_fwd_sig = void(const PoolParams& p, const T* x, T* y, int64_t* idx);
// gx = d<gy, max_pool2d(x)>/dx (gx fully written).
template <class T> using max_pool2d_bwd_sig = void(const PoolParams& p, const T* x, const T* gy, T* gx);
// divisor_override == 0: none.
template <class T>
using avg_pool2d_fwd_sig = void(const PoolParams& p, bool count_include_pad, int64_t divisor_override, const T* x,
                                T* y);
template <class T>
using avg_pool2d_bwd_sig = void(const PoolParams& p, bool count_include_pad, int64_t divisor_override, const T* gy,
                                T* gx);

// Adaptive pooling: window p covers rows [floor(p*H/P), ceil((p+1)*H/P)).
template <class T>
using adaptive_avg_pool2d_fwd_sig = void(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y);
template <class T>
using adaptive_avg_pool2d_bwd_sig = void(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* gy, T* gx);
template <class T>
using adaptive_max_pool2d_fwd_sig = void(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y,
                                         int64_t* idx);
template <class T>
using adaptive_max_pool2d_bwd_sig = void(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x,
                                         const T* gy, T* gx);

// Whole-plane reductions: y[nc] = mean / max of the HW values of plane nc.
template <class T> using global_pool_fwd_sig = void(int64_t NC, int64_t HW, const T* x, T* y);
template <class T> using global_avg_pool_bwd_sig = void(int64_t NC, int64_t HW, const T* gy, T* gx);
template <class T> using global_max_pool_bwd_sig = void(int64_t NC, int64_t HW, const T* x, const T* gy, T* gx);

CK_DECLARE_STUB(max_pool2d_fwd_stub, max_pool2d_fwd_sig);
CK_DECLARE_STUB(max_pool2d_bwd_stub, max_pool2d_bwd_sig);
CK_DECLARE_STUB(avg_pool2d_fwd_stub, avg_pool2d_fwd_sig);
CK_DECLARE_STUB(avg_pool2d_bwd_stub, avg_pool2d_bwd_sig);
CK_DECLARE_STUB(adaptive_avg_pool2d_fwd_stub, adaptive_avg_pool2d_fwd_sig);
CK_DECLARE_STUB(adaptive_avg_pool2d_bwd_stub, adaptive_avg_pool2d_bwd_sig);
CK_DECLARE_STUB(adaptive_max_pool2d_fwd_stub, adaptive_max_pool2d_fwd_sig);
CK_DECLARE_STUB(adaptive_max_pool2d_bwd_stub, adaptive_max_pool2d_bwd_sig);
CK_DECLARE_STUB(global_avg_pool_fwd_stub, global_pool_fwd_sig);
CK_DECLARE_STUB(global_max_pool_fwd_stub, global_pool_fwd_sig);
CK_DECLARE_STUB(global_avg_pool_bwd_stub, global_avg_pool_bwd_sig);
CK_DECLARE_STUB(global_max_pool_bwd_stub, global_max_pool_bwd_sig);

}  // namespace ck
