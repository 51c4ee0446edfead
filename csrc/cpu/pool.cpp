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
#include <type_traits>
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

// ---------------------------------------------------------------- plane path
// Value-only forward (max without indices, avg) of whole planes, one output row at a time,
// straight from the input (no padded copy of the plane):
//   vertical:   v[pw + c] = op_r x[ih_r][c] over the output row's in-bounds input rows ih_r,
//               c < W, contiguous loads (the last vector masked); v is one padded row of Wv
//               values whose pad columns (-inf for max, 0 for avg) are written once per call;
//   horizontal: y[q] = op_s v[q*sw + s*dw] for q < Q (avg: times the reciprocal divisor),
//               stored straight into the output row (the last vector masked).
// Rows above or below the input simply take no part, as padding rows would (-inf never wins a
// max, 0 adds nothing). Each input row stays in L1 between the output rows that share it, so
// the plane is read from memory once. Max returns exactly torch's value: taking each column's
// result and then the columns in order picks the same element as the row-major scan (first
// maximum on ties, -0 before +0 included). A single max instruction per tap loses a NaN, so
// the max pass also looks at each input row once (as it first enters a window) for NaN; a
// plane that held one is pooled again with torch's compare-and-select rule (a NaN anywhere in
// the window gives NaN). Avg adds in a different order than torch's window scan (results differ
// by rounding only). Two variants follow row_plane: flat_plane for narrow planes with "same"
// unit-stride windows, and scalar taps for rows of few outputs at a stride above 2.

// p[0], p[sw], ..., p[(L-1)*sw] by one gather instruction (indices l*sw must fit int32).
template <class T>
struct StridedGather {
#if CK_ISA == 2
  typename std::conditional<sizeof(T) == 4, __m512i, __m256i>::type idx;
  explicit StridedGather(int64_t sw) {
    if constexpr (sizeof(T) == 4) idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(int(sw)));
    else idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(sw)));
  }
  Vec<T> operator()(const T* p) const {
    if constexpr (sizeof(T) == 4) return (Vec<T>)_mm512_i32gather_ps(idx, p, 4);
    else return (Vec<T>)_mm512_i32gather_pd(idx, p, 8);
  }
#elif CK_ISA == 1
  typename std::conditional<sizeof(T) == 4, __m256i, __m128i>::type idx;
  explicit StridedGather(int64_t sw) {
    if constexpr (sizeof(T) == 4) idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(sw)));
    else idx = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(int(sw)));
  }
  Vec<T> operator()(const T* p) const {
    if constexpr (sizeof(T) == 4) return (Vec<T>)_mm256_i32gather_ps(p, idx, 4);
    else return (Vec<T>)_mm256_i32gather_pd(p, idx, 8);
  }
#else
  int64_t sw;
  explicit StridedGather(int64_t s) : sw(s) {}
  Vec<T> operator()(const T* p) const { return load_s<T, 0>(p, sw); }
#endif
};

// v > m ? v : m in one instruction (maxps returns its second operand on ties and NaNs).
template <class V>
inline V max_keep(V m, V v) {
  if constexpr (sizeof(V) == 64 && sizeof(v[0]) == 4) return (V)_mm512_max_ps((__m512)v, (__m512)m);
  else if constexpr (sizeof(V) == 64) return (V)_mm512_max_pd((__m512d)v, (__m512d)m);
  else if constexpr (sizeof(V) == 32 && sizeof(v[0]) == 4) return (V)_mm256_max_ps((__m256)v, (__m256)m);
  else if constexpr (sizeof(V) == 32) return (V)_mm256_max_pd((__m256d)v, (__m256d)m);
  else if constexpr (sizeof(v[0]) == 4) return (V)_mm_max_ps((__m128)v, (__m128)m);
  else return (V)_mm_max_pd((__m128d)v, (__m128d)m);
}

// kMax: planes without NaN (first maximum wins: ties keep m). kMaxNaN: torch's rule, a NaN
// wins (the last one). kSum: average pooling.
enum class PoolOp { kMax, kMaxNaN, kSum };
template <class T, PoolOp OP>
inline Vec<T> pool_op(Vec<T> m, Vec<T> v) {
  if constexpr (OP == PoolOp::kMax) return max_keep(m, v);
  else if constexpr (OP == PoolOp::kMaxNaN) return ((v > m) | (v != v)) ? v : m;
  else return m + v;
}

// pool_op on one value: the same result as a lane of the vector op (maxps keeps m on ties and
// on a NaN in either operand).
template <class T, PoolOp OP>
inline T pool_op1(T m, T v) {
  if constexpr (OP == PoolOp::kMax) return v > m ? v : m;
  else if constexpr (OP == PoolOp::kMaxNaN) return (v > m || v != v) ? v : m;
  else return m + v;
}

// The two passes over the padded plane xp, then t -> y (avg: times rdiv, 1/divisor, P x Q).
// KR x KS: the window at compile time (0: pp.R, pp.S): the taps of an output vector then
// unroll, with no loop around a 2-iteration chain (the runtime-length tap loops held 3x3
// pooling to about 1.6 cycles per input element).

// Length of the padded row v: every horizontal load of the Q outputs (rounded up to whole
// vectors; the stride-2 loads read one vector further) stays inside it.
template <class T>
int64_t row_len(const PoolParams& pp) {
  constexpr int64_t L = kLanes<T>;
  return ceil_div(pp.pw + pp.W, L) * L + ceil_div(pp.Q, L) * L * pp.sw + (pp.S - 1) * pp.dw + 2 * L;
}

// nan |= the lanes of p[0..n) that hold a NaN (the last vector masked); any_lane: whether a
// mask has a lane set. The max passes look at each input value once this way.
template <class T>
inline void note_nan(const T* p, int64_t n, Mask<T>& nan) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  for (int64_t i = 0; i < n; i += L) {
    const V a = i + L <= n ? vload<V>(p + i) : vload_head<V>(p + i, n - i);
    nan |= a != a;
  }
}
template <class T>
inline bool any_lane(const Mask<T>& m) {
  bool any = false;
  for (int l = 0; l < kLanes<T>; ++l) any |= m[l] != 0;
  return any;
}

// out[0..W) = op over the in-bounds input rows of the window rs (the padding's value when there
// are none): the vertical pass of one output row, contiguous loads, the last vector masked.
template <class T, PoolOp OP, int KR>
void vertical_row(const PoolParams& pp, const T* x, const Span& rs, T* out) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const int64_t W = pp.W, wfull = W / L * L, wtail = W - wfull, nr = rs.b - rs.a, rstep = pp.dh * W;
  const T* r0 = x + (rs.start + rs.a * pp.dh) * W;
  auto take = [](V m, V a) { return pool_op<T, OP>(m, a); };
  if (nr <= 0) {  // no input row in the window: the padding's value
    for (int64_t c = 0; c < W; ++c) out[c] = OP == PoolOp::kSum ? T(0) : -std::numeric_limits<T>::infinity();
  } else if (KR && nr == KR) {
    for (int64_t c = 0; c < wfull; c += L) {
      V m = vload<V>(r0 + c);
#pragma GCC unroll 8
      for (int64_t r = 1; r < KR; ++r) m = take(m, vload<V>(r0 + r * rstep + c));
      vstore(out + c, m);
    }
    if (wtail) {
      V m = vload_head<V>(r0 + wfull, wtail);
#pragma GCC unroll 8
      for (int64_t r = 1; r < KR; ++r) m = take(m, vload_head<V>(r0 + r * rstep + wfull, wtail));
      vstore_head(out + wfull, m, wtail);
    }
  } else {
    for (int64_t c = 0; c < wfull; c += L) {
      V m = vload<V>(r0 + c);
      for (int64_t r = 1; r < nr; ++r) m = take(m, vload<V>(r0 + r * rstep + c));
      vstore(out + c, m);
    }
    if (wtail) {
      V m = vload_head<V>(r0 + wfull, wtail);
      for (int64_t r = 1; r < nr; ++r) m = take(m, vload_head<V>(r0 + r * rstep + wfull, wtail));
      vstore_head(out + wfull, m, wtail);
    }
  }
}

// Output rows [0, P) of one plane x (H x W) -> y (P x Q); div: avg reciprocal divisors (P x Q).
// KR x KS: the window at compile time (0: pp.R, pp.S), so a full window's taps unroll (the
// runtime-length tap loops held 3x3 pooling to about 1.6 cycles per input element). Returns,
// for OP == kMax, whether an input row held a NaN (the caller then pools the plane again with
// kMaxNaN); false otherwise.
template <class T, PoolOp OP, int SWK, int KR, int KS>
bool row_plane(const PoolParams& pp, const T* x, T* v, const T* div, T* y, FetchAhead& pf) {
  using V = Vec<T>;
  using M = Mask<T>;
  constexpr int64_t L = kLanes<T>;
  const int64_t S = KS ? KS : pp.S, W = pp.W, Q = pp.Q;
  const int64_t qfull = Q / L * L, qtail = Q - qfull;
  T* vr = v + pp.pw;
  M nan{};
  int64_t checked = -1;  // kMax: input rows [0, checked] looked at for NaN
  const StridedGather<T> gather(SWK == 0 ? pp.sw : 1);  // v is well under 2^31 elements
  auto hload = [&](const T* p) {
    if constexpr (SWK == 0) return gather(p);
    else return load_s<T, SWK>(p, pp.sw);
  };
  auto hblock = [&](const T* s0) {
    V m = hload(s0);
#pragma GCC unroll 8
    for (int64_t s = 1; s < S; ++s) m = pool_op<T, OP>(m, hload(s0 + s * pp.dw));
    return m;
  };
  for (int64_t p = 0; p < pp.P; ++p) {
    pf.upto(p, pp.P);
    const Span rs = span(p, pp.sh, pp.ph, pp.R, pp.dh, pp.H);
    if constexpr (OP == PoolOp::kMax) {  // each input row once (plus any the windows skip)
      for (const int64_t last = imin(rs.start + (rs.b - 1) * pp.dh, pp.H - 1); checked < last;)
        note_nan(x + ++checked * W, W, nan);
    }
    vertical_row<T, OP, KR>(pp, x, rs, vr);
    T* yr = y + p * Q;
    const T* dr = div ? div + p * Q : nullptr;
    if (SWK == 0 && Q < L) {  // a few outputs of a stride > 2: scalar taps, not L-lane gathers
      for (int64_t q = 0; q < Q; ++q) {
        const T* s0 = v + q * pp.sw;
        T m = s0[0];
        for (int64_t s = 1; s < S; ++s) m = pool_op1<T, OP>(m, s0[s * pp.dw]);
        yr[q] = OP == PoolOp::kSum ? m * dr[q] : m;
      }
      continue;
    }
    for (int64_t q = 0; q < qfull; q += L) {
      V m = hblock(v + q * pp.sw);
      if constexpr (OP == PoolOp::kSum) m *= vload<V>(dr + q);
      vstore(yr + q, m);
    }
    if (qtail) {
      V m = hblock(v + qfull * pp.sw);
      if constexpr (OP == PoolOp::kSum) m *= vload_head<V>(dr + qfull, qtail);
      vstore_head(yr + qfull, m, qtail);
    }
  }
  return OP == PoolOp::kMax && any_lane<T>(nan);
}

// row_plane with the common windows (3x3: ResNet, GoogLeNet; 2x2: VGG, LeNet) fixed.
template <class T, PoolOp OP, int SWK>
bool row_window(const PoolParams& pp, const T* x, T* v, const T* div, T* y, FetchAhead& pf) {
  if (pp.R == 3 && pp.S == 3) return row_plane<T, OP, SWK, 3, 3>(pp, x, v, div, y, pf);
  if (pp.R == 2 && pp.S == 2) return row_plane<T, OP, SWK, 2, 2>(pp, x, v, div, y, pf);
  return row_plane<T, OP, SWK, 0, 0>(pp, x, v, div, y, pf);
}

// Narrow planes pooled with "same" unit-stride windows (GoogLeNet's 3x3/1/1 pools on 28x28 ..
// 7x7 planes): P == H and Q == W, rows under two vectors wide, on which row_plane spends most
// of its time on per-row work (about 600 cycles per 14x14 plane). The output plane then has
// the input's shape, so both passes run over flattened planes: the vertical one over the rows
// whose windows lie inside (x[i + (r*dh - ph)*W], contiguous; the border rows through
// vertical_row), the horizontal one over all outputs, with each tap's lanes that fall past
// either end of their row replaced by the padding value (a lane's column, flat index mod W,
// kept in an integer vector). v holds the plane between flat_lead<T>(pp) values of slack.
template <class T>
bool use_flat(const PoolParams& pp) {
  return pp.sh == 1 && pp.sw == 1 && pp.P == pp.H && pp.Q == pp.W && pp.W < 2 * kLanes<T> && pp.S <= 16;
}
template <class T>
int64_t flat_lead(const PoolParams& pp) {
  return (ceil_div(pp.pw, kLanes<T>) + 1) * kLanes<T>;
}

template <class T, PoolOp OP, int KR, int KS>
bool flat_plane(const PoolParams& pp, const T* x, T* v, const T* div, T* y) {
  using V = Vec<T>;
  using M = Mask<T>;
  using I = typename std::remove_reference<decltype(M{}[0])>::type;
  constexpr int64_t L = kLanes<T>;
  const int64_t W = pp.W, HW = pp.H * W, S = KS ? KS : pp.S;
  const T pad = OP == PoolOp::kSum ? T(0) : -std::numeric_limits<T>::infinity();
  const V vpad = vbroadcast<V>(pad);
  T* vf = v + flat_lead<T>(pp);
  M nan{};
  if constexpr (OP == PoolOp::kMax) note_nan(x, HW, nan);
  // rows whose every tap is inside: p - ph >= 0 and p - ph + (R-1)*dh <= H-1
  const int64_t plo = pp.ph, phi = pp.H - 1 - ((pp.R - 1) * pp.dh - pp.ph);
  for (int64_t p = 0; p < pp.H; ++p)
    if (p < plo || p > phi) vertical_row<T, OP, KR>(pp, x, span(p, 1, pp.ph, pp.R, pp.dh, pp.H), vf + p * W);
  if (plo <= phi) {
    const int64_t R = KR ? KR : pp.R, rstep = pp.dh * W, a = plo * W, b = (phi + 1) * W;
    const T* x0 = x - pp.ph * W;
    for (int64_t i = a; i < b; i += L) {
      const int64_t n = imin(L, b - i);
      V m = n == L ? vload<V>(x0 + i) : vload_head<V>(x0 + i, n);
#pragma GCC unroll 8
      for (int64_t r = 1; r < R; ++r)
        m = pool_op<T, OP>(m, n == L ? vload<V>(x0 + r * rstep + i) : vload_head<V>(x0 + r * rstep + i, n));
      if (n == L) vstore(vf + i, m);
      else vstore_head(vf + i, m, n);
    }
  }
  I lanes[L];
  for (int64_t l = 0, c = 0; l < L; ++l, c = c + 1 == W ? 0 : c + 1) lanes[l] = I(c);  // l mod W (no divisions)
  M col = vload<M>(lanes);  // each lane's output column (integer lanes: scalars broadcast by the operators)
  const I step = I(L % W), wi = I(W);
  // tap s reads column col + off[s], inside the row when lo[s] <= col < hi[s]
  constexpr int64_t kMaxS = 16;  // (wider windows are not narrow-plane pools: use_flat)
  M lo[kMaxS], hi[kMaxS];
  int64_t off[kMaxS];
  for (int64_t s = 0; s < S; ++s) {
    off[s] = s * pp.dw - pp.pw;
    lo[s] = M{} + I(-off[s]);
    hi[s] = M{} + I(W - off[s]);
  }
  for (int64_t i = 0; i < HW; i += L) {
    V m = vpad;
#pragma GCC unroll 8
    for (int64_t s = 0; s < S; ++s) m = pool_op<T, OP>(m, (col >= lo[s]) & (col < hi[s]) ? vload<V>(vf + i + off[s]) : vpad);
    if constexpr (OP == PoolOp::kSum) m *= i + L <= HW ? vload<V>(div + i) : vload_head<V>(div + i, HW - i);
    if (i + L <= HW) vstore(y + i, m);
    else vstore_head(y + i, m, HW - i);
    col += step;
    col = col >= wi ? col - wi : col;
  }
  return OP == PoolOp::kMax && any_lane<T>(nan);
}

template <class T, PoolOp OP>
bool flat_window(const PoolParams& pp, const T* x, T* v, const T* div, T* y) {
  if (pp.R == 3 && pp.S == 3) return flat_plane<T, OP, 3, 3>(pp, x, v, div, y);
  return flat_plane<T, OP, 0, 0>(pp, x, v, div, y);
}

template <class T, bool MAX, int SWK>
void pool_plane(const PoolParams& pp, const T* x, T* v, const T* div, T* y, FetchAhead& pf) {
  if (SWK == 1 && use_flat<T>(pp)) {
    if (!MAX) flat_window<T, PoolOp::kSum>(pp, x, v, div, y);
    else if (flat_window<T, PoolOp::kMax>(pp, x, v, div, y)) flat_window<T, PoolOp::kMaxNaN>(pp, x, v, div, y);
    return;
  }
  if constexpr (MAX) {
    if (row_window<T, PoolOp::kMax, SWK>(pp, x, v, div, y, pf)) row_window<T, PoolOp::kMaxNaN, SWK>(pp, x, v, div, y, pf);
  } else {
    row_window<T, PoolOp::kSum, SWK>(pp, x, v, div, y, pf);
  }
}

// Worth it when there are planes for every thread (else the row-parallel path keeps both
// cores busy). Scalar builds keep the row path (no vectors to fill).
template <class T>
bool use_separable(const PoolParams& pp) {
  return kVecBytes != 0 && pp.NC >= 2 * max_threads() && row_len<T>(pp) <= (int64_t(1) << 24);
}

template <class T, bool MAX>
void sep_pool(const PoolParams& pp, const T* div, const T* x, T* y) {
  const int64_t HW = pp.H * pp.W, PQ = pp.P * pp.Q;
  const int64_t Wv = use_flat<T>(pp) ? 2 * flat_lead<T>(pp) + HW : row_len<T>(pp);
  const bool par = pp.NC * (HW + PQ) > 32768;
#pragma omp parallel if (par)
  {
    static thread_local Buffer bv;
    T* v = bv.get<T>(Wv);
    const T pad = MAX ? -std::numeric_limits<T>::infinity() : T(0);
    for (int64_t i = 0; i < Wv; ++i) v[i] = pad;  // the pad columns (the vertical pass writes [pw, pw + W))
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < pp.NC; ++nc) {
      // The next plane is fetched into L2 while this one is pooled, row by row (FetchAhead:
      // with a padded copy of each plane, a batch-8 3x3/2 pool of 112x112 planes read its
      // input at 17 GB/s, against 41 GB/s for a relu pass, the copy stalling on memory from
      // each plane's first row; the last plane of this thread's share fetches its
      // neighbour's first: harmless). Not for
      // planes under 16 KB (14x14): the hardware's stream over consecutive planes keeps up
      // there, and the prefetches cost 5-7% on 5x5/3 pooling of 512 14x14 planes.
      const bool fetch = nc + 1 < pp.NC && HW * int64_t(sizeof(T)) >= 16384;
      FetchAhead pf{fetch ? reinterpret_cast<const char*>(x + (nc + 1) * HW) : nullptr, HW * int64_t(sizeof(T))};
      if (pp.sw == 1) pool_plane<T, MAX, 1>(pp, x + nc * HW, v, div, y + nc * PQ, pf);
      else if (pp.sw == 2) pool_plane<T, MAX, 2>(pp, x + nc * HW, v, div, y + nc * PQ, pf);
      else pool_plane<T, MAX, 0>(pp, x + nc * HW, v, div, y + nc * PQ, pf);
    }
  }
}

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
  if (!idx && use_separable<T>(pp)) return sep_pool<T, true>(pp, nullptr, x, y);
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
  if (use_separable<T>(pp)) {
    static thread_local Buffer bd;
    T* div = bd.get<T>(pp.P * pp.Q);
    for (int64_t p = 0; p < pp.P; ++p) {
      const AvgSpan hs = avg_span(p, pp.sh, pp.ph, pp.R, pp.H);
      for (int64_t q = 0; q < pp.Q; ++q)
        div[p * pp.Q + q] = T(1) / T(avg_divisor(hs, avg_span(q, pp.sw, pp.pw, pp.S, pp.W), cip, ovr));
    }
    return sep_pool<T, false>(pp, div, x, y);
  }
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
