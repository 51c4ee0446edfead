// Normalization: batch norm, local response norm, layer norm.
// Layouts: batch norm and LRN see the input as (N, C, S) with S the product of the spatial
// sizes; layer norm sees it as M rows of D = prod(normalized_shape) elements.
#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {

// Batch norm forward. training: per-channel batch mean / biased variance normalize x, and
// running_mean / running_var (each nullable) are updated in place with `momentum` and the
// unbiased variance. Not training: running_mean / running_var (non-null) normalize x.
// weight / bias nullable (1 and 0).
template <class T>
using batch_norm_fwd_sig = void(int64_t N, int64_t C, int64_t S, const T* x, const T* weight, const T* bias,
                                T* running_mean, T* running_var, bool training, double momentum, double eps, T* y);
// Batch norm backward (never touches the running stats). gw / gb nullable.
template <class T>
using batch_norm_bwd_sig = void(int64_t N, int64_t C, int64_t S, const T* gy, const T* x, const T* weight,
                                const T* running_mean, const T* running_var, bool training, double eps, T* gx, T* gw,
                                T* gb);

// Local response norm across channels (torch): y = x / (k + alpha/size * sum_{window} x^2)^beta,
// window of `size` channels: size/2 before, (size-1)/2 after, zero padded.
template <class T>
using lrn_fwd_sig = void(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k,
                         const T* x, T* y);
template <class T>
using lrn_bwd_sig = void(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k,
                         const T* gy, const T* x, T* gx);

// Layer norm over rows of D elements; weight / bias (D elements) nullable.
template <class T>
using layer_norm_fwd_sig = void(int64_t M, int64_t D, const T* x, const T* weight, const T* bias, double eps, T* y);
template <class T>
using layer_norm_bwd_sig = void(int64_t M, int64_t D, const T* gy, const T* x, const T* weight, double eps, T* gx,
                                T* gw, T* gb);

CK_DECLARE_STUB(batch_norm_fwd_stub, batch_norm_fwd_sig);
CK_DECLARE_STUB(batch_norm_bwd_stub, batch_norm_bwd_sig);
CK_DECLARE_STUB(lrn_fwd_stub, lrn_fwd_sig);
CK_DECLARE_STUB(lrn_bwd_stub, lrn_bwd_sig);
CK_DECLARE_STUB(layer_norm_fwd_stub, layer_norm_fwd_sig);
CK_DECLARE_STUB(layer_norm_bwd_stub, layer_norm_bwd_sig);

}  // namespace ck
