// CUDA losses, semantics of cpu/loss.cpp: cross_entropy with a fused, stable log-softmax
// (one warp per position when the classes are contiguous, inner == 1; one thread per
// position otherwise, walking the classes with stride inner) and mse_loss.
#include "cuda/common.cuh"
#include "ops/loss.h"

namespace ck {
namespace cuda {
namespace {

// Reductions over the LANES threads that share one position (32: a warp, 1: a thread).
template <int LANES, class T>
__device__ __forceinline__ T group_sum(T v) {
  if constexpr (LANES == 32) return __shfl_sync(0xffffffffu, warp_sum(v), 0);
  return v;
}
template <int LANES, class T>
__device__ __forceinline__ T group_max(T v) {
  if constexpr (LANES == 32) return __shfl_sync(0xffffffffu, warp_max(v), 0);
  return v;
}

// Max, sum of exp(x - max) and (eps > 0) sx = sum_c w_c (x_c - max), W = sum_c w_c.
template <int LANES, class T>
__device__ __forceinline__ void ce_stats(int64_t C, const T* xc, int64_t stride, const T* w, bool need_sx, int lane,
                                         T* m_out, T* s_out, T* sx_out, T* W_out) {
  T m = ninf<T>();
  for (int64_t c = lane; c < C; c += LANES) {
    const T v = xc[c * stride];
    m = v > m ? v : m;
  }
  m = group_max<LANES>(m);
  T s = T(0), sx = T(0), W = T(0);
  for (int64_t c = lane; c < C; c += LANES) {
    const T v = xc[c * stride];
    s += d_exp(v - m);
    if (need_sx) {
      const T wc = w ? w[c] : T(1);
      sx += wc * (v - m);
      W += wc;
    }
  }
  *m_out = m;
  *s_out = group_sum<LANES>(s);
  *sx_out = need_sx ? group_sum<LANES>(sx) : T(0);
  *W_out = need_sx ? group_sum<LANES>(W) : T(0);
}

template <int LANES, class T>
__global__ void ce_fwd_kernel(int64_t N, int64_t C, int64_t inner, const T* __restrict__ x,
                              const int64_t* __restrict__ t, const T* __restrict__ w, int64_t ignore_index, T eps,
                              T* __restrict__ loss, T* __restrict__ wt, unsigned long long* __restrict__ bad) {
  const int lane = LANES == 32 ? (threadIdx.x & 31) : 0;
  const int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / LANES;
  const int64_t step = (int64_t(gridDim.x) * blockDim.x) / LANES;
  const T keep = T(1) - eps, spread = eps / T(C);
  for (int64_t p = first; p < N * inner; p += step) {
    const int64_t n = p / inner, j = p % inner;
    const T* xc = x + n * C * inner + j;
    const int64_t tt = t[p];
    if (tt == ignore_index || tt < 0 || tt >= C) {
      if (lane == 0) {
        const bool ignored = tt == ignore_index;
        loss[p] = ignored ? T(0) : T(NAN);
        wt[p] = T(0);
        if (!ignored) atomicAdd(bad, 1ull);
      }
      continue;
    }
    T m, s, sx, W;
    ce_stats<LANES>(C, xc, inner, w, eps != T(0), lane, &m, &s, &sx, &W);
    if (lane == 0) {
      const T lg = d_log(s);
      const T wtt = w ? w[tt] : T(1);
      T l = keep * (wtt * ((lg + m) - xc[tt * inner]));
      if (eps != T(0)) l += spread * (W * lg - sx);
      loss[p] = l;
      wt[p] = wtt;
    }
  }
}

// gx_c = gi ((1 - eps) w_t + eps W / C) p_c - gi (1 - eps) w_t [c == t] - gi eps / C w_c.
template <int LANES, class T>
__global__ void ce_bwd_kernel(int64_t N, int64_t C, int64_t inner, const T* __restrict__ x,
                              const int64_t* __restrict__ t, const T* __restrict__ w, int64_t ignore_index, T eps,
                              const T* __restrict__ g, int64_t gstride, T gscale, T* __restrict__ gx,
                              unsigned long long* __restrict__ bad) {
  const int lane = LANES == 32 ? (threadIdx.x & 31) : 0;
  const int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / LANES;
  const int64_t step = (int64_t(gridDim.x) * blockDim.x) / LANES;
  const T keep = T(1) - eps, spread = eps / T(C);
  for (int64_t p = first; p < N * inner; p += step) {
    const int64_t n = p / inner, j = p % inner;
    const T* xc = x + n * C * inner + j;
    T* gc = gx + n * C * inner + j;
    const int64_t tt = t[p];
    if (tt == ignore_index || tt < 0 || tt >= C) {
      for (int64_t c = lane; c < C; c += LANES) gc[c * inner] = T(0);
      if (lane == 0 && tt != ignore_index) atomicAdd(bad, 1ull);
      continue;
    }
    T m, s, sx, W;
    ce_stats<LANES>(C, xc, inner, w, true, lane, &m, &s, &sx, &W);
    if (!w) W = T(C);
    const T gi = g[p * gstride] * gscale;
    const T wtt = w ? w[tt] : T(1);
    const T a = gi * (keep * wtt + spread * W) / s, b = gi * spread;
    for (int64_t c = lane; c < C; c += LANES) {
      T v = d_exp(xc[c * inner] - m) * a;
      if (eps != T(0)) v -= b * (w ? w[c] : T(1));
      if (c == tt) v -= gi * keep * wtt;
      gc[c * inner] = v;
    }
  }
}

// Number of bad targets: counted on the device, copied back (the only synchronizing kernel).
class BadCounter {
 public:
  BadCounter() : dev_(1) { CK_CUDA_CHECK(cudaMemsetAsync(dev_.get(), 0, sizeof(unsigned long long), stream())); }
  unsigned long long* ptr() { return dev_.get(); }
  int64_t read() {
    unsigned long long h = 0;
    CK_CUDA_CHECK(cudaMemcpyAsync(&h, dev_.get(), sizeof(h), cudaMemcpyDeviceToHost, stream()));
    CK_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return int64_t(h);
  }

 private:
  Scratch<unsigned long long> dev_;
};

template <class T>
int64_t ce_fwd_impl(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                    int64_t ignore_index, T eps, T* loss, T* wt) {
  if (N * inner <= 0) return 0;
  BadCounter bad;
  if (inner == 1) {
    ce_fwd_kernel<32, T><<<grid_for(N * 32), kThreads, 0, stream()>>>(N, C, inner, x, t, w, ignore_index, eps, loss,
                                                                      wt, bad.ptr());
  } else {
    ce_fwd_kernel<1, T><<<grid_for(N * inner), kThreads, 0, stream()>>>(N, C, inner, x, t, w, ignore_index, eps, loss,
                                                                        wt, bad.ptr());
  }
  CK_CUDA_LAUNCH_CHECK();
  return bad.read();
}

template <class T>
int64_t ce_bwd_impl(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                    int64_t ignore_index, T eps, const T* g, int64_t gstride, T gscale, T* gx) {
  if (N * inner <= 0) return 0;
  BadCounter bad;
  if (inner == 1) {
    ce_bwd_kernel<32, T><<<grid_for(N * 32), kThreads, 0, stream()>>>(N, C, inner, x, t, w, ignore_index, eps, g,
                                                                      gstride, gscale, gx, bad.ptr());
  } else {
    ce_bwd_kernel<1, T><<<grid_for(N * inner), kThreads, 0, stream()>>>(N, C, inner, x, t, w, ignore_index, eps, g,
                                                                        gstride, gscale, gx, bad.ptr());
  }
  CK_CUDA_LAUNCH_CHECK();
  return bad.read();
}

// ---------------------------------------------------------------- mse

template <class T>
__global__ void mse_elem_kernel(int64_t n, const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ out) {
  CK_GRID_STRIDE(i, n) {
    const T d = x[i] - t[i];
    out[i] = d * d;
  }
}

// Stage 1: one double partial per block; stage 2 (one block) sums them in order.
template <class T>
__global__ void mse_partial_kernel(int64_t n, const T* __restrict__ x, const T* __restrict__ t,
                                   double* __restrict__ part) {
  __shared__ double sh[32];
  double acc = 0.0;
  CK_GRID_STRIDE(i, n) {
    const double d = double(x[i]) - double(t[i]);
    acc += d * d;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

template <class T>
__global__ void mse_final_kernel(int64_t parts, const double* __restrict__ part, T* __restrict__ out) {
  __shared__ double sh[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < parts; i += blockDim.x) acc += part[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) out[0] = T(acc);
}

template <class T>
void mse_fwd_impl(int64_t n, const T* x, const T* t, T* out, int reduce) {
  if (!reduce) {
    if (n <= 0) return;
    mse_elem_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, x, t, out);
    CK_CUDA_LAUNCH_CHECK();
    return;
  }
  const unsigned blocks = grid_for(n);
  Scratch<double> part(blocks);
  mse_partial_kernel<T><<<blocks, kThreads, 0, stream()>>>(n, x, t, part.get());
  CK_CUDA_LAUNCH_CHECK();
  mse_final_kernel<T><<<1, kThreads, 0, stream()>>>(int64_t(blocks), part.get(), out);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
__global__ void mse_bwd_kernel(int64_t n, const T* __restrict__ g, int64_t gstride, T gscale,
                               const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ gx,
                               T* __restrict__ gt) {
  CK_GRID_STRIDE(i, n) {
    const T v = T(2) * gscale * g[i * gstride] * (x[i] - t[i]);
    gx[i] = v;
    gt[i] = -v;
  }
}

template <class T>
void mse_bwd_impl(int64_t n, const T* g, int64_t gstride, T gscale, const T* x, const T* t, T* gx, T* gt) {
  if (n <= 0) return;
  mse_bwd_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(n, g, gstride, gscale, x, t, gx, gt);
  CK_CUDA_LAUNCH_CHECK();
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(cross_entropy_fwd_stub, cuda::ce_fwd_impl);
CK_REGISTER_CUDA(cross_entropy_bwd_stub, cuda::ce_bwd_impl);
CK_REGISTER_CUDA(mse_fwd_stub, cuda::mse_fwd_impl);
CK_REGISTER_CUDA(mse_bwd_stub, cuda::mse_bwd_impl);

}  // namespace ck
