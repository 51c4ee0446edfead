// CUDA pooling (NCHW planes), semantics of cpu/pool*.cpp: max scans each window in row-major
// order taking `v > max || isnan(v)` (first maximum wins ties, the last NaN wins); avg uses
// torch's divisors. Backward passes are gathers (each input element sums the gradients of the
// windows that contain it and chose it), so they are deterministic and need no atomics:
// max / adaptive max first store each window's argmax in a stream-ordered workspace.
#include "cuda/common.cuh"
#include "ops/pool.h"

namespace ck {
namespace cuda {
namespace {

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// ---------------------------------------------------------------- max

// Window of output (p, q): taps start + t*d, valid for t in [a, b). a0: first tap >= 0
// (not capped: torch's starting index of an empty window).
struct Span {
  int64_t start, a0, a, b;
};
__device__ __forceinline__ Span span(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t d, int64_t n) {
  Span sp;
  sp.start = o * stride - pad;
  const int64_t last = n - 1 - sp.start;
  sp.a0 = sp.start < 0 ? (-sp.start + d - 1) / d : 0;
  sp.b = last < 0 ? 0 : imin(k, last / d + 1);
  sp.a = imin(sp.a0, k);
  if (sp.b < sp.a) sp.b = sp.a;
  return sp;
}

// Argmax of window (p, q) of one plane; `mark_empty`: an empty window gives -1.
template <class T>
__device__ __forceinline__ int64_t window_max(const PoolParams& pp, const T* x, int64_t p, int64_t q, T* val,
                                              bool mark_empty) {
  const Span rs = span(p, pp.sh, pp.ph, pp.R, pp.dh, pp.H);
  const Span cs = span(q, pp.sw, pp.pw, pp.S, pp.dw, pp.W);
  T m = ninf<T>();
  int64_t mi = (rs.start + rs.a0 * pp.dh) * pp.W + cs.start + cs.a0 * pp.dw;
  for (int64_t r = rs.a; r < rs.b; ++r) {
    const int64_t ih = rs.start + r * pp.dh;
    for (int64_t s = cs.a; s < cs.b; ++s) {
      const int64_t iw = cs.start + s * pp.dw;
      const T v = x[ih * pp.W + iw];
      if (v > m || v != v) {
        m = v;
        mi = ih * pp.W + iw;
      }
    }
  }
  *val = m;
  if (mark_empty && (rs.a >= rs.b || cs.a >= cs.b)) return -1;
  return mi;
}

template <class T>
__global__ void max_pool_fwd_kernel(PoolParams pp, const T* __restrict__ x, T* __restrict__ y,
                                    int64_t* __restrict__ idx, bool mark_empty) {
  const int64_t PQ = pp.P * pp.Q;
  CK_GRID_STRIDE(i, pp.NC * PQ) {
    const int64_t nc = i / PQ, pq = i % PQ;
    T v;
    const int64_t mi = window_max(pp, x + nc * pp.H * pp.W, pq / pp.Q, pq % pp.Q, &v, mark_empty);
    if (y) y[i] = v;
    if (idx) idx[i] = mi;
  }
}

// Output rows / columns whose window (start o*s - pad, taps t*d, t < k) can contain input i.
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t k, int64_t d,
                                         int64_t out, int64_t* lo, int64_t* hi) {
  // o*stride - pad <= i  and  o*stride - pad + (k-1)*d >= i
  const int64_t num_hi = i + pad;
  const int64_t num_lo = i + pad - (k - 1) * d;
  *hi = imin(out - 1, num_hi / stride);
  *lo = num_lo <= 0 ? 0 : (num_lo + stride - 1) / stride;
}

// gx[i] = sum of gy over the windows covering i whose argmax is i.
template <class T>
__global__ void max_pool_bwd_kernel(PoolParams pp, const int64_t* __restrict__ idx, const T* __restrict__ gy,
                                    T* __restrict__ gx) {
  const int64_t HW = pp.H * pp.W, PQ = pp.P * pp.Q;
  CK_GRID_STRIDE(i, pp.NC * HW) {
    const int64_t nc = i / HW, hw = i % HW, h = hw / pp.W, w = hw % pp.W;
    int64_t plo, phi, qlo, qhi;
    covering(h, pp.sh, pp.ph, pp.R, pp.dh, pp.P, &plo, &phi);
    covering(w, pp.sw, pp.pw, pp.S, pp.dw, pp.Q, &qlo, &qhi);
    const int64_t* ix = idx + nc * PQ;
    const T* g = gy + nc * PQ;
    T acc = T(0);
    for (int64_t p = plo; p <= phi; ++p)
      for (int64_t q = qlo; q <= qhi; ++q)
        if (ix[p * pp.Q + q] == hw) acc += g[p * pp.Q + q];
    gx[i] = acc;
  }
}

template <class T>
void max_pool2d_fwd_impl(const PoolParams& pp, const T* x, T* y, int64_t* idx) {
  const int64_t n = pp.NC * pp.P * pp.Q;
  if (n <= 0) return;
  max_pool_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(pp, x, y, idx, false);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void max_pool2d_bwd_impl(const PoolParams& pp, const T* x, const T* gy, T* gx) {
  const int64_t n = pp.NC * pp.P * pp.Q;
  if (pp.NC * pp.H * pp.W <= 0) return;
  Scratch<int64_t> idx(n);
  max_pool_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(pp, x, nullptr, idx.get(), true);
  CK_CUDA_LAUNCH_CHECK();
  max_pool_bwd_kernel<T><<<grid_for(pp.NC * pp.H * pp.W), kThreads, 0, stream()>>>(pp, idx.get(), gy, gx);
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- avg

struct AvgSpan {
  int64_t lo, hi, pooled;  // in-bounds [lo, hi), padded-extent length
};
__device__ __forceinline__ AvgSpan avg_span(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t n) {
  const int64_t start = o * stride - pad;
  const int64_t end = imin(start + k, n + pad);
  return AvgSpan{imax(start, 0), imin(end, n), end - start};
}
__device__ __forceinline__ int64_t avg_divisor(const AvgSpan& h, const AvgSpan& w, bool cip, int64_t ovr) {
  if (ovr) return ovr;
  return cip ? h.pooled * w.pooled : (h.hi - h.lo) * (w.hi - w.lo);
}

template <class T>
__global__ void avg_pool_fwd_kernel(PoolParams pp, bool cip, int64_t ovr, const T* __restrict__ x,
                                    T* __restrict__ y) {
  const int64_t PQ = pp.P * pp.Q;
  CK_GRID_STRIDE(i, pp.NC * PQ) {
    const int64_t nc = i / PQ, pq = i % PQ;
    const AvgSpan hs = avg_span(pq / pp.Q, pp.sh, pp.ph, pp.R, pp.H);
    const AvgSpan ws = avg_span(pq % pp.Q, pp.sw, pp.pw, pp.S, pp.W);
    const T* xp = x + nc * pp.H * pp.W;
    T sum = T(0);
    for (int64_t ih = hs.lo; ih < hs.hi; ++ih)
      for (int64_t iw = ws.lo; iw < ws.hi; ++iw) sum += xp[ih * pp.W + iw];
    y[i] = sum / T(avg_divisor(hs, ws, cip, ovr));
  }
}

template <class T>
__global__ void avg_pool_bwd_kernel(PoolParams pp, bool cip, int64_t ovr, const T* __restrict__ gy,
                                    T* __restrict__ gx) {
  const int64_t HW = pp.H * pp.W, PQ = pp.P * pp.Q;
  CK_GRID_STRIDE(i, pp.NC * HW) {
    const int64_t nc = i / HW, hw = i % HW, h = hw / pp.W, w = hw % pp.W;
    int64_t plo, phi, qlo, qhi;
    covering(h, pp.sh, pp.ph, pp.R, 1, pp.P, &plo, &phi);
    covering(w, pp.sw, pp.pw, pp.S, 1, pp.Q, &qlo, &qhi);
    const T* g = gy + nc * PQ;
    T acc = T(0);
    for (int64_t p = plo; p <= phi; ++p) {
      const AvgSpan hs = avg_span(p, pp.sh, pp.ph, pp.R, pp.H);
      if (h < hs.lo || h >= hs.hi) continue;
      for (int64_t q = qlo; q <= qhi; ++q) {
        const AvgSpan ws = avg_span(q, pp.sw, pp.pw, pp.S, pp.W);
        if (w < ws.lo || w >= ws.hi) continue;
        acc += g[p * pp.Q + q] / T(avg_divisor(hs, ws, cip, ovr));
      }
    }
    gx[i] = acc;
  }
}

template <class T>
void avg_pool2d_fwd_impl(const PoolParams& pp, bool cip, int64_t ovr, const T* x, T* y) {
  const int64_t n = pp.NC * pp.P * pp.Q;
  if (n <= 0) return;
  avg_pool_fwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(pp, cip, ovr, x, y);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void avg_pool2d_bwd_impl(const PoolParams& pp, bool cip, int64_t ovr, const T* gy, T* gx) {
  const int64_t n = pp.NC * pp.H * pp.W;
  if (n <= 0) return;
  avg_pool_bwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(pp, cip, ovr, gy, gx);
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- adaptive

__device__ __forceinline__ int64_t ad_lo(int64_t o, int64_t n, int64_t out) { return o * n / out; }
__device__ __forceinline__ int64_t ad_hi(int64_t o, int64_t n, int64_t out) { return ((o + 1) * n + out - 1) / out; }

// Adaptive windows containing input row i: o in [lo, hi] (a superset, checked by the caller).
__device__ __forceinline__ void ad_covering(int64_t i, int64_t n, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = imax(0, (i * out) / n - 1);
  *hi = imin(out - 1, ((i + 1) * out + n - 1) / n);
}

template <class T>
__global__ void adaptive_avg_fwd_kernel(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q,
                                        const T* __restrict__ x, T* __restrict__ y) {
  CK_GRID_STRIDE(i, NC * P * Q) {
    const int64_t nc = i / (P * Q), pq = i % (P * Q), p = pq / Q, q = pq % Q;
    const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P), w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
    const T* xp = x + nc * H * W;
    T s = T(0);
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += xp[h * W + w];
    y[i] = s / T((h1 - h0) * (w1 - w0));
  }
}

template <class T>
__global__ void adaptive_avg_bwd_kernel(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q,
                                        const T* __restrict__ gy, T* __restrict__ gx) {
  CK_GRID_STRIDE(i, NC * H * W) {
    const int64_t nc = i / (H * W), hw = i % (H * W), h = hw / W, w = hw % W;
    int64_t plo, phi, qlo, qhi;
    ad_covering(h, H, P, &plo, &phi);
    ad_covering(w, W, Q, &qlo, &qhi);
    const T* g = gy + nc * P * Q;
    T acc = T(0);
    for (int64_t p = plo; p <= phi; ++p) {
      const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P);
      if (h < h0 || h >= h1) continue;
      for (int64_t q = qlo; q <= qhi; ++q) {
        const int64_t w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
        if (w < w0 || w >= w1) continue;
        acc += g[p * Q + q] / T((h1 - h0) * (w1 - w0));
      }
    }
    gx[i] = acc;
  }
}

template <class T>
__global__ void adaptive_max_fwd_kernel(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q,
                                        const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx) {
  CK_GRID_STRIDE(i, NC * P * Q) {
    const int64_t nc = i / (P * Q), pq = i % (P * Q), p = pq / Q, q = pq % Q;
    const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P), w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
    const T* xp = x + nc * H * W;
    T m = ninf<T>();
    int64_t mi = h0 * W + w0;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const T v = xp[h * W + w];
        if (v > m || v != v) {
          m = v;
          mi = h * W + w;
        }
      }
    if (y) y[i] = m;
    if (idx) idx[i] = mi;
  }
}

template <class T>
__global__ void adaptive_max_bwd_kernel(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q,
                                        const int64_t* __restrict__ idx, const T* __restrict__ gy,
                                        T* __restrict__ gx) {
  CK_GRID_STRIDE(i, NC * H * W) {
    const int64_t nc = i / (H * W), hw = i % (H * W), h = hw / W, w = hw % W;
    int64_t plo, phi, qlo, qhi;
    ad_covering(h, H, P, &plo, &phi);
    ad_covering(w, W, Q, &qlo, &qhi);
    const int64_t* ix = idx + nc * P * Q;
    const T* g = gy + nc * P * Q;
    T acc = T(0);
    for (int64_t p = plo; p <= phi; ++p)
      for (int64_t q = qlo; q <= qhi; ++q)
        if (ix[p * Q + q] == hw) acc += g[p * Q + q];
    gx[i] = acc;
  }
}

template <class T>
void adaptive_avg_fwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y) {
  if (NC * P * Q <= 0) return;
  adaptive_avg_fwd_kernel<T><<<grid_for(NC * P * Q), kThreads, 0, stream()>>>(NC, H, W, P, Q, x, y);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void adaptive_avg_bwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* gy, T* gx) {
  if (NC * H * W <= 0) return;
  adaptive_avg_bwd_kernel<T><<<grid_for(NC * H * W), kThreads, 0, stream()>>>(NC, H, W, P, Q, gy, gx);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void adaptive_max_fwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y, int64_t* idx) {
  if (NC * P * Q <= 0) return;
  adaptive_max_fwd_kernel<T><<<grid_for(NC * P * Q), kThreads, 0, stream()>>>(NC, H, W, P, Q, x, y, idx);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void adaptive_max_bwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, const T* gy, T* gx) {
  if (NC * H * W <= 0) return;
  Scratch<int64_t> idx(NC * P * Q);
  adaptive_max_fwd_kernel<T><<<grid_for(NC * P * Q), kThreads, 0, stream()>>>(NC, H, W, P, Q, x, nullptr, idx.get());
  CK_CUDA_LAUNCH_CHECK();
  adaptive_max_bwd_kernel<T><<<grid_for(NC * H * W), kThreads, 0, stream()>>>(NC, H, W, P, Q, idx.get(), gy, gx);
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- global

// One block per plane. Max keeps (value, index) pairs combined in scan order: the later
// element wins if it is NaN, or if it is larger and the earlier one is not NaN.
template <class T>
__device__ __forceinline__ void max_combine(T& v, int64_t& i, T v2, int64_t i2) {
  const bool take = (v2 != v2) ? (v == v || i2 > i) : (v == v && (v2 > v || (v2 == v && i2 < i)));
  if (take) {
    v = v2;
    i = i2;
  }
}

template <class T>
__global__ void global_pool_kernel(int64_t NC, int64_t HW, const T* __restrict__ x, T* __restrict__ y,
                                   const T* __restrict__ gy, T* __restrict__ gx, int mode) {
  // mode 0: avg forward, 1: max forward, 2: max backward (gx = gy at the argmax, else 0)
  __shared__ T sv[32];
  __shared__ int64_t si[32];
  for (int64_t nc = blockIdx.x; nc < NC; nc += gridDim.x) {
    const T* xp = x + nc * HW;
    if (mode == 0) {
      T s = T(0);
      for (int64_t j = threadIdx.x; j < HW; j += blockDim.x) s += xp[j];
      s = block_sum(s, sv);
      if (threadIdx.x == 0) y[nc] = s / T(HW);
      continue;
    }
    T v = ninf<T>();
    int64_t at = 0;
    for (int64_t j = threadIdx.x; j < HW; j += blockDim.x) max_combine(v, at, xp[j], j);
    // warp then block combine
    for (int o = 16; o > 0; o >>= 1) {
      const T v2 = __shfl_down_sync(0xffffffffu, v, o);
      const int64_t i2 = __shfl_down_sync(0xffffffffu, at, o);
      max_combine(v, at, v2, i2);
    }
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) {
      sv[wid] = v;
      si[wid] = at;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const int nw = (blockDim.x + 31) >> 5;
      for (int k = 1; k < nw; ++k) max_combine(v, at, sv[k], si[k]);
      sv[0] = v;
      si[0] = at;
    }
    __syncthreads();
    v = sv[0];
    at = si[0];
    __syncthreads();
    if (mode == 1) {
      if (threadIdx.x == 0) y[nc] = v;
    } else {
      T* g = gx + nc * HW;
      const T gv = gy[nc];
      for (int64_t j = threadIdx.x; j < HW; j += blockDim.x) g[j] = (j == at) ? gv : T(0);
    }
  }
}

template <class T>
__global__ void global_avg_bwd_kernel(int64_t NC, int64_t HW, const T* __restrict__ gy, T* __restrict__ gx) {
  CK_GRID_STRIDE(i, NC * HW) gx[i] = gy[i / HW] / T(HW);
}

unsigned plane_blocks(int64_t NC) { return unsigned(NC < 65535 ? (NC > 0 ? NC : 1) : 65535); }

template <class T>
void global_avg_fwd_impl(int64_t NC, int64_t HW, const T* x, T* y) {
  if (NC <= 0) return;
  global_pool_kernel<T><<<plane_blocks(NC), kThreads, 0, stream()>>>(NC, HW, x, y, nullptr, nullptr, 0);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void global_max_fwd_impl(int64_t NC, int64_t HW, const T* x, T* y) {
  if (NC <= 0) return;
  global_pool_kernel<T><<<plane_blocks(NC), kThreads, 0, stream()>>>(NC, HW, x, y, nullptr, nullptr, 1);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void global_avg_bwd_impl(int64_t NC, int64_t HW, const T* gy, T* gx) {
  if (NC * HW <= 0) return;
  global_avg_bwd_kernel<T><<<grid_for(NC * HW), kThreads, 0, stream()>>>(NC, HW, gy, gx);
  CK_CUDA_LAUNCH_CHECK();
}
template <class T>
void global_max_bwd_impl(int64_t NC, int64_t HW, const T* x, const T* gy, T* gx) {
  if (NC <= 0) return;
  global_pool_kernel<T><<<plane_blocks(NC), kThreads, 0, stream()>>>(NC, HW, x, nullptr, gy, gx, 2);
  CK_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(max_pool2d_fwd_stub, cuda::max_pool2d_fwd_impl);
CK_REGISTER_CUDA(max_pool2d_bwd_stub, cuda::max_pool2d_bwd_impl);
CK_REGISTER_CUDA(avg_pool2d_fwd_stub, cuda::avg_pool2d_fwd_impl);
CK_REGISTER_CUDA(avg_pool2d_bwd_stub, cuda::avg_pool2d_bwd_impl);
CK_REGISTER_CUDA(adaptive_avg_pool2d_fwd_stub, cuda::adaptive_avg_fwd_impl);
CK_REGISTER_CUDA(adaptive_avg_pool2d_bwd_stub, cuda::adaptive_avg_bwd_impl);
CK_REGISTER_CUDA(adaptive_max_pool2d_fwd_stub, cuda::adaptive_max_fwd_impl);
CK_REGISTER_CUDA(adaptive_max_pool2d_bwd_stub, cuda::adaptive_max_bwd_impl);
CK_REGISTER_CUDA(global_avg_pool_fwd_stub, cuda::global_avg_fwd_impl);
CK_REGISTER_CUDA(global_max_pool_fwd_stub, cuda::global_max_fwd_impl);
CK_REGISTER_CUDA(global_avg_pool_bwd_stub, cuda::global_avg_bwd_impl);
CK_REGISTER_CUDA(global_max_pool_bwd_stub, cuda::global_max_bwd_impl);

}  // namespace ck
