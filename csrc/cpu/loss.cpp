// Cross-entropy (log-softmax fused, one pass of max / sum-exp per sample) and MSE.
#include "cpu/common.h"
#include "ops/loss.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

// Max and log-sum-exp over C values of sample s (stride `inner`).
template <class T>
inline T logsumexp(int64_t C, int64_t inner, const T* x) {
  T m = -INFINITY;
  for (int64_t c = 0; c < C; ++c) m = (x[c * inner] > m || x[c * inner] != x[c * inner]) ? x[c * inner] : m;
  if (m == -INFINITY || m == INFINITY || m != m) return m;  // log-softmax is NaN / -inf-degenerate anyway
  T s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(x[c * inner] - m);
  return m + std::log(s);
}

template <class T>
void cross_entropy_fwd(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* target, int64_t ignore_index,
                       const T* w, T* nll, T* smooth, T* wt) {
  const int64_t S = N * inner;
  const int nt = S * C > (1 << 15) ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t s = 0; s < S; ++s) {
    const int64_t n = s / inner, i = s % inner;
    const T* xs = x + n * C * inner + i;
    const int64_t t = target[s];
    if (t == ignore_index) {
      nll[s] = smooth[s] = wt[s] = T(0);
      continue;
    }
    const T lse = logsumexp(C, inner, xs);
    T sm = 0;
    for (int64_t c = 0; c < C; ++c) sm -= (w ? w[c] : T(1)) * (xs[c * inner] - lse);
    const T wts = w ? w[t] : T(1);
    nll[s] = -wts * (xs[t * inner] - lse);
    smooth[s] = sm;
    wt[s] = wts;
  }
}

template <class T>
void cross_entropy_bwd(int64_t N, int64_t C, int64_t inner, const T* x, const int64_t* target, int64_t ignore_index,
                       const T* w, T eps, const T* coef, T* gx) {
  T wsum = 0;
  for (int64_t c = 0; c < C; ++c) wsum += w ? w[c] : T(1);
  const int64_t S = N * inner;
  const int nt = S * C > (1 << 15) ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t s = 0; s < S; ++s) {
    const int64_t n = s / inner, i = s % inner;
    const T* xs = x + n * C * inner + i;
    T* gs = gx + n * C * inner + i;
    const int64_t t = target[s];
    if (t == ignore_index) {
      for (int64_t c = 0; c < C; ++c) gs[c * inner] = T(0);
      continue;
    }
    const T lse = logsumexp(C, inner, xs);
    const T wt = w ? w[t] : T(1);
    const T a = coef[s] * ((T(1) - eps) * wt + eps / T(C) * wsum);
    const T b = coef[s] * eps / T(C);
    for (int64_t c = 0; c < C; ++c) gs[c * inner] = a * std::exp(xs[c * inner] - lse) - b * (w ? w[c] : T(1));
    gs[t * inner] -= coef[s] * (T(1) - eps) * wt;
  }
}

template <class T>
double mse_fwd(int64_t n, const T* __restrict x, const T* __restrict t, T* __restrict sq) {
  double total = 0;
  const int nt = n > (1 << 15) ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(nt)
  for (int64_t b = 0; b < n; b += 4096) {
    const int64_t e = imin(n, b + 4096);
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (int64_t i = b; i < e; ++i) {
      const T d = x[i] - t[i];
      part += d * d;
    }
    if (sq)
      for (int64_t i = b; i < e; ++i) {
        const T d = x[i] - t[i];
        sq[i] = d * d;
      }
    total += double(part);
  }
  return total;
}

template <class T>
void mse_bwd(int64_t n, const T* __restrict x, const T* __restrict t, const T* __restrict coef, int64_t cs, T scale,
             T* __restrict gx) {
  const int nt = n > (1 << 15) ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for simd schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; ++i) gx[i] = scale * coef[i * cs] * T(2) * (x[i] - t[i]);
}

}  // namespace

CK_REGISTER(cross_entropy_fwd_stub, cross_entropy_fwd);
CK_REGISTER(cross_entropy_bwd_stub, cross_entropy_bwd);
CK_REGISTER(mse_fwd_stub, mse_fwd);
CK_REGISTER(mse_bwd_stub, mse_bwd);

}  // namespace CK_ISA_NS
}  // namespace ck
