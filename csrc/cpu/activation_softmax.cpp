// softmax / log_softmax over the middle axis of x viewed as (outer, D, inner), stable:
//   m = max_d x,  s = sum_d exp(x - m),  softmax = exp(x - m) / s,  log_softmax = x - m - log s.
// inner == 1 (the reduced axis is contiguous): one row per task, Vec<T> along the row.
// inner > 1: tasks are (outer index, block of up to kBlock inner positions); each block keeps
// its running max / sum in small arrays and walks d, so every load is contiguous.
// Backward (recomputing the forward into gx first):
//   softmax:     gx = y (g - sum_d g y)        log_softmax: gx = g - exp(y) sum_d g
#include "cpu/common.h"
#include "cpu/activation_math.h"
#include "ops/activation.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

using namespace actmath;

constexpr int64_t kMinParallel = 1 << 14;
constexpr int64_t kBlock = 256;

template <class T>
inline T hsum(Vec<T> v) {
  T s = 0;
  for (int k = 0; k < kLanes<T>; ++k) s += v[k];
  return s;
}

template <class T>
T row_max(int64_t D, const T* x) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  T m = -INFINITY;
  int64_t d = 0;
  if (D >= L) {
    V mv = vload<V>(x);
    for (d = L; d + L <= D; d += L) {
      V v = vload<V>(x + d);
      mv = v > mv ? v : mv;
    }
    for (int k = 0; k < L; ++k) m = mv[k] > m ? mv[k] : m;
  }
  for (; d < D; ++d) m = x[d] > m ? x[d] : m;
  return m;
}

// One contiguous row: y = softmax(x) or log_softmax(x).
template <class T>
void row_forward(int64_t D, const T* x, T* y, bool log) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const T m = row_max(D, x);
  V acc = V{};
  T tail = 0;
  int64_t d = 0;
  for (; d + L <= D; d += L) {
    V e = vexp<T>(vload<V>(x + d) - m);
    if (!log) vstore(y + d, e);
    acc += e;
  }
  if (d < D) {
    T a[L] = {}, r[L];
    std::memcpy(a, x + d, size_t(D - d) * sizeof(T));
    vstore(r, vexp<T>(vload<V>(a) - m));
    for (int64_t k = 0; k < D - d; ++k) {
      if (!log) y[d + k] = r[k];
      tail += r[k];
    }
  }
  const T s = hsum<T>(acc) + tail;
  if (log) {
    const T ls = std::log(s);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) y[i] = (x[i] - m) - ls;
  } else {
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) y[i] = y[i] / s;
  }
}

// A block of B <= kBlock inner positions at x[0..B) with the reduced axis at stride `inner`.
template <class T>
void block_forward(int64_t D, int64_t inner, int64_t B, const T* x, T* y, bool log) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  alignas(64) T mx[kBlock + 64], sm[kBlock + 64], buf[kBlock + 64];
  const int64_t Bp = ceil_div(B, L) * L;
  for (int64_t j = 0; j < Bp; ++j) { mx[j] = -INFINITY; sm[j] = 0; buf[j] = 0; }
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = x + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < B; ++j) mx[j] = xr[j] > mx[j] ? xr[j] : mx[j];
  }
  for (int64_t j = B; j < Bp; ++j) mx[j] = 0;
  for (int64_t d = 0; d < D; ++d) {
    const T* xr = x + d * inner;
    T* yr = y + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < B; ++j) buf[j] = xr[j] - mx[j];
    for (int64_t j = 0; j < Bp; j += L) {
      V e = vexp<T>(vload<V>(buf + j));
      vstore(buf + j, e);
      vstore(sm + j, vload<V>(sm + j) + e);
    }
    if (!log) std::memcpy(yr, buf, size_t(B) * sizeof(T));
  }
  if (log) {
    for (int64_t j = 0; j < B; ++j) sm[j] = std::log(sm[j]);
    for (int64_t d = 0; d < D; ++d) {
      const T* xr = x + d * inner;
      T* yr = y + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) yr[j] = (xr[j] - mx[j]) - sm[j];
    }
  } else {
    for (int64_t d = 0; d < D; ++d) {
      T* yr = y + d * inner;
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) yr[j] = yr[j] / sm[j];
    }
  }
}

template <class T>
void softmax_fwd_impl(int64_t outer, int64_t D, int64_t inner, const T* x, T* y, bool log) {
  const bool big = outer * D * inner >= kMinParallel && max_threads() > 1;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (big && outer > 1)
    for (int64_t o = 0; o < outer; ++o) row_forward(D, x + o * D, y + o * D, log);
    return;
  }
  const int64_t nb = ceil_div(inner, kBlock), tasks = outer * nb;
#pragma omp parallel for schedule(static) if (big && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / nb, j0 = (t % nb) * kBlock;
    const int64_t off = o * D * inner + j0;
    block_forward(D, inner, imin(kBlock, inner - j0), x + off, y + off, log);
  }
}

// gx holds the forward result on entry.
template <class T>
void row_backward(int64_t D, const T* g, T* gx, bool log) {
  T s = 0;
  if (log) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += g[i];
    using V = Vec<T>;
    map2(D, g, gx, gx, [s](V gv, V yv) { return gv - vexp<T>(yv) * s; });
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += g[i] * gx[i];
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) gx[i] = gx[i] * (g[i] - s);
  }
}

template <class T>
void block_backward(int64_t D, int64_t inner, int64_t B, const T* g, T* gx, bool log) {
  using V = Vec<T>;
  alignas(64) T s[kBlock + 64];
  for (int64_t j = 0; j < B; ++j) s[j] = 0;
  for (int64_t d = 0; d < D; ++d) {
    const T* gr = g + d * inner;
    const T* yr = gx + d * inner;
    if (log) {
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) s[j] += gr[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) s[j] += gr[j] * yr[j];
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* gr = g + d * inner;
    T* yr = gx + d * inner;
    if (log) {
      alignas(64) T e[kBlock + 64];
      map1(B, yr, e, [](V v) { return vexp<T>(v); });
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) yr[j] = gr[j] - e[j] * s[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < B; ++j) yr[j] = yr[j] * (gr[j] - s[j]);
    }
  }
}

template <class T>
void softmax_bwd_impl(int64_t outer, int64_t D, int64_t inner, const T* g, const T* x, T* gx, bool log) {
  const bool big = outer * D * inner >= kMinParallel && max_threads() > 1;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (big && outer > 1)
    for (int64_t o = 0; o < outer; ++o) {
      row_forward(D, x + o * D, gx + o * D, log);
      row_backward(D, g + o * D, gx + o * D, log);
    }
    return;
  }
  const int64_t nb = ceil_div(inner, kBlock), tasks = outer * nb;
#pragma omp parallel for schedule(static) if (big && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / nb, j0 = (t % nb) * kBlock;
    const int64_t off = o * D * inner + j0, B = imin(kBlock, inner - j0);
    block_forward(D, inner, B, x + off, gx + off, log);
    block_backward(D, inner, B, g + off, gx + off, log);
  }
}

}  // namespace

CK_REGISTER(softmax_fwd_stub, softmax_fwd_impl);
CK_REGISTER(softmax_bwd_stub, softmax_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
