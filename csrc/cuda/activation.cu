// CUDA activations (forward / backward), PReLU, softmax / log_softmax and dropout, with the
// semantics of cpu/activation*.cpp (torch's subgradients; dropout's splitmix64 mask of
// (seed, flat index), so CPU and GPU drop the same elements).
#include "cuda/common.cuh"
#include "ops/activation.h"

namespace ck {
namespace cuda {
namespace {

template <class T> __device__ __forceinline__ T kSqrt1_2() { return T(0.70710678118654752440); }
template <class T> __device__ __forceinline__ T kInvSqrt2Pi() { return T(0.39894228040143267794); }
template <class T> __device__ __forceinline__ T kSqrt2OverPi() { return T(0.79788456080286535588); }
template <class T> __device__ __forceinline__ T kKappa() { return T(0.044715); }

template <class T>
__device__ __forceinline__ T act_f(int op, T x, T a) {
  switch (op) {
    case kActRelu: return x < T(0) ? T(0) : x;
    case kActRelu6: return x < T(0) ? T(0) : (x > a ? a : x);
    case kActLeakyRelu: return x > T(0) ? x : x * a;
    case kActElu: return x <= T(0) ? d_expm1(x) * a : x;
    case kActSigmoid: return T(1) / (T(1) + d_exp(-x));
    case kActTanh: return d_tanh(x);
    case kActGelu: return (x * T(0.5)) * (T(1) + d_erf(x * kSqrt1_2<T>()));
    case kActGeluTanh: {
      const T u = kSqrt2OverPi<T>() * (x + kKappa<T>() * (x * x * x));
      return (x * T(0.5)) * (T(1) + d_tanh(u));
    }
    default: return x;
  }
}

template <class T>
__device__ __forceinline__ T act_b(int op, T g, T x, T a) {
  switch (op) {
    case kActRelu: return x <= T(0) ? T(0) : g;
    case kActRelu6: return (x > T(0) && x < a) ? g : T(0);
    case kActLeakyRelu: return x > T(0) ? g : g * a;
    case kActElu: return x > T(0) ? g : g * (d_exp(x) * a);
    case kActSigmoid: {
      const T y = T(1) / (T(1) + d_exp(-x));
      return g * ((T(1) - y) * y);
    }
    case kActTanh: {
      const T y = d_tanh(x);
      return g * (T(1) - y * y);
    }
    case kActGelu: {
      const T cdf = T(0.5) * (T(1) + d_erf(x * kSqrt1_2<T>()));
      const T pdf = d_exp(T(-0.5) * (x * x)) * kInvSqrt2Pi<T>();
      return g * (cdf + x * pdf);
    }
    case kActGeluTanh: {
      const T x2 = x * x;
      const T u = kSqrt2OverPi<T>() * (x + kKappa<T>() * (x2 * x));
      const T th = d_tanh(u);
      const T left = T(0.5) * (T(1) + th);
      const T right = (T(0.5) * x) * (T(1) - th * th) * (kSqrt2OverPi<T>() * (T(1) + (T(3) * kKappa<T>()) * x2));
      return g * (left + right);
    }
    default: return g;
  }
}

template <class T>
__global__ void act_fwd_kernel(int op, int64_t n, const T* __restrict__ x, T* __restrict__ y, T a) {
  CK_GRID_STRIDE(i, n) y[i] = act_f(op, x[i], a);
}
template <class T>
__global__ void act_bwd_kernel(int op, int64_t n, const T* __restrict__ g, const T* __restrict__ x,
                               T* __restrict__ gx, T a) {
  CK_GRID_STRIDE(i, n) gx[i] = act_b(op, g[i], x[i], a);
}

template <class T>
void act_fwd_impl(int op, int64_t n, const T* x, T* y, T a) {
  if (n <= 0) return;
  act_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(op, n, x, y, a);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void act_bwd_impl(int op, int64_t n, const T* g, const T* x, T* gx, T a) {
  if (n <= 0) return;
  act_bwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(op, n, g, x, gx, a);
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- PReLU

template <class T>
__global__ void prelu_fwd_kernel(int64_t n, int64_t C, int64_t inner, const T* __restrict__ x,
                                 const T* __restrict__ w, T* __restrict__ y) {
  CK_GRID_STRIDE(i, n) {
    const T a = w[C == 1 ? 0 : (i / inner) % C];
    const T v = x[i];
    y[i] = v > T(0) ? v : v * a;
  }
}

template <class T>
__global__ void prelu_bwd_gx_kernel(int64_t n, int64_t C, int64_t inner, const T* __restrict__ g,
                                    const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ gx) {
  CK_GRID_STRIDE(i, n) {
    const T a = w[C == 1 ? 0 : (i / inner) % C];
    gx[i] = x[i] > T(0) ? g[i] : g[i] * a;
  }
}

// gw[c] = sum over (outer, inner) of (x > 0 ? 0 : x g): one block per channel, fixed order.
template <class T>
__global__ void prelu_bwd_gw_kernel(int64_t outer, int64_t C, int64_t inner, const T* __restrict__ g,
                                    const T* __restrict__ x, T* __restrict__ gw) {
  __shared__ T sh[32];
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    T s = T(0);
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t base = (o * C + c) * inner;
      for (int64_t j = threadIdx.x; j < inner; j += blockDim.x) {
        const T v = x[base + j];
        s += v > T(0) ? T(0) : v * g[base + j];
      }
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) gw[c] = s;
  }
}

template <class T>
void prelu_fwd_impl(int64_t outer, int64_t C, int64_t inner, const T* x, const T* w, T* y) {
  const int64_t n = outer * C * inner;
  if (n <= 0) return;
  prelu_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, C, inner, x, w, y);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void prelu_bwd_impl(int64_t outer, int64_t C, int64_t inner, const T* g, const T* x, const T* w, T* gx, T* gw) {
  const int64_t n = outer * C * inner;
  if (n <= 0) return;
  prelu_bwd_gx_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, C, inner, g, x, w, gx);
  CK_CUDA_LAUNCH_CHECK();
  const int64_t blocks = C < 65535 ? C : 65535;
  // C == 1 (shared weight): one block walks the whole array as (outer * inner) values
  prelu_bwd_gw_kernel<T><<<unsigned(blocks), 1024, 0, stream()>>>(outer, C, inner, g, x, gw);
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- softmax

// inner == 1: one warp per row of D contiguous values.
template <class T>
__global__ void softmax_rows_kernel(int64_t rows, int64_t D, const T* __restrict__ x, T* __restrict__ y, bool log) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t row = warp; row < rows; row += nwarps) {
    const T* xr = x + row * D;
    T* yr = y + row * D;
    T m = ninf<T>();
    for (int64_t j = lane; j < D; j += 32) m = (xr[j] > m || xr[j] != xr[j]) ? xr[j] : m;
    m = warp_max(m);
    m = __shfl_sync(0xffffffffu, m, 0);
    T s = T(0);
    for (int64_t j = lane; j < D; j += 32) s += d_exp(xr[j] - m);
    s = warp_sum(s);
    s = __shfl_sync(0xffffffffu, s, 0);
    if (log) {
      const T ls = m + d_log(s);
      for (int64_t j = lane; j < D; j += 32) yr[j] = xr[j] - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t j = lane; j < D; j += 32) yr[j] = d_exp(xr[j] - m) * inv;
    }
  }
}

// inner > 1: one thread per (outer, inner) column, walking D with stride inner (coalesced
// across the threads of a warp).
template <class T>
__global__ void softmax_cols_kernel(int64_t outer, int64_t D, int64_t inner, const T* __restrict__ x,
                                    T* __restrict__ y, bool log) {
  CK_GRID_STRIDE(i, outer * inner) {
    const int64_t o = i / inner, in = i % inner;
    const T* xc = x + o * D * inner + in;
    T* yc = y + o * D * inner + in;
    T m = ninf<T>();
    for (int64_t d = 0; d < D; ++d) {
      const T v = xc[d * inner];
      m = (v > m || v != v) ? v : m;
    }
    T s = T(0);
    for (int64_t d = 0; d < D; ++d) s += d_exp(xc[d * inner] - m);
    if (log) {
      const T ls = m + d_log(s);
      for (int64_t d = 0; d < D; ++d) yc[d * inner] = xc[d * inner] - ls;
    } else {
      const T inv = T(1) / s;
      for (int64_t d = 0; d < D; ++d) yc[d * inner] = d_exp(xc[d * inner] - m) * inv;
    }
  }
}

// Backward (recomputing y): softmax gx = y (g - sum g y); log_softmax gx = g - exp(y) sum g.
template <class T>
__global__ void softmax_bwd_rows_kernel(int64_t rows, int64_t D, const T* __restrict__ g, const T* __restrict__ x,
                                        T* __restrict__ gx, bool log) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t row = warp; row < rows; row += nwarps) {
    const T* xr = x + row * D;
    const T* gr = g + row * D;
    T* out = gx + row * D;
    T m = ninf<T>();
    for (int64_t j = lane; j < D; j += 32) m = (xr[j] > m || xr[j] != xr[j]) ? xr[j] : m;
    m = __shfl_sync(0xffffffffu, warp_max(m), 0);
    T s = T(0);
    for (int64_t j = lane; j < D; j += 32) s += d_exp(xr[j] - m);
    s = __shfl_sync(0xffffffffu, warp_sum(s), 0);
    const T inv = T(1) / s;
    T dot = T(0);
    for (int64_t j = lane; j < D; j += 32) dot += log ? gr[j] : gr[j] * (d_exp(xr[j] - m) * inv);
    dot = __shfl_sync(0xffffffffu, warp_sum(dot), 0);
    for (int64_t j = lane; j < D; j += 32) {
      const T p = d_exp(xr[j] - m) * inv;
      out[j] = log ? gr[j] - p * dot : p * (gr[j] - dot);
    }
  }
}

template <class T>
__global__ void softmax_bwd_cols_kernel(int64_t outer, int64_t D, int64_t inner, const T* __restrict__ g,
                                        const T* __restrict__ x, T* __restrict__ gx, bool log) {
  CK_GRID_STRIDE(i, outer * inner) {
    const int64_t o = i / inner, in = i % inner;
    const int64_t off = o * D * inner + in;
    T m = ninf<T>();
    for (int64_t d = 0; d < D; ++d) {
      const T v = x[off + d * inner];
      m = (v > m || v != v) ? v : m;
    }
    T s = T(0);
    for (int64_t d = 0; d < D; ++d) s += d_exp(x[off + d * inner] - m);
    const T inv = T(1) / s;
    T dot = T(0);
    for (int64_t d = 0; d < D; ++d) {
      const int64_t j = off + d * inner;
      dot += log ? g[j] : g[j] * (d_exp(x[j] - m) * inv);
    }
    for (int64_t d = 0; d < D; ++d) {
      const int64_t j = off + d * inner;
      const T p = d_exp(x[j] - m) * inv;
      gx[j] = log ? g[j] - p * dot : p * (g[j] - dot);
    }
  }
}

template <class T>
void softmax_fwd_impl(int64_t outer, int64_t D, int64_t inner, const T* x, T* y, bool log) {
  if (outer * D * inner <= 0) return;
  if (inner == 1) {
    softmax_rows_kernel<T><<<grid_for(outer * 32), kThreads, 0, stream()>>>(outer, D, x, y, log);
  } else {
    softmax_cols_kernel<T><<<grid_for(outer * inner), kThreads, 0, stream()>>>(outer, D, inner, x, y, log);
  }
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void softmax_bwd_impl(int64_t outer, int64_t D, int64_t inner, const T* g, const T* x, T* gx, bool log) {
  if (outer * D * inner <= 0) return;
  if (inner == 1) {
    softmax_bwd_rows_kernel<T><<<grid_for(outer * 32), kThreads, 0, stream()>>>(outer, D, g, x, gx, log);
  } else {
    softmax_bwd_cols_kernel<T><<<grid_for(outer * inner), kThreads, 0, stream()>>>(outer, D, inner, g, x, gx, log);
  }
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- dropout

template <class T>
__global__ void dropout_kernel(int64_t n, const T* __restrict__ x, T* __restrict__ y, uint64_t seed,
                               uint64_t threshold, T scale) {
  CK_GRID_STRIDE(i, n) {
    uint64_t z = seed + (uint64_t(i) + 1u) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    y[i] = x[i] * ((z >> 11) >= threshold ? scale : T(0));
  }
}

template <class T>
void dropout_impl(int64_t n, const T* x, T* y, uint64_t seed, uint64_t threshold, T scale) {
  if (n <= 0) return;
  dropout_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, x, y, seed, threshold, scale);
  CK_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(act_fwd_stub, cuda::act_fwd_impl);
CK_REGISTER_CUDA(act_bwd_stub, cuda::act_bwd_impl);
CK_REGISTER_CUDA(prelu_fwd_stub, cuda::prelu_fwd_impl);
CK_REGISTER_CUDA(prelu_bwd_stub, cuda::prelu_bwd_impl);
CK_REGISTER_CUDA(softmax_fwd_stub, cuda::softmax_fwd_impl);
CK_REGISTER_CUDA(softmax_bwd_stub, cuda::softmax_bwd_impl);
CK_REGISTER_CUDA(dropout_stub, cuda::dropout_impl);

}  // namespace ck
