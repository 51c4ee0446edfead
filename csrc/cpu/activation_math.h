// Vectorized elementary functions on Vec<T> for the activation, softmax and loss kernels.
// Included (after cpu/common.h) by cpu/activation*.cpp and cpu/loss*.cpp only; everything is
// inside ck::CK_ISA_NS, so each ISA gets its own copy (no ODR clash between ISAs).
//
//   vexp    exp(x): Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial of
//           degree 13 (double) / 8 (float), scaling by 2^n in two steps (so subnormal results
//           and overflow to inf come out right). Error about 1 ulp.
//   vexpm1  expm1(x): Taylor series for |x| <= ln2/2, exp(x) - 1 elsewhere (a few ulp).
//   vtanh   tanh(x) = sign(x) * e / (e + 2), e = expm1(2|x|)  (a few ulp, exact sign, +-1 tails).
//   erf     libm (std::erf) lane by lane: glibc's erf is correctly rounded to < 1 ulp.
// NaN propagates through all of them; exp(+inf) = inf, exp(-inf) = 0.
#pragma once
#include "cpu/common.h"

namespace ck {
namespace CK_ISA_NS {
namespace actmath {

template <class T> struct IntOf;
template <> struct IntOf<float> { typedef int32_t type; };
template <> struct IntOf<double> { typedef int64_t type; };
template <class T>
struct VecIOf {
  typedef typename IntOf<T>::type type __attribute__((vector_size(sizeof(Vec<T>))));
};
template <class T> using VecI = typename VecIOf<T>::type;

template <class T> struct Consts;
template <> struct Consts<float> {
  static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr float exp_hi = 89.0f, exp_lo = -104.0f;  // beyond: inf / 0
  static constexpr int mant_bits = 23, bias = 127, degree = 8;
  static constexpr float tanh_cap = 10.0f;  // tanh(10) rounds to 1
};
template <> struct Consts<double> {
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr double exp_hi = 710.0, exp_lo = -746.0;
  static constexpr int mant_bits = 52, bias = 1023, degree = 13;
  static constexpr double tanh_cap = 20.0;
};

// 1/k! for k = 0..15, rounded to T.
template <class T>
struct InvFact {
  T c[16];
  constexpr InvFact() : c() {
    double f = 1.0;
    for (int k = 0; k < 16; ++k) {
      if (k > 0) f *= k;
      c[k] = T(1.0 / f);
    }
  }
};
template <class T> constexpr InvFact<T> kInvFact{};

// sum_{k=0..deg} r^k / k!  (Horner, highest term first)
template <class T, class V>
inline V taylor_exp(V r) {
  constexpr int D = Consts<T>::degree;
  V p = vbroadcast<V>(kInvFact<T>.c[D]);
#pragma GCC unroll 16
  for (int k = D - 1; k >= 0; --k) p = p * r + kInvFact<T>.c[k];
  return p;
}

template <class T>
inline Vec<T> vexp(Vec<T> x) {
  using V = Vec<T>;
  using VI = VecI<T>;
  using C = Consts<T>;
  const V hi = vbroadcast<V>(C::exp_hi), lo = vbroadcast<V>(C::exp_lo);
  x = x > hi ? hi : x;  // comparisons with NaN are false: NaN stays NaN
  x = x < lo ? lo : x;
  const V magic = vbroadcast<V>(C::magic);
  V t = x * T(1.4426950408889634) + magic;
  V n = t - magic;
  V r = x - n * C::ln2_hi;
  r = r - n * C::ln2_lo;
  V p = taylor_exp<T>(r);
  VI ni = (VI)t - (VI)magic;  // the integer n, read from the mantissa of t
  VI n1 = ni >> 1;
  VI n2 = ni - n1;
  V s1 = (V)((n1 + C::bias) << C::mant_bits);
  V s2 = (V)((n2 + C::bias) << C::mant_bits);
  return (p * s1) * s2;
}

template <class T>
inline Vec<T> vexpm1(Vec<T> x) {
  using V = Vec<T>;
  constexpr int D = Consts<T>::degree;
  // x + x^2 (1/2! + x (1/3! + ...)), used for |x| <= ln2/2
  V q = vbroadcast<V>(kInvFact<T>.c[D + 1]);
#pragma GCC unroll 16
  for (int k = D; k >= 2; --k) q = q * x + kInvFact<T>.c[k];
  V small = x + (x * x) * q;
  V big = vexp<T>(x) - T(1);
  const V lim = vbroadcast<V>(T(0.34657359027997264));
  V ax = x < T(0) ? -x : x;
  return ax <= lim ? small : big;  // NaN: goes to `big`, which is NaN
}

template <class T>
inline Vec<T> vabs(Vec<T> x) {
  using VI = VecI<T>;
  using I = typename IntOf<T>::type;
  const VI mask = VI{} + I(~(I(1) << (sizeof(T) * 8 - 1)));
  return (Vec<T>)((VI)x & mask);
}

template <class T>
inline Vec<T> vtanh(Vec<T> x) {
  using V = Vec<T>;
  using VI = VecI<T>;
  using I = typename IntOf<T>::type;
  V ax = vabs<T>(x);
  const V cap = vbroadcast<V>(Consts<T>::tanh_cap);
  ax = ax > cap ? cap : ax;
  V e = vexpm1<T>(ax + ax);
  V t = e / (e + T(2));
  const VI sign = VI{} + I(I(1) << (sizeof(T) * 8 - 1));
  return (V)((VI)t | ((VI)x & sign));
}

template <class T>
inline Vec<T> vsigmoid(Vec<T> x) {
  return T(1) / (T(1) + vexp<T>(-x));
}

template <class T>
inline Vec<T> verf(Vec<T> x) {
  Vec<T> r;
  for (int k = 0; k < kLanes<T>; ++k) r[k] = std::erf(x[k]);
  return r;
}

// Applies f (Vec<T> -> Vec<T>) to n contiguous values: full vectors, then one padded tail.
template <class T, class F>
inline void map1(int64_t n, const T* x, T* y, F f) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(y + i, f(vload<V>(x + i)));
  if (i < n) {
    T a[L] = {}, r[L];
    std::memcpy(a, x + i, size_t(n - i) * sizeof(T));
    vstore(r, f(vload<V>(a)));
    std::memcpy(y + i, r, size_t(n - i) * sizeof(T));
  }
}

// Applies f(Vec a, Vec b) -> Vec elementwise to two inputs.
template <class T, class F>
inline void map2(int64_t n, const T* a, const T* b, T* y, F f) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(y + i, f(vload<V>(a + i), vload<V>(b + i)));
  if (i < n) {
    T pa[L] = {}, pb[L] = {}, r[L];
    std::memcpy(pa, a + i, size_t(n - i) * sizeof(T));
    std::memcpy(pb, b + i, size_t(n - i) * sizeof(T));
    vstore(r, f(vload<V>(pa), vload<V>(pb)));
    std::memcpy(y + i, r, size_t(n - i) * sizeof(T));
  }
}

// Splits [0, n) into fixed chunks (independent of the thread count) and runs body(begin, end)
// on each, in parallel when n is large.
constexpr int64_t kChunk = 8192;
template <class F>
inline void parallel_chunks(int64_t n, int64_t min_parallel, F body) {
  const int64_t nchunks = ceil_div(n, kChunk);
  const bool par = n >= min_parallel && nchunks > 1 && max_threads() > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < nchunks; ++c) body(c * kChunk, imin(n, (c + 1) * kChunk));
}

}  // namespace actmath
}  // namespace CK_ISA_NS
}  // namespace ck
