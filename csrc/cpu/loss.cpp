// Losses: cross_entropy with a fused, stable log-softmax, and mse_loss.
//
// cross_entropy over x viewed as (N, C, inner), per position p with target t = t[p]:
//   m = max_c x_c, lse = m + log sum_c exp(x_c - m), logp_c = x_c - lse,
//   loss[p] = (1 - eps) w_t (-logp_t) + eps / C * sum_c w_c (-logp_c),  wt[p] = w_t
// (w_c = 1 without weights; loss = wt = 0 where t == ignore_index). The Python layer reduces:
// 'mean' = sum loss / sum wt (torch's weighted mean), 'sum' = sum loss.
// Gradient, with gi the incoming gradient of loss[p], W = sum_c w_c, p_c = softmax_c:
//   gx_c = gi ((1 - eps) w_t + eps W / C) p_c - gi (1 - eps) w_t [c == t] - gi eps / C w_c.
// inner == 1: one row (contiguous classes) per task; inner > 1: blocks of up to kBlock
// positions walking c, so loads stay contiguous.
#include "cpu/common.h"
#include "cpu/activation_math.h"
#include "ops/loss.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

using namespace actmath;

constexpr int64_t kBlock = 256;
constexpr int64_t kMinParallel = 1 << 14;

// Max and sum of exp(x - max) over a strided row (stride 1: vectorized).
template <class T>
void row_max_sum(int64_t C, const T* x, T& m_out, T& s_out) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  T m = -INFINITY;
  int64_t c = 0;
  if (C >= L) {
    V mv = vload<V>(x);
    for (c = L; c + L <= C; c += L) {
      V v = vload<V>(x + c);
      mv = v > mv ? v : mv;
    }
    for (int k = 0; k < L; ++k) m = mv[k] > m ? mv[k] : m;
  }
  for (; c < C; ++c) m = x[c] > m ? x[c] : m;
  V acc = V{};
  T s = 0;
  for (c = 0; c + L <= C; c += L) acc += vexp<T>(vload<V>(x + c) - m);
  if (c < C) {
    T a[L] = {}, r[L];
    std::memcpy(a, x + c, size_t(C - c) * sizeof(T));
    vstore(r, vexp<T>(vload<V>(a) - m));
    for (int64_t k = 0; k < C - c; ++k) s += r[k];
  }
  for (int k = 0; k < L; ++k) s += acc[k];
  m_out = m;
  s_out = s;
}

template <class T>
int64_t ce_fwd_impl(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                    int64_t ignore_index, T eps, T* loss, T* wt) {
  T W = T(C);
  if (w) {
    W = 0;
    for (int64_t c = 0; c < C; ++c) W += w[c];
  }
  const T keep = T(1) - eps, spread = eps / T(C);
  int64_t bad = 0;
  const bool big = N * C * inner >= kMinParallel && max_threads() > 1;
  // Per-position finish, given m, s and sx = sum_c w_c (x_c - m) (only needed when eps > 0).
  auto finish = [&](int64_t p, const T* xcol, int64_t stride, T m, T s, T sx) -> int64_t {
    const int64_t tt = t[p];
    if (tt == ignore_index) {
      loss[p] = 0;
      wt[p] = 0;
      return 0;
    }
    if (tt < 0 || tt >= C) {
      loss[p] = T(NAN);
      wt[p] = 0;
      return 1;
    }
    const T lg = std::log(s);
    const T wtt = w ? w[tt] : T(1);
    T l = keep * (wtt * ((lg + m) - xcol[tt * stride]));
    if (eps != T(0)) l += spread * (W * lg - sx);
    loss[p] = l;
    wt[p] = wtt;
    return 0;
  };
  if (inner == 1) {
#pragma omp parallel for schedule(static) reduction(+ : bad) if (big && N > 1)
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * C;
      T m, s, sx = 0;
      row_max_sum(C, xr, m, s);
      if (eps != T(0)) {
        if (w) {
          for (int64_t c = 0; c < C; ++c) sx += w[c] * (xr[c] - m);
        } else {
#pragma omp simd reduction(+ : sx)
          for (int64_t c = 0; c < C; ++c) sx += xr[c] - m;
        }
      }
      bad += finish(n, xr, 1, m, s, sx);
    }
    return bad;
  }
  const int64_t nb = ceil_div(inner, kBlock), tasks = N * nb;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (big && tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / nb, j0 = (task % nb) * kBlock, B = imin(kBlock, inner - j0);
    const T* xb = x + n * C * inner + j0;
    alignas(64) T mx[kBlock + 64], sm[kBlock + 64], sx[kBlock + 64], buf[kBlock + 64];
    using V = Vec<T>;
    constexpr int L = kLanes<T>;
    const int64_t Bp = ceil_div(B, L) * L;
    for (int64_t j = 0; j < Bp; ++j) { mx[j] = -INFINITY; sm[j] = 0; sx[j] = 0; buf[j] = 0; }
    for (int64_t c = 0; c < C; ++c) {
      const T* xr = xb + c * inner;
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];
    }
    for (int64_t j = B; j < Bp; ++j) mx[j] = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T* xr = xb + c * inner;
      const T wc = w ? w[c] : T(1);
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) {
        buf[j] = xr[j] - mx[j];
        sx[j] += wc * buf[j];
      }
      for (int64_t j = 0; j < Bp; j += L) vstore(sm + j, vload<V>(sm + j) + vexp<T>(vload<V>(buf + j)));
    }
    const int64_t p0 = n * inner + j0;
    for (int64_t j = 0; j < B; ++j) bad += finish(p0 + j, xb + j, inner, mx[j], sm[j], sx[j]);
  }
  return bad;
}

template <class T>
int64_t ce_bwd_impl(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* t, const T* w,
                    int64_t ignore_index, T eps, const T* g, int64_t gstride, T gscale, T* gx) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  T W = T(C);
  if (w) {
    W = 0;
    for (int64_t c = 0; c < C; ++c) W += w[c];
  }
  const T keep = T(1) - eps, spread = eps / T(C);
  int64_t bad = 0;
  const bool big = N * C * inner >= kMinParallel && max_threads() > 1;
  if (inner == 1) {
#pragma omp parallel for schedule(static) reduction(+ : bad) if (big && N > 1)
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * C;
      T* gr = gx + n * C;
      const int64_t tt = t[n];
      const bool valid = tt != ignore_index && tt >= 0 && tt < C;
      if (!valid && tt != ignore_index) {
        ++bad;
        for (int64_t c = 0; c < C; ++c) gr[c] = 0;
        continue;
      }
      T m, s;
      row_max_sum(C, xr, m, s);
      if (!valid) {  // ignored: p_c * 0, so NaN/inf in the row propagate as in torch
        const T a = T(0) / s;
        map1(C, xr, gr, [m, a](V v) { return vexp<T>(v - m) * a; });
        continue;
      }
      const T gi = g[n * gstride] * gscale;
      const T wtt = w ? w[tt] : T(1);
      const T a = gi * (keep * wtt + spread * W) / s, b = gi * spread;
      map1(C, xr, gr, [m, a](V v) { return vexp<T>(v - m) * a; });
      if (eps != T(0)) {
        if (w) {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) gr[c] -= b * w[c];
        } else {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) gr[c] -= b;
        }
      }
      gr[tt] -= gi * keep * wtt;
    }
    return bad;
  }
  const int64_t nb = ceil_div(inner, kBlock), tasks = N * nb;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (big && tasks > 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / nb, j0 = (task % nb) * kBlock, B = imin(kBlock, inner - j0);
    const int64_t off = n * C * inner + j0, p0 = n * inner + j0;
    const T* xb = x + off;
    T* gb = gx + off;
    alignas(64) T mx[kBlock + 64], sm[kBlock + 64], ca[kBlock + 64], cb[kBlock + 64], buf[kBlock + 64];
    const int64_t Bp = ceil_div(B, L) * L;
    for (int64_t j = 0; j < Bp; ++j) { mx[j] = -INFINITY; sm[j] = 0; buf[j] = 0; }
    for (int64_t c = 0; c < C; ++c) {
      const T* xr = xb + c * inner;
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];
    }
    for (int64_t j = B; j < Bp; ++j) mx[j] = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T* xr = xb + c * inner;
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) buf[j] = xr[j] - mx[j];
      for (int64_t j = 0; j < Bp; j += L) vstore(sm + j, vload<V>(sm + j) + vexp<T>(vload<V>(buf + j)));
    }
    for (int64_t j = 0; j < B; ++j) {
      const int64_t tt = t[p0 + j];
      const bool valid = tt != ignore_index && tt >= 0 && tt < C;
      bad += !valid && tt != ignore_index;
      if (!valid) { ca[j] = T(0) / sm[j]; cb[j] = 0; continue; }  // p_c * 0: NaN propagates
      const T gi = g[(p0 + j) * gstride] * gscale;
      const T wtt = w ? w[tt] : T(1);
      ca[j] = gi * (keep * wtt + spread * W) / sm[j];
      cb[j] = gi * spread;
    }
    for (int64_t c = 0; c < C; ++c) {
      const T* xr = xb + c * inner;
      T* gr = gb + c * inner;
      const T wc = w ? w[c] : T(1);
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) buf[j] = xr[j] - mx[j];
      for (int64_t j = 0; j < Bp; j += L) vstore(buf + j, vexp<T>(vload<V>(buf + j)));
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) gr[j] = buf[j] * ca[j] - cb[j] * wc;
    }
    for (int64_t j = 0; j < B; ++j) {
      const int64_t tt = t[p0 + j];
      if (tt == ignore_index || tt < 0 || tt >= C) continue;
      const T gi = g[(p0 + j) * gstride] * gscale;
      const T wtt = w ? w[tt] : T(1);
      gb[tt * inner + j] -= gi * keep * wtt;
    }
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------
// mse_loss. The sum is formed per fixed 8192-element chunk in double, then the chunk sums in
// order: the result does not depend on the thread count.
template <class T>
void mse_fwd_impl(int64_t n, const T* x, const T* t, T* out, int reduce) {
  if (!reduce) {
    using V = Vec<T>;
    parallel_chunks(n, 1 << 15, [&](int64_t b, int64_t e) {
      map2(e - b, x + b, t + b, out + b, [](V a, V c) { return (a - c) * (a - c); });
    });
    return;
  }
  static thread_local Buffer scratch;
  const int64_t nchunks = ceil_div(n, kChunk);
  double* part = scratch.get<double>(nchunks);
  parallel_chunks(n, 1 << 15, [&](int64_t b, int64_t e) {
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = b; i < e; ++i) {
      const double d = double(x[i]) - double(t[i]);
      acc += d * d;
    }
    part[b / kChunk] = acc;
  });
  double s = 0;
  for (int64_t c = 0; c < nchunks; ++c) s += part[c];
  out[0] = T(s);
}

template <class T>
void mse_bwd_impl(int64_t n, const T* g, int64_t gstride, T gscale, const T* x, const T* t, T* gx, T* gt) {
  parallel_chunks(n, 1 << 15, [&](int64_t b, int64_t e) {
    if (gstride == 0) {
      const T k = T(2) * gscale * g[0];
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const T v = k * (x[i] - t[i]);
        gx[i] = v;
        gt[i] = -v;
      }
    } else {
      const T k = T(2) * gscale;
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const T v = k * g[i] * (x[i] - t[i]);
        gx[i] = v;
        gt[i] = -v;
      }
    }
  });
}

}  // namespace

CK_REGISTER(cross_entropy_fwd_stub, ce_fwd_impl);
CK_REGISTER(cross_entropy_bwd_stub, ce_bwd_impl);
CK_REGISTER(mse_fwd_stub, mse_fwd_impl);
CK_REGISTER(mse_bwd_stub, mse_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
