// Elementwise activations (forward and backward), PReLU and dropout.
// Each array is cut into fixed 8192-element chunks run in parallel (OpenMP) when large;
// inside a chunk, Vec<T> code with one zero-padded tail vector (cpu/activation_math.h).
// Semantics and subgradients follow torch's CPU kernels:
//   relu       y = x < 0 ? 0 : x (NaN stays NaN)       dy = x <= 0 ? 0 : g
//   relu6      y = min(max(x, 0), a) (NaN stays NaN)   dy = 0 < x < a ? g : 0   (torch's hardtanh)
//   leaky_relu y = x > 0 ? x : a x                      dy = x > 0 ? g : a g
//   elu        y = x <= 0 ? a (exp(x) - 1) : x          dy = x > 0 ? g : a exp(x) g (NaN -> NaN)
//   sigmoid    y = 1 / (1 + exp(-x))                    dy = g y (1 - y)
//   tanh       y = tanh(x)                              dy = g (1 - y^2)
//   gelu       y = x/2 (1 + erf(x/sqrt2))               dy = g (Phi(x) + x phi(x))
//   gelu tanh  y = x/2 (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3)
#include "cpu/common.h"
#include "cpu/activation_math.h"
#include "ops/activation.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

using namespace actmath;

constexpr int64_t kMinParallel = 1 << 15;

template <class T> constexpr T kSqrt1_2 = T(0.70710678118654752440);
template <class T> constexpr T kInvSqrt2Pi = T(0.39894228040143267794);  // 1/sqrt(2 pi)
template <class T> constexpr T kSqrt2OverPi = T(0.79788456080286535588);
template <class T> constexpr T kKappa = T(0.044715);

template <class T>
struct Fwd {
  using V = Vec<T>;
  static V relu(V x) { return x < T(0) ? V{} : x; }
  static V relu6(V x, V a) {
    const V r = x < T(0) ? V{} : x;
    return r > a ? a : r;
  }
  static V leaky(V x, T a) { return x > T(0) ? x : x * a; }
  static V elu(V x, T a) { return x <= T(0) ? vexpm1<T>(x) * a : x; }
  static V gelu(V x) { return (x * T(0.5)) * (T(1) + verf<T>(x * kSqrt1_2<T>)); }
  static V gelu_tanh(V x) {
    V u = kSqrt2OverPi<T> * (x + kKappa<T> * (x * x * x));
    return (x * T(0.5)) * (T(1) + vtanh<T>(u));
  }
};

template <class T>
void act_fwd_impl(int op, int64_t n, const T* x, T* y, T a) {
  using V = Vec<T>;
  using F = Fwd<T>;
  parallel_chunks(n, kMinParallel, [&](int64_t b, int64_t e) {
    const T* xs = x + b;
    T* ys = y + b;
    const int64_t m = e - b;
    switch (op) {
      case kActRelu: map1(m, xs, ys, [](V v) { return F::relu(v); }); break;
      case kActRelu6: {
        const V av = vbroadcast<V>(a);
        map1(m, xs, ys, [av](V v) { return F::relu6(v, av); });
        break;
      }
      case kActLeakyRelu: map1(m, xs, ys, [a](V v) { return F::leaky(v, a); }); break;
      case kActElu: map1(m, xs, ys, [a](V v) { return F::elu(v, a); }); break;
      case kActSigmoid: map1(m, xs, ys, [](V v) { return vsigmoid<T>(v); }); break;
      case kActTanh: map1(m, xs, ys, [](V v) { return vtanh<T>(v); }); break;
      case kActGelu: map1(m, xs, ys, [](V v) { return F::gelu(v); }); break;
      case kActGeluTanh: map1(m, xs, ys, [](V v) { return F::gelu_tanh(v); }); break;
      default: break;
    }
  });
}

template <class T>
void act_bwd_impl(int op, int64_t n, const T* g, const T* x, T* gx, T a) {
  using V = Vec<T>;
  parallel_chunks(n, kMinParallel, [&](int64_t b, int64_t e) {
    const T* gs = g + b;
    const T* xs = x + b;
    T* os = gx + b;
    const int64_t m = e - b;
    switch (op) {
      case kActRelu: map2(m, gs, xs, os, [](V gv, V xv) { return xv <= T(0) ? V{} : gv; }); break;
      case kActRelu6: map2(m, gs, xs, os, [a](V gv, V xv) { return (xv > T(0)) & (xv < a) ? gv : V{}; }); break;
      case kActLeakyRelu: map2(m, gs, xs, os, [a](V gv, V xv) { return xv > T(0) ? gv : gv * a; }); break;
      case kActElu:
        map2(m, gs, xs, os, [a](V gv, V xv) { return xv > T(0) ? gv : gv * (vexp<T>(xv) * a); });
        break;
      case kActSigmoid:
        map2(m, gs, xs, os, [](V gv, V xv) {
          V y = vsigmoid<T>(xv);
          return gv * ((T(1) - y) * y);
        });
        break;
      case kActTanh:
        map2(m, gs, xs, os, [](V gv, V xv) {
          V y = vtanh<T>(xv);
          return gv * (T(1) - y * y);
        });
        break;
      case kActGelu:
        map2(m, gs, xs, os, [](V gv, V xv) {
          V cdf = T(0.5) * (T(1) + verf<T>(xv * kSqrt1_2<T>));
          V pdf = vexp<T>(T(-0.5) * (xv * xv)) * kInvSqrt2Pi<T>;
          return gv * (cdf + xv * pdf);
        });
        break;
      case kActGeluTanh:
        map2(m, gs, xs, os, [](V gv, V xv) {
          V x2 = xv * xv;
          V u = kSqrt2OverPi<T> * (xv + kKappa<T> * (x2 * xv));
          V th = vtanh<T>(u);
          V left_d = T(0.5) * (T(1) + th);
          V right_d = (T(0.5) * xv) * (T(1) - th * th) * (kSqrt2OverPi<T> * (T(1) + (T(3) * kKappa<T>) * x2));
          return gv * (left_d + right_d);
        });
        break;
      default: break;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// PReLU: y = x > 0 ? x : w[c] x.
template <class T>
void prelu_fwd_impl(int64_t outer, int64_t C, int64_t inner, const T* x, const T* w, T* y) {
  using V = Vec<T>;
  const int64_t planes = outer * C;
  const bool par = planes * inner >= kMinParallel && planes > 1 && max_threads() > 1;
  if (planes == 1) {  // one shared weight over everything (or one plane): chunked instead
    const T a = w[0];
    parallel_chunks(inner, kMinParallel, [&](int64_t b, int64_t e) {
      map1(e - b, x + b, y + b, [a](V v) { return v > T(0) ? v : v * a; });
    });
    return;
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t p = 0; p < planes; ++p) {
    const T a = w[p % C];
    map1(inner, x + p * inner, y + p * inner, [a](V v) { return v > T(0) ? v : v * a; });
  }
}

template <class T>
void prelu_bwd_impl(int64_t outer, int64_t C, int64_t inner, const T* g, const T* x, const T* w, T* gx, T* gw) {
  // gx = x > 0 ? g : w g;   gw[c] = sum over (outer, inner) of (x > 0 ? 0 : x g).
  // Partial sums per channel and outer index (fixed order, independent of threads),
  // then summed over outer in order.
  static thread_local Buffer scratch;
  const int64_t planes = outer * C;
  // For a shared weight (C == 1) cut the planes into chunks so they also parallelize.
  const int64_t chunk = C == 1 ? kChunk : inner;
  const int64_t per_plane = ceil_div(inner, chunk);
  const int64_t tasks = planes * per_plane;
  T* part = scratch.get<T>(tasks);
  const bool par = planes * inner >= kMinParallel && tasks > 1 && max_threads() > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t p = task / per_plane, b = (task % per_plane) * chunk, e = imin(inner, b + chunk);
    const T a = w[p % C];
    const int64_t off = p * inner + b, m = e - b;
    const T* gs = g + off;
    const T* xs = x + off;
    T* os = gx + off;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < m; ++i) {
      const T xv = xs[i], gv = gs[i];
      const bool pos = xv > T(0);
      os[i] = pos ? gv : gv * a;
      acc += pos ? T(0) : xv * gv;
    }
    part[task] = acc;
  }
  for (int64_t c = 0; c < C; ++c) gw[c] = 0;
  for (int64_t task = 0; task < tasks; ++task) gw[(task / per_plane) % C] += part[task];
}

// ---------------------------------------------------------------------------------------------
// Dropout: a counter-based RNG (splitmix64's finalizer over seed + (i + 1) * golden gamma), so
// the mask depends only on (seed, element index): identical for every ISA, thread count and
// chunking. Element i is kept iff its top 53 random bits are >= threshold = floor(p * 2^53).
template <class T>
#if CK_ISA == 0  // SSE2 has no 64-bit vector multiply: plain scalar code is several times faster
__attribute__((optimize("no-tree-vectorize")))
#endif
void dropout_chunk(int64_t b, int64_t e, const T* __restrict x, T* __restrict y, uint64_t seed, uint64_t threshold,
                   T scale) {
#if CK_ISA != 0
#pragma omp simd
#endif
  for (int64_t i = b; i < e; ++i) {
    uint64_t z = seed + (uint64_t(i) + 1u) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    y[i] = x[i] * ((z >> 11) >= threshold ? scale : T(0));
  }
}

template <class T>
void dropout_impl(int64_t n, const T* x, T* y, uint64_t seed, uint64_t threshold, T scale) {
  parallel_chunks(n, kMinParallel, [=](int64_t b, int64_t e) { dropout_chunk(b, e, x, y, seed, threshold, scale); });
}

}  // namespace

CK_REGISTER(act_fwd_stub, act_fwd_impl);
CK_REGISTER(act_bwd_stub, act_bwd_impl);
CK_REGISTER(prelu_fwd_stub, prelu_fwd_impl);
CK_REGISTER(prelu_bwd_stub, prelu_bwd_impl);
CK_REGISTER(dropout_stub, dropout_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
