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

// ---------------------------------------------------------------- separable plane path
// Value-only forward (max without indices, avg) of whole planes. Each plane is copied into
// a padded scratch plane xp of Hp x Wp (pad value -inf for max, 0 for avg; Wp a multiple of
// sw) and then pooled in two vectorized passes over flattened buffers:
//   vertical:   v[p][c] = op_r xp[(p*sh + r*dh)*Wp + c], c < Wp (flattened over all rows
//               when sh == 1), contiguous loads only;
//   horizontal: t[j] = op_s v[j*sw + s*dw] for all j < P*Wh, Wh = Wp/sw: j = p*Wh + q is
//               output row p, column q (columns q >= Q are garbage, never used).
// The vertical pass goes first so the strided (sw > 1) loads run over P rows, not Hp.
// Narrow rows (the 7x7..28x28 planes of late layers) thus run on full vectors, with no
// per-row border logic. Max returns exactly torch's value: taking each column's result and
// then the columns in order picks the same element as the row-major scan (first maximum; a
// NaN anywhere gives NaN; the -inf padding never wins). The copy notes whether the plane
// holds a NaN: if not, a single max instruction per tap suffices, else the compare-and-select
// of torch's rule runs. Avg adds in a different order than torch's window scan (results
// differ by rounding only).
struct SepGeom {
  int64_t Hp, Wp, Wh;  // padded plane, output-row width of the horizontal pass
  int64_t vc, hn;      // v elements computed, t elements computed
  int64_t xn, vn;      // xp / v buffer lengths (with the slack the vector loads read)
};

template <class T>
SepGeom sep_geom(const PoolParams& pp) {
  constexpr int64_t L = kLanes<T>;
  SepGeom g;
  g.Hp = (pp.P - 1) * pp.sh + (pp.R - 1) * pp.dh + 1;
  g.Wp = ceil_div((pp.Q - 1) * pp.sw + (pp.S - 1) * pp.dw + 1, pp.sw) * pp.sw;
  g.Wh = g.Wp / pp.sw;
  g.vc = pp.sh == 1 ? ceil_div(pp.P * g.Wp, L) * L : (pp.P - 1) * g.Wp + ceil_div(g.Wp, L) * L;
  g.hn = ceil_div(pp.P * g.Wh, L) * L;
  g.xn = g.Hp * g.Wp + L;
  g.vn = imax(g.vc, g.hn * pp.sw + (pp.S - 1) * pp.dw + 2 * L);
  return g;
}

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

// Fetches the next plane into L2 while this one's passes run (they touch only L1/L2 scratch,
// so the memory bus would idle): up to upto(num, den) = that fraction of its bytes so far. A
// batch-8 3x3/2 pool of 112x112 planes read its input at 17 GB/s (a relu pass: 41 GB/s),
// the copy of each plane stalling on memory from its first row.
struct PlaneFetch {
  const char* p;  // nullptr: no next plane
  int64_t bytes;
  int64_t done = 0;
  void upto(int64_t num, int64_t den) {
    if (!p) return;
    const int64_t end = bytes * num / den;
    for (; done < end; done += 64) __builtin_prefetch(p + done, 0, 2);
  }
};

// The two passes over the padded plane xp, then t -> y (avg: times rdiv, 1/divisor, P x Q).
// KR x KS: the window at compile time (0: pp.R, pp.S): the taps of an output vector then
// unroll, with no loop around a 2-iteration chain (the runtime-length tap loops held 3x3
// pooling to about 1.6 cycles per input element).
template <class T, PoolOp OP, int SWK, int KR, int KS>
void sep_passes(const PoolParams& pp, const SepGeom& g, const T* xp, T* v, T* t, const T* div, T* y,
                PlaneFetch& pf) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  const int64_t R = KR ? KR : pp.R, S = KS ? KS : pp.S;
  const int64_t rstep = pp.dh * g.Wp;
  auto column = [&](const T* x0) {
    V m = vload<V>(x0);
#pragma GCC unroll 8
    for (int64_t r = 1; r < R; ++r) m = pool_op<T, OP>(m, vload<V>(x0 + r * rstep));
    return m;
  };
  if (pp.sh == 1) {
    for (int64_t i = 0; i < g.vc; i += L) {
      if (i % (16 * L) == 0) pf.upto(i, g.vc);
      vstore(v + i, column(xp + i));
    }
  } else {  // row by row; a row's last vector spills into the next row, rewritten after it
    for (int64_t p = 0; p < pp.P; ++p) {
      pf.upto(p, pp.P);
      for (int64_t c = 0; c < g.Wp; c += L) vstore(v + p * g.Wp + c, column(xp + p * pp.sh * g.Wp + c));
    }
  }
  pf.upto(1, 1);
  const int64_t sw = pp.sw;
  const StridedGather<T> gather(SWK == 0 ? sw : 1);  // the buffers are < 1 MB: offsets fit int32
  auto hload = [&](const T* p) {
    if constexpr (SWK == 0) return gather(p);
    else return load_s<T, SWK>(p, sw);
  };
  for (int64_t j = 0; j < g.hn; j += L) {
    const T* s0 = v + j * sw;
    V m = hload(s0);
#pragma GCC unroll 8
    for (int64_t s = 1; s < S; ++s) m = pool_op<T, OP>(m, hload(s0 + s * pp.dw));
    vstore(t + j, m);
  }
  for (int64_t p = 0; p < pp.P; ++p) {
    const T* tr = t + p * g.Wh;
    T* yr = y + p * pp.Q;
    if constexpr (OP != PoolOp::kSum) {
      copy_short<T, false>(yr, tr, pp.Q, nullptr);
    } else {
      const T* dr = div + p * pp.Q;
#pragma omp simd
      for (int64_t q = 0; q < pp.Q; ++q) yr[q] = tr[q] * dr[q];
    }
  }
}

// sep_passes with the common windows (3x3: ResNet, GoogLeNet; 2x2: VGG, LeNet) fixed.
template <class T, PoolOp OP, int SWK>
void sep_window(const PoolParams& pp, const SepGeom& g, const T* xp, T* v, T* t, const T* div, T* y,
                PlaneFetch& pf) {
  if (pp.R == 3 && pp.S == 3) sep_passes<T, OP, SWK, 3, 3>(pp, g, xp, v, t, div, y, pf);
  else if (pp.R == 2 && pp.S == 2) sep_passes<T, OP, SWK, 2, 2>(pp, g, xp, v, t, div, y, pf);
  else sep_passes<T, OP, SWK, 0, 0>(pp, g, xp, v, t, div, y, pf);
}

// One plane x (H x W) -> y (P x Q). div: avg reciprocal divisors (P x Q), unused for max.
template <class T, bool MAX, int SWK>
void sep_plane(const PoolParams& pp, const SepGeom& g, const T* x, T* y, const T* div, T* xp, T* v, T* t,
               PlaneFetch& pf) {
  const T pad = MAX ? -std::numeric_limits<T>::infinity() : T(0);
  // padded copy: padded row ir holds input row ir - ph, padded column ic input column ic - pw
  const int64_t lead = imin(pp.pw, g.Wp), wc = imax(0, imin(pp.W, g.Wp - pp.pw));
  Mask<T> nan{};
  for (int64_t ir = 0; ir < g.Hp; ++ir) {
    T* d = xp + ir * g.Wp;
    const int64_t ih = ir - pp.ph;
    if (ih < 0 || ih >= pp.H) {
      for (int64_t i = 0; i < g.Wp; ++i) d[i] = pad;
      continue;
    }
    for (int64_t i = 0; i < lead; ++i) d[i] = pad;
    copy_short<T, MAX>(d + lead, x + ih * pp.W, wc, &nan);
    for (int64_t i = lead + wc; i < g.Wp; ++i) d[i] = pad;
  }
  if constexpr (MAX) {
    bool any = false;
    for (int l = 0; l < kLanes<T>; ++l) any |= nan[l] != 0;
    if (any) sep_window<T, PoolOp::kMaxNaN, SWK>(pp, g, xp, v, t, div, y, pf);
    else sep_window<T, PoolOp::kMax, SWK>(pp, g, xp, v, t, div, y, pf);
  } else {
    sep_window<T, PoolOp::kSum, SWK>(pp, g, xp, v, t, div, y, pf);
  }
}

// Worth it (and affordable) when there are planes for every thread and one padded plane
// stays in L2. Scalar builds keep the row path (no vectors to fill).
template <class T>
bool use_separable(const PoolParams& pp) {
  if (kVecBytes == 0) return false;
  const SepGeom g = sep_geom<T>(pp);
  return pp.NC >= 2 * max_threads() && (g.xn + g.vn + g.hn) * int64_t(sizeof(T)) <= (int64_t(1) << 20);
}

template <class T, bool MAX>
void sep_pool(const PoolParams& pp, const T* div, const T* x, T* y) {
  const SepGeom g = sep_geom<T>(pp);
  const int64_t HW = pp.H * pp.W, PQ = pp.P * pp.Q;
  const bool par = pp.NC * (g.Hp * g.Wp + PQ) > 32768;
#pragma omp parallel if (par)
  {
    static thread_local Buffer bx, bv, bt;
    T* xp = bx.get<T>(g.xn);
    T* v = bv.get<T>(g.vn);
    T* t = bt.get<T>(g.hn);
    // the slack past each plane is read by the last vectors only and never written
    const T pad = MAX ? -std::numeric_limits<T>::infinity() : T(0);
    for (int64_t i = g.Hp * g.Wp; i < g.xn; ++i) xp[i] = pad;
    for (int64_t i = g.vc; i < g.vn; ++i) v[i] = pad;
#pragma omp for schedule(static)
    for (int64_t nc = 0; nc < pp.NC; ++nc) {
      // (the last plane of this thread's share fetches its neighbour's first: harmless). Not for
      // planes under 16 KB (14x14): the hardware's stream over consecutive planes keeps up
      // there, and the prefetches cost 5-7% on 5x5/3 pooling of 512 14x14 planes.
      const bool fetch = nc + 1 < pp.NC && HW * int64_t(sizeof(T)) >= 16384;
      PlaneFetch pf{fetch ? reinterpret_cast<const char*>(x + (nc + 1) * HW) : nullptr, HW * int64_t(sizeof(T))};
      if (pp.sw == 1) sep_plane<T, MAX, 1>(pp, g, x + nc * HW, y + nc * PQ, div, xp, v, t, pf);
      else if (pp.sw == 2) sep_plane<T, MAX, 2>(pp, g, x + nc * HW, y + nc * PQ, div, xp, v, t, pf);
      else sep_plane<T, MAX, 0>(pp, g, x + nc * HW, y + nc * PQ, div, xp, v, t, pf);
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
