// Adaptive pooling (window p covers rows [floor(p*H/P), ceil((p+1)*H/P))) and the global
// (whole-plane) reductions, with their backward passes.
//
// Adaptive average is separable: each output row first sums its input rows into a W-long
// row (a contiguous, vectorized add), then averages column ranges of that row. Its backward
// does the reverse. Adaptive max scans each window with torch's rule (first max, last NaN).
// Global average/max reduce each plane with several vector accumulators; the global max's
// backward finds the argmax (first maximum, or the last NaN) and routes the gradient there.
#include "cpu/common.h"

#include <limits>

#include "ops/pool.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

inline int64_t ad_lo(int64_t o, int64_t n, int64_t out) { return o * n / out; }
inline int64_t ad_hi(int64_t o, int64_t n, int64_t out) { return ((o + 1) * n + out - 1) / out; }

template <class T>
void adaptive_avg_fwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y) {
  const int64_t rows = NC * P;
  const bool par = rows > 1 && NC * H * W + rows * Q > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    static thread_local Buffer bt;
    T* tmp = bt.get<T>(W);
    const int64_t nc = t / P, p = t - nc * P;
    const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P);
    const T* xp = x + nc * H * W;
    {
      const T* r0 = xp + h0 * W;
#pragma omp simd
      for (int64_t w = 0; w < W; ++w) tmp[w] = r0[w];
    }
    for (int64_t ih = h0 + 1; ih < h1; ++ih) {
      const T* r = xp + ih * W;
#pragma omp simd
      for (int64_t w = 0; w < W; ++w) tmp[w] += r[w];
    }
    T* yr = y + t * Q;
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
      T s = T(0);
      for (int64_t w = w0; w < w1; ++w) s += tmp[w];
      yr[q] = s / T((h1 - h0) * (w1 - w0));
    }
  }
}

template <class T>
void adaptive_avg_bwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* gy, T* gx) {
  const bool par = NC > 1 && NC * (H * W + P * Q) > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    static thread_local Buffer bt;
    T* tmp = bt.get<T>(W);
    T* g = gx + nc * H * W;
    for (int64_t i = 0; i < H * W; ++i) g[i] = T(0);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P);
      for (int64_t w = 0; w < W; ++w) tmp[w] = T(0);
      const T* gr = gy + (nc * P + p) * Q;
      for (int64_t q = 0; q < Q; ++q) {
        const int64_t w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
        const T v = gr[q] / T((h1 - h0) * (w1 - w0));
        for (int64_t w = w0; w < w1; ++w) tmp[w] += v;
      }
      for (int64_t ih = h0; ih < h1; ++ih) {
        T* r = g + ih * W;
#pragma omp simd
        for (int64_t w = 0; w < W; ++w) r[w] += tmp[w];
      }
    }
  }
}

// torch's scan: first maximum, a NaN always replaces (so the last NaN wins).
template <class T>
inline int64_t window_argmax(const T* xp, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1, T* val) {
  T m = -std::numeric_limits<T>::infinity();
  int64_t mi = h0 * W + w0;
  for (int64_t ih = h0; ih < h1; ++ih) {
    const T* r = xp + ih * W;
    for (int64_t iw = w0; iw < w1; ++iw) {
      const T v = r[iw];
      if (v > m || v != v) {
        m = v;
        mi = ih * W + iw;
      }
    }
  }
  *val = m;
  return mi;
}

template <class T>
void adaptive_max_fwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, T* y, int64_t* idx) {
  const int64_t rows = NC * P;
  const bool par = rows > 1 && NC * H * W + rows * Q > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t nc = t / P, p = t - nc * P;
    const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P);
    const T* xp = x + nc * H * W;
    if (idx) {
      for (int64_t q = 0; q < Q; ++q) idx[t * Q + q] = window_argmax(xp, W, h0, h1, ad_lo(q, W, Q), ad_hi(q, W, Q), y + t * Q + q);
      continue;
    }
    // values only: NaN-propagating max is separable (rows into a W-long row, then columns)
    static thread_local Buffer bt;
    T* tmp = bt.get<T>(W);
    {
      const T* r0 = xp + h0 * W;
#pragma omp simd
      for (int64_t w = 0; w < W; ++w) tmp[w] = r0[w];
    }
    for (int64_t ih = h0 + 1; ih < h1; ++ih) {
      const T* r = xp + ih * W;
#pragma omp simd
      for (int64_t w = 0; w < W; ++w) {
        const T v = r[w], m = tmp[w];
        tmp[w] = (v > m || v != v) ? v : m;
      }
    }
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t w0 = ad_lo(q, W, Q), w1 = ad_hi(q, W, Q);
      T m = tmp[w0];
      for (int64_t w = w0 + 1; w < w1; ++w) {
        const T v = tmp[w];
        m = (v > m || v != v) ? v : m;
      }
      y[t * Q + q] = m;
    }
  }
}

template <class T>
void adaptive_max_bwd_impl(int64_t NC, int64_t H, int64_t W, int64_t P, int64_t Q, const T* x, const T* gy, T* gx) {
  const bool par = NC > 1 && NC * (H * W + P * Q) > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* xp = x + nc * H * W;
    T* g = gx + nc * H * W;
    for (int64_t i = 0; i < H * W; ++i) g[i] = T(0);
    for (int64_t p = 0; p < P; ++p) {
      const int64_t h0 = ad_lo(p, H, P), h1 = ad_hi(p, H, P);
      const T* gr = gy + (nc * P + p) * Q;
      for (int64_t q = 0; q < Q; ++q) {
        T v;
        g[window_argmax(xp, W, h0, h1, ad_lo(q, W, Q), ad_hi(q, W, Q), &v)] += gr[q];
      }
    }
  }
}

// ---------------------------------------------------------------- global

template <class T>
T plane_sum(const T* x, int64_t n) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  V a0 = V{}, a1 = V{}, a2 = V{}, a3 = V{};
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 += vload<V>(x + i);
    a1 += vload<V>(x + i + L);
    a2 += vload<V>(x + i + 2 * L);
    a3 += vload<V>(x + i + 3 * L);
  }
  for (; i + L <= n; i += L) a0 += vload<V>(x + i);
  const V a = (a0 + a1) + (a2 + a3);
  T s = T(0);
  for (int l = 0; l < L; ++l) s += a[l];
  for (; i < n; ++i) s += x[i];
  return s;
}

// max with NaN propagation (any NaN -> NaN)
template <class T>
T plane_max(const T* x, int64_t n) {
  using V = Vec<T>;
  using M = decltype(V{} < V{});
  constexpr int L = kLanes<T>;
  const V ninf = vbroadcast<V>(-std::numeric_limits<T>::infinity());
  V m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
  M n0 = M{}, n1 = M{};
  int64_t i = 0;
  for (; i + 4 * L <= n; i += 4 * L) {
    const V v0 = vload<V>(x + i), v1 = vload<V>(x + i + L), v2 = vload<V>(x + i + 2 * L),
            v3 = vload<V>(x + i + 3 * L);
    m0 = v0 > m0 ? v0 : m0;
    m1 = v1 > m1 ? v1 : m1;
    m2 = v2 > m2 ? v2 : m2;
    m3 = v3 > m3 ? v3 : m3;
    n0 |= (v0 != v0) | (v1 != v1);
    n1 |= (v2 != v2) | (v3 != v3);
  }
  for (; i + L <= n; i += L) {
    const V v = vload<V>(x + i);
    m0 = v > m0 ? v : m0;
    n0 |= v != v;
  }
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  m0 = m2 > m0 ? m2 : m0;
  const M nn = n0 | n1;
  T m = -std::numeric_limits<T>::infinity();
  bool nan = false;
  for (int l = 0; l < L; ++l) {
    nan |= nn[l] != 0;
    if (m0[l] > m) m = m0[l];
  }
  for (; i < n; ++i) {
    const T v = x[i];
    if (v > m) m = v;
    nan |= v != v;
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}

template <class T>
void global_avg_fwd_impl(int64_t NC, int64_t HW, const T* x, T* y) {
  const bool par = NC > 1 && NC * HW > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) y[nc] = plane_sum(x + nc * HW, HW) / T(HW);
}

template <class T>
void global_max_fwd_impl(int64_t NC, int64_t HW, const T* x, T* y) {
  const bool par = NC > 1 && NC * HW > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) y[nc] = plane_max(x + nc * HW, HW);
}

template <class T>
void global_avg_bwd_impl(int64_t NC, int64_t HW, const T* gy, T* gx) {
  const bool par = NC > 1 && NC * HW > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T v = gy[nc] / T(HW);
    T* g = gx + nc * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) g[i] = v;
  }
}

template <class T>
void global_max_bwd_impl(int64_t NC, int64_t HW, const T* x, const T* gy, T* gx) {
  const bool par = NC > 1 && NC * HW > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < NC; ++nc) {
    const T* xp = x + nc * HW;
    const T m = plane_max(xp, HW);
    int64_t at = 0;
    if (m != m) {  // the last NaN
      for (int64_t i = HW - 1; i >= 0; --i)
        if (xp[i] != xp[i]) { at = i; break; }
    } else {  // the first maximum (index 0 when every value is -inf)
      for (int64_t i = 0; i < HW; ++i)
        if (xp[i] == m) { at = i; break; }
    }
    T* g = gx + nc * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) g[i] = T(0);
    g[at] = gy[nc];
  }
}

}  // namespace

CK_REGISTER(adaptive_avg_pool2d_fwd_stub, adaptive_avg_fwd_impl);
CK_REGISTER(adaptive_avg_pool2d_bwd_stub, adaptive_avg_bwd_impl);
CK_REGISTER(adaptive_max_pool2d_fwd_stub, adaptive_max_fwd_impl);
CK_REGISTER(adaptive_max_pool2d_bwd_stub, adaptive_max_bwd_impl);
CK_REGISTER(global_avg_pool_fwd_stub, global_avg_fwd_impl);
CK_REGISTER(global_max_pool_fwd_stub, global_max_fwd_impl);
CK_REGISTER(global_avg_pool_bwd_stub, global_avg_bwd_impl);
CK_REGISTER(global_max_pool_bwd_stub, global_max_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
