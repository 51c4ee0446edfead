// Batch norm, local response norm and layer norm (forward and backward).
//
// Statistics are two-pass (mean, then the sum of squared deviations) with double
// accumulators, so float inputs with a large mean keep their variance.
//
// Batch norm: phase 1, parallel over channels, reduces each channel's N planes of S values
// into per-channel coefficients; phase 2, parallel over the N*C planes, applies them with
// one fused multiply-add per element (eval forward: y = x*scale + shift).
//
// LRN: one task per (n, block of spatial positions); the window sum of squares over the
// channels is kept as a running sum (double) for the whole block, vectorized along the
// block. Backward stores t_c = gy_c x_c D_c^(-beta-1) per block and runs a second window
// sum (the transposed window) over it.
//
// Layer norm: one task per row; backward's weight/bias gradients are column sums, computed
// afterwards in column blocks (one task per block) from the saved row mean / rstd.
#include "cpu/common.h"

#include "ops/norm.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

template <class T>
inline double sum_d(const T* p, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += double(p[i]);
  return acc;
}

template <class T>
inline double sumsq_dev(const T* p, int64_t n, double mean) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(p[i]) - mean;
    acc += d * d;
  }
  return acc;
}

// sum of g and sum of g * (x - mean)
template <class T>
inline void sum_g_gx(const T* g, const T* x, int64_t n, double mean, double& sg, double& sgx) {
  double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]);
    a += gi;
    b += gi * (double(x[i]) - mean);
  }
  sg += a;
  sgx += b;
}

// ------------------------------------------------------------------------ batch norm

// Channel c's values are N planes of S; `ns` > 1 splits each plane into ns chunks, and the
// N*ns pieces are reduced by a parallel loop (used when there are fewer channels than
// threads, so that the per-channel loop alone would leave threads idle).
constexpr int64_t kChunk = 4096;

inline int64_t plane_chunks(int64_t C, int64_t N, int64_t S, bool big) {
  if (!big || C >= max_threads()) return 0;  // 0: no inner parallelism
  return ceil_div(S, kChunk);
}

// Mean and biased variance of channel c.
template <class T>
void channel_stats(int64_t N, int64_t C, int64_t S, const T* x, int64_t c, int64_t ns, double& mean, double& var) {
  const double M = double(N * S);
  double s = 0.0, q = 0.0;
  if (ns == 0) {
    for (int64_t n = 0; n < N; ++n) s += sum_d(x + (n * C + c) * S, S);
    mean = s / M;
    for (int64_t n = 0; n < N; ++n) q += sumsq_dev(x + (n * C + c) * S, S, mean);
  } else {
    const int64_t units = N * ns, len = ceil_div(S, ns);
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t n = u / ns, s0 = (u % ns) * len;
      s += sum_d(x + (n * C + c) * S + s0, imin(len, S - s0));
    }
    mean = s / M;
    const double mu = mean;
#pragma omp parallel for reduction(+ : q) schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t n = u / ns, s0 = (u % ns) * len;
      q += sumsq_dev(x + (n * C + c) * S + s0, imin(len, S - s0), mu);
    }
  }
  var = q / M;
}

// sum of gy and of gy * (x - mean) over channel c
template <class T>
void channel_grad_sums(int64_t N, int64_t C, int64_t S, const T* gy, const T* x, int64_t c, int64_t ns, double mean,
                       double& sg, double& sgx) {
  double a = 0.0, b = 0.0;
  if (ns == 0) {
    for (int64_t n = 0; n < N; ++n) sum_g_gx(gy + (n * C + c) * S, x + (n * C + c) * S, S, mean, a, b);
  } else {
    const int64_t units = N * ns, len = ceil_div(S, ns);
#pragma omp parallel for reduction(+ : a, b) schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t n = u / ns, s0 = (u % ns) * len, off = (n * C + c) * S + s0;
      sum_g_gx(gy + off, x + off, imin(len, S - s0), mean, a, b);
    }
  }
  sg = a;
  sgx = b;
}

template <class T>
void batch_norm_fwd_impl(int64_t N, int64_t C, int64_t S, const T* x, const T* w, const T* b, T* rmean, T* rvar,
                         bool training, double momentum, double eps, T* y) {
  static thread_local Buffer buf;
  // scale, shift, mean (training: y = (x - mean)*scale + shift; eval: y = x*scale + shift),
  // kept and applied in double so that a large mean costs no precision in float
  double* coef = buf.get<double>(3 * C);
  double* scale = coef;
  double* shift = coef + C;
  double* mu = coef + 2 * C;
  const int64_t total = N * C * S;
  const int64_t M = N * S;
  const bool big = total >= (int64_t(1) << 15);
  const int64_t ns = plane_chunks(C, N, S, big && training);
  const bool par_c = training && C > 1 && big && ns == 0;
#pragma omp parallel for if (par_c) schedule(dynamic, 1)
  for (int64_t c = 0; c < C; ++c) {
    double mean, invstd;
    if (training) {
      double var;
      channel_stats(N, C, S, x, c, ns, mean, var);
      invstd = 1.0 / std::sqrt(var + eps);
      if (rmean) rmean[c] = T((1.0 - momentum) * double(rmean[c]) + momentum * mean);
      if (rvar) {
        const double unbiased = M > 1 ? var * double(M) / double(M - 1) : var;
        rvar[c] = T((1.0 - momentum) * double(rvar[c]) + momentum * unbiased);
      }
    } else {
      mean = double(rmean[c]);
      invstd = 1.0 / std::sqrt(double(rvar[c]) + eps);
    }
    const double sc = w ? double(w[c]) * invstd : invstd;
    const double bb = b ? double(b[c]) : 0.0;
    scale[c] = sc;
    if (training) {
      shift[c] = bb;
      mu[c] = mean;
    } else {
      shift[c] = bb - mean * sc;
      mu[c] = 0.0;
    }
  }
  const int64_t NC = N * C;
  const bool par = NC > 1 && total >= (int64_t(1) << 15);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const int64_t c = nc % C;
    const double sc = scale[c], sh = shift[c], m = mu[c];
    const T* xp = x + nc * S;
    T* yp = y + nc * S;
    if (training) {
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) yp[i] = T((double(xp[i]) - m) * sc + sh);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) yp[i] = T(double(xp[i]) * sc + sh);
    }
  }
}

template <class T>
void batch_norm_bwd_impl(int64_t N, int64_t C, int64_t S, const T* gy, const T* x, const T* w, const T* rmean,
                         const T* rvar, bool training, double eps, T* gx, T* gw, T* gb) {
  static thread_local Buffer buf;
  // gx = a*(gy - mg) - k2*(x - mean)
  double* coef = buf.get<double>(4 * C);
  double* ca = coef;
  double* cmg = coef + C;
  double* ck2 = coef + 2 * C;
  double* cmu = coef + 3 * C;
  const int64_t total = N * C * S;
  const double M = double(N * S);
  const bool big = total >= (int64_t(1) << 15);
  const int64_t ns = plane_chunks(C, N, S, big);
  const bool par_c = C > 1 && big && ns == 0;
#pragma omp parallel for if (par_c) schedule(dynamic, 1)
  for (int64_t c = 0; c < C; ++c) {
    double mean, invstd;
    if (training) {
      double var;
      channel_stats(N, C, S, x, c, ns, mean, var);
      invstd = 1.0 / std::sqrt(var + eps);
    } else {
      mean = double(rmean[c]);
      invstd = 1.0 / std::sqrt(double(rvar[c]) + eps);
    }
    double sg = 0.0, sgx = 0.0;
    if (training || gw || gb) channel_grad_sums(N, C, S, gy, x, c, ns, mean, sg, sgx);
    if (gw) gw[c] = T(sgx * invstd);
    if (gb) gb[c] = T(sg);
    const double wc = w ? double(w[c]) : 1.0;
    ca[c] = wc * invstd;
    cmu[c] = mean;
    if (training) {
      cmg[c] = sg / M;
      ck2[c] = wc * invstd * invstd * invstd * sgx / M;
    } else {
      cmg[c] = 0.0;
      ck2[c] = 0.0;
    }
  }
  if (!gx) return;
  const int64_t NC = N * C;
  const bool par = NC > 1 && total >= (int64_t(1) << 15);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const int64_t c = nc % C;
    const double a = ca[c], mg = cmg[c], k2 = ck2[c], m = cmu[c];
    const T* xp = x + nc * S;
    const T* gp = gy + nc * S;
    T* op = gx + nc * S;
    if (training) {
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) op[i] = T(a * (double(gp[i]) - mg) - k2 * (double(xp[i]) - m));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) op[i] = T(a * double(gp[i]));
    }
  }
}

// ------------------------------------------------------------------------ LRN

constexpr int64_t kLrnBlock = 128;

// d^(-beta) for a beta class B (1: 0.75, 2: 0.5, 3: 1, 0: any) known at compile time, so
// the common exponents vectorize (square roots and a division instead of pow).
template <int B>
inline double neg_pow(double d, double beta) {
  if constexpr (B == 1) {
    const double r = std::sqrt(d);
    return 1.0 / (r * std::sqrt(r));
  } else if constexpr (B == 2) {
    return 1.0 / std::sqrt(d);
  } else if constexpr (B == 3) {
    return 1.0 / d;
  } else {
    return std::pow(d, -beta);
  }
}

inline int beta_class(double beta) { return beta == 0.75 ? 1 : beta == 0.5 ? 2 : beta == 1.0 ? 3 : 0; }

// Running window sum over channels of one block: calls f(c, acc) for every channel c with
// acc[j] = sum over channels c-before .. c+after (clipped) of v(ch)[j].
template <class Load, class F>
inline void window_sweep(int64_t C, int64_t len, int64_t before, int64_t after, double* acc, Load&& v, F&& f) {
  for (int64_t j = 0; j < len; ++j) acc[j] = 0.0;
  for (int64_t ch = 0; ch <= imin(after, C - 1); ++ch) v(ch, acc, 1.0);
  for (int64_t c = 0; c < C; ++c) {
    if (c > 0) {
      const int64_t enter = c + after, leave = c - before - 1;
      if (enter < C) v(enter, acc, 1.0);
      if (leave >= 0) v(leave, acc, -1.0);
    }
    f(c, acc);
  }
}

template <class T, int B>
void lrn_fwd_b(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* x, T* y) {
  const int64_t nb = ceil_div(S, kLrnBlock);
  const int64_t tasks = N * nb;
  const double a = alpha / double(size);
  const bool par = tasks > 1 && N * C * S >= (int64_t(1) << 14);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n = t / nb, s0 = (t % nb) * kLrnBlock, len = imin(kLrnBlock, S - s0);
    const T* xb = x + n * C * S + s0;
    T* yb = y + n * C * S + s0;
    double acc[kLrnBlock];
    window_sweep(
        C, len, size / 2, (size - 1) / 2, acc,
        [&](int64_t ch, double* ac, double sgn) {
          const T* p = xb + ch * S;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) ac[j] += sgn * (double(p[j]) * double(p[j]));
        },
        [&](int64_t c, const double* ac) {
          const T* p = xb + c * S;
          T* q = yb + c * S;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) q[j] = T(double(p[j]) * neg_pow<B>(k + a * ac[j], beta));
        });
  }
}

template <class T>
void lrn_fwd_impl(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* x,
                  T* y) {
  switch (beta_class(beta)) {
    case 1: return lrn_fwd_b<T, 1>(N, C, S, size, alpha, beta, k, x, y);
    case 2: return lrn_fwd_b<T, 2>(N, C, S, size, alpha, beta, k, x, y);
    case 3: return lrn_fwd_b<T, 3>(N, C, S, size, alpha, beta, k, x, y);
    default: return lrn_fwd_b<T, 0>(N, C, S, size, alpha, beta, k, x, y);
  }
}

template <class T, int B>
void lrn_bwd_b(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* gy,
               const T* x, T* gx) {
  const int64_t nb = ceil_div(S, kLrnBlock);
  const int64_t tasks = N * nb;
  const double a = alpha / double(size);
  const double coef = 2.0 * beta * a;
  const bool par = tasks > 1 && N * C * S >= (int64_t(1) << 14);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    static thread_local Buffer tb;
    double* tv = tb.get<double>(C * kLrnBlock);  // t_c = gy_c x_c D_c^(-beta-1), [c][j]
    const int64_t n = t / nb, s0 = (t % nb) * kLrnBlock, len = imin(kLrnBlock, S - s0);
    const T* xb = x + n * C * S + s0;
    const T* gb = gy + n * C * S + s0;
    T* ob = gx + n * C * S + s0;
    double acc[kLrnBlock];
    window_sweep(
        C, len, size / 2, (size - 1) / 2, acc,
        [&](int64_t ch, double* ac, double sgn) {
          const T* p = xb + ch * S;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) ac[j] += sgn * (double(p[j]) * double(p[j]));
        },
        [&](int64_t c, const double* ac) {
          const T* p = xb + c * S;
          const T* g = gb + c * S;
          T* q = ob + c * S;
          double* tc = tv + c * kLrnBlock;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) {
            const double d = k + a * ac[j];
            const double pw = neg_pow<B>(d, beta);
            q[j] = T(double(g[j]) * pw);
            tc[j] = double(g[j]) * double(p[j]) * pw / d;
          }
        });
    // gx_i -= coef * x_i * sum_{c = i-(size-1)/2 .. i+size/2} t_c
    window_sweep(
        C, len, (size - 1) / 2, size / 2, acc,
        [&](int64_t ch, double* ac, double sgn) {
          const double* p = tv + ch * kLrnBlock;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) ac[j] += sgn * p[j];
        },
        [&](int64_t c, const double* ac) {
          const T* p = xb + c * S;
          T* q = ob + c * S;
#pragma omp simd
          for (int64_t j = 0; j < len; ++j) q[j] = T(double(q[j]) - coef * double(p[j]) * ac[j]);
        });
  }
}

template <class T>
void lrn_bwd_impl(int64_t N, int64_t C, int64_t S, int64_t size, double alpha, double beta, double k, const T* gy,
                  const T* x, T* gx) {
  switch (beta_class(beta)) {
    case 1: return lrn_bwd_b<T, 1>(N, C, S, size, alpha, beta, k, gy, x, gx);
    case 2: return lrn_bwd_b<T, 2>(N, C, S, size, alpha, beta, k, gy, x, gx);
    case 3: return lrn_bwd_b<T, 3>(N, C, S, size, alpha, beta, k, gy, x, gx);
    default: return lrn_bwd_b<T, 0>(N, C, S, size, alpha, beta, k, gy, x, gx);
  }
}

// ------------------------------------------------------------------------ layer norm

template <class T>
inline void row_stats(const T* xr, int64_t D, double eps, double& mean, double& rstd) {
  mean = sum_d(xr, D) / double(D);
  rstd = 1.0 / std::sqrt(sumsq_dev(xr, D, mean) / double(D) + eps);
}

template <class T>
void layer_norm_fwd_impl(int64_t M, int64_t D, const T* x, const T* w, const T* b, double eps, T* y) {
  const bool par = M > 1 && M * D >= (int64_t(1) << 14);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * D;
    T* yr = y + m * D;
    double mean, rstd;
    row_stats(xr, D, eps, mean, rstd);
    // xhat in double: a large row mean costs no precision in float
    if (w && b) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = T((double(xr[i]) - mean) * rstd) * w[i] + b[i];
    } else if (w) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = T((double(xr[i]) - mean) * rstd) * w[i];
    } else if (b) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = T((double(xr[i]) - mean) * rstd) + b[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = T((double(xr[i]) - mean) * rstd);
    }
  }
}

constexpr int64_t kColBlock = 256;

template <class T>
void layer_norm_bwd_impl(int64_t M, int64_t D, const T* gy, const T* x, const T* w, double eps, T* gx, T* gw,
                         T* gb) {
  static thread_local Buffer buf;
  double* st = buf.get<double>(2 * M);  // mean, rstd per row
  const bool par = M > 1 && M * D >= (int64_t(1) << 14);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * D;
    const T* gr = gy + m * D;
    double mean, rstd;
    row_stats(xr, D, eps, mean, rstd);
    st[2 * m] = mean;
    st[2 * m + 1] = rstd;
    if (!gx) continue;
    // wg = gy * w; s1 = sum wg; s2 = sum wg * xhat
    double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t i = 0; i < D; ++i) {
      const double wg = double(gr[i]) * (w ? double(w[i]) : 1.0);
      s1 += wg;
      s2 += wg * (double(xr[i]) - mean);
    }
    s2 *= rstd;
    const double c0 = rstd, c1 = rstd * s1 / double(D), c2 = rstd * rstd * s2 / double(D);
    T* out = gx + m * D;
    if (w) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) out[i] = T(c0 * (double(gr[i]) * double(w[i])) - c1 - c2 * (double(xr[i]) - mean));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) out[i] = T(c0 * double(gr[i]) - c1 - c2 * (double(xr[i]) - mean));
    }
  }
  if (!gw && !gb) return;
  // Column sums over the rows: tasks are (column block, row chunk); with fewer column blocks
  // than threads the rows are split too and the per-chunk partial sums reduced afterwards.
  const int64_t nblk = ceil_div(D, kColBlock);
  const bool parb = M * D >= (int64_t(1) << 14);
  const int64_t nt = parb ? max_threads() : 1;
  const int64_t mch = nblk < nt ? imin(M, ceil_div(nt, nblk)) : 1;
  static thread_local Buffer pbuf;
  double* part = mch > 1 ? pbuf.get<double>(mch * 2 * D) : nullptr;
  const int64_t tasks = nblk * mch;
#pragma omp parallel for if (parb && tasks > 1) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t bi = t % nblk, mc = t / nblk;
    const int64_t i0 = bi * kColBlock, len = imin(kColBlock, D - i0);
    const int64_t m0 = M * mc / mch, m1 = M * (mc + 1) / mch;
    double aw[kColBlock], ab[kColBlock];
    for (int64_t j = 0; j < len; ++j) aw[j] = ab[j] = 0.0;
    for (int64_t m = m0; m < m1; ++m) {
      const T* xr = x + m * D + i0;
      const T* gr = gy + m * D + i0;
      const double mean = st[2 * m], rstd = st[2 * m + 1];
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        aw[j] += double(gr[j]) * ((double(xr[j]) - mean) * rstd);
        ab[j] += double(gr[j]);
      }
    }
    if (part) {
      for (int64_t j = 0; j < len; ++j) {
        part[(2 * mc) * D + i0 + j] = aw[j];
        part[(2 * mc + 1) * D + i0 + j] = ab[j];
      }
      continue;
    }
    if (gw)
      for (int64_t j = 0; j < len; ++j) gw[i0 + j] = T(aw[j]);
    if (gb)
      for (int64_t j = 0; j < len; ++j) gb[i0 + j] = T(ab[j]);
  }
  if (part) {
    for (int64_t i = 0; i < D; ++i) {
      double a = 0.0, b = 0.0;
      for (int64_t mc = 0; mc < mch; ++mc) {
        a += part[(2 * mc) * D + i];
        b += part[(2 * mc + 1) * D + i];
      }
      if (gw) gw[i] = T(a);
      if (gb) gb[i] = T(b);
    }
  }
}

}  // namespace

CK_REGISTER(batch_norm_fwd_stub, batch_norm_fwd_impl);
CK_REGISTER(batch_norm_bwd_stub, batch_norm_bwd_impl);
CK_REGISTER(lrn_fwd_stub, lrn_fwd_impl);
CK_REGISTER(lrn_bwd_stub, lrn_bwd_impl);
CK_REGISTER(layer_norm_fwd_stub, layer_norm_fwd_impl);
CK_REGISTER(layer_norm_bwd_stub, layer_norm_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
