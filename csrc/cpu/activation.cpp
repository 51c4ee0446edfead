// Activations, PReLU, softmax and dropout. Elementwise loops are split into chunks over
// threads and vectorized by the compiler (`omp simd`) at this ISA's width; transcendental
// functions go through libm inside the loops.
#include "cpu/common.h"
#include "ops/activation.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per thread below which one thread is faster

template <class T>
inline T sigmoid_of(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <class T>
void act_fwd(int kind, int64_t n, T alpha, const T* __restrict x, T* __restrict y) {
  const int nt = n > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t b = 0; b < n; b += kGrain) {
    const int64_t e = imin(n, b + kGrain);
    switch (kind) {
      case kRelu:  // NaN stays NaN (NaN < 0 is false)
#pragma omp simd
        for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
        break;
      case kLeakyRelu:
#pragma omp simd
        for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? x[i] * alpha : x[i];
        break;
      case kElu:
        for (int64_t i = b; i < e; ++i) y[i] = x[i] > T(0) ? x[i] : alpha * std::expm1(x[i]);
        break;
      case kSigmoid:
        for (int64_t i = b; i < e; ++i) y[i] = sigmoid_of(x[i]);
        break;
      case kTanh:
        for (int64_t i = b; i < e; ++i) y[i] = std::tanh(x[i]);
        break;
      case kGeluErf:
        for (int64_t i = b; i < e; ++i) y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(0.70710678118654752440)));
        break;
      case kGeluTanh: {
        const T c = T(0.79788456080286535588), k = T(0.044715);
        for (int64_t i = b; i < e; ++i) {
          const T v = x[i];
          y[i] = T(0.5) * v * (T(1) + std::tanh(c * (v + k * v * v * v)));
        }
        break;
      }
    }
  }
}

template <class T>
void act_bwd(int kind, int64_t n, T alpha, const T* __restrict x, const T* __restrict gy, T* __restrict gx) {
  const int nt = n > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t b = 0; b < n; b += kGrain) {
    const int64_t e = imin(n, b + kGrain);
    switch (kind) {
      case kRelu:  // torch (threshold_backward): 0 where x <= 0, so 0 at the kink and gy for NaN
#pragma omp simd
        for (int64_t i = b; i < e; ++i) gx[i] = x[i] <= T(0) ? T(0) : gy[i];
        break;
      case kLeakyRelu:
#pragma omp simd
        for (int64_t i = b; i < e; ++i) gx[i] = x[i] > T(0) ? gy[i] : gy[i] * alpha;
        break;
      case kElu:
        for (int64_t i = b; i < e; ++i) gx[i] = x[i] > T(0) ? gy[i] : gy[i] * alpha * std::exp(x[i]);
        break;
      case kSigmoid:
        for (int64_t i = b; i < e; ++i) {
          const T s = sigmoid_of(x[i]);
          gx[i] = gy[i] * s * (T(1) - s);
        }
        break;
      case kTanh:
        for (int64_t i = b; i < e; ++i) {
          const T t = std::tanh(x[i]);
          gx[i] = gy[i] * (T(1) - t * t);
        }
        break;
      case kGeluErf: {
        const T inv_sqrt2 = T(0.70710678118654752440), inv_sqrt2pi = T(0.39894228040143267794);
        for (int64_t i = b; i < e; ++i) {
          const T v = x[i];
          const T cdf = T(0.5) * (T(1) + std::erf(v * inv_sqrt2));
          gx[i] = gy[i] * (cdf + v * inv_sqrt2pi * std::exp(T(-0.5) * v * v));
        }
        break;
      }
      case kGeluTanh: {
        const T c = T(0.79788456080286535588), k = T(0.044715);
        for (int64_t i = b; i < e; ++i) {
          const T v = x[i];
          const T u = c * (v + k * v * v * v);
          const T t = std::tanh(u);
          const T du = c * (T(1) + T(3) * k * v * v);
          gx[i] = gy[i] * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * du);
        }
        break;
      }
    }
  }
}

template <class T>
void prelu_fwd(int64_t N, int64_t C, int64_t inner, const T* __restrict x, const T* __restrict w, int64_t wstride,
               T* __restrict y) {
  const int nt = N * C * inner > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const T a = w[(nc % C) * wstride];
    const T* xp = x + nc * inner;
    T* yp = y + nc * inner;
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) yp[i] = xp[i] < T(0) ? xp[i] * a : xp[i];
  }
}

template <class T>
void prelu_bwd(int64_t N, int64_t C, int64_t inner, const T* __restrict x, const T* __restrict w, int64_t wstride,
               const T* __restrict gy, T* __restrict gx, T* __restrict gw) {
  const int nt = N * C * inner > kGrain ? max_threads() : 1;
  (void)nt;
  // gx: independent per element. gw: per channel sums, each channel reduced by one thread.
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c = 0; c < C; ++c) {
    const T a = w[c * wstride];
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t off = (n * C + c) * inner;
      const T* xp = x + off;
      const T* gp = gy + off;
      T* op = gx + off;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < inner; ++i) {
        const bool pos = xp[i] > T(0);
        op[i] = pos ? gp[i] : gp[i] * a;
        s += pos ? T(0) : gp[i] * xp[i];
      }
      acc += double(s);
    }
    gw[c] = T(acc);
  }
  if (wstride == 0) {  // one shared slope: gw[0] is the sum over channels
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += double(gw[c]);
    gw[0] = T(s);
  }
}

// softmax over D of one (outer o) slab, inner positions [i0, i1), with D-strided access.
template <class T>
void softmax_slab(bool log, int64_t D, int64_t inner, int64_t i0, int64_t i1, const T* __restrict x, T* __restrict y,
                  T* __restrict mx, T* __restrict sum) {
  const int64_t w = i1 - i0;
  for (int64_t i = 0; i < w; ++i) mx[i] = -INFINITY;
  for (int64_t d = 0; d < D; ++d) {
    const T* xp = x + d * inner + i0;
    for (int64_t i = 0; i < w; ++i) mx[i] = (xp[i] > mx[i] || xp[i] != xp[i]) ? xp[i] : mx[i];
  }
  for (int64_t i = 0; i < w; ++i) {
    sum[i] = 0;
    if (mx[i] == -INFINITY) mx[i] = 0;  // all -inf: exp(-inf - 0) = 0 -> NaN/-inf like torch
  }
  for (int64_t d = 0; d < D; ++d) {
    const T* xp = x + d * inner + i0;
    T* yp = y + d * inner + i0;
    for (int64_t i = 0; i < w; ++i) {
      const T e = std::exp(xp[i] - mx[i]);
      if (!log) yp[i] = e;
      sum[i] += e;
    }
  }
  for (int64_t i = 0; i < w; ++i) sum[i] = log ? mx[i] + std::log(sum[i]) : T(1) / sum[i];
  for (int64_t d = 0; d < D; ++d) {
    const T* xp = x + d * inner + i0;
    T* yp = y + d * inner + i0;
    if (log) {
      for (int64_t i = 0; i < w; ++i) yp[i] = xp[i] - sum[i];
    } else {
      for (int64_t i = 0; i < w; ++i) yp[i] *= sum[i];
    }
  }
}

template <class T>
void softmax_fwd(bool log, int64_t outer, int64_t D, int64_t inner, const T* x, T* y) {
  constexpr int64_t B = 256;  // inner positions per block (scratch of 2*B values per thread)
  const int64_t nblk = ceil_div(inner, B);
  const int nt = outer * D * inner > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel num_threads(nt)
  {
    alignas(64) T mx[B], sum[B];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * nblk; ++t) {
      const int64_t o = t / nblk, i0 = (t % nblk) * B;
      softmax_slab(log, D, inner, i0, imin(inner, i0 + B), x + o * D * inner, y + o * D * inner, mx, sum);
    }
  }
}

template <class T>
void softmax_bwd(bool log, int64_t outer, int64_t D, int64_t inner, const T* y, const T* gy, T* gx) {
  constexpr int64_t B = 256;
  const int64_t nblk = ceil_div(inner, B);
  const int nt = outer * D * inner > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel num_threads(nt)
  {
    alignas(64) T acc[B];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * nblk; ++t) {
      const int64_t o = t / nblk, i0 = (t % nblk) * B, w = imin(inner, i0 + B) - i0;
      const int64_t base = o * D * inner + i0;
      for (int64_t i = 0; i < w; ++i) acc[i] = 0;
      for (int64_t d = 0; d < D; ++d) {
        const T* yp = y + base + d * inner;
        const T* gp = gy + base + d * inner;
        if (log) {
          for (int64_t i = 0; i < w; ++i) acc[i] += gp[i];
        } else {
          for (int64_t i = 0; i < w; ++i) acc[i] += gp[i] * yp[i];
        }
      }
      for (int64_t d = 0; d < D; ++d) {
        const T* yp = y + base + d * inner;
        const T* gp = gy + base + d * inner;
        T* op = gx + base + d * inner;
        if (log) {
          for (int64_t i = 0; i < w; ++i) op[i] = gp[i] - std::exp(yp[i]) * acc[i];
        } else {
          for (int64_t i = 0; i < w; ++i) op[i] = yp[i] * (gp[i] - acc[i]);
        }
      }
    }
  }
}

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <class T>
void dropout(int64_t n, uint64_t seed, uint64_t threshold, T scale, const T* __restrict x, T* __restrict y) {
  const int nt = n > kGrain ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t b = 0; b < n; b += kGrain) {
    const int64_t e = imin(n, b + kGrain);
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const uint64_t h = splitmix64(seed + uint64_t(i) * 0x9e3779b97f4a7c15ULL) >> 11;
      y[i] = h >= threshold ? x[i] * scale : T(0);
    }
  }
}

}  // namespace

CK_REGISTER(act_fwd_stub, act_fwd);
CK_REGISTER(act_bwd_stub, act_bwd);
CK_REGISTER(prelu_fwd_stub, prelu_fwd);
CK_REGISTER(prelu_bwd_stub, prelu_bwd);
CK_REGISTER(softmax_fwd_stub, softmax_fwd);
CK_REGISTER(softmax_bwd_stub, softmax_bwd);
CK_REGISTER(dropout_stub, dropout);

}  // namespace CK_ISA_NS
}  // namespace ck
