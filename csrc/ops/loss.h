// Losses: cross_entropy (fused log-softmax) and mse_loss. Kernels in cpu/loss*.cpp.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// Cross entropy over x viewed as (N, C, inner) with class-index targets t (N * inner values).
// Per position p: loss[p] = (1 - ls) * w[t] * -logp[t] + ls / C * sum_c w[c] * -logp[c] and
// wt[p] = w[t] (w == nullptr: all ones); both 0 where t == ignore_index. Targets outside
// [0, C) (other than ignore_index) are never used as indices: loss/wt get NaN/0 there and
// the return value counts them.
template <class T>
using cross_entropy_fwd_sig = int64_t(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                                      int64_t ignore_index, T label_smoothing, T* loss, T* wt);
// gx = d(sum_p gscale * g[p * gstride] * loss[p]) / dx  (gstride 0: one grad for all positions).
template <class T>
using cross_entropy_bwd_sig = int64_t(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                                      int64_t ignore_index, T label_smoothing, const T* g, int64_t gstride, T gscale,
                                      T* gx);

// reduce == 0: out[i] = (x[i] - t[i])^2 (n values); else out[0] = sum_i (x[i] - t[i])^2.
template <class T> using mse_fwd_sig = void(int64_t n, const T* x, const T* t, T* out, int reduce);
// gx[i] = 2 * gscale * g[i * gstride] * (x[i] - t[i]); gt = -gx.
template <class T>
using mse_bwd_sig = void(int64_t n, const T* g, int64_t gstride, T gscale, const T* x, const T* t, T* gx, T* gt);

CK_DECLARE_STUB(cross_entropy_fwd_stub, cross_entropy_fwd_sig);
CK_DECLARE_STUB(cross_entropy_bwd_stub, cross_entropy_bwd_sig);
CK_DECLARE_STUB(mse_fwd_stub, mse_fwd_sig);
CK_DECLARE_STUB(mse_bwd_stub, mse_bwd_sig);

}  // namespace ck
