// CUDA normalization, semantics of cpu/norm.cpp:
//   batch norm: training statistics by a two-stage Welford reduction (per (channel, split)
//     block partials merged with Chan's formula in a fixed order: deterministic, stable),
//     running-stat update with the unbiased variance, then one elementwise pass; backward
//     from per-channel sums of gy and gy (x - mean) (same two-stage scheme);
//   LRN: one thread per (n, spatial) column sweeping the channels with a sliding window sum;
//   layer norm: one block per row (Welford), column sums for the weight / bias gradients.
#include "cuda/common.cuh"
#include "ops/norm.h"

namespace ck {
namespace cuda {
namespace {

struct Welford {
  double n, mean, m2;
};
__device__ __forceinline__ Welford merge(Welford a, const Welford& b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const double n = a.n + b.n, d = b.mean - a.mean;
  a.mean += d * (b.n / n);
  a.m2 += b.m2 + d * d * (a.n * b.n / n);
  a.n = n;
  return a;
}

// Walks the elements of channel c of an (N, C, S) tensor: flat index j over N*S -> (n, s).
struct ChannelWalker {
  int64_t n, s, dn, ds, S;
  __device__ __forceinline__ ChannelWalker(int64_t j, int64_t step, int64_t S_) : S(S_) {
    n = j / S_;
    s = j % S_;
    dn = step / S_;
    ds = step % S_;
  }
  __device__ __forceinline__ void next() {
    s += ds;
    n += dn;
    if (s >= S) {
      s -= S;
      ++n;
    }
  }
};

// Deterministic tree over a block's Welford states in shared memory (blockDim.x = 256).
__device__ Welford block_welford(Welford w, Welford* sh) {
  sh[threadIdx.x] = w;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st >>= 1) {
    if (threadIdx.x < st) sh[threadIdx.x] = merge(sh[threadIdx.x], sh[threadIdx.x + st]);
    __syncthreads();
  }
  w = sh[0];
  __syncthreads();
  return w;
}

constexpr int kBnThreads = 256;

// Stage 1: part[c * splits + split] = Welford state of that slice of channel c.
template <class T>
__global__ void __launch_bounds__(kBnThreads)
    bn_welford_kernel(int64_t N, int64_t C, int64_t S, int64_t splits, const T* __restrict__ x,
                      Welford* __restrict__ part) {
  __shared__ Welford sh[kBnThreads];
  const int64_t c = blockIdx.y, split = blockIdx.x;
  const int64_t M = N * S, per = (M + splits - 1) / splits;
  const int64_t j0 = split * per, j1 = (j0 + per < M) ? j0 + per : M;
  // per-thread Welford in T (one division per element), merged in double
  T cnt = T(0), mean = T(0), m2 = T(0);
  Welford acc{0, 0, 0};
  if (j0 + threadIdx.x < j1) {
    ChannelWalker wk(j0 + threadIdx.x, blockDim.x, S);
    for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x, wk.next()) {
      const T v = x[(wk.n * C + c) * S + wk.s];
      cnt += T(1);
      const T d = v - mean;
      mean += d / cnt;
      m2 += d * (v - mean);
      if (cnt >= T(1 << 20)) {  // keep the float count exact
        acc = merge(acc, Welford{double(cnt), double(mean), double(m2)});
        cnt = mean = m2 = T(0);
      }
    }
  }
  acc = merge(acc, Welford{double(cnt), double(mean), double(m2)});
  acc = block_welford(acc, sh);
  if (threadIdx.x == 0) part[c * splits + split] = acc;
}

// Stage 2 (one thread per channel, splits merged in order): mean / invstd, running stats,
// and the affine coefficients y = x * scale + shift.
template <class T>
__global__ void bn_finalize_kernel(int64_t C, int64_t splits, const Welford* __restrict__ part,
                                   const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ rmean,
                                   T* __restrict__ rvar, double momentum, double eps, double* __restrict__ coef) {
  CK_GRID_STRIDE(c, C) {
    Welford acc{0, 0, 0};
    for (int64_t k = 0; k < splits; ++k) acc = merge(acc, part[c * splits + k]);
    const double var = acc.n > 0 ? acc.m2 / acc.n : 0.0;
    const double invstd = 1.0 / sqrt(var + eps);
    if (rmean) rmean[c] = T((1.0 - momentum) * double(rmean[c]) + momentum * acc.mean);
    if (rvar) {
      const double unbiased = acc.n > 1 ? var * acc.n / (acc.n - 1) : var;
      rvar[c] = T((1.0 - momentum) * double(rvar[c]) + momentum * unbiased);
    }
    const double sc = w ? double(w[c]) * invstd : invstd;
    coef[2 * c] = sc;
    coef[2 * c + 1] = (b ? double(b[c]) : 0.0) - acc.mean * sc;
    coef[2 * C + 2 * c] = acc.mean;  // kept for the backward
    coef[2 * C + 2 * c + 1] = invstd;
  }
}

template <class T>
__global__ void bn_eval_coef_kernel(int64_t C, const T* __restrict__ w, const T* __restrict__ b,
                                    const T* __restrict__ rmean, const T* __restrict__ rvar, double eps,
                                    double* __restrict__ coef) {
  CK_GRID_STRIDE(c, C) {
    const double invstd = 1.0 / sqrt(double(rvar[c]) + eps);
    const double sc = w ? double(w[c]) * invstd : invstd;
    coef[2 * c] = sc;
    coef[2 * c + 1] = (b ? double(b[c]) : 0.0) - double(rmean[c]) * sc;
    coef[2 * C + 2 * c] = double(rmean[c]);
    coef[2 * C + 2 * c + 1] = invstd;
  }
}

// y = x * scale[c] + shift[c] over the flat (N, C, S) tensor.
template <class T>
__global__ void bn_apply_kernel(int64_t total, int64_t C, int64_t S, const T* __restrict__ x,
                                const double* __restrict__ coef, T* __restrict__ y) {
  CK_GRID_STRIDE(i, total) {
    const int64_t c = (i / S) % C;
    y[i] = T(double(x[i]) * coef[2 * c] + coef[2 * c + 1]);
  }
}

int64_t bn_splits(int64_t C, int64_t M) {
  int64_t want = ceil_div(int64_t(sm_count()) * 4, C > 0 ? C : 1);
  const int64_t most = ceil_div(M, int64_t(kBnThreads) * 4);
  if (want > most) want = most;
  if (want < 1) want = 1;
  if (want > 1024) want = 1024;
  return want;
}

// coef[0..2C) = (scale, shift), coef[2C..4C) = (mean, invstd); training: batch statistics.
template <class T>
void bn_coefficients(int64_t N, int64_t C, int64_t S, const T* x, const T* w, const T* b, T* rmean, T* rvar,
                     bool training, double momentum, double eps, double* coef) {
  CK_CHECK(C <= 65535, "input", "CUDA batch norm supports at most 65535 channels");
  if (training) {
    const int64_t splits = bn_splits(C, N * S);
    Scratch<Welford> part(C * splits);
    const dim3 grid{unsigned(splits), unsigned(C), 1u};
    bn_welford_kernel<T><<<grid, kBnThreads, 0, stream()>>>(N, C, S, splits, x, part.get());
    CK_CUDA_LAUNCH_CHECK();
    bn_finalize_kernel<T><<<grid_for(C), kThreads, 0, stream()>>>(C, splits, part.get(), w, b, rmean, rvar, momentum,
                                                                  eps, coef);
    CK_CUDA_LAUNCH_CHECK();
  } else {
    bn_eval_coef_kernel<T><<<grid_for(C), kThreads, 0, stream()>>>(C, w, b, rmean, rvar, eps, coef);
    CK_CUDA_LAUNCH_CHECK();
  }
}

template <class T>
void batch_norm_fwd_impl(int64_t N, int64_t C, int64_t S, const T* x, const T* w, const T* b, T* rmean, T* rvar,
                         bool training, double momentum, double eps, T* y) {
  const int64_t total = N * C * S;
  if (total <= 0) return;
  Scratch<double> coef(4 * C);
  bn_coefficients<T>(N, C, S, x, w, b, rmean, rvar, training, momentum, eps, coef.get());
  bn_apply_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(total, C, S, x, coef.get(), y);
  CK_CUDA_LAUNCH_CHECK();
}

// Per (channel, split): sums of gy and gy * (x - mean).
template <class T>
__global__ void __launch_bounds__(kBnThreads)
    bn_grad_sums_kernel(int64_t N, int64_t C, int64_t S, int64_t splits, const T* __restrict__ gy,
                        const T* __restrict__ x, const double* __restrict__ coef, double2* __restrict__ part) {
  __shared__ double sh[32];
  const int64_t c = blockIdx.y, split = blockIdx.x;
  const int64_t M = N * S, per = (M + splits - 1) / splits;
  const int64_t j0 = split * per, j1 = (j0 + per < M) ? j0 + per : M;
  const double mean = coef[2 * C + 2 * c];
  double sg = 0.0, sgx = 0.0;
  if (j0 + threadIdx.x < j1) {
    ChannelWalker wk(j0 + threadIdx.x, blockDim.x, S);
    for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x, wk.next()) {
      const int64_t at = (wk.n * C + c) * S + wk.s;
      const double g = double(gy[at]);
      sg += g;
      sgx += g * (double(x[at]) - mean);
    }
  }
  sg = block_sum(sg, sh);
  sgx = block_sum(sgx, sh);
  if (threadIdx.x == 0) part[c * splits + split] = make_double2(sg, sgx);
}

// gx = a (gy - mg) - k2 (x - mean) coefficients (and gw, gb), one thread per channel.
template <class T>
__global__ void bn_grad_finalize_kernel(int64_t C, int64_t splits, double M, const double2* __restrict__ part,
                                        const T* __restrict__ w, bool training, double* __restrict__ coef,
                                        T* __restrict__ gw, T* __restrict__ gb, double* __restrict__ gcoef) {
  CK_GRID_STRIDE(c, C) {
    double sg = 0.0, sgx = 0.0;
    for (int64_t k = 0; k < splits; ++k) {
      sg += part[c * splits + k].x;
      sgx += part[c * splits + k].y;
    }
    const double mean = coef[2 * C + 2 * c], invstd = coef[2 * C + 2 * c + 1];
    if (gw) gw[c] = T(sgx * invstd);
    if (gb) gb[c] = T(sg);
    const double wc = w ? double(w[c]) : 1.0;
    gcoef[4 * c] = wc * invstd;
    gcoef[4 * c + 1] = training ? sg / M : 0.0;
    gcoef[4 * c + 2] = training ? wc * invstd * invstd * invstd * sgx / M : 0.0;
    gcoef[4 * c + 3] = mean;
  }
}

template <class T>
__global__ void bn_grad_apply_kernel(int64_t total, int64_t C, int64_t S, const T* __restrict__ gy,
                                     const T* __restrict__ x, const double* __restrict__ gcoef, T* __restrict__ gx) {
  CK_GRID_STRIDE(i, total) {
    const int64_t c = (i / S) % C;
    const double* k = gcoef + 4 * c;
    gx[i] = T(k[0] * (double(gy[i]) - k[1]) - k[2] * (double(x[i]) - k[3]));
  }
}

template <class T>
void batch_norm_bwd_impl(int64_t N, int64_t C, int64_t S, const T* gy, const T* x, const T* w, const T* rmean,
                         const T* rvar, bool training, double eps, T* gx, T* gw, T* gb) {
  const int64_t total = N * C * S;
  if (total <= 0) return;
  Scratch<double> coef(4 * C);
  if (training) {
    bn_coefficients<T>(N, C, S, x, w, nullptr, nullptr, nullptr, true, 0.0, eps, coef.get());
  } else {  // the eval statistics are the running ones
    CK_CHECK(C <= 65535, "input", "CUDA batch norm supports at most 65535 channels");
    bn_eval_coef_kernel<T><<<grid_for(C), kThreads, 0, stream()>>>(C, w, nullptr, rmean, rvar, eps, coef.get());
    CK_CUDA_LAUNCH_CHECK();
  }
  const int64_t splits = bn_splits(C, N * S);
  Scratch<double2> part(C * splits);
  Scratch<double> gcoef(4 * C);
  const dim3 grid{unsigned(splits), unsigned(C), 1u};
  bn_grad_sums_kernel<T><<<grid, kBnThreads, 0, stream()>>>(N, C, S, splits, gy, x, coef.get(), part.get());
  CK_CUDA_LAUNCH_CHECK();
  bn_grad_finalize_kernel<T><<<grid_for(C), kThreads, 0, stream()>>>(C, splits, double(N * S), part.get(), w, training,
                                                                     coef.get(), gw, gb, gcoef.get());
  CK_CUDA_LAUNCH_CHECK();
  if (gx) {
    bn_grad_apply_kernel<T><<<grid_for(total), kThreads, 0, stream()>>>(total, C, S, gy, x, gcoef.get(), gx);
    CK_CUDA_LAUNCH_CHECK();
  }
}

// ---------------------------------------------------------------- LRN

__device__ __forceinline__ double neg_pow(double d, double beta) { return pow(d, -beta); }

// One thread per (n, s) column; window of channel c: [c - size/2, c + (size-1)/2].
template <class T>
__global__ void lrn_fwd_kernel(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k,
                               const T* __restrict__ x, T* __restrict__ y) {
  const double a = alpha / double(size);
  const int64_t before = size / 2, after = (size - 1) / 2;
  CK_GRID_STRIDE(i, N * S) {
    const int64_t n = i / S, s = i % S;
    const T* xc = x + n * C * S + s;
    T* yc = y + n * C * S + s;
    double acc = 0.0;
    for (int64_t c = 0; c <= after && c < C; ++c) acc += double(xc[c * S]) * double(xc[c * S]);
    for (int64_t c = 0; c < C; ++c) {
      const double v = double(xc[c * S]);
      yc[c * S] = T(v * neg_pow(k + a * acc, beta));
      const int64_t in = c + after + 1, out = c - before;
      if (in < C) acc += double(xc[in * S]) * double(xc[in * S]);
      if (out >= 0) acc -= double(xc[out * S]) * double(xc[out * S]);
    }
  }
}

// gx_c = g_c D_c^-beta - 2 beta a x_c sum_{c' = c-(size-1)/2 .. c+size/2} g_c' x_c' D_c'^(-beta-1);
// t_c = g_c x_c D_c^(-beta-1) goes through the workspace tw (same layout as x).
template <class T>
__global__ void lrn_bwd_kernel(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k,
                               const T* __restrict__ gy, const T* __restrict__ x, T* __restrict__ gx,
                               double* __restrict__ tw) {
  const double a = alpha / double(size), coef = 2.0 * beta * a;
  const int64_t before = size / 2, after = (size - 1) / 2;
  CK_GRID_STRIDE(i, N * S) {
    const int64_t n = i / S, s = i % S, off = n * C * S + s;
    const T* xc = x + off;
    const T* gc = gy + off;
    T* oc = gx + off;
    double* tc = tw + off;
    double acc = 0.0;
    for (int64_t c = 0; c <= after && c < C; ++c) acc += double(xc[c * S]) * double(xc[c * S]);
    for (int64_t c = 0; c < C; ++c) {
      const double d = k + a * acc;
      const double pw = neg_pow(d, beta);
      oc[c * S] = T(double(gc[c * S]) * pw);
      tc[c * S] = double(gc[c * S]) * double(xc[c * S]) * pw / d;
      const int64_t in = c + after + 1, out = c - before;
      if (in < C) acc += double(xc[in * S]) * double(xc[in * S]);
      if (out >= 0) acc -= double(xc[out * S]) * double(xc[out * S]);
    }
    // second sweep: window [c - after, c + before] of t
    acc = 0.0;
    for (int64_t c = 0; c <= before && c < C; ++c) acc += tc[c * S];
    for (int64_t c = 0; c < C; ++c) {
      oc[c * S] = T(double(oc[c * S]) - coef * double(xc[c * S]) * acc);
      const int64_t in = c + before + 1, out = c - after;
      if (in < C) acc += tc[in * S];
      if (out >= 0) acc -= tc[out * S];
    }
  }
}

template <class T>
void lrn_fwd_impl(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* x,
                  T* y) {
  if (N * C * S <= 0) return;
  lrn_fwd_kernel<T><<<grid_for(N * S), kThreads, 0, stream()>>>(N, C, S, size, alpha, beta, k, x, y);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void lrn_bwd_impl(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* gy,
                  const T* x, T* gx) {
  if (N * C * S <= 0) return;
  Scratch<double> tw(N * C * S);
  lrn_bwd_kernel<T><<<grid_for(N * S), kThreads, 0, stream()>>>(N, C, S, size, alpha, beta, k, gy, x, gx, tw.get());
  CK_CUDA_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- layer norm

constexpr int kLnThreads = 256;

template <class T>
__device__ void row_stats(const T* xr, int64_t D, double eps, Welford* sh, double* mean, double* rstd) {
  Welford w{0, 0, 0};
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) w = merge(w, Welford{1.0, double(xr[j]), 0.0});
  w = block_welford(w, sh);
  *mean = w.mean;
  *rstd = 1.0 / sqrt(w.m2 / double(D) + eps);
}

template <class T>
__global__ void __launch_bounds__(kLnThreads)
    layer_norm_fwd_kernel(int64_t M, int64_t D, const T* __restrict__ x, const T* __restrict__ w,
                          const T* __restrict__ b, double eps, T* __restrict__ y) {
  __shared__ Welford sh[kLnThreads];
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const T* xr = x + m * D;
    double mean, rstd;
    row_stats(xr, D, eps, sh, &mean, &rstd);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      double v = (double(xr[j]) - mean) * rstd;
      if (w) v *= double(w[j]);
      if (b) v += double(b[j]);
      y[m * D + j] = T(v);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kLnThreads)
    layer_norm_bwd_rows_kernel(int64_t M, int64_t D, const T* __restrict__ gy, const T* __restrict__ x,
                               const T* __restrict__ w, double eps, T* __restrict__ gx, double* __restrict__ st) {
  __shared__ Welford sh[kLnThreads];
  __shared__ double sd[32];
  for (int64_t m = blockIdx.x; m < M; m += gridDim.x) {
    const T* xr = x + m * D;
    const T* gr = gy + m * D;
    double mean, rstd;
    row_stats(xr, D, eps, sh, &mean, &rstd);
    if (threadIdx.x == 0) {
      st[2 * m] = mean;
      st[2 * m + 1] = rstd;
    }
    if (!gx) continue;
    double s1 = 0.0, s2 = 0.0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double wg = double(gr[j]) * (w ? double(w[j]) : 1.0);
      s1 += wg;
      s2 += wg * (double(xr[j]) - mean);
    }
    s1 = block_sum_all(s1, sd);
    s2 = block_sum_all(s2, sd) * rstd;
    const double c0 = rstd, c1 = rstd * s1 / double(D), c2 = rstd * rstd * s2 / double(D);
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      const double wg = double(gr[j]) * (w ? double(w[j]) : 1.0);
      gx[m * D + j] = T(c0 * wg - c1 - c2 * (double(xr[j]) - mean));
    }
  }
}

// gw[d] = sum_m gy xhat, gb[d] = sum_m gy: 32 columns x 8 row lanes per block, fixed order.
template <class T>
__global__ void layer_norm_cols_kernel(int64_t M, int64_t D, const T* __restrict__ gy, const T* __restrict__ x,
                                       const double* __restrict__ st, T* __restrict__ gw, T* __restrict__ gb) {
  __shared__ double pw[8][33], pb[8][33];
  const int64_t d = int64_t(blockIdx.x) * 32 + threadIdx.x;
  double sw = 0.0, sb = 0.0;
  if (d < D)
    for (int64_t m = threadIdx.y; m < M; m += 8) {
      const double g = double(gy[m * D + d]);
      sb += g;
      sw += g * (double(x[m * D + d]) - st[2 * m]) * st[2 * m + 1];
    }
  pw[threadIdx.y][threadIdx.x] = sw;
  pb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && d < D) {
    double a = 0.0, c = 0.0;
    for (int r = 0; r < 8; ++r) {
      a += pw[r][threadIdx.x];
      c += pb[r][threadIdx.x];
    }
    if (gw) gw[d] = T(a);
    if (gb) gb[d] = T(c);
  }
}

unsigned row_blocks(int64_t M) { return unsigned(M < 65535 ? (M > 0 ? M : 1) : 65535); }

template <class T>
void layer_norm_fwd_impl(int64_t M, int64_t D, const T* x, const T* w, const T* b, double eps, T* y) {
  if (M * D <= 0) return;
  layer_norm_fwd_kernel<T><<<row_blocks(M), kLnThreads, 0, stream()>>>(M, D, x, w, b, eps, y);
  CK_CUDA_LAUNCH_CHECK();
}

template <class T>
void layer_norm_bwd_impl(int64_t M, int64_t D, const T* gy, const T* x, const T* w, double eps, T* gx, T* gw,
                         T* gb) {
  if (M * D <= 0) return;
  Scratch<double> st(2 * M);
  layer_norm_bwd_rows_kernel<T><<<row_blocks(M), kLnThreads, 0, stream()>>>(M, D, gy, x, w, eps, gx, st.get());
  CK_CUDA_LAUNCH_CHECK();
  if (gw || gb) {
    layer_norm_cols_kernel<T><<<unsigned(ceil_div(D, 32)), dim3(32, 8), 0, stream()>>>(M, D, gy, x, st.get(), gw, gb);
    CK_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(batch_norm_fwd_stub, cuda::batch_norm_fwd_impl);
CK_REGISTER_CUDA(batch_norm_bwd_stub, cuda::batch_norm_bwd_impl);
CK_REGISTER_CUDA(lrn_fwd_stub, cuda::lrn_fwd_impl);
CK_REGISTER_CUDA(lrn_bwd_stub, cuda::lrn_bwd_impl);
CK_REGISTER_CUDA(layer_norm_fwd_stub, cuda::layer_norm_fwd_impl);
CK_REGISTER_CUDA(layer_norm_bwd_stub, cuda::layer_norm_bwd_impl);

}  // namespace ck
