// Sliding-window max and average pooling (NCHW) and their backward passes.
//
// Forward: one task per output row (n, c, p), so even a single large plane keeps every
// thread busy. Within a row, the "interior" outputs (whose window lies inside the input
// columns) are computed L = kLanes<T> at a time: the window is walked offset by offset,
// loading the L inputs of that offset (contiguous for stride 1, two loads + an even-lane
// shuffle for stride 2, a lane gather otherwise) and keeping the running max/sum in
// registers. Rows are clipped once per output row, so only the few border columns go
// through the scalar, fully clipped path.
//
// Max pooling follows torch's CPU kernel exactly: scan the window in row-major order and
// take a value when `v > max || isnan(v)` (first maximum wins ties; the last NaN wins),
// starting from -inf and the first in-bounds position. The vector path tracks the winning
// window offset r*dh*W + s*dw as a T (exact for planes below 2^24 elements in float).
//
// Backward: one task per (n, c) plane (windows overlap, so rows of one plane would race):
// max recomputes the argmax of each output row and scatters; avg scales grad_output by the
// divisors and adds it to every in-bounds window offset (a unit-stride/strided add that the
// compiler vectorizes; distinct outputs hit distinct inputs for a fixed offset).
#include "cpu/common.h"

#include <limits>
#include <utility>

#include "ops/pool.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

template <class T> using Mask = decltype(Vec<T>{} < Vec<T>{});

// int32 vector with L lanes (tracked window offsets -> indices)
template <int L> struct I32Vec;
template <> struct I32Vec<2> { typedef int32_t type __attribute__((vector_size(8))); };
template <> struct I32Vec<4> { typedef int32_t type __attribute__((vector_size(16))); };
template <> struct I32Vec<8> { typedef int32_t type __attribute__((vector_size(32))); };
template <> struct I32Vec<16> { typedef int32_t type __attribute__((vector_size(64))); };

template <class M, int... I>
inline M even_mask(std::integer_sequence<int, I...>) {
  return M{(2 * I)...};
}

// The values p[0], p[sw], ..., p[(L-1)*sw]. SWK is 1 or 2 (sw known) or 0 (any sw).
// SWK == 2 reads p[0 .. 2L-1], one element past the last lane.
template <class T, int SWK>
inline Vec<T> load_s(const T* p, int64_t sw) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  if constexpr (SWK == 1) {
    return vload<V>(p);
  } else if constexpr (SWK == 2) {
    V a = vload<V>(p), b = vload<V>(p + L);
    return __builtin_shuffle(a, b, even_mask<Mask<T>>(std::make_integer_sequence<int, L>{}));
  } else {
    T t[L];
    for (int l = 0; l < L; ++l) t[l] = p[l * sw];
    return vload<V>(t);
  }
}

// Taps of one window along one axis: window start `start` (may be negative), taps
// start + t*d for t in [0, k); valid ones t in [a, b); a0 = first tap >= 0 (not capped at k:
// torch's starting index for an empty window).
struct Span {
  int64_t start, a0, a, b;
};
inline Span span(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t d, int64_t n) {
  Span sp;
  sp.start = o * stride - pad;
  const int64_t last = n - 1 - sp.start;
  if (d == 1) {  // no divisions in the common case
    sp.a0 = sp.start < 0 ? -sp.start : 0;
    sp.b = last < 0 ? 0 : imin(k, last + 1);
  } else {
    sp.a0 = sp.start < 0 ? ceil_div(-sp.start, d) : 0;
    sp.b = last < 0 ? 0 : imin(k, last / d + 1);
  }
  sp.a = imin(sp.a0, k);
  if (sp.b < sp.a) sp.b = sp.a;
  return sp;
}

// Interior output columns [qlo, qhi]: every tap (plus `extra` elements, read by the
// stride-2 loads) inside [0, W). Computed once per call.
struct Interior {
  int64_t qlo, qhi;
};
inline Interior interior(const PoolParams& pp, int64_t extra) {
  Interior in;
  in.qlo = ceil_div(pp.pw, pp.sw);
  const int64_t lim = pp.W - 1 - extra - (pp.S - 1) * pp.dw + pp.pw;
  in.qhi = lim < 0 ? -1 : imin(lim / pp.sw, pp.Q - 1);
  return in;
}
inline Interior interior_for(const PoolParams& pp) { return interior(pp, pp.sw == 2 ? 1 : 0); }

// ---------------------------------------------------------------- max

template <class T, bool IDX>
inline void max_one(const PoolParams& pp, const T* x, const Span& rs, int64_t q, T* y, int64_t* idx,
                    bool mark_empty) {
  const Span cs = span(q, pp.sw, pp.pw, pp.S, pp.dw, pp.W);
  T m = -std::numeric_limits<T>::infinity();
  int64_t mi = (rs.start + rs.a0 * pp.dh) * pp.W + cs.start + cs.a0 * pp.dw;
  for (int64_t r = rs.a; r < rs.b; ++r) {
    const int64_t ih = rs.start + r * pp.dh;
    const T* row = x + ih * pp.W;
    for (int64_t s = cs.a; s < cs.b; ++s) {
      const int64_t iw = cs.start + s * pp.dw;
      const T v = row[iw];
      if (v > m || v != v) {
        m = v;
        if (IDX) mi = ih * pp.W + iw;
      }
    }
  }
  *y = m;
  if (IDX) *idx = (mark_empty && (rs.a >= rs.b || cs.a >= cs.b)) ? -1 : mi;
}

// Output row p of one plane: y[0..Q), idx[0..Q) when IDX. mark_empty: empty windows get
// index -1 (backward) instead of torch's out-of-window starting index.
template <class T, int SWK, bool IDX>
void max_row(const PoolParams& pp, const Interior& in, const T* x, int64_t p, T* y, int64_t* idx, bool mark_empty) {
  using V = Vec<T>;
  using M = Mask<T>;
  constexpr int L = kLanes<T>;
  const Span rs = span(p, pp.sh, pp.ph, pp.R, pp.dh, pp.H);
  const int64_t qlo = in.qlo, qhi = in.qhi;
  bool vec = qhi - qlo + 1 >= L;
  // the winning offset is tracked as a T, then converted through int32
  if (IDX && pp.H * pp.W > (sizeof(T) == 4 ? (int64_t(1) << 24) : (int64_t(1) << 31) - 1)) vec = false;
  if (!vec) {
    for (int64_t q = 0; q < pp.Q; ++q) max_one<T, IDX>(pp, x, rs, q, y + q, IDX ? idx + q : nullptr, mark_empty);
    return;
  }
  int64_t q = 0;
  for (; q < qlo; ++q) max_one<T, IDX>(pp, x, rs, q, y + q, IDX ? idx + q : nullptr, mark_empty);
  const V neg_inf = vbroadcast<V>(-std::numeric_limits<T>::infinity());
  // L outputs from q0 (the last block overlaps the previous one instead of going scalar)
  auto block = [&](int64_t q) {
    V m = neg_inf, kk = vbroadcast<V>(T(-1));
    const int64_t col = q * pp.sw - pp.pw;
    for (int64_t r = rs.a; r < rs.b; ++r) {
      const int64_t roff = r * pp.dh * pp.W;
      const T* xr = x + (rs.start * pp.W + roff + col);
      for (int64_t s = 0; s < pp.S; ++s) {
        const V v = load_s<T, SWK>(xr + s * pp.dw, pp.sw);
        const M c = (v > m) | (v != v);
        m = c ? v : m;
        if (IDX) kk = c ? vbroadcast<V>(T(roff + s * pp.dw)) : kk;
      }
    }
    vstore(y + q, m);
    if constexpr (IDX) {
      // index = window start + winning offset (the first valid row's start when none won)
      const int64_t base = rs.start * pp.W + col;
      const int64_t first = rs.a0 * pp.dh * pp.W;
      int32_t k32[L];
      vstore(k32, __builtin_convertvector(kk, typename I32Vec<L>::type));
      const int64_t sw = pp.sw;
#pragma omp simd
      for (int l = 0; l < L; ++l) idx[q + l] = base + l * sw + (k32[l] < 0 ? first : int64_t(k32[l]));
    }
  };
  for (; q + L - 1 <= qhi; q += L) block(q);
  if (q <= qhi) {
    block(qhi - L + 1);
    q = qhi + 1;
  }
  for (; q < pp.Q; ++q) max_one<T, IDX>(pp, x, rs, q, y + q, IDX ? idx + q : nullptr, mark_empty);
}

template <class T>
void max_row_any(const PoolParams& pp, const Interior& in, const T* x, int64_t p, T* y, int64_t* idx,
                 bool mark_empty) {
  if (idx) {
    if (pp.sw == 1) max_row<T, 1, true>(pp, in, x, p, y, idx, mark_empty);
    else if (pp.sw == 2) max_row<T, 2, true>(pp, in, x, p, y, idx, mark_empty);
    else max_row<T, 0, true>(pp, in, x, p, y, idx, mark_empty);
  } else {
    if (pp.sw == 1) max_row<T, 1, false>(pp, in, x, p, y, idx, mark_empty);
    else if (pp.sw == 2) max_row<T, 2, false>(pp, in, x, p, y, idx, mark_empty);
    else max_row<T, 0, false>(pp, in, x, p, y, idx, mark_empty);
  }
}

template <class T>
void max_pool2d_fwd_impl(const PoolParams& pp, const T* x, T* y, int64_t* idx) {
  const int64_t rows = pp.NC * pp.P, HW = pp.H * pp.W;
  const bool par = rows > 1 && rows * pp.Q * pp.R * pp.S > 32768;
  const Interior in = interior_for(pp);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t nc = t / pp.P, p = t - nc * pp.P;
    max_row_any<T>(pp, in, x + nc * HW, p, y + t * pp.Q, idx ? idx + t * pp.Q : nullptr, false);
  }
}

template <class T>
void max_pool2d_bwd_impl(const PoolParams& pp, const T* x, const T* gy, T* gx) {
  const int64_t HW = pp.H * pp.W;
  const bool par = pp.NC > 1 && pp.NC * (pp.P * pp.Q * pp.R * pp.S + HW) > 32768;
  const Interior in = interior_for(pp);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < pp.NC; ++nc) {
    static thread_local Buffer bi, by;
    int64_t* ib = bi.get<int64_t>(pp.Q);
    T* yb = by.get<T>(pp.Q);
    const T* xp = x + nc * HW;
    T* g = gx + nc * HW;
    for (int64_t i = 0; i < HW; ++i) g[i] = T(0);
    for (int64_t p = 0; p < pp.P; ++p) {
      const Span rs = span(p, pp.sh, pp.ph, pp.R, pp.dh, pp.H);
      if (rs.b <= rs.a) continue;  // empty windows: constant -inf output, no gradient
      max_row_any<T>(pp, in, xp, p, yb, ib, true);
      const T* gr = gy + (nc * pp.P + p) * pp.Q;
      for (int64_t q = 0; q < pp.Q; ++q)
        if (ib[q] >= 0) g[ib[q]] += gr[q];
    }
  }
}

// ---------------------------------------------------------------- avg

// torch's divisor: window clipped to the padded extent (count_include_pad) or to the input.
struct AvgSpan {
  int64_t lo, hi, pooled;  // in-bounds [lo, hi), padded-extent length
};
inline AvgSpan avg_span(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t n) {
  const int64_t start = o * stride - pad;
  const int64_t end = imin(start + k, n + pad);
  return AvgSpan{imax(start, 0), imin(end, n), end - start};
}
inline int64_t avg_divisor(const AvgSpan& h, const AvgSpan& w, bool cip, int64_t ovr) {
  if (ovr) return ovr;
  return cip ? h.pooled * w.pooled : (h.hi - h.lo) * (w.hi - w.lo);
}

template <class T, int SWK>
void avg_row(const PoolParams& pp, const Interior& in, bool cip, int64_t ovr, const T* x, int64_t p, T* y) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const AvgSpan hs = avg_span(p, pp.sh, pp.ph, pp.R, pp.H);
  const int64_t qlo = in.qlo, qhi = in.qhi;
  auto one = [&](int64_t q) {
    const AvgSpan ws = avg_span(q, pp.sw, pp.pw, pp.S, pp.W);
    T sum = T(0);
    for (int64_t ih = hs.lo; ih < hs.hi; ++ih) {
      const T* row = x + ih * pp.W;
      for (int64_t iw = ws.lo; iw < ws.hi; ++iw) sum += row[iw];
    }
    y[q] = sum / T(avg_divisor(hs, ws, cip, ovr));
  };
  if (qhi - qlo + 1 < L) {
    for (int64_t q = 0; q < pp.Q; ++q) one(q);
    return;
  }
  int64_t q = 0;
  for (; q < qlo; ++q) one(q);
  // interior columns: the window's columns are all inside, so both divisors use S columns
  const AvgSpan full{0, pp.S, pp.S};
  const V div = vbroadcast<V>(T(avg_divisor(hs, full, cip, ovr)));
  auto block = [&](int64_t q) {
    V acc0 = V{}, acc1 = V{};
    const int64_t col = q * pp.sw - pp.pw;
    for (int64_t ih = hs.lo; ih < hs.hi; ++ih) {
      const T* xr = x + ih * pp.W + col;
      int64_t s = 0;
      for (; s + 1 < pp.S; s += 2) {
        acc0 += load_s<T, SWK>(xr + s, pp.sw);
        acc1 += load_s<T, SWK>(xr + s + 1, pp.sw);
      }
      if (s < pp.S) acc0 += load_s<T, SWK>(xr + s, pp.sw);
    }
    vstore(y + q, (acc0 + acc1) / div);
  };
  for (; q + L - 1 <= qhi; q += L) block(q);
  if (q <= qhi) {  // overlapping last block
    block(qhi - L + 1);
    q = qhi + 1;
  }
  for (; q < pp.Q; ++q) one(q);
}

template <class T>
void avg_pool2d_fwd_impl(const PoolParams& pp, bool cip, int64_t ovr, const T* x, T* y) {
  const int64_t rows = pp.NC * pp.P, HW = pp.H * pp.W;
  const bool par = rows > 1 && rows * pp.Q * pp.R * pp.S > 32768;
  const Interior in = interior_for(pp);
#pragma omp parallel for if (par) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t nc = t / pp.P, p = t - nc * pp.P;
    const T* xp = x + nc * HW;
    T* yr = y + t * pp.Q;
    if (pp.sw == 1) avg_row<T, 1>(pp, in, cip, ovr, xp, p, yr);
    else if (pp.sw == 2) avg_row<T, 2>(pp, in, cip, ovr, xp, p, yr);
    else avg_row<T, 0>(pp, in, cip, ovr, xp, p, yr);
  }
}

template <class T>
void avg_pool2d_bwd_impl(const PoolParams& pp, bool cip, int64_t ovr, const T* gy, T* gx) {
  const int64_t HW = pp.H * pp.W;
  const bool par = pp.NC > 1 && pp.NC * (pp.P * pp.Q * pp.R * pp.S + HW) > 32768;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t nc = 0; nc < pp.NC; ++nc) {
    static thread_local Buffer bs;
    T* gs = bs.get<T>(pp.Q);
    T* g = gx + nc * HW;
    for (int64_t i = 0; i < HW; ++i) g[i] = T(0);
    for (int64_t p = 0; p < pp.P; ++p) {
      const AvgSpan hs = avg_span(p, pp.sh, pp.ph, pp.R, pp.H);
      const T* gr = gy + (nc * pp.P + p) * pp.Q;
      for (int64_t q = 0; q < pp.Q; ++q)
        gs[q] = gr[q] / T(avg_divisor(hs, avg_span(q, pp.sw, pp.pw, pp.S, pp.W), cip, ovr));
      for (int64_t ih = hs.lo; ih < hs.hi; ++ih) {
        T* row = g + ih * pp.W;
        for (int64_t s = 0; s < pp.S; ++s) {
          // outputs q whose tap s is in bounds: 0 <= q*sw - pw + s < W
          const int64_t lo_num = pp.pw - s, hi_num = pp.W - 1 + pp.pw - s;
          if (hi_num < 0) break;
          const int64_t qa = lo_num > 0 ? ceil_div(lo_num, pp.sw) : 0;
          const int64_t qb = imin(pp.Q, hi_num / pp.sw + 1);
          const int64_t off = s - pp.pw;
          if (pp.sw == 1) {
#pragma omp simd
            for (int64_t q = qa; q < qb; ++q) row[q + off] += gs[q];
          } else {
            const int64_t sw = pp.sw;
#pragma omp simd
            for (int64_t q = qa; q < qb; ++q) row[q * sw + off] += gs[q];
          }
        }
      }
    }
  }
}

}  // namespace

CK_REGISTER(max_pool2d_fwd_stub, max_pool2d_fwd_impl);
CK_REGISTER(max_pool2d_bwd_stub, max_pool2d_bwd_impl);
CK_REGISTER(avg_pool2d_fwd_stub, avg_pool2d_fwd_impl);
CK_REGISTER(avg_pool2d_bwd_stub, avg_pool2d_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
