// Losses: cross-entropy with class-index targets (log-softmax fused) and mean squared error.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// input viewed as (N, C, inner), target (N, inner) int64 (checked in range or == ignore).
// Per sample s: nll[s] = -w[t] * logp[t], smooth[s] = -sum_c w[c] * logp[c], wt[s] = w[t]
// (all 0 for an ignored sample); w == nullptr means all ones. Python does the reduction.
template <class T>
using cross_entropy_fwd_sig = void(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* target,
                                   int64_t ignore_index, const T* w, T* nll, T* smooth, T* wt);
// gx[s, j] = coef[s] * (p_j * ((1-eps) w_t + eps/C * sum_c w_c) - (1-eps) w_t [j == t] - eps/C w_j),
// zero for ignored samples; coef is the gradient of the loss with respect to sample s's term.
template <class T>
using cross_entropy_bwd_sig = void(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* target,
                                   int64_t ignore_index, const T* w, T label_smoothing, const T* coef, T* gx);
// d = x - t; sq (nullable) = d*d elementwise; returns sum d*d accumulated in double.
template <class T> using mse_fwd_sig = double(int64_t n, const T* x, const T* t, T* sq);
// gx = scale * coef[i or 0] * 2 * (x - t); coef_stride 0 broadcasts one value.
template <class T>
using mse_bwd_sig = void(int64_t n, const T* x, const T* t, const T* coef, int64_t coef_stride, T scale, T* gx);

CK_DECLARE_STUB(cross_entropy_fwd_stub, cross_entropy_fwd_sig);
CK_DECLARE_STUB(cross_entropy_bwd_stub, cross_entropy_bwd_sig);
CK_DECLARE_STUB(mse_fwd_stub, mse_fwd_sig);
CK_DECLARE_STUB(mse_bwd_stub, mse_bwd_sig);

}  // namespace ck
