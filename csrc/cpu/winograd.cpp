// Winograd F(4x4, 3x3) forward convolution (see ops/winograd.h for the algorithm).
//
// Tiles (n, th, tw) are numbered t = (n * TH + th) * TW + tw and processed in blocks of TB
// (a multiple of the vector length L): per block, the input transform writes
// V[xi][c][t] (t contiguous), 36 GEMMs give M[xi][k][t], and the output transform reads L
// tiles at a time as vectors. Blocks run in parallel when there are enough of them;
// otherwise the phases of each block are parallel (over channels, over xi, over k).
// Transforms vectorize across L tiles; gathering a tile's 6x6 input is scalar.
#include "cpu/common.h"

#include "ops/winograd.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

constexpr int64_t kGrain = 1 << 14;

// G applied to 3 values -> 6 (any element type with + - and scalar *).
template <class V, class T>
inline void g3(const V& g0, const V& g1, const V& g2, V* o) {
  const T q = T(1) / T(4), s = T(1) / T(6), t12 = T(1) / T(12), t24 = T(1) / T(24);
  const V e = g0 + g2;
  o[0] = g0 * q;
  o[1] = (e + g1) * (-s);
  o[2] = (e - g1) * (-s);
  o[3] = g0 * t24 + g1 * t12 + g2 * s;
  o[4] = g0 * t24 - g1 * t12 + g2 * s;
  o[5] = g2;
}

// In-place B^T applied to 6 values (any element type with + - and scalar *).
template <class V>
inline void bt6(V& d0, V& d1, V& d2, V& d3, V& d4, V& d5) {
  const V t0 = d0 * 4 - d2 * 5 + d4;
  const V t1 = d3 + d4 - (d1 + d2) * 4;
  const V t2 = (d1 - d2) * 4 + d4 - d3;
  const V t3 = (d3 - d1) * 2 + d4 - d2;
  const V t4 = (d1 - d3) * 2 + d4 - d2;
  const V t5 = d1 * 4 - d3 * 5 + d5;
  d0 = t0; d1 = t1; d2 = t2; d3 = t3; d4 = t4; d5 = t5;
}

// A^T applied to 6 values -> 4.
template <class V>
inline void at6(const V& m0, const V& m1, const V& m2, const V& m3, const V& m4, const V& m5, V* o) {
  const V a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
  o[0] = m0 + a + c;
  o[1] = b + d * 2;
  o[2] = a + c * 4;
  o[3] = b + d * 8 + m5;
}

// A applied to 4 values -> 6 (A = the transpose of A^T above): the weight gradient's
// transform of a grad_output tile.
template <class V>
inline void a4(const V& d0, const V& d1, const V& d2, const V& d3, V* o) {
  const V e = d0 + d2, f = d1 + d3, g = d0 + d2 * 4, h = (d1 + d3 * 4) * 2;
  o[0] = d0;
  o[1] = e + f;
  o[2] = e - f;
  o[3] = g + h;
  o[4] = g - h;
  o[5] = d3;
}

// G^T applied to 6 values -> 3: the weight gradient's output transform.
template <class V, class T>
inline void gt6(const V& m0, const V& m1, const V& m2, const V& m3, const V& m4, const V& m5, V* o) {
  const T q = T(1) / T(4), s = T(1) / T(6), t12 = T(1) / T(12), t24 = T(1) / T(24);
  const V a = m1 + m2, b = m2 - m1, c = m3 + m4, d = m3 - m4;
  o[0] = m0 * q - a * s + c * t24;
  o[1] = b * s + d * t12;
  o[2] = (c - a) * s + m5;
}

// v[b * L + i] = the values st[l][b * L + i] of the L rows l as one vector (lane l), for the
// NB blocks of L columns: tile-major rows turned position-major by L x L register transposes.
template <class T, int NB, int SW>
inline void rows_to_lanes(const T (&st)[kLanes<T> > 0 ? kLanes<T> : 1][SW], Vec<T>* v) {
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  for (int b = 0; b < NB; ++b) {
    Vec<T>* vb = v + b * L;
    for (int l = 0; l < L; ++l) vb[l] = vload<Vec<T>>(st[l] + b * L);
    transpose_tile<T>(vb);
  }
}

struct Tiles {
  int64_t TH, TW, count;
  // tile t's image and the top-left output position of its 4x4 outputs
  void corner(int64_t t, int64_t& n, int64_t& oh0, int64_t& ow0) const {
    n = t / (TH * TW);
    const int64_t r = t % (TH * TW);
    oh0 = r / TW * 4;
    ow0 = r % TW * 4;
  }
};

// V[xi][c][t - t0] for tiles [t0, t0 + tb) (tb a multiple of L; tiles >= count are zero).
// Each group of L tiles of a channel is copied tile-major (a 6x6 window is 6 runs of 6) into
// a small buffer, turned xi-major by L x L register transposes, and transformed as vectors
// across the L tiles. (Scattering the windows value by value into xi-major vectors, then
// reading them back, stalled on store forwarding; with the tile coordinates divided out per
// channel it cost a quarter of the products' time.)
template <class T>
void input_transform(const ConvParams& p, const Tiles& tl, const T* x, int64_t t0, int64_t tb, T* V, bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  constexpr int NB = (36 + L - 1) / L, SW = NB * L;  // transposed blocks; buffer row width
  const int64_t C = p.C, H = p.H, W = p.W, HW = H * W, groups = tb / L;
  // per tile of the block: its window's top-left corner (may lie in the padding) and offset
  static thread_local Buffer geo_buf;
  int64_t* geo = geo_buf.get<int64_t>(3 * tb);
  int64_t *ih0 = geo, *iw0 = geo + tb, *base = geo + 2 * tb;
  for (int64_t i = 0; i < tb; ++i) {
    int64_t n, oh0, ow0;
    tl.corner(t0 + i, n, oh0, ow0);
    ih0[i] = oh0 - p.pad[1];
    iw0[i] = ow0 - p.pad[2];
    base[i] = n * C * HW + ih0[i] * W + iw0[i];
  }
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t cg = 0; cg < C * groups; ++cg) {
    const int64_t c = cg / groups, g0 = (cg % groups) * L;
    alignas(64) T st[L][SW];
    for (int l = 0; l < L; ++l) {
      const int64_t i = g0 + l;
      T* s = st[l];
      if (t0 + i >= tl.count) {
        for (int u = 0; u < 36; ++u) s[u] = T(0);
      } else if (ih0[i] >= 0 && iw0[i] >= 0 && ih0[i] + 6 <= H && iw0[i] + 6 <= W) {
        const T* src = x + base[i] + c * HW;
        for (int r = 0; r < 6; ++r)
          for (int j = 0; j < 6; ++j) s[r * 6 + j] = src[r * W + j];
      } else {  // rows [rlo, rhi) and columns [jlo, jhi) of the window lie in the image
        const T* src = x + base[i] + c * HW;
        const int64_t rlo = imax(0, -ih0[i]), rhi = imin(6, H - ih0[i]);
        const int64_t jlo = imax(0, -iw0[i]), jhi = imin(6, W - iw0[i]);
        for (int64_t r = 0; r < 6; ++r)
          for (int64_t j = 0; j < 6; ++j)
            s[r * 6 + j] = r >= rlo && r < rhi && j >= jlo && j < jhi ? src[r * W + j] : T(0);
      }
      for (int u = 36; u < SW; ++u) s[u] = T(0);
    }
    Vt v[SW];
    rows_to_lanes<T, NB>(st, v);
    for (int j = 0; j < 6; ++j) bt6(v[0 * 6 + j], v[1 * 6 + j], v[2 * 6 + j], v[3 * 6 + j], v[4 * 6 + j], v[5 * 6 + j]);
    for (int i = 0; i < 6; ++i) bt6(v[i * 6 + 0], v[i * 6 + 1], v[i * 6 + 2], v[i * 6 + 3], v[i * 6 + 4], v[i * 6 + 5]);
    T* dst = V + c * tb + g0;
    for (int xi = 0; xi < 36; ++xi) vstore(dst + xi * C * tb, v[xi]);
  }
}

// Per tile of [t0, t0 + tb): base, its 4x4 output tile's offset in image n's channel 0 of an
// (N, K, P, Q) array, and ext, its extent (rows * 8 + columns; 0 past the count). Per-thread
// arrays, valid until the next call.
inline void tile_extents(const ConvParams& p, const Tiles& tl, int64_t t0, int64_t tb, int64_t*& base, int64_t*& ext) {
  static thread_local Buffer geo_buf;
  int64_t* geo = geo_buf.get<int64_t>(2 * tb);
  base = geo;
  ext = geo + tb;
  for (int64_t i = 0; i < tb; ++i) {
    int64_t n, oh0, ow0;
    tl.corner(t0 + i, n, oh0, ow0);
    base[i] = n * p.K * p.P * p.Q + oh0 * p.Q + ow0;
    ext[i] = t0 + i < tl.count ? imin(4, p.P - oh0) * 8 + imin(4, p.Q - ow0) : 0;
  }
}

// y tiles [t0, t0 + tb) from M[xi][k][t - t0], plus bias, plus res (y's layout; null: none),
// then clamped to [0, relu_max] when relu (relu_clamp; without res, on the vectors). The 16 outputs of L tiles come out
// as 16 vectors across the tiles; L x L register transposes turn them tile-major, so a tile's
// 4x4 outputs are stored as 4 runs of 4.
template <class T>
void output_transform(const ConvParams& p, const Tiles& tl, const T* M, const T* b, int64_t t0, int64_t tb, T* y,
                      const T* res, bool relu, T relu_max, bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  constexpr int NB = (16 + L - 1) / L;  // transposed blocks
  const int64_t K = p.K, PQ = p.P * p.Q, groups = tb / L;
  int64_t *base, *ext;
  tile_extents(p, tl, t0, tb, base, ext);
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t kg = 0; kg < K * groups; ++kg) {
    const int64_t k = kg / groups, g0 = (kg % groups) * L;
    const T* src = M + k * tb + g0;
    Vt m[36];
    for (int xi = 0; xi < 36; ++xi) m[xi] = vload<Vt>(src + xi * K * tb);
    Vt r[6][4];  // A^T m: 4 rows of 6
    for (int j = 0; j < 6; ++j) {
      Vt o[4];
      at6(m[0 * 6 + j], m[1 * 6 + j], m[2 * 6 + j], m[3 * 6 + j], m[4 * 6 + j], m[5 * 6 + j], o);
      for (int i = 0; i < 4; ++i) r[j][i] = o[i];
    }
    const Vt bias = vbroadcast<Vt>(b ? b[k] : T(0)), hi = vbroadcast<Vt>(relu_max);
    Vt out[NB * L];  // out[i * 4 + j]: output (i, j) of the L tiles
    for (int i = 0; i < 4; ++i) {
      Vt o[4];
      at6(r[0][i], r[1][i], r[2][i], r[3][i], r[4][i], r[5][i], o);
      for (int j = 0; j < 4; ++j) {
        out[i * 4 + j] = o[j] + bias;
        if (relu && !res) out[i * 4 + j] = relu_clamp<T>(out[i * 4 + j], hi);  // (else after res)
      }
    }
    for (int u = 16; u < NB * L; ++u) out[u] = Vt{};
    alignas(64) T tile[L][NB * L];  // tile[l][i * 4 + j]
    for (int bk = 0; bk < NB; ++bk) {
      transpose_tile<T>(out + bk * L);
      for (int l = 0; l < L; ++l) vstore(tile[l] + bk * L, out[bk * L + l]);
    }
    for (int l = 0; l < L; ++l) {
      const int64_t e = ext[g0 + l];
      if (e == 0) break;
      const int64_t at = base[g0 + l] + k * PQ, ih = e / 8, iw = e % 8;
      T* yk = y + at;
      if (!res && iw == 4) {  // (the relu, if any, is applied)
        for (int64_t i = 0; i < ih; ++i) std::memcpy(yk + i * p.Q, tile[l] + i * 4, 4 * sizeof(T));
        continue;
      }
      for (int64_t i = 0; i < ih; ++i)
        for (int64_t j = 0; j < iw; ++j) {
          T v = tile[l][i * 4 + j];
          if (res) {
            v += res[at + i * p.Q + j];
            if (relu) v = relu_clamp<T>(v, relu_max);
          }
          yk[i * p.Q + j] = v;
        }
    }
  }
}

// The filter transform: U[xi] for every (k, c) of the K x C x 3 x 3 filters w; returns the
// values it takes (36 packed K x C matrices; only counts them when U is null).
template <class T>
int64_t winograd_transform_impl(int64_t K, int64_t C, const T* w, T* U, bool flipped) {
  // U[xi] = (G g G^T)[xi] for every (k, c): a K x C matrix per xi, written straight into the
  // GEMM's packed A panels (pack_a_whole's layout), so the 36 products per tile block read it
  // without packing (each thread used to repack all 36 matrices, several MB, per block).
  // One MR-row panel of filters and CB input channels at a time: the panel's CB*9 weights per
  // filter (contiguous runs) are first turned k-major by pack_a_whole's register transposes,
  // so each tap of each channel is one vector over the MR filters (a scalar gather of them,
  // read back as vectors, stalled on store forwarding and cost 40% of the products' time on
  // 14x14 planes). Then channel by channel, c fastest: in every U[xi] the MR values land next
  // to the previous channel's, so 36 streams fill whole lines.
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  constexpr int64_t MR = kGemmMR, NCH = (MR + L - 1) / L, CB = 16;  // vectors per panel column
  const int64_t mpad = packed_a_size<T>(K, 1), per = mpad * C;
  if (!U) return 36 * per;
  const int nt = max_threads();
  {
    using Vt = Vec<T>;
    const int64_t cblocks = ceil_div(C, CB), items = mpad / MR * cblocks;
    const bool par = nt > 1 && K * C * 36 > kGrain;
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t c0 = it % cblocks * CB, k0 = it / cblocks * MR, cb = imin(CB, C - c0);
      // g[(cl * 9 + i) * MR + r] = w[k0 + r][c0 + cl][i] (zero for filters past K); the
      // last vector of a row may read up to L - 1 values past it, into the padding
      alignas(64) T g[CB * 9 * MR + kLanes<T>];
      if (!flipped) {
        pack_a_whole<T>(imin(MR, K - k0), 9 * cb, w + (k0 * C + c0) * 9, C * 9, 1, g);
      } else {  // filter k, channel c at w[c][k] (taps reversed, below): the runs of 9 gathered
        // filter-major first, so that the same register transposes turn them (a scalar gather of
        // the taps cost 14% of a 512x512 grad_input at batch 8)
        const int64_t rows = imin(MR, K - k0);
        alignas(64) T rt[MR * CB * 9];
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t cl = 0; cl < cb; ++cl)
            std::memcpy(rt + (r * cb + cl) * 9, w + ((c0 + cl) * K + k0 + r) * 9, 9 * sizeof(T));
        pack_a_whole<T>(rows, 9 * cb, rt, cb * 9, 1, g);
      }
      for (int l = 0; l < kLanes<T>; ++l) g[cb * 9 * MR + l] = T(0);
      auto tap = [flipped](int i) { return flipped ? 8 - i : i; };  // filter tap i = 3r + s
      for (int64_t cl = 0; cl < cb; ++cl) {
        T* dst = U + packed_a_index(mpad, C, k0, c0 + cl);
        for (int64_t v = 0; v < NCH; ++v) {
          const int64_t n = imin(L, MR - v * L);
          const T* gc = g + cl * 9 * MR + v * L;
          Vt t[6][3];  // G g
          for (int j = 0; j < 3; ++j) {
            Vt o[6];
            g3<Vt, T>(vload<Vt>(gc + tap(0 * 3 + j) * MR), vload<Vt>(gc + tap(1 * 3 + j) * MR),
                      vload<Vt>(gc + tap(2 * 3 + j) * MR), o);
            for (int i = 0; i < 6; ++i) t[i][j] = o[i];
          }
          for (int i = 0; i < 6; ++i) {
            Vt o[6];
            g3<Vt, T>(t[i][0], t[i][1], t[i][2], o);
            for (int j = 0; j < 6; ++j) {
              T* d = dst + (i * 6 + j) * per + v * L;
              if (n == L) vstore(d, o[j]);
              else vstore_head(d, o[j], n);
            }
          }
        }
      }
    }
  }
  return 36 * per;
}

template <class T>
void winograd_fwd_ex_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y, const WinogradOpts<T>& o) {
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t C = p.C, K = p.K;
  Tiles tl;
  tl.TH = ceil_div(p.P, 4);
  tl.TW = ceil_div(p.Q, 4);
  tl.count = p.N * tl.TH * tl.TW;
  const int nt = max_threads();
  const int64_t per = packed_a_size<T>(K, 1) * C;  // values of one U[xi]
  static thread_local Buffer u_buf;
  const T* U = o.u;
  if (!U) {
    T* u = u_buf.get<T>(winograd_transform_impl<T>(K, C, w, nullptr, o.flipped));
    winograd_transform_impl<T>(K, C, w, u, o.flipped);
    U = u;
  }

  // tile block: V (36 x C x TB) within ~8 MB, at most 1024 tiles, a multiple of L
  int64_t TB = (int64_t(8) << 20) / (36 * C * int64_t(sizeof(T)));
  TB = imax(2 * L, imin(1024, TB)) / L * L;
  const int64_t per_thread = ceil_div(ceil_div(tl.count, nt), L) * L;
  TB = imax(int64_t(L), imin(TB, per_thread));
  // as many blocks as a multiple of the threads (7 blocks on 2 threads ran at 4/3.5 of the time)
  const int64_t even = ceil_div(ceil_div(tl.count, TB), nt) * nt;
  TB = imax(int64_t(L), ceil_div(ceil_div(tl.count, even), L) * L);
  const int64_t blocks = ceil_div(tl.count, TB);
  const bool outer = nt > 1 && blocks >= nt;
  (void)outer;
  // An exception may not leave an OpenMP region: a failed scratch allocation is caught in the
  // region, and thrown again after it.
  bool failed = false;
  auto fail = [&] {
#pragma omp atomic write
    failed = true;
  };
#pragma omp parallel for schedule(dynamic, 1) if (outer)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    try {
      static thread_local Buffer v_buf, m_buf;
      const int64_t t0 = blk * TB;
      T* Vb = v_buf.get<T>(36 * C * TB);
      T* Mb = m_buf.get<T>(36 * K * TB);
      const bool inner = !outer && nt > 1;
      input_transform(p, tl, x, t0, TB, Vb, inner && C * TB * 36 > kGrain);
      (void)inner;
#pragma omp parallel for schedule(dynamic, 1) if (inner && K * C * TB > kGrain)
      for (int xi = 0; xi < 36; ++xi) {
        try {
          GemmEpi<T> ex;
          ex.apacked = U + xi * per;  // (A, with its shape, is then not read)
          gemm_blocked<T>(K, TB, C, T(1), ex.apacked, C, 1, Vb + xi * C * TB, TB, 1, T(0), Mb + xi * K * TB, TB, 1,
                          ex);
        } catch (...) {
          fail();
        }
      }
      output_transform(p, tl, Mb, b, t0, TB, y, o.residual, o.relu, o.relu_max, inner && K * TB * 36 > kGrain);
    } catch (...) {
      fail();
    }
  }
  if (failed) Buffer::throw_bad_alloc();
}

template <class T>
void winograd_fwd_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y) {
  winograd_fwd_ex_impl<T>(p, x, w, b, y, {});
}

// ---------------------------------------------------------------- weight gradient
// E[xi][k][t - t0] = (A e A^T)[xi] for the 4x4 grad_output tiles e of tiles [t0, t0 + tb)
// (outputs past P or Q, and tiles past the count, are zero): as input_transform, L tiles at
// a time, gathered tile-major and turned xi-major by register transposes.
template <class T>
void grad_output_transform(const ConvParams& p, const Tiles& tl, const T* dy, int64_t t0, int64_t tb, T* E,
                           bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  constexpr int NB = (16 + L - 1) / L, SW = NB * L;
  const int64_t K = p.K, Q = p.Q, PQ = p.P * Q, groups = tb / L;
  int64_t *base, *ext;
  tile_extents(p, tl, t0, tb, base, ext);
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t kg = 0; kg < K * groups; ++kg) {
    const int64_t k = kg / groups, g0 = (kg % groups) * L;
    alignas(64) T st[L][SW];
    for (int l = 0; l < L; ++l) {
      const int64_t e = ext[g0 + l], ih = e / 8, iw = e % 8;
      const T* src = dy + base[g0 + l] + k * PQ;
      T* s = st[l];
      if (e == 4 * 8 + 4) {  // a whole tile: four runs of four
        for (int i = 0; i < 4; ++i) std::memcpy(s + i * 4, src + i * Q, 4 * sizeof(T));
      } else {
        for (int64_t i = 0; i < 4; ++i)
          for (int64_t j = 0; j < 4; ++j) s[i * 4 + j] = i < ih && j < iw ? src[i * Q + j] : T(0);
      }
      for (int u = 16; u < SW; ++u) s[u] = T(0);
    }
    Vt v[SW];
    rows_to_lanes<T, NB>(st, v);
    Vt r[6][4];  // A e: 6 rows of 4
    for (int j = 0; j < 4; ++j) {
      Vt o[6];
      a4(v[0 * 4 + j], v[1 * 4 + j], v[2 * 4 + j], v[3 * 4 + j], o);
      for (int i = 0; i < 6; ++i) r[i][j] = o[i];
    }
    T* dst = E + k * tb + g0;
    for (int i = 0; i < 6; ++i) {
      Vt o[6];
      a4(r[i][0], r[i][1], r[i][2], r[i][3], o);
      for (int j = 0; j < 6; ++j) vstore(dst + (i * 6 + j) * K * tb, o[j]);
    }
  }
}

// dw[k][c] = G^T M[k][c] G for M[xi][k][c] (K x C per xi), L input channels at a time.
template <class T>
void weight_output_transform(int64_t K, int64_t C, const T* M, T* dw, bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t groups = ceil_div(C, int64_t(L)), KC = K * C;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t kg = 0; kg < K * groups; ++kg) {
    const int64_t k = kg / groups, c0 = (kg % groups) * L, n = imin(int64_t(L), C - c0);
    const T* src = M + k * C + c0;
    Vt m[36];
    for (int xi = 0; xi < 36; ++xi) m[xi] = n == L ? vload<Vt>(src + xi * KC) : vload_head<Vt>(src + xi * KC, n);
    Vt r[3][6];  // G^T m: 3 rows of 6
    for (int j = 0; j < 6; ++j) {
      Vt o[3];
      gt6<Vt, T>(m[0 * 6 + j], m[1 * 6 + j], m[2 * 6 + j], m[3 * 6 + j], m[4 * 6 + j], m[5 * 6 + j], o);
      for (int i = 0; i < 3; ++i) r[i][j] = o[i];
    }
    alignas(64) T out[9][L];  // out[r * 3 + s][lane]
    for (int i = 0; i < 3; ++i) {
      Vt o[3];
      gt6<Vt, T>(r[i][0], r[i][1], r[i][2], r[i][3], r[i][4], r[i][5], o);
      for (int j = 0; j < 3; ++j) vstore(out[i * 3 + j], o[j]);
    }
    T* d = dw + (k * C + c0) * 9;
    for (int64_t l = 0; l < n; ++l)
      for (int u = 0; u < 9; ++u) d[l * 9 + u] = out[u][l];
  }
}

template <class T>
void winograd_bwd_weight_impl(const ConvParams& p, const T* x, const T* dy, T* dw, T* db) {
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t C = p.C, K = p.K, KC = K * C;
  Tiles tl;
  tl.TH = ceil_div(p.P, 4);
  tl.TW = ceil_div(p.Q, 4);
  tl.count = p.N * tl.TH * tl.TW;
  const int nt = max_threads();
  // tile block: V (36 x C x TB) and E (36 x K x TB) within ~12 MB, at most 2048 tiles (the
  // GEMMs' depth; each block reads and writes M, 36 x K x C, once)
  int64_t TB = (int64_t(12) << 20) / (36 * (C + K) * int64_t(sizeof(T)));
  TB = imax(int64_t(2 * L), imin(int64_t(2048), TB)) / L * L;
  const int64_t blocks = ceil_div(tl.count, TB);
  TB = ceil_div(ceil_div(tl.count, blocks), int64_t(L)) * L;  // blocks of even size
  static thread_local Buffer v_buf, e_buf, m_buf;
  T* Vb = v_buf.get<T>(36 * C * TB);
  T* Eb = e_buf.get<T>(36 * K * TB);
  T* M = m_buf.get<T>(36 * KC);
  const bool par = nt > 1;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t t0 = blk * TB;
    input_transform(p, tl, x, t0, TB, Vb, par && C * TB * 36 > kGrain);
    grad_output_transform(p, tl, dy, t0, TB, Eb, par && K * TB * 36 > kGrain);
    const T beta = blk == 0 ? T(0) : T(1);
    // M[xi] (K x C) (+)= E[xi] (K x TB) V[xi]^T (TB x C); each product whole on one thread
    parallel_for_steal(36, par && KC * TB > kGrain, [&](int64_t xi) {
      gemm<T>(K, C, TB, T(1), Eb + xi * K * TB, TB, 1, Vb + xi * C * TB, 1, TB, beta, M + xi * KC, C, 1);
    });
  }
  weight_output_transform(K, C, M, dw, par && KC * 36 > kGrain);
  if (db) bias_grad(p.N, K, p.P * p.Q, dy, db);
}

template <class T>
int64_t winograd_transform_plain(int64_t K, int64_t C, const T* w, T* U) {
  return winograd_transform_impl<T>(K, C, w, U, false);
}

}  // namespace

CK_REGISTER(winograd3x3_bwd_weight_stub, winograd_bwd_weight_impl);
CK_REGISTER(winograd3x3_fwd_stub, winograd_fwd_impl);
CK_REGISTER(winograd3x3_fwd_ex_stub, winograd_fwd_ex_impl);
CK_REGISTER(winograd_transform_stub, winograd_transform_plain);

}  // namespace CK_ISA_NS
}  // namespace ck
