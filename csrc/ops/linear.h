// Fully connected layer: y (M x O) = x (M x K) @ W^T (W: O x K) + b, through gemm<T>.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// bias nullable.
template <class T>
using linear_fwd_sig = void(int64_t M, int64_t K, int64_t O, const T* x, const T* weight, const T* bias, T* y);
// gx (M x K) = gy @ W, gw (O x K) = gy^T @ x, gb (O) = column sums of gy; each output nullable.
template <class T>
using linear_bwd_sig = void(int64_t M, int64_t K, int64_t O, const T* gy, const T* x, const T* weight, T* gx, T* gw,
                            T* gb);

CK_DECLARE_STUB(linear_fwd_stub, linear_fwd_sig);
CK_DECLARE_STUB(linear_bwd_stub, linear_bwd_sig);

}  // namespace ck
