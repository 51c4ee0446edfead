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

struct Tiles {
  int64_t TH, TW, count;
};

// V[xi][c][t - t0] for tiles [t0, t0 + tb) (tb a multiple of L; tiles >= count are zero).
template <class T>
void input_transform(const ConvParams& p, const Tiles& tl, const T* x, int64_t t0, int64_t tb, T* V, bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t C = p.C, HW = p.H * p.W, groups = tb / L;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t cg = 0; cg < C * groups; ++cg) {
    const int64_t c = cg / groups, t1 = t0 + (cg % groups) * L;
    alignas(64) T d[36][L];
    for (int l = 0; l < L; ++l) {
      const int64_t t = t1 + l;
      if (t >= tl.count) {
        for (int i = 0; i < 36; ++i) d[i][l] = T(0);
        continue;
      }
      const int64_t n = t / (tl.TH * tl.TW), r = t % (tl.TH * tl.TW);
      const int64_t ih0 = (r / tl.TW) * 4 - p.pad[1], iw0 = (r % tl.TW) * 4 - p.pad[2];
      const T* xc = x + (n * C + c) * HW;
      const bool inside = ih0 >= 0 && iw0 >= 0 && ih0 + 6 <= p.H && iw0 + 6 <= p.W;
      for (int i = 0; i < 6; ++i) {
        const int64_t ih = ih0 + i;
        for (int j = 0; j < 6; ++j) {
          const int64_t iw = iw0 + j;
          d[i * 6 + j][l] = (inside || (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)) ? xc[ih * p.W + iw] : T(0);
        }
      }
    }
    Vt v[36];
    for (int i = 0; i < 36; ++i) v[i] = vload<Vt>(d[i]);
    for (int j = 0; j < 6; ++j) bt6(v[0 * 6 + j], v[1 * 6 + j], v[2 * 6 + j], v[3 * 6 + j], v[4 * 6 + j], v[5 * 6 + j]);
    for (int i = 0; i < 6; ++i) bt6(v[i * 6 + 0], v[i * 6 + 1], v[i * 6 + 2], v[i * 6 + 3], v[i * 6 + 4], v[i * 6 + 5]);
    T* dst = V + c * tb + (t1 - t0);
    for (int xi = 0; xi < 36; ++xi) vstore(dst + xi * C * tb, v[xi]);
  }
}

// y tiles [t0, t0 + tb) from M[xi][k][t - t0], plus bias.
template <class T>
void output_transform(const ConvParams& p, const Tiles& tl, const T* M, const T* b, int64_t t0, int64_t tb, T* y,
                      bool par) {
  using Vt = Vec<T>;
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t K = p.K, PQ = p.P * p.Q, groups = tb / L;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t kg = 0; kg < K * groups; ++kg) {
    const int64_t k = kg / groups, t1 = t0 + (kg % groups) * L;
    const T* src = M + k * tb + (t1 - t0);
    Vt m[36];
    for (int xi = 0; xi < 36; ++xi) m[xi] = vload<Vt>(src + xi * K * tb);
    Vt r[6][4];  // A^T m: 4 rows of 6
    for (int j = 0; j < 6; ++j) {
      Vt o[4];
      at6(m[0 * 6 + j], m[1 * 6 + j], m[2 * 6 + j], m[3 * 6 + j], m[4 * 6 + j], m[5 * 6 + j], o);
      for (int i = 0; i < 4; ++i) r[j][i] = o[i];
    }
    const Vt bias = vbroadcast<Vt>(b ? b[k] : T(0));
    alignas(64) T out[16][L];
    for (int i = 0; i < 4; ++i) {
      Vt o[4];
      at6(r[0][i], r[1][i], r[2][i], r[3][i], r[4][i], r[5][i], o);
      for (int j = 0; j < 4; ++j) vstore(out[i * 4 + j], o[j] + bias);
    }
    for (int l = 0; l < L; ++l) {
      const int64_t t = t1 + l;
      if (t >= tl.count) break;
      const int64_t n = t / (tl.TH * tl.TW), rr = t % (tl.TH * tl.TW);
      const int64_t oh0 = (rr / tl.TW) * 4, ow0 = (rr % tl.TW) * 4;
      T* yk = y + (n * K + k) * PQ;
      const int64_t ih = imin(4, p.P - oh0), iw = imin(4, p.Q - ow0);
      for (int64_t i = 0; i < ih; ++i)
        for (int64_t j = 0; j < iw; ++j) yk[(oh0 + i) * p.Q + ow0 + j] = out[i * 4 + j][l];
    }
  }
}

template <class T>
void winograd_fwd_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int L = kLanes<T> > 0 ? kLanes<T> : 1;
  const int64_t C = p.C, K = p.K;
  Tiles tl;
  tl.TH = ceil_div(p.P, 4);
  tl.TW = ceil_div(p.Q, 4);
  tl.count = p.N * tl.TH * tl.TW;
  const int nt = max_threads();

  // U[xi] = (G g G^T)[xi] for every (k, c): a K x C matrix per xi, written straight into the
  // GEMM's packed A panels (pack_a_whole's layout), so the 36 products per tile block read it
  // without packing (each thread used to repack all 36 matrices, several MB, per block).
  // One MR-row panel of filters and one input channel at a time, c fastest: in every U[xi]
  // the MR values land next to the previous channel's, so 36 streams fill whole lines.
  static thread_local Buffer u_buf;
  constexpr int64_t MR = kGemmMR, NCH = (MR + L - 1) / L;  // vectors per panel column
  const int64_t mpad = packed_a_size<T>(K, 1), per = mpad * C;
  T* U = u_buf.get<T>(36 * per);
  {
    using Vt = Vec<T>;
    const int64_t items = mpad / MR * C;
    const bool par = nt > 1 && K * C * 36 > kGrain;
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t c = it % C, k0 = it / C * MR;
      T* dst = U + packed_a_index(mpad, C, k0, c);
      for (int64_t v = 0; v < NCH; ++v) {
        const int64_t kv = k0 + v * L, n = imin(L, MR - v * L);
        alignas(64) T g[9][L];
        for (int l = 0; l < L; ++l)
          for (int i = 0; i < 9; ++i) g[i][l] = l < n && kv + l < K ? w[((kv + l) * C + c) * 9 + i] : T(0);
        Vt t[6][3];  // G g
        for (int j = 0; j < 3; ++j) {
          Vt o[6];
          g3<Vt, T>(vload<Vt>(g[0 * 3 + j]), vload<Vt>(g[1 * 3 + j]), vload<Vt>(g[2 * 3 + j]), o);
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
#pragma omp parallel for schedule(dynamic, 1) if (outer)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    static thread_local Buffer v_buf, m_buf;
    const int64_t t0 = blk * TB;
    T* Vb = v_buf.get<T>(36 * C * TB);
    T* Mb = m_buf.get<T>(36 * K * TB);
    const bool inner = !outer && nt > 1;
    input_transform(p, tl, x, t0, TB, Vb, inner && C * TB * 36 > kGrain);
    (void)inner;
#pragma omp parallel for schedule(dynamic, 1) if (inner && K * C * TB > kGrain)
    for (int xi = 0; xi < 36; ++xi) {
      GemmEpi<T> ex;
      ex.apacked = U + xi * per;  // (A, with its shape, is then not read)
      gemm_blocked<T>(K, TB, C, T(1), ex.apacked, C, 1, Vb + xi * C * TB, TB, 1, T(0), Mb + xi * K * TB, TB, 1, ex);
    }
    output_transform(p, tl, Mb, b, t0, TB, y, inner && K * TB * 36 > kGrain);
  }
}

}  // namespace

CK_REGISTER(winograd3x3_fwd_stub, winograd_fwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
