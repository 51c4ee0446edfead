// Elementwise activations, PReLU, softmax / log-softmax and dropout.
// Backward kernels take the forward's input x (stateless convention: nothing is saved).
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

enum ActKind : int { kRelu = 0, kLeakyRelu = 1, kElu = 2, kSigmoid = 3, kTanh = 4, kGeluErf = 5, kGeluTanh = 6 };

// y[i] = act(x[i]); alpha: leaky_relu's negative_slope, elu's alpha (unused otherwise).
template <class T> using act_fwd_sig = void(int kind, int64_t n, T alpha, const T* x, T* y);
// gx[i] = gy[i] * act'(x[i]) (torch's subgradients at kinks).
template <class T> using act_bwd_sig = void(int kind, int64_t n, T alpha, const T* x, const T* gy, T* gx);

// x viewed as (N, C, inner); w[c * wstride] is channel c's slope (wstride 0: one shared slope).
template <class T>
using prelu_fwd_sig = void(int64_t N, int64_t C, int64_t inner, const T* x, const T* w, int64_t wstride, T* y);
// gx = gy * (x > 0 ? 1 : w); gw[c] = sum of gy * x over x <= 0 (gw has C entries, or 1 if wstride 0).
template <class T>
using prelu_bwd_sig = void(int64_t N, int64_t C, int64_t inner, const T* x, const T* w, int64_t wstride, const T* gy,
                           T* gx, T* gw);

// x viewed as (outer, D, inner), normalized over D. log: log_softmax.
template <class T> using softmax_fwd_sig = void(bool log, int64_t outer, int64_t D, int64_t inner, const T* x, T* y);
// From the forward output y: softmax gx = y * (gy - sum_D gy*y); log_softmax gx = gy - exp(y) * sum_D gy.
template <class T>
using softmax_bwd_sig = void(bool log, int64_t outer, int64_t D, int64_t inner, const T* y, const T* gy, T* gx);

// Inverted dropout with a counter-based mask: element i is dropped when
// splitmix64(seed + i * golden) >> 11 < threshold (threshold = p * 2^53), kept ones are
// scaled by `scale` = 1/(1-p). Same mask for every ISA and thread count. x may be the
// gradient (the backward is the same mask applied to grad_output).
template <class T>
using dropout_sig = void(int64_t n, uint64_t seed, uint64_t threshold, T scale, const T* x, T* y);

CK_DECLARE_STUB(act_fwd_stub, act_fwd_sig);
CK_DECLARE_STUB(act_bwd_stub, act_bwd_sig);
CK_DECLARE_STUB(prelu_fwd_stub, prelu_fwd_sig);
CK_DECLARE_STUB(prelu_bwd_stub, prelu_bwd_sig);
CK_DECLARE_STUB(softmax_fwd_stub, softmax_fwd_sig);
CK_DECLARE_STUB(softmax_bwd_stub, softmax_bwd_sig);
CK_DECLARE_STUB(dropout_stub, dropout_sig);

}  // namespace ck
