// CUDA depthwise 2-d convolution with channel multiplier M (ops/depthwise.h): output channel
// oc = c*M + m reads input channel c. Dedicated kernels (not a grouped GEMM):
//   forward      one thread per output element, the R x S taps from the (L1-cached) weights;
//   grad input   one thread per input element gathering the taps that read it (no atomics);
//   grad weight  one block per (oc, r, s) tap reducing gy * x over (n, p, q) in a fixed order;
//   grad bias    one block per output channel.
#include "cuda/common.cuh"
#include "ops/depthwise.h"

namespace ck {
namespace cuda {
namespace {

template <class T>
__global__ void dw_fwd_kernel(DwParams p, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                              T* __restrict__ y) {
  const int64_t K = p.C * p.M, PQ = p.P * p.Q;
  CK_GRID_STRIDE(i, p.N * K * PQ) {
    const int64_t pq = i % PQ, nk = i / PQ, oc = nk % K, n = nk / K;
    const int64_t op = pq / p.Q, oq = pq % p.Q;
    const T* xp = x + (n * p.C + oc / p.M) * p.H * p.W;
    const T* wk = w + oc * p.R * p.S;
    const int64_t h0 = op * p.sh - p.ph, w0 = oq * p.sw - p.pw;
    T acc = b ? b[oc] : T(0);
    for (int64_t r = 0; r < p.R; ++r) {
      const int64_t ih = h0 + r * p.dh;
      if (ih < 0 || ih >= p.H) continue;
      for (int64_t s = 0; s < p.S; ++s) {
        const int64_t iw = w0 + s * p.dw;
        if (iw < 0 || iw >= p.W) continue;
        acc = fma(xp[ih * p.W + iw], __ldg(wk + r * p.S + s), acc);
      }
    }
    y[i] = acc;
  }
}

template <class T>
__global__ void dw_bwd_input_kernel(DwParams p, const T* __restrict__ gy, const T* __restrict__ w,
                                    T* __restrict__ gx) {
  const int64_t K = p.C * p.M, HW = p.H * p.W, PQ = p.P * p.Q;
  CK_GRID_STRIDE(i, p.N * p.C * HW) {
    const int64_t hw = i % HW, nc = i / HW, c = nc % p.C, n = nc / p.C;
    const int64_t h = hw / p.W, wi = hw % p.W;
    T acc = T(0);
    for (int64_t m = 0; m < p.M; ++m) {
      const int64_t oc = c * p.M + m;
      const T* g = gy + (n * K + oc) * PQ;
      const T* wk = w + oc * p.R * p.S;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t ohs = h + p.ph - r * p.dh;
        if (ohs < 0 || ohs % p.sh) continue;
        const int64_t oh = ohs / p.sh;
        if (oh >= p.P) continue;
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t ows = wi + p.pw - s * p.dw;
          if (ows < 0 || ows % p.sw) continue;
          const int64_t ow = ows / p.sw;
          if (ow >= p.Q) continue;
          acc = fma(g[oh * p.Q + ow], __ldg(wk + r * p.S + s), acc);
        }
      }
    }
    gx[i] = acc;
  }
}

template <class T>
__global__ void dw_bwd_weight_kernel(DwParams p, const T* __restrict__ x, const T* __restrict__ gy,
                                     T* __restrict__ gw) {
  __shared__ T sh[32];
  const int64_t K = p.C * p.M, RS = p.R * p.S, PQ = p.P * p.Q;
  for (int64_t tap = blockIdx.x; tap < K * RS; tap += gridDim.x) {
    const int64_t oc = tap / RS, rs = tap % RS, r = rs / p.S, s = rs % p.S;
    const int64_t c = oc / p.M;
    T acc = T(0);
    for (int64_t n = 0; n < p.N; ++n) {
      const T* xp = x + (n * p.C + c) * p.H * p.W;
      const T* g = gy + (n * K + oc) * PQ;
      for (int64_t pq = threadIdx.x; pq < PQ; pq += blockDim.x) {
        const int64_t ih = (pq / p.Q) * p.sh - p.ph + r * p.dh;
        const int64_t iw = (pq % p.Q) * p.sw - p.pw + s * p.dw;
        if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) acc = fma(g[pq], xp[ih * p.W + iw], acc);
      }
    }
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) gw[tap] = acc;
  }
}

template <class T>
__global__ void dw_bwd_bias_kernel(DwParams p, const T* __restrict__ gy, T* __restrict__ gb) {
  __shared__ T sh[32];
  const int64_t K = p.C * p.M, PQ = p.P * p.Q;
  for (int64_t oc = blockIdx.x; oc < K; oc += gridDim.x) {
    T acc = T(0);
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t j = threadIdx.x; j < PQ; j += blockDim.x) acc += gy[(n * K + oc) * PQ + j];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) gb[oc] = acc;
  }
}

unsigned capped(int64_t n) { return unsigned(n < 65535 ? (n > 0 ? n : 1) : 65535); }

template <class T>
void dw_fwd_impl(const DwParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t n = p.N * p.C * p.M * p.P * p.Q;
  if (n <= 0) return;
  dw_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(p, x, w, b, y);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void dw_bwd_input_impl(const DwParams& p, const T* gy, const T* w, T* gx) {
  const int64_t n = p.N * p.C * p.H * p.W;
  if (n <= 0) return;
  dw_bwd_input_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(p, gy, w, gx);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void dw_bwd_weight_impl(const DwParams& p, const T* x, const T* gy, T* gw, T* gb) {
  const int64_t K = p.C * p.M;
  dw_bwd_weight_kernel<T><<<capped(K * p.R * p.S), kThreads, 0, stream()>>>(p, x, gy, gw);
  CK_CUDA_LAUNCH_CHECK();
  if (gb) {
    dw_bwd_bias_kernel<T><<<capped(K), kThreads, 0, stream()>>>(p, gy, gb);
    CK_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(depthwise_fwd_stub, cuda::dw_fwd_impl);
CK_REGISTER_CUDA(depthwise_bwd_input_stub, cuda::dw_bwd_input_impl);
CK_REGISTER_CUDA(depthwise_bwd_weight_stub, cuda::dw_bwd_weight_impl);

}  // namespace ck
