// Activations, softmax / log_softmax and dropout: dispatch stubs (kernels in cpu/activation*.cpp).
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// Elementwise activations selected by `op`; `a` is the op's scalar parameter
// (leaky_relu: negative_slope, elu: alpha, relu6: the upper bound, 6 for ReLU6; unused otherwise).
enum ActOp : int { kActRelu = 0, kActLeakyRelu, kActElu, kActSigmoid, kActTanh, kActGelu, kActGeluTanh, kActRelu6, kActCount };

// y[i] = f(x[i])
template <class T> using act_fwd_sig = void(int op, int64_t n, const T* x, T* y, T a);
// gx[i] = g[i] * f'(x[i])  (torch's subgradients at kinks)
template <class T> using act_bwd_sig = void(int op, int64_t n, const T* g, const T* x, T* gx, T a);

// PReLU on x viewed as (outer, C, inner) with one weight per channel (C == 1: shared weight).
template <class T> using prelu_fwd_sig = void(int64_t outer, int64_t C, int64_t inner, const T* x, const T* w, T* y);
// gw (C values) is overwritten.
template <class T>
using prelu_bwd_sig = void(int64_t outer, int64_t C, int64_t inner, const T* g, const T* x, const T* w, T* gx, T* gw);

// (log_)softmax over the middle axis of x viewed as (outer, D, inner).
template <class T> using softmax_fwd_sig = void(int64_t outer, int64_t D, int64_t inner, const T* x, T* y, bool log);
// Gradient, recomputing the forward from x (gx may not alias g or x).
template <class T>
using softmax_bwd_sig = void(int64_t outer, int64_t D, int64_t inner, const T* g, const T* x, T* gx, bool log);

// y[i] = x[i] * (keep(i) ? scale : 0), keep(i) = (splitmix64(seed, i) >> 11) >= threshold.
// Forward and backward of dropout are this same kernel.
template <class T> using dropout_sig = void(int64_t n, const T* x, T* y, uint64_t seed, uint64_t threshold, T scale);

CK_DECLARE_STUB(act_fwd_stub, act_fwd_sig);
CK_DECLARE_STUB(act_bwd_stub, act_bwd_sig);
CK_DECLARE_STUB(prelu_fwd_stub, prelu_fwd_sig);
CK_DECLARE_STUB(prelu_bwd_stub, prelu_bwd_sig);
CK_DECLARE_STUB(softmax_fwd_stub, softmax_fwd_sig);
CK_DECLARE_STUB(softmax_bwd_stub, softmax_bwd_sig);
CK_DECLARE_STUB(dropout_stub, dropout_sig);

}  // namespace ck
