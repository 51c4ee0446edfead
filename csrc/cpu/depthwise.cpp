// Depthwise 2-d convolution (NCHW, channel multiplier M) and its backward passes.
//
// Forward on AVX-512, unit-stride 3x3 / 5x5 and stride-2 3x3 (dilation 1): masked_plane, every
// output column straight from the unpadded plane (edge blocks through masked loads, several
// output rows per pass); the rest of this paragraph describes the other shapes and ISAs.
// Forward: one task per output plane (n, oc) (OpenMP). Within a plane, output row p sees
// the R input rows ih = p*sh - ph + r*dh; rows outside the input are replaced by a row of
// zeros, so the vector loop needs no row checks. The "interior" output columns (every tap
// inside [0, W)) are computed 2L / L at a time (L = kLanes<T>) with the sums kept in
// registers, weights pre-broadcast (and kept in registers for the unrolled 3x3 / 5x5
// kernels); the few border columns go through a scalar, fully checked path. For stride
// sw > 1 the input plane is first split into sw column phases (phase k holds columns
// k, k+sw, ...), so every tap of L consecutive outputs is again one contiguous load.
//
// Backward input: one task per input plane (n, c) (the M output channels reading it are
// summed inside the task: no write races). Unit stride: the same plane kernel as the
// forward, run on grad_output with the kernel flipped and padding dil*(k-1) - pad.
// Otherwise each tap scatters grad_output * w onto its strided input positions.
//
// Small planes (M == 1): L channels at a time in an interleaved scratch instead; see
// "channel-blocked small planes" below for the layout and which calls take it.
//
// Backward weight: one task per output channel oc (reduces over the batch inside the task:
// no races); each tap's gradient is a dot product of grad_output rows with shifted input
// rows (vectorized over the output width, partial sums in double). Bias: plane sums.
#include "cpu/common.h"

#include <utility>

#include "ops/depthwise.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

inline int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Outputs o in [0, n) whose tap o*s + off lies in [0, lim]: [lo, hi) (empty: lo == hi).
struct Range {
  int64_t lo, hi;
};
inline Range valid_range(int64_t off, int64_t s, int64_t lim, int64_t n) {
  Range r;
  r.lo = off < 0 ? ceil_div(-off, s) : 0;
  r.hi = lim - off < 0 ? 0 : imin(n, (lim - off) / s + 1);
  if (r.lo > r.hi) r.lo = r.hi;
  return r;
}

// One plane convolution: input (H, W) -> output (P, Q), kernel (R, S).
struct Plane {
  int64_t H, W, P, Q, R, S, sh, sw, ph, pw, dh, dw;
};
inline Plane fwd_plane(const DwParams& p) {
  return Plane{p.H, p.W, p.P, p.Q, p.R, p.S, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw};
}

// Output columns [lo, hi) of a row whose every tap lies inside [0, W) (empty: lo == hi == 0).
inline Range interior_cols(const Plane& g) {
  const int64_t lim = g.W - 1 - ((g.S - 1) * g.dw - g.pw);
  Range r{g.pw > 0 ? ceil_div(g.pw, g.sw) : 0, lim < 0 ? 0 : imin(g.Q, lim / g.sw + 1)};
  if (r.lo >= r.hi) r.lo = r.hi = 0;
  return r;
}

// Scalar output y[p, q] (any position; taps outside the input are skipped).
template <class T>
inline T point(const Plane& g, const T* x, const T* w, int64_t ih0, Range rr, int64_t q) {
  T sum = 0;
  const int64_t iw0 = q * g.sw - g.pw;
  for (int64_t r = rr.lo; r < rr.hi; ++r) {
    const T* xr = x + (ih0 + r * g.dh) * g.W;
    const T* wr = w + r * g.S;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t iw = iw0 + s * g.dw;
      if (iw >= 0 && iw < g.W) sum += wr[s] * xr[iw];
    }
  }
  return sum;
}

// Per-thread scratch of the plane kernel.
template <class T>
struct Scratch {
  Buffer phased, zero, wv, toff, rows, padded, ypad;
};

// Narrow planes: when the vector interior of a row is short next to its scalar border
// columns (e.g. 7x7 or 14x14 planes with a 3x3 kernel), the plane is first copied into a
// zero-padded scratch plane wide enough that every output column is interior (rows shorter
// than one vector: the first L columns, computed into scratch); the kernels then run without
// border code.
struct PadPlan {
  bool use;
  int64_t Qp, Wp2;  // padded output width, padded input width
};
template <class T>
inline PadPlan pad_plan(const Plane& g) {
  constexpr int L = kLanes<T>;
  const Range in = interior_cols(g);
  const int64_t interior = in.hi - in.lo;
  PadPlan pl{false, 0, 0};
  // border columns are scalar (~R*S checked taps each); a padded copy costs ~W/L vector moves
  if (interior >= L && (g.Q - interior) * 4 * L <= interior) return pl;
  pl.use = true;
  // rows of at least L outputs end with an overlapping vector block, written in place; only
  // shorter ones are computed L wide into scratch and copied out
  pl.Qp = imax(g.Q, L);
  pl.Wp2 = imax(g.pw + g.W, (pl.Qp - 1) * g.sw + (g.S - 1) * g.dw + 1);
  // huge padding, stride or dilation on a narrow plane: the copy would be mostly zeros (up to
  // gigabytes for a 5-wide plane with dilation 2^29); the checked scalar columns are cheaper
  if (pl.Wp2 > 4 * (g.W + pl.Qp) + 4 * L) pl = PadPlan{false, 0, 0};
  return pl;
}

// dst (H x Wp2) column j = x column j - pw where that is inside [0, W), else 0. pw < 0 (the
// backward input's padding dil*(k-1) - pad when pad > dil*(k-1)) drops leading columns.
template <class T>
inline void pad_columns(const T* x, int64_t H, int64_t W, int64_t pw, int64_t Wp2, T* dst) {
  const int64_t lead = imin(imax(pw, 0), Wp2), skip = imax(-pw, 0);
  const int64_t n = imax(0, imin(W - skip, Wp2 - lead));
  for (int64_t i = 0; i < H; ++i) {
    T* d = dst + i * Wp2;
    for (int64_t j = 0; j < lead; ++j) d[j] = T(0);
    copy_short(d + lead, x + i * W + skip, n);
    for (int64_t j = lead + n; j < Wp2; ++j) d[j] = T(0);
  }
}

// The plane g with its input x copied into zero-padded scratch (pl.use): no left padding, every
// one of the pl.Qp output columns interior. *xp receives the copy.
template <class T>
inline Plane padded_plane(const Plane& g, const PadPlan& pl, const T* x, Buffer& buf, const T** xp) {
  T* dst = buf.get<T>(g.H * pl.Wp2);
  pad_columns(x, g.H, g.W, g.pw, pl.Wp2, dst);
  *xp = dst;
  Plane g2 = g;
  g2.W = pl.Wp2;
  g2.pw = 0;
  g2.Q = pl.Qp;
  return g2;
}

template <class T> using Mask = decltype(Vec<T>{} < Vec<T>{});

template <class M, int... I>
inline M lane_mask(int mul, int add, std::integer_sequence<int, I...>) {
  return M{(mul * I + add)...};
}
// Interleave masks: lanes (i/2 + base) of a when i even, of b when i odd.
template <class M, int... I>
inline M zip_mask(int base, std::integer_sequence<int, I...>) {
  constexpr int L = int(sizeof...(I));
  return M{((I & 1) ? L + I / 2 + base : I / 2 + base)...};
}

// Splits the plane x (H x W) into sw column phases: row i of dst is [phase 0 | phase 1 |
// ... ], phase k (Wp = ceil(W/sw) long) holding columns k, k+sw, ...
template <class T>
void phase_split(const T* x, int64_t H, int64_t W, int64_t sw, int64_t Wp, T* dst) {
  using V = Vec<T>;
  using M = Mask<T>;
  constexpr int L = kLanes<T>;
  const int64_t Wd = Wp * sw;
  const M ev = lane_mask<M>(2, 0, std::make_integer_sequence<int, L>{});
  const M od = lane_mask<M>(2, 1, std::make_integer_sequence<int, L>{});
  for (int64_t i = 0; i < H; ++i) {
    const T* xr = x + i * W;
    T* br = dst + i * Wd;
    int64_t j0 = 0;
    if (sw == 2) {
      T* e = br;
      T* o = br + Wp;
      for (; 2 * (j0 + L) <= W; j0 += L) {
        const V a = vload<V>(xr + 2 * j0), b = vload<V>(xr + 2 * j0 + L);
        vstore(e + j0, V(__builtin_shuffle(a, b, ev)));
        vstore(o + j0, V(__builtin_shuffle(a, b, od)));
      }
    }
    for (int64_t k = 0; k < sw; ++k) {
      T* bp = br + k * Wp;
      const int64_t n = (W - k + sw - 1) / sw;
      for (int64_t j = j0; j < n; ++j) bp[j] = xr[j * sw + k];
    }
  }
}

// Inverse of phase_split: x[i, j*sw + k] = src[i, k*Wp + j].
template <class T>
void phase_merge(const T* src, int64_t H, int64_t W, int64_t sw, int64_t Wp, T* x) {
  using V = Vec<T>;
  using M = Mask<T>;
  constexpr int L = kLanes<T>;
  const int64_t Wd = Wp * sw;
  const M lo = zip_mask<M>(0, std::make_integer_sequence<int, L>{});
  const M hi = zip_mask<M>(L / 2, std::make_integer_sequence<int, L>{});
  for (int64_t i = 0; i < H; ++i) {
    T* xr = x + i * W;
    const T* br = src + i * Wd;
    int64_t j0 = 0;
    if (sw == 2) {
      const T* e = br;
      const T* o = br + Wp;
      for (; 2 * (j0 + L) <= W; j0 += L) {
        const V a = vload<V>(e + j0), b = vload<V>(o + j0);
        vstore(xr + 2 * j0, V(__builtin_shuffle(a, b, lo)));
        vstore(xr + 2 * j0 + L, V(__builtin_shuffle(a, b, hi)));
      }
    }
    for (int64_t k = 0; k < sw; ++k) {
      const T* bp = br + k * Wp;
      const int64_t n = (W - k + sw - 1) / sw;
      for (int64_t j = j0; j < n; ++j) xr[j * sw + k] = bp[j];
    }
  }
}

// Tap offsets within a phased row: column q*sw + off is at q + toff.
inline int64_t phased_offset(int64_t off, int64_t sw, int64_t Wp) {
  const int64_t f = floordiv(off, sw);
  return (off - f * sw) * Wp + f;
}

// Vector blocks of one output row for a compile-time KR x KS kernel, dilation 1 along the
// row and stride SW (1 or 2): tap s of row r reads phase (PH0 + s) % SW at offset
// (PH0 + s) / SW from E = rows[r] + f0 + q (phase 0) or E + Wp (phase 1), constant
// displacements from two base pointers per row. Advances q over [q, qb).
template <class T, int KR, int KS, int SW, int PH0>
inline void fast_blocks(const T* const* rp, int64_t f0, int64_t Wp, const Vec<T>* wl, Vec<T> vb, bool accum, T* yr,
                        int64_t& qq, int64_t qb) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  int64_t q = qq;
  for (; q + 2 * L <= qb; q += 2 * L) {
    V a0 = accum ? vload<V>(yr + q) : vb, a1 = accum ? vload<V>(yr + q + L) : vb;
    for (int r = 0; r < KR; ++r) {
      const T* E = rp[r] + f0 + q;
      const T* O = E + Wp;
      for (int s = 0; s < KS; ++s) {
        const int c = PH0 + s;
        const T* P = (SW == 2 && (c & 1)) ? O : E;
        const int64_t i = SW == 2 ? c / 2 : c;
        a0 += wl[r * KS + s] * vload<V>(P + i);
        a1 += wl[r * KS + s] * vload<V>(P + i + L);
      }
    }
    vstore(yr + q, a0);
    vstore(yr + q + L, a1);
  }
  qq = q;
}

// The input rows the vector loops read: for stride sw > 1 (and a vector interior) the plane
// split into sw column phases (row i is [phase 0 | phase 1 | ...], each *Wp long, *Wd = row
// length), else x itself (*Wp = *Wd = W).
template <class T>
inline const T* phased_input(const Plane& g, const T* x, bool vec, Scratch<T>& sc, int64_t* Wp, int64_t* Wd) {
  *Wp = *Wd = g.W;
  if (!vec || g.sw == 1) return x;
  *Wp = ceil_div(g.W, g.sw);
  *Wd = *Wp * g.sw;
  T* buf = sc.phased.template get<T>(g.H * *Wd);
  phase_split(x, g.H, g.W, g.sw, *Wp, buf);
  return buf;
}

// Vector blocks of RB consecutive output rows at once for a KR x KS kernel with unit stride
// and dilation: input row j (pointer mr[j], j < RB + KR - 1) is loaded once per block, its KS
// shifted vectors feeding every output row i = j - r that uses it, so loads per output vector
// drop from KR*KS to about (RB + KR - 1) * KS / RB. Columns [qa, returned q) are done.
template <class T, int KR, int KS, int RB>
inline int64_t multirow_blocks(const T* const* mr, int64_t off, const Vec<T>* wl, Vec<T> vb, bool accum, T* y,
                               int64_t ldy, int64_t qa, int64_t qb) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  V w[KR * KS];
  for (int i = 0; i < KR * KS; ++i) w[i] = wl[i];
  int64_t q = qa;
  for (; q + L <= qb; q += L) {
    V acc[RB];
    for (int i = 0; i < RB; ++i) acc[i] = accum ? vload<V>(y + i * ldy + q) : vb;
    for (int j = 0; j < RB + KR - 1; ++j) {
      const T* src = mr[j] + q + off;
      V xs[KS];
      for (int s = 0; s < KS; ++s) xs[s] = vload<V>(src + s);
      for (int r = 0; r < KR; ++r) {
        const int i = j - r;
        if (i >= 0 && i < RB)
          for (int s = 0; s < KS; ++s) acc[i] += w[r * KS + s] * xs[s];
      }
    }
    for (int i = 0; i < RB; ++i) vstore(y + i * ldy + q, acc[i]);
  }
  return q;
}

#if CK_ISA == 2
// AVX-512, unit stride and dilation, compile-time KR x KS: every output column of RB rows at
// a time straight from the unpadded plane. Block q0 (L outputs) reads input columns
// q0 - pw + s + lane for tap s; lanes outside [0, W) or past the row's end are masked loads
// (zero, nothing touched), so the plane needs no padded copy and no scalar border columns.
// Input row j (mr[j], j < RB + KR - 1; rows outside the plane point at zeros) is loaded once
// per block and feeds every output row i = j - r that uses it; the empty asm keeps each
// loaded vector in a register (GCC otherwise folds the load into each of its KR FMAs).
// Lanes l < n of a vector at column c with 0 <= c + l < W (the loads of an edge block).
inline __mmask16 lanes_in(int64_t c, int64_t n, int64_t W) {
  const int64_t lo = imax(0, -c), hi = imin(n, W - c);
  return hi <= lo ? 0 : __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// The vector at src: lanes k only (the others zero, not touched) when EDGE, else all.
template <class T, bool EDGE>
inline Vec<T> edge_load(const T* src, __mmask16 k) {
  using V = Vec<T>;
  if constexpr (!EDGE) return vload<V>(src);
  else if constexpr (sizeof(T) == 4) return (V)_mm512_maskz_loadu_ps(k, src);
  else return (V)_mm512_maskz_loadu_pd(__mmask8(k), src);
}

template <class T, int KR, int KS, int RB, bool EDGE>
inline void masked_block(const T* const* mr, int64_t c0, const __mmask16* m, __mmask16 ym, const Vec<T>* w,
                         Vec<T> vb, bool accum, T* y, int64_t ldy, int64_t q0) {
  using V = Vec<T>;
  auto load = [](const T* src, __mmask16 k) { return edge_load<T, EDGE>(src, k); };
  V acc[RB];
#pragma GCC unroll 8
  for (int i = 0; i < RB; ++i) acc[i] = accum ? load(y + i * ldy + q0, ym) : vb;
#pragma GCC unroll 16
  for (int j = 0; j < RB + KR - 1; ++j) {
    const T* src = mr[j] + c0;
    V xs[KS];
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      xs[s] = load(src + s, EDGE ? m[s] : __mmask16(0));  // (m is null for interior blocks)
      asm("" : "+v"(xs[s]));
    }
#pragma GCC unroll 8
    for (int r = 0; r < KR; ++r) {
      const int i = j - r;
      if (i >= 0 && i < RB)
#pragma GCC unroll 8
        for (int s = 0; s < KS; ++s) acc[i] += w[r * KS + s] * xs[s];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RB; ++i) {
    if (EDGE) vstore_head(y + i * ldy + q0, acc[i], __builtin_popcount(ym));
    else vstore(y + i * ldy + q0, acc[i]);
  }
}

// Output rows [p0, p0 + RB) of the plane (see masked_block), all Q columns.
template <class T, int KR, int KS, int RB>
inline void masked_rows(const Plane& g, const T* x, const T* zero, const Vec<T>* w, Vec<T> vb, bool accum, T* y,
                        int64_t p0) {
  constexpr int L = kLanes<T>;
  const T* mr[RB + KR - 1];
  for (int j = 0; j < RB + KR - 1; ++j) {
    const int64_t ih = p0 - g.ph + j;
    mr[j] = (ih >= 0 && ih < g.H) ? x + ih * g.W : zero;
  }
  T* yr = y + p0 * g.Q;
  // interior block at q0: every tap's L lanes inside [0, W)
  auto interior = [&](int64_t q0) { return q0 >= g.pw && q0 - g.pw + (KS - 1) + L <= g.W; };
  for (int64_t q0 = 0; q0 < g.Q; q0 += L) {
    int64_t n = imin(L, g.Q - q0);
    // a short last block: the interior block ending at Q instead, if there is one (it
    // recomputes L - n outputs: not when accumulating)
    if (n < L && !accum && g.Q >= L && interior(g.Q - L)) q0 = g.Q - L, n = L;
    const int64_t c0 = q0 - g.pw;
    if (n == L && interior(q0)) {
      masked_block<T, KR, KS, RB, false>(mr, c0, nullptr, 0, w, vb, accum, yr, g.Q, q0);
      continue;
    }
    __mmask16 m[KS];
    for (int s = 0; s < KS; ++s) m[s] = lanes_in(c0 + s, n, g.W);
    masked_block<T, KR, KS, RB, true>(mr, c0, m, __mmask16((1u << n) - 1), w, vb, accum, yr, g.Q, q0);
  }
}

// Stride 2 (both axes), 3x3, unit dilation: block q0 reads input columns b + 2*lane + s
// (b = 2*q0 - pw). Two vector loads U = x[b, b+L), V = x[b+L, b+2L) and x[b+2L] give all three
// taps by shuffles: tap 0 = even lanes of (U, V), tap 1 = odd lanes, tap 2 = tap 0 moved down
// one lane with x[b+2L] last. Output row i of the RB-row pass uses input rows 2i + r, so each of
// the 2*RB + 1 input rows is loaded and shuffled once per block. Edge blocks mask the loads to
// [0, W) as above.
template <class T, int RB, bool EDGE>
inline void s2_block(const T* const* mr, int64_t b, const __mmask16* m, __mmask16 ym, const Vec<T>* w, Vec<T> vb,
                     bool accum, T* y, int64_t ldy, int64_t q0) {
  using V = Vec<T>;
  using M = Mask<T>;
  constexpr int L = kLanes<T>;
  auto load = [](const T* src, __mmask16 k) { return edge_load<T, EDGE>(src, k); };
  const M ev = lane_mask<M>(2, 0, std::make_integer_sequence<int, L>{});
  const M od = lane_mask<M>(2, 1, std::make_integer_sequence<int, L>{});
  const M sh1 = lane_mask<M>(1, 1, std::make_integer_sequence<int, L>{});
  V acc[RB];
#pragma GCC unroll 8
  for (int i = 0; i < RB; ++i) acc[i] = accum ? load(y + i * ldy + q0, ym) : vb;
#pragma GCC unroll 16
  for (int j = 0; j < 2 * RB + 1; ++j) {
    const T* src = mr[j] + b;
    V u, v, last;
    if constexpr (EDGE) {
      u = load(src, m[0]), v = load(src + L, m[1]);
      last = load(src + 2 * L, m[2]);
    } else {  // (m is null)
      u = load(src, 0), v = load(src + L, 0);
      last = vbroadcast<V>(src[2 * L]);
    }
    V t[3];
    t[0] = V(__builtin_shuffle(u, v, ev));
    t[1] = V(__builtin_shuffle(u, v, od));
    t[2] = V(__builtin_shuffle(t[0], last, sh1));
#pragma GCC unroll 4
    for (int r = 0; r < 3; ++r) {
      if ((j - r) % 2 != 0) continue;
      const int i = (j - r) / 2;
      if (i >= 0 && i < RB)
#pragma GCC unroll 4
        for (int s = 0; s < 3; ++s) acc[i] += w[r * 3 + s] * t[s];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < RB; ++i) {
    if (EDGE) vstore_head(y + i * ldy + q0, acc[i], __builtin_popcount(ym));
    else vstore(y + i * ldy + q0, acc[i]);
  }
}

template <class T, int RB>
inline void s2_rows(const Plane& g, const T* x, const T* zero, const Vec<T>* w, Vec<T> vb, bool accum, T* y,
                    int64_t p0) {
  constexpr int L = kLanes<T>;
  const T* mr[2 * RB + 1];
  for (int j = 0; j < 2 * RB + 1; ++j) {
    const int64_t ih = 2 * p0 - g.ph + j;
    mr[j] = (ih >= 0 && ih < g.H) ? x + ih * g.W : zero;
  }
  T* yr = y + p0 * g.Q;
  auto interior = [&](int64_t q0) { return 2 * q0 - g.pw >= 0 && 2 * q0 - g.pw + 2 * L < g.W; };
  for (int64_t q0 = 0; q0 < g.Q; q0 += L) {
    const int64_t n = imin(L, g.Q - q0);
    const int64_t b = 2 * q0 - g.pw;
    if (n == L && interior(q0)) {
      s2_block<T, RB, false>(mr, b, nullptr, 0, w, vb, accum, yr, g.Q, q0);
      continue;
    }
    const __mmask16 m[3] = {lanes_in(b, L, g.W), lanes_in(b + L, L, g.W), lanes_in(b + 2 * L, 1, g.W)};
    s2_block<T, RB, true>(mr, b, m, __mmask16((1u << n) - 1), w, vb, accum, yr, g.Q, q0);
  }
}

// The planes masked_plane takes: dilation 1; 3x3 or 5x5 at unit stride, 3x3 at stride 2.
inline bool masked_plane_ok(const Plane& g) {
  const bool k3 = g.R == 3 && g.S == 3, k5 = g.R == 5 && g.S == 5;
  if (g.dh != 1 || g.dw != 1) return false;
  if (g.sh == 1 && g.sw == 1) return k3 || k5;
  return k3 && g.sh == 2 && g.sw == 2;  // s2_rows
}

template <class T, int KR, int KS>
void masked_plane(const Plane& g, const T* x, const T* w, T bias, bool accum, T* y, Scratch<T>& sc) {
  using V = Vec<T>;
  constexpr int RB = KR == 3 ? 8 : 2;
  T* z = sc.zero.template get<T>(g.W);
  std::memset(z, 0, size_t(g.W) * sizeof(T));
  V wl[KR * KS];
  for (int i = 0; i < KR * KS; ++i) wl[i] = vbroadcast<V>(w[i]);
  const V vb = vbroadcast<V>(bias);
  int64_t p = 0;
  if (g.sh == 2) {
    if constexpr (KR == 3 && KS == 3) {
      for (; p + 4 <= g.P; p += 4) s2_rows<T, 4>(g, x, z, wl, vb, accum, y, p);
      for (; p < g.P; ++p) s2_rows<T, 1>(g, x, z, wl, vb, accum, y, p);
    }
    return;
  }
  for (; p + RB <= g.P; p += RB) masked_rows<T, KR, KS, RB>(g, x, z, wl, vb, accum, y, p);
  // the last P % RB rows in passes of RB/2, RB/4, ... rows
  if constexpr (RB >= 8)
    if (p + 4 <= g.P) masked_rows<T, KR, KS, 4>(g, x, z, wl, vb, accum, y, p), p += 4;
  if constexpr (RB >= 4)
    if (p + 2 <= g.P) masked_rows<T, KR, KS, 2>(g, x, z, wl, vb, accum, y, p), p += 2;
  if (p < g.P) masked_rows<T, KR, KS, 1>(g, x, z, wl, vb, accum, y, p);
}
#endif

// Output plane y (P x Q) = conv(x, w) + bias, or y += conv(x, w) when accum.
// x: the input plane (H x W, row stride W). KR, KS: compile-time kernel size (0: g.R, g.S).
template <class T, int KR, int KS>
void conv_plane(const Plane& g, const T* x, const T* w, T bias, bool accum, T* y, Scratch<T>& sc) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const int64_t R = KR ? KR : g.R, S = KS ? KS : g.S;
  const int64_t sw = g.sw;
  // interior columns [qa, qb): every tap inside [0, W)
  const Range in = interior_cols(g);
  const int64_t qa = in.lo, qb = in.hi;
  const bool vec = qb - qa >= L;
  int64_t Wp, Wd;
  const T* xd = phased_input(g, x, vec, sc, &Wp, &Wd);
  const T* zero = nullptr;
  V* wv = nullptr;
  int64_t* toff = nullptr;
  const T** rows = nullptr;
  if (vec) {
    T* z = sc.zero.template get<T>(Wd);
    std::memset(z, 0, size_t(Wd) * sizeof(T));
    zero = z;
    wv = sc.wv.template get<V>(R * S);
    for (int64_t i = 0; i < R * S; ++i) wv[i] = vbroadcast<V>(w[i]);
    toff = sc.toff.template get<int64_t>(S);
    for (int64_t s = 0; s < S; ++s) toff[s] = phased_offset(s * g.dw - g.pw, sw, Wp);
    rows = sc.rows.template get<const T*>(R);
  }
  // compile-time kernel size: weights, tap offsets and row pointers in local arrays (kept in
  // registers, and not reloaded after every store as they could be from scratch memory)
  constexpr bool FIX = KR > 0 && KS > 0;
  V wl[FIX ? KR * KS : 1];
  int64_t tl[FIX ? KS : 1];
  const T* rl[FIX ? KR : 1];
  if constexpr (FIX) {
    if (vec) {
      for (int i = 0; i < KR * KS; ++i) wl[i] = wv[i];
      for (int i = 0; i < KS; ++i) tl[i] = toff[i];
    }
  }
  // fast path (compile-time tap displacements): dilation 1 along the row, stride 1 or 2
  int fast = 0;
  const int64_t f0 = floordiv(-g.pw, sw);
  if (FIX && vec && g.dw == 1 && sw <= 2) fast = sw == 1 ? 1 : (-g.pw - f0 * sw == 0 ? 2 : 3);
  const V* wp = FIX ? wl : wv;
  const int64_t* tp = FIX ? tl : toff;
  const T** rp = FIX ? rl : rows;
  const V vb = vbroadcast<V>(bias);
  // 3x3, unit stride and dilation: the interior of MB output rows at a time (multirow_blocks);
  // the rows' remaining columns go through the per-row code below
  constexpr int MB = (KR == 3 && KS == 3) ? 4 : 1;
  const bool multi = MB > 1 && fast == 1 && g.sh == 1 && g.dh == 1;
  int64_t multi_end = 0, multi_hi = 0;  // rows [.., multi_end) have columns [qa, multi_hi) done

  for (int64_t p = 0; p < g.P; ++p) {
    T* yr = y + p * g.Q;
    const int64_t ih0 = p * g.sh - g.ph;
    if constexpr (MB > 1) {
      if (multi && p >= multi_end && p + MB <= g.P) {
        const T* mr[MB + 2];
        for (int j = 0; j < MB + 2; ++j) {
          const int64_t ih = ih0 + j;
          mr[j] = (ih >= 0 && ih < g.H) ? xd + ih * Wd : zero;
        }
        multi_hi = multirow_blocks<T, 3, 3, MB>(mr, f0, wl, vb, accum, yr, g.Q, qa, qb);
        multi_end = p + MB;
      }
    }
    const Range rr = valid_range(ih0, g.dh, g.H - 1, R);
    if (rr.lo >= rr.hi) {
      if (!accum)
        for (int64_t q = 0; q < g.Q; ++q) yr[q] = bias;
      continue;
    }
    int64_t q = 0;
    if (vec) {
      for (int64_t r = 0; r < R; ++r) rp[r] = (r >= rr.lo && r < rr.hi) ? xd + (ih0 + r * g.dh) * Wd : zero;
      for (; q < qa; ++q) yr[q] = (accum ? yr[q] : bias) + point(g, x, w, ih0, rr, q);
      if (p < multi_end && q < multi_hi) q = multi_hi;
      if constexpr (FIX) {
        if (fast == 1) fast_blocks<T, KR, KS, 1, 0>(rp, f0, Wp, wp, vb, accum, yr, q, qb);
        else if (fast == 2) fast_blocks<T, KR, KS, 2, 0>(rp, f0, Wp, wp, vb, accum, yr, q, qb);
        else if (fast == 3) fast_blocks<T, KR, KS, 2, 1>(rp, f0, Wp, wp, vb, accum, yr, q, qb);
      }
      for (; q + 2 * L <= qb; q += 2 * L) {
        V a0 = accum ? vload<V>(yr + q) : vb, a1 = accum ? vload<V>(yr + q + L) : vb;
        for (int64_t r = 0; r < R; ++r) {
          const T* xr = rp[r] + q;
          for (int64_t s = 0; s < S; ++s) {
            const V wk = wp[r * S + s];
            a0 += wk * vload<V>(xr + tp[s]);
            a1 += wk * vload<V>(xr + tp[s] + L);
          }
        }
        vstore(yr + q, a0);
        vstore(yr + q + L, a1);
      }
      auto block = [&](int64_t q0) {
        V a0 = accum ? vload<V>(yr + q0) : vb;
        for (int64_t r = 0; r < R; ++r) {
          const T* xr = rp[r] + q0;
          for (int64_t s = 0; s < S; ++s) a0 += wp[r * S + s] * vload<V>(xr + tp[s]);
        }
        vstore(yr + q0, a0);
      };
      for (; q + L <= qb; q += L) block(q);
      // the last block overlaps the previous one (recomputed, not re-added: not when accum)
      if (q < qb && !accum) {
        block(qb - L);
        q = qb;
      }
    }
    for (; q < g.Q; ++q) yr[q] = (accum ? yr[q] : bias) + point(g, x, w, ih0, rr, q);
  }
}

template <class T>
void conv_plane_fixed(const Plane& g, const T* x, const T* w, T bias, bool accum, T* y, Scratch<T>& sc) {
  if (g.R == 3 && g.S == 3) conv_plane<T, 3, 3>(g, x, w, bias, accum, y, sc);
  else if (g.R == 5 && g.S == 5) conv_plane<T, 5, 5>(g, x, w, bias, accum, y, sc);
  else conv_plane<T, 0, 0>(g, x, w, bias, accum, y, sc);
}

template <class T>
void conv_plane_any(const Plane& g, const T* x, const T* w, T bias, bool accum, T* y, Scratch<T>& sc) {
#if CK_ISA == 2
  if (masked_plane_ok(g))
    return g.R == 3 ? masked_plane<T, 3, 3>(g, x, w, bias, accum, y, sc) : masked_plane<T, 5, 5>(g, x, w, bias, accum, y, sc);
#endif
  const PadPlan pl = pad_plan<T>(g);
  if (!pl.use) return conv_plane_fixed<T>(g, x, w, bias, accum, y, sc);
  const T* xp;
  const Plane g2 = padded_plane(g, pl, x, sc.padded, &xp);
  if (pl.Qp == g.Q) return conv_plane_fixed<T>(g2, xp, w, bias, accum, y, sc);
  T* yp = sc.ypad.template get<T>(g.P * pl.Qp);
  conv_plane_fixed<T>(g2, xp, w, bias, false, yp, sc);
  for (int64_t p = 0; p < g.P; ++p) {
    const T* src = yp + p * pl.Qp;
    T* dst = y + p * g.Q;
    if (accum)
      for (int64_t q = 0; q < g.Q; ++q) dst[q] += src[q];
    else
      copy_short(dst, src, g.Q);
  }
}

// ---------------------------------------------------------------- channel-blocked small planes
// On small planes (7x7 .. 28x28 outputs) a plane's rows are shorter than a few vectors and the
// row-vectorized kernels above spend their time on borders and per-plane setup. There L
// channels (M == 1) are handled at once in an interleaved scratch layout: Xb (Hb x Wb x L) holds
// the zero-padded input of channels c0 .. c0+L-1 (lane l = channel c0 + l), so every output is
// one vector of L channels, every tap one vector load at a fixed displacement, with no border
// code. Planes go in and out through L x L register transposes over their flat (contiguous)
// index, so a 7-wide row costs no more than a long one.

// The geometry shared by every channel block of one call: scratch extent and offset tables
// (element offsets into the interleaved scratch, already multiplied by L).
struct Blocked {
  int64_t Hb = 0, Wb = 0, HW = 0, PQ = 0, RS = 0;
  Buffer xoff_buf, base_buf, toff_buf;
  const int64_t* xoff = nullptr;  // [HW]: input (i, j) -> its slot in Xb
  const int64_t* base = nullptr;  // [PQ]: output (p, q) -> its tap (0, 0) in Xb
  const int64_t* toff = nullptr;  // [RS]: tap (r, s) -> displacement from base
};

// Which calls take it (bench_ops, MobileNetV2 layers, batch 1): on planes of up to 1024 outputs
// every pass wins 2-6x. On 56x56 outputs the weight gradient still wins (0.51 -> 0.28 ms at
// 96 channels, 0.32 -> 0.23 at 144) and so does the strided forward (0.29 -> 0.21), while the
// unit-stride forward (4 rows per pass) and the input gradient (scatter) are faster row-vectorized.
// On AVX-512 the forward planes masked_plane takes are row-vectorized down to smaller planes
// (ab_builds.py, 1 thread, Zen 4, rows/blocked): 28x28 s1 0.72, 14x14 s1 1.08; stride 2 from
// 56x56 0.64, from 28x28 0.78, from 14x14 1.41.
enum class Pass { fwd, input, weight };
// Whether `pass` takes the channel-blocked path; if so, fills b (extent and offset tables).
template <class T>
inline bool plan_blocked(const DwParams& p, Pass pass, Blocked& b) {
  constexpr int64_t L = kLanes<T>;
  const bool strided = p.sh * p.sw > 1;
  int64_t max_pq = (pass == Pass::weight || (pass == Pass::fwd && strided)) ? 4096 : 1024;
#if CK_ISA == 2
  // (3x3 only: a 5x5 28x28x240 layer ran 1.24x slower row-vectorized than blocked)
  if (pass == Pass::fwd && p.R == 3 && masked_plane_ok(fwd_plane(p)))
    max_pq = strided ? 100 : 256;
#endif
  if (p.M != 1 || p.C < L / 2 || p.P * p.Q > max_pq || p.H * p.W > 4 * max_pq) return false;
  const int64_t Hb = imax(p.ph + p.H, (p.P - 1) * p.sh + (p.R - 1) * p.dh + 1);
  const int64_t Wb = imax(p.pw + p.W, (p.Q - 1) * p.sw + (p.S - 1) * p.dw + 1);
  if (Hb * Wb > 4 * max_pq) return false;
  b.Hb = Hb, b.Wb = Wb, b.HW = p.H * p.W, b.PQ = p.P * p.Q, b.RS = p.R * p.S;
  int64_t* xo = b.xoff_buf.get<int64_t>(b.HW);
  for (int64_t i = 0; i < p.H; ++i)
    for (int64_t j = 0; j < p.W; ++j) xo[i * p.W + j] = ((i + p.ph) * Wb + j + p.pw) * L;
  int64_t* bo = b.base_buf.get<int64_t>(b.PQ);
  for (int64_t i = 0; i < p.P; ++i)
    for (int64_t j = 0; j < p.Q; ++j) bo[i * p.Q + j] = (i * p.sh * Wb + j * p.sw) * L;
  int64_t* to = b.toff_buf.get<int64_t>(b.RS);
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t s = 0; s < p.S; ++s) to[r * p.S + s] = (r * p.dh * Wb + s * p.dw) * L;
  b.xoff = xo, b.base = bo, b.toff = to;
  return true;
}

// dst[off[f]] (one vector per flat index f < n) = lanes l < nl: src[l][f], lanes >= nl: 0
// (off == nullptr: off[f] = f * L).
template <class T>
void interleave_planes(const T* const* src, int nl, int64_t n, const int64_t* off, T* dst) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  for (int64_t f = 0; f < n; f += L) {
    const int64_t m = imin(L, n - f);
    V v[L];
    for (int l = 0; l < L; ++l) v[l] = l >= nl ? V{} : m == L ? vload<V>(src[l] + f) : vload_head<V>(src[l] + f, m);
    transpose_tile<T>(v);
    for (int64_t u = 0; u < m; ++u) vstore(dst + (off ? off[f + u] : (f + u) * L), v[u]);
  }
}

// Inverse: dst[l][f] = src[off[f]] lane l, for l < nl (off == nullptr: off[f] = f * L).
template <class T>
void deinterleave_planes(const T* src, const int64_t* off, int64_t n, T* const* dst, int nl) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  for (int64_t f = 0; f < n; f += L) {
    const int64_t m = imin(L, n - f);
    V v[L];
    for (int64_t u = 0; u < L; ++u) v[u] = u < m ? vload<V>(src + (off ? off[f + u] : (f + u) * L)) : V{};
    transpose_tile<T>(v);
    for (int l = 0; l < nl; ++l) {
      if (m == L) vstore(dst[l] + f, v[l]);
      else vstore_head(dst[l] + f, v[l], m);
    }
  }
}

// Xb's cells outside the plane (padding) = 0.
template <class T>
void zero_border(const DwParams& p, const Blocked& b, T* Xb) {
  constexpr int64_t L = kLanes<T>;
  const int64_t right = b.Wb - p.pw - p.W;
  for (int64_t i = 0; i < b.Hb; ++i) {
    T* row = Xb + i * b.Wb * L;
    if (i < p.ph || i >= p.ph + p.H) {
      std::memset(row, 0, size_t(b.Wb * L) * sizeof(T));
      continue;
    }
    std::memset(row, 0, size_t(p.pw * L) * sizeof(T));
    if (right > 0) std::memset(row + (p.pw + p.W) * L, 0, size_t(right * L) * sizeof(T));
  }
}

// Channel block (c0, nl lanes) of image n: its input planes interleaved into Xb.
template <class T>
void load_block(const DwParams& p, const Blocked& b, const T* x, int64_t n, int64_t c0, int nl, T* Xb) {
  constexpr int L = kLanes<T>;
  const T* src[L];
  for (int l = 0; l < nl; ++l) src[l] = x + (n * p.C + c0 + l) * b.HW;
  zero_border(p, b, Xb);
  interleave_planes(src, nl, b.HW, b.xoff, Xb);
}

// Yb[o] = bias + sum_t w[t] * Xb[base[o] + toff[t]], U outputs at a time.
template <class T, int U>
inline int64_t blocked_outputs(const Blocked& b, const T* Xb, const Vec<T>* wv, Vec<T> bias, int64_t o, T* Yb) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  for (; o + U <= b.PQ; o += U) {
    V acc[U];
    const T* src[U];
    for (int u = 0; u < U; ++u) acc[u] = bias, src[u] = Xb + b.base[o + u];
    for (int64_t t = 0; t < b.RS; ++t) {
      const V w = wv[t];
      const int64_t d = b.toff[t];
      for (int u = 0; u < U; ++u) acc[u] += w * vload<V>(src[u] + d);
    }
    for (int u = 0; u < U; ++u) vstore(Yb + (o + u) * L, acc[u]);
  }
  return o;
}

// Per lane l < nl: v[t] lane l = w[(c0 + l) * RS + t] (others 0).
template <class T>
inline void lane_weights(const T* w, int64_t RS, int64_t c0, int nl, Vec<T>* wv) {
  constexpr int L = kLanes<T>;
  for (int64_t t = 0; t < RS; ++t) {
    T tmp[L] = {};
    for (int l = 0; l < nl; ++l) tmp[l] = w[(c0 + l) * RS + t];
    wv[t] = vload<Vec<T>>(tmp);
  }
}

// Runs task(n, c0, nl) for every image n and channel block [c0, c0 + nl) (nl <= L lanes), in
// parallel when the work is large enough.
template <class T, class F>
void for_each_block(const DwParams& p, const Blocked& b, F&& task) {
  constexpr int L = kLanes<T>;
  const int64_t nb = ceil_div(p.C, int64_t(L)), tasks = p.N * nb;
  const bool par = tasks > 1 && tasks * L * b.PQ * b.RS > 32768;
  parallel_for(tasks, par, [&](int64_t t) {
    const int64_t n = t / nb, c0 = (t - n * nb) * L;
    task(n, c0, int(imin(L, p.C - c0)));
  });
}

// A task's scratch for the forward and the input gradient, per thread and reused: the zero-
// padded interleaved block (Hb x Wb x L), the interleaved output plane (PQ x L) and the
// per-tap weight vectors.
template <class T>
struct BlockScratch {
  T* padded;
  T* plane;
  Vec<T>* wv;
  explicit BlockScratch(const Blocked& b) {
    static thread_local Buffer padded_buf, plane_buf, wv_buf;
    padded = padded_buf.get<T>(b.Hb * b.Wb * kLanes<T>);
    plane = plane_buf.get<T>(b.PQ * kLanes<T>);
    wv = wv_buf.get<Vec<T>>(b.RS);
  }
};

// y[i] clamped to [0, hi] for i < n: the forward's fused ReLU / ReLU6.
template <class T>
void clamp_relu(T* y, int64_t n, T hi) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = relu_clamp<T>(y[i], hi);
}

template <class T>
void blocked_fwd(const DwParams& p, const Blocked& b, const T* x, const T* w, const T* bias, T* y) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  for_each_block<T>(p, b, [&](int64_t n, int64_t c0, int nl) {
    const BlockScratch<T> sc(b);
    T *Xb = sc.padded, *Yb = sc.plane;
    V* wv = sc.wv;
    load_block(p, b, x, n, c0, nl, Xb);
    lane_weights(w, b.RS, c0, nl, wv);
    T bt[L] = {};
    for (int l = 0; bias && l < nl; ++l) bt[l] = bias[c0 + l];
    const V vb = vload<V>(bt);
    int64_t o = blocked_outputs<T, 8>(b, Xb, wv, vb, 0, Yb);
    blocked_outputs<T, 1>(b, Xb, wv, vb, o, Yb);
    if (p.relu) clamp_relu(Yb, b.PQ * L, T(p.relu_max));
    T* dst[L];
    for (int l = 0; l < nl; ++l) dst[l] = y + (n * p.C + c0 + l) * b.PQ;
    deinterleave_planes<T>(Yb, nullptr, b.PQ, dst, nl);
  });
}

// Input gradient: GXb[base[o] + toff[t]] += w[t] * Gb[o] (one tap at a time: no two outputs of a
// tap share a cell, so the loop carries no dependence), then the plane cells out of GXb.
template <class T>
void blocked_bwd_input(const DwParams& p, const Blocked& b, const T* gy, const T* w, T* gx) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  for_each_block<T>(p, b, [&](int64_t n, int64_t c0, int nl) {
    const BlockScratch<T> sc(b);
    T *GXb = sc.padded, *Gb = sc.plane;
    V* wv = sc.wv;
    std::memset(GXb, 0, size_t(b.Hb * b.Wb * L) * sizeof(T));
    const T* src[L];
    for (int l = 0; l < nl; ++l) src[l] = gy + (n * p.C + c0 + l) * b.PQ;
    interleave_planes<T>(src, nl, b.PQ, nullptr, Gb);
    lane_weights(w, b.RS, c0, nl, wv);
    for (int64_t k = 0; k < b.RS; ++k) {
      const V wk = wv[k];
      T* dst = GXb + b.toff[k];
      for (int64_t o = 0; o < b.PQ; ++o) {
        T* c = dst + b.base[o];
        vstore(c, vload<V>(c) + wk * vload<V>(Gb + o * L));
      }
    }
    T* out[L];
    for (int l = 0; l < nl; ++l) out[l] = gx + (n * p.C + c0 + l) * b.HW;
    deinterleave_planes<T>(GXb, b.xoff, b.HW, out, nl);
  });
}

// Weight gradient: per tap, sum_o Gb[o] * Xb[base[o] + toff[t]] (float vectors over one plane,
// double across the batch), per channel block; the batch is reduced inside the task.
template <class T>
void blocked_bwd_weight(const DwParams& p, const Blocked& b, const T* x, const T* gy, T* gw, T* gbias) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const int64_t nb = ceil_div(p.C, int64_t(L));
  const bool par = nb > 1 && p.N * nb * L * b.PQ * b.RS > 32768;
  parallel_for(nb, par, [&](int64_t cb) {
    static thread_local Buffer xb_buf, gb_buf, acc_buf;
    const int64_t c0 = cb * L;
    const int nl = int(imin(L, p.C - c0));
    T* Xb = xb_buf.get<T>(b.Hb * b.Wb * L);
    T* Gb = gb_buf.get<T>(b.PQ * L);
    double* acc = acc_buf.get<double>((b.RS + 1) * L);  // taps, then the bias
    for (int64_t i = 0; i < (b.RS + 1) * L; ++i) acc[i] = 0;
    for (int64_t n = 0; n < p.N; ++n) {
      load_block(p, b, x, n, c0, nl, Xb);
      const T* src[L];
      for (int l = 0; l < nl; ++l) src[l] = gy + (n * p.C + c0 + l) * b.PQ;
      interleave_planes<T>(src, nl, b.PQ, nullptr, Gb);
      auto flush = [&](int64_t slot, V v) {
        T tmp[L];
        vstore(tmp, v);
        for (int l = 0; l < L; ++l) acc[slot * L + l] += double(tmp[l]);
      };
      for (int64_t k = 0; k < b.RS; ++k) {
        const T* src_k = Xb + b.toff[k];
        V a[4] = {};
        int64_t o = 0;
        for (; o + 4 <= b.PQ; o += 4)
          for (int u = 0; u < 4; ++u) a[u] += vload<V>(Gb + (o + u) * L) * vload<V>(src_k + b.base[o + u]);
        for (; o < b.PQ; ++o) a[0] += vload<V>(Gb + o * L) * vload<V>(src_k + b.base[o]);
        flush(k, (a[0] + a[1]) + (a[2] + a[3]));
      }
      if (gbias) {
        V a[4] = {};
        int64_t o = 0;
        for (; o + 4 <= b.PQ; o += 4)
          for (int u = 0; u < 4; ++u) a[u] += vload<V>(Gb + (o + u) * L);
        for (; o < b.PQ; ++o) a[0] += vload<V>(Gb + o * L);
        flush(b.RS, (a[0] + a[1]) + (a[2] + a[3]));
      }
    }
    for (int l = 0; l < nl; ++l) {
      for (int64_t k = 0; k < b.RS; ++k) gw[(c0 + l) * b.RS + k] = T(acc[k * L + l]);
      if (gbias) gbias[c0 + l] = T(acc[b.RS * L + l]);
    }
  });
}

template <class T>
void depthwise_fwd_impl(const DwParams& p, const T* x, const T* w, const T* b, T* y) {
  Blocked bl;
  if (plan_blocked<T>(p, Pass::fwd, bl)) return blocked_fwd(p, bl, x, w, b, y);
  const int64_t K = p.C * p.M, tasks = p.N * K, HW = p.H * p.W, PQ = p.P * p.Q, RS = p.R * p.S;
  const Plane g = fwd_plane(p);
  const bool par = tasks > 1 && tasks * PQ * RS > 32768;
  parallel_for(tasks, par, [&](int64_t t) {
    static thread_local Scratch<T> sc;
    const int64_t n = t / K, oc = t - n * K, c = oc / p.M;
    conv_plane_any<T>(g, x + (n * p.C + c) * HW, w + oc * RS, b ? b[oc] : T(0), false, y + t * PQ, sc);
    if (p.relu) clamp_relu(y + t * PQ, PQ, T(p.relu_max));  // (the plane is still in cache)
  });
}

template <class T>
void depthwise_bwd_input_impl(const DwParams& p, const T* gy, const T* w, T* gx) {
  Blocked bl;
  if (plan_blocked<T>(p, Pass::input, bl)) return blocked_bwd_input(p, bl, gy, w, gx);
  const int64_t K = p.C * p.M, tasks = p.N * p.C, HW = p.H * p.W, PQ = p.P * p.Q, RS = p.R * p.S;
  const bool par = tasks > 1 && tasks * p.M * PQ * RS > 32768;
  const int64_t fph = p.dh * (p.R - 1) - p.ph, fpw = p.dw * (p.S - 1) - p.pw;
  if (p.sh == 1 && p.sw == 1) {
    // correlation of grad_output (P x Q) with the flipped kernel -> (H x W)
    const Plane g{p.P, p.Q, p.H, p.W, p.R, p.S, 1, 1, fph, fpw, p.dh, p.dw};
    parallel_for(tasks, par, [&](int64_t t) {
      static thread_local Scratch<T> sc;
      static thread_local Buffer wf_buf;
      T* wf = wf_buf.get<T>(RS);
      const int64_t n = t / p.C, c = t - n * p.C;
      for (int64_t m = 0; m < p.M; ++m) {
        const int64_t oc = c * p.M + m;
        const T* wk = w + oc * RS;
        for (int64_t i = 0; i < RS; ++i) wf[i] = wk[RS - 1 - i];
        conv_plane_any<T>(g, gy + (n * K + oc) * PQ, wf, T(0), m > 0, gx + t * HW, sc);
      }
    });
    return;
  }
  // strided: scatter into a phased copy of the grad_input plane (contiguous per tap), then merge.
  // A stride wider than the plane (up to 2^30) would make that copy mostly empty phases: there
  // the scatter goes straight into grad_input, q * stride apart.
  const bool phased = p.sw <= p.W;
  const int64_t Wp = phased ? ceil_div(p.W, p.sw) : p.W, Wd = phased ? Wp * p.sw : p.W, qs = phased ? 1 : p.sw;
  parallel_for(tasks, par, [&](int64_t t) {
    static thread_local Buffer gd_buf, toff_buf;
    T* gd = phased ? gd_buf.get<T>(p.H * Wd) : gx + t * HW;
    int64_t* toff = toff_buf.get<int64_t>(p.S);
    for (int64_t s = 0; s < p.S; ++s) toff[s] = phased ? phased_offset(s * p.dw - p.pw, p.sw, Wp) : s * p.dw - p.pw;
    std::memset(gd, 0, size_t(p.H * Wd) * sizeof(T));
    const int64_t n = t / p.C, c = t - n * p.C;
    for (int64_t m = 0; m < p.M; ++m) {
      const int64_t oc = c * p.M + m;
      const T* wk = w + oc * RS;
      const T* gyp = gy + (n * K + oc) * PQ;
      for (int64_t q0 = 0; q0 < p.P; ++q0) {
        const int64_t ih0 = q0 * p.sh - p.ph;
        const Range rr = valid_range(ih0, p.dh, p.H - 1, p.R);
        const T* gyr = gyp + q0 * p.Q;
        for (int64_t r = rr.lo; r < rr.hi; ++r) {
          T* gdr = gd + (ih0 + r * p.dh) * Wd;
          for (int64_t s = 0; s < p.S; ++s) {
            const Range cr = valid_range(s * p.dw - p.pw, p.sw, p.W - 1, p.Q);
            const T wv = wk[r * p.S + s];
            const int64_t to = toff[s];
#pragma omp simd
            for (int64_t q = cr.lo; q < cr.hi; ++q) gdr[q * qs + to] += wv * gyr[q];
          }
        }
      }
    }
    if (phased) phase_merge(gd, p.H, p.W, p.sw, Wp, gx + t * HW);
  });
}

template <class T, int KR, int KS>
void wgrad_plane(const Plane& g, const T* x, const T* gy, double* acc, Scratch<T>& sc) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const int64_t R = KR ? KR : g.R, S = KS ? KS : g.S;
  const int64_t sw = g.sw;
  const Range in = interior_cols(g);
  const int64_t qa = in.lo, qb = in.hi;
  const bool vec = qb - qa >= L;
  int64_t Wp, Wd;
  const T* xd = phased_input(g, x, vec, sc, &Wp, &Wd);
  constexpr int64_t KN = (KR && KS) ? KR * KS : 1;
  V va_local[KN];
  V* va = (KR && KS) ? va_local : sc.wv.template get<V>(R * S);
  for (int64_t i = 0; i < R * S; ++i) va[i] = V{};
  const T* zero = nullptr;
  int64_t* toff = nullptr;
  const T** rows = nullptr;
  if (vec) {
    T* z = sc.zero.template get<T>(Wd);
    std::memset(z, 0, size_t(Wd) * sizeof(T));
    zero = z;
    toff = sc.toff.template get<int64_t>(S);
    for (int64_t s = 0; s < S; ++s) toff[s] = phased_offset(s * g.dw - g.pw, sw, Wp);
    rows = sc.rows.template get<const T*>(R);
  }
  for (int64_t p = 0; p < g.P; ++p) {
    const T* gyr = gy + p * g.Q;
    const int64_t ih0 = p * g.sh - g.ph;
    const Range rr = valid_range(ih0, g.dh, g.H - 1, R);
    if (rr.lo >= rr.hi) continue;
    // scalar: one tap at a time over its valid columns outside the vector blocks
    int64_t va_lo = 0, va_hi = 0;  // columns done by the vector loop
    if (vec) {
      va_lo = qa;
      va_hi = qa + (qb - qa) / L * L;
      for (int64_t r = 0; r < R; ++r) rows[r] = (r >= rr.lo && r < rr.hi) ? xd + (ih0 + r * g.dh) * Wd : zero;
      for (int64_t q = va_lo; q < va_hi; q += L) {
        const V gv = vload<V>(gyr + q);
        for (int64_t r = 0; r < R; ++r) {
          const T* xr = rows[r] + q;
          for (int64_t s = 0; s < S; ++s) va[r * S + s] += gv * vload<V>(xr + toff[s]);
        }
      }
    }
    for (int64_t r = rr.lo; r < rr.hi; ++r) {
      const T* xr = x + (ih0 + r * g.dh) * g.W;
      for (int64_t s = 0; s < S; ++s) {
        const int64_t off = s * g.dw - g.pw;
        const Range cr = valid_range(off, sw, g.W - 1, g.Q);
        T d = 0;
        for (int64_t q = cr.lo; q < imin(cr.hi, va_lo); ++q) d += gyr[q] * xr[q * sw + off];
        for (int64_t q = imax(cr.lo, va_hi); q < cr.hi; ++q) d += gyr[q] * xr[q * sw + off];
        acc[r * S + s] += double(d);
      }
    }
  }
  for (int64_t i = 0; i < R * S; ++i) {
    T t[L];
    vstore(t, va[i]);
    double sum = 0;
    for (int l = 0; l < L; ++l) sum += double(t[l]);
    acc[i] += sum;
  }
}

template <class T>
void depthwise_bwd_weight_impl(const DwParams& p, const T* x, const T* gy, T* gw, T* gb) {
  Blocked bl;
  if (plan_blocked<T>(p, Pass::weight, bl)) return blocked_bwd_weight(p, bl, x, gy, gw, gb);
  const int64_t K = p.C * p.M, HW = p.H * p.W, PQ = p.P * p.Q, RS = p.R * p.S;
  const bool par = K > 1 && p.N * K * PQ * RS > 32768;
  const Plane g = fwd_plane(p);
  const PadPlan pl = pad_plan<T>(g);
  parallel_for(K, par, [&](int64_t oc) {
    static thread_local Scratch<T> sc;
    static thread_local Buffer acc_buf;
    double* acc = acc_buf.get<double>(RS);
    for (int64_t i = 0; i < RS; ++i) acc[i] = 0;
    double bsum = 0;
    const int64_t c = oc / p.M;
    for (int64_t n = 0; n < p.N; ++n) {
      const T* xp = x + (n * p.C + c) * HW;
      const T* gyp = gy + (n * K + oc) * PQ;
      if (gb) {
        T s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < PQ; ++i) s += gyp[i];
        bsum += double(s);
      }
      const T* xs = xp;
      const T* gys = gyp;
      Plane gs = g;
      if (pl.use) {  // narrow plane: zero-padded copies of the input and grad_output rows
        gs = padded_plane(g, pl, xp, sc.padded, &xs);
        T* gq = sc.ypad.template get<T>(p.P * pl.Qp);
        pad_columns(gyp, p.P, p.Q, 0, pl.Qp, gq);
        gys = gq;
      }
      if (p.R == 3 && p.S == 3) wgrad_plane<T, 3, 3>(gs, xs, gys, acc, sc);
      else if (p.R == 5 && p.S == 5) wgrad_plane<T, 5, 5>(gs, xs, gys, acc, sc);
      else wgrad_plane<T, 0, 0>(gs, xs, gys, acc, sc);
    }
    for (int64_t i = 0; i < RS; ++i) gw[oc * RS + i] = T(acc[i]);
    if (gb) gb[oc] = T(bsum);
  });
}

}  // namespace

CK_REGISTER(depthwise_fwd_stub, depthwise_fwd_impl);
CK_REGISTER(depthwise_bwd_input_stub, depthwise_bwd_input_impl);
CK_REGISTER(depthwise_bwd_weight_stub, depthwise_bwd_weight_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
