// Depthwise convolution kernels. One (n, k) plane at a time (planes in parallel); within a
// plane, every output row p is a sum of R*S input rows, each shifted and (for stride > 1)
// subsampled: y[p, q] += w[r, s] * x[p*sh - ph + r*dh, q*sw - pw + s*dw]. For each kernel
// column s the range of q whose input column is inside the image is computed once, so the
// inner loops have no bounds checks (the padding is never materialized) and vectorize over q
// (unit stride when sw == 1, a strided gather otherwise).
#include "cpu/common.h"
#include "ops/depthwise.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

// Output columns [lo, hi) whose input column q*sw - pw + off lies in [0, W).
inline void valid_cols(int64_t Q, int64_t W, int64_t sw, int64_t pw, int64_t off, int64_t& lo, int64_t& hi) {
  const int64_t a = pw - off;                     // need q*sw >= a
  lo = a <= 0 ? 0 : (a + sw - 1) / sw;
  const int64_t b = W - 1 + pw - off;             // need q*sw <= b
  hi = b < 0 ? 0 : imin(Q, b / sw + 1);
  if (lo > hi) lo = hi;
}

// Column ranges of every kernel column s, computed once per call (S <= kMaxS on the stack).
constexpr int64_t kMaxS = 64;
struct ColRanges {
  int64_t lo[kMaxS], hi[kMaxS];
  bool ok;
  explicit ColRanges(const DwParams& p) : ok(p.S <= kMaxS) {
    for (int64_t s = 0; s < p.S && s < kMaxS; ++s) valid_cols(p.Q, p.W, p.sw, p.pw, s * p.dw, lo[s], hi[s]);
  }
  void get(const DwParams& p, int64_t s, int64_t& l, int64_t& h) const {
    if (ok) {
      l = lo[s];
      h = hi[s];
    } else {
      valid_cols(p.Q, p.W, p.sw, p.pw, s * p.dw, l, h);
    }
  }
};

template <class T>
void dw_fwd(const DwParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t K = p.K(), RS = p.R * p.S;
  const ColRanges cols(p);
  const double work = double(p.N * K) * double(p.P * p.Q) * double(RS);
  const int nt = work > 2e5 ? max_threads() : 1;
  (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t nk = 0; nk < p.N * K; ++nk) {
    const int64_t n = nk / K, k = nk % K, c = k / p.M;
    const T* xp = x + (n * p.C + c) * p.H * p.W;
    const T* wk = w + k * RS;
    T* yp = y + nk * p.P * p.Q;
    const T bias = b ? b[k] : T(0);
    for (int64_t op = 0; op < p.P; ++op) {
      T* __restrict yr = yp + op * p.Q;
      for (int64_t q = 0; q < p.Q; ++q) yr[q] = bias;
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t ih = op * p.sh - p.ph + r * p.dh;
        if (ih < 0 || ih >= p.H) continue;
        const T* xr = xp + ih * p.W;
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t off = s * p.dw - p.pw;
          int64_t lo, hi;
          cols.get(p, s, lo, hi);
          const T wv = wk[r * p.S + s];
          if (p.sw == 1) {
            const T* __restrict xs = xr + off;
#pragma omp simd
            for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xs[q];
          } else {
            const int64_t sw = p.sw;
#pragma omp simd
            for (int64_t q = lo; q < hi; ++q) yr[q] += wv * xr[q * sw + off];
          }
        }
      }
    }
  }
}

template <class T>
void dw_bwd_data(const DwParams& p, const T* gy, const T* w, T* gx) {
  const int64_t K = p.K(), RS = p.R * p.S;
  const ColRanges cols(p);
  const double work = double(p.N * K) * double(p.P * p.Q) * double(RS);
  const int nt = work > 2e5 ? max_threads() : 1;
  (void)nt;
  // One (n, c) input plane per iteration: all M output channels that read it scatter into it.
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t nc = 0; nc < p.N * p.C; ++nc) {
    const int64_t n = nc / p.C, c = nc % p.C;
    T* gxp = gx + nc * p.H * p.W;
    for (int64_t i = 0; i < p.H * p.W; ++i) gxp[i] = T(0);
    for (int64_t m = 0; m < p.M; ++m) {
      const int64_t k = c * p.M + m;
      const T* gyp = gy + (n * K + k) * p.P * p.Q;
      const T* wk = w + k * RS;
      for (int64_t op = 0; op < p.P; ++op) {
        const T* __restrict gr = gyp + op * p.Q;
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = op * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          T* xr = gxp + ih * p.W;
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t off = s * p.dw - p.pw;
            int64_t lo, hi;
            cols.get(p, s, lo, hi);
            const T wv = wk[r * p.S + s];
            if (p.sw == 1) {
              T* __restrict xs = xr + off;
#pragma omp simd
              for (int64_t q = lo; q < hi; ++q) xs[q] += wv * gr[q];
            } else {
              const int64_t sw = p.sw;  // distinct q hit distinct columns: no conflicts
#pragma omp simd
              for (int64_t q = lo; q < hi; ++q) xr[q * sw + off] += wv * gr[q];
            }
          }
        }
      }
    }
  }
}

template <class T>
void dw_bwd_weight(const DwParams& p, const T* x, const T* gy, T* gw, T* gb) {
  const int64_t K = p.K(), RS = p.R * p.S;
  const ColRanges cols(p);
  const double work = double(p.N * K) * double(p.P * p.Q) * double(RS);
  const int nt = work > 2e5 ? max_threads() : 1;
  (void)nt;
  // One output channel per iteration: its R*S weights are dot products over (n, p, q).
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t k = 0; k < K; ++k) {
    const int64_t c = k / p.M;
    double acc[64];  // R*S <= 64 handled here; larger kernels accumulate straight into gw
    const bool small = RS <= 64;
    T* gwk = gw + k * RS;
    for (int64_t i = 0; i < RS; ++i) {
      if (small) acc[i] = 0;
      else gwk[i] = T(0);
    }
    double bsum = 0;
    for (int64_t n = 0; n < p.N; ++n) {
      const T* xp = x + (n * p.C + c) * p.H * p.W;
      const T* gyp = gy + (n * K + k) * p.P * p.Q;
      for (int64_t op = 0; op < p.P; ++op) {
        const T* __restrict gr = gyp + op * p.Q;
        if (gb) {
          T s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t q = 0; q < p.Q; ++q) s += gr[q];
          bsum += double(s);
        }
        for (int64_t r = 0; r < p.R; ++r) {
          const int64_t ih = op * p.sh - p.ph + r * p.dh;
          if (ih < 0 || ih >= p.H) continue;
          const T* xr = xp + ih * p.W;
          for (int64_t s = 0; s < p.S; ++s) {
            const int64_t off = s * p.dw - p.pw;
            int64_t lo, hi;
            cols.get(p, s, lo, hi);
            T dot = 0;
            if (p.sw == 1) {
              const T* __restrict xs = xr + off;
#pragma omp simd reduction(+ : dot)
              for (int64_t q = lo; q < hi; ++q) dot += gr[q] * xs[q];
            } else {
              const int64_t sw = p.sw;
#pragma omp simd reduction(+ : dot)
              for (int64_t q = lo; q < hi; ++q) dot += gr[q] * xr[q * sw + off];
            }
            if (small) acc[r * p.S + s] += double(dot);
            else gwk[r * p.S + s] += dot;
          }
        }
      }
    }
    if (small)
      for (int64_t i = 0; i < RS; ++i) gwk[i] = T(acc[i]);
    if (gb) gb[k] = T(bsum);
  }
}

}  // namespace

CK_REGISTER(dw_fwd_stub, dw_fwd);
CK_REGISTER(dw_bwd_data_stub, dw_bwd_data);
CK_REGISTER(dw_bwd_weight_stub, dw_bwd_weight);

}  // namespace CK_ISA_NS
}  // namespace ck
