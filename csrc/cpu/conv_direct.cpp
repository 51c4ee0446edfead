// Direct convolution forward (no im2col): the input is copied once into a zero-padded buffer
// sized so that every kernel tap of every (vector-rounded) output position is in bounds, then
// each output row is computed in register tiles of KB output channels x QV vectors of outputs.
#include "cpu/common.h"

#include "ops/conv.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

constexpr int KB = 4;  // output channels per register tile
constexpr int QV = 2;  // vectors of output positions per register tile

// One output row (o, pp) for KB output channels (kvalid of them real).
// xg: padded input of this image and group (Cg planes of Dp x Hp x Wp); wpk: packed weights
// [Cg][T][R][S][KB]; bpk: KB biases (zeros past kvalid); y0: output of the first channel at (o, pp, 0).
template <class T, bool S1>
void direct_row(const ConvParams& p, int64_t Cg, const T* xg, int64_t Hp, int64_t Wp, int64_t plane, const T* wpk,
                const T* bpk, int kvalid, int64_t o, int64_t pp, T* y0, int64_t ystride) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  constexpr int64_t QT = int64_t(L) * QV;
  const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
  const int64_t dd = p.dilation[0], dh = p.dilation[1], dw = p.dilation[2];
  const int64_t R = p.R, S = p.S, TT = p.T;
  for (int64_t q0 = 0; q0 < p.Q; q0 += QT) {
    V acc[KB][QV];
    for (int k = 0; k < KB; ++k) {
      const V bv = vbroadcast<V>(bpk[k]);
      for (int v = 0; v < QV; ++v) acc[k][v] = bv;
    }
    for (int64_t c = 0; c < Cg; ++c) {
      for (int64_t t = 0; t < TT; ++t) {
        const T* xd = xg + c * plane + (o * sd + t * dd) * Hp * Wp;
        for (int64_t r = 0; r < R; ++r) {
          const T* xr = xd + (pp * sh + r * dh) * Wp + q0 * sw;
          const T* wr = wpk + ((c * TT + t) * R + r) * S * KB;
          for (int64_t s = 0; s < S; ++s) {
            const T* xs = xr + s * dw;
            V xv[QV];
            for (int v = 0; v < QV; ++v) {
              if (S1) {
                xv[v] = vload<V>(xs + v * L);
              } else {
                for (int l = 0; l < L; ++l) xv[v][l] = xs[(v * L + l) * sw];
              }
            }
            for (int k = 0; k < KB; ++k) {
              const V wv = vbroadcast<V>(wr[s * KB + k]);
              for (int v = 0; v < QV; ++v) acc[k][v] += xv[v] * wv;
            }
          }
        }
      }
    }
    const int64_t n = imin(QT, p.Q - q0);
    for (int k = 0; k < kvalid; ++k) {
      T* yk = y0 + k * ystride + q0;
      if (n == QT) {
        for (int v = 0; v < QV; ++v) vstore(yk + v * L, acc[k][v]);
      } else {
        T tmp[QT];
        for (int v = 0; v < QV; ++v) vstore(tmp + v * L, acc[k][v]);
        std::memcpy(yk, tmp, sizeof(T) * size_t(n));
      }
    }
  }
}

template <class T>
void conv_direct_fwd_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int L = kLanes<T>;
  constexpr int64_t QT = int64_t(L) * QV;
  const int64_t N = p.N, C = p.C, K = p.K, G = p.G, Cg = p.Cg(), Kg = p.Kg();
  const int64_t CRS = Cg * p.kernel_volume(), OPQ = p.out_plane(), PQ = p.P * p.Q;
  const int64_t nkb = ceil_div(Kg, KB);
  // Padded extents: exactly what the (vector-rounded) outputs touch.
  const int64_t Dp = (p.O - 1) * p.stride[0] + (p.T - 1) * p.dilation[0] + 1;
  const int64_t Hp = (p.P - 1) * p.stride[1] + (p.R - 1) * p.dilation[1] + 1;
  const int64_t Wp = (ceil_div(p.Q, QT) * QT - 1) * p.stride[2] + (p.S - 1) * p.dilation[2] + 1;
  const int64_t plane = Dp * Hp * Wp;

  static thread_local Buffer xbuf, wbuf;
  T* xpad = xbuf.get<T>(N * C * plane);
  T* wpk = wbuf.get<T>(G * nkb * KB * (CRS + 1));
  T* bpk = wpk + G * nkb * KB * CRS;
  const bool par_io = max_threads() > 1 && N * C * plane > (1 << 15);
  (void)par_io;

  // Zero-padded copy of the input.
#pragma omp parallel for schedule(static) if (par_io)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const T* src = x + nc * p.in_plane();
    T* dst = xpad + nc * plane;
    for (int64_t d = 0; d < Dp; ++d) {
      const int64_t id = d - p.pad[0];
      for (int64_t h = 0; h < Hp; ++h) {
        const int64_t ih = h - p.pad[1];
        T* row = dst + (d * Hp + h) * Wp;
        if (id < 0 || id >= p.D || ih < 0 || ih >= p.H) {
          std::memset(row, 0, sizeof(T) * size_t(Wp));
          continue;
        }
        const T* srow = src + (id * p.H + ih) * p.W;
        const int64_t w0 = imin(p.pad[2], Wp), w1 = imin(p.pad[2] + p.W, Wp);
        for (int64_t i = 0; i < w0; ++i) row[i] = T(0);
        if (w1 > w0) std::memcpy(row + w0, srow, sizeof(T) * size_t(w1 - w0));
        for (int64_t i = imax(w0, w1); i < Wp; ++i) row[i] = T(0);
      }
    }
  }
  // Weights packed as [G][nkb][CRS][KB], biases as [G][nkb][KB], zero past Kg.
  for (int64_t g = 0; g < G; ++g)
    for (int64_t kb = 0; kb < nkb; ++kb) {
      T* dst = wpk + (g * nkb + kb) * CRS * KB;
      T* bd = bpk + (g * nkb + kb) * KB;
      for (int k = 0; k < KB; ++k) {
        const int64_t kk = kb * KB + k;
        const bool ok = kk < Kg;
        const T* src = w + (g * Kg + kk) * CRS;
        for (int64_t i = 0; i < CRS; ++i) dst[i * KB + k] = ok ? src[i] : T(0);
        bd[k] = ok && b ? b[g * Kg + kk] : T(0);
      }
    }

  const int64_t items = N * G * nkb * p.O * p.P;
  const bool par = max_threads() > 1 && double(N) * K * OPQ * CRS > 1e5;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t it = 0; it < items; ++it) {
    int64_t rest = it;
    const int64_t pp = rest % p.P; rest /= p.P;
    const int64_t o = rest % p.O; rest /= p.O;
    const int64_t kb = rest % nkb; rest /= nkb;
    const int64_t g = rest % G;
    const int64_t n = rest / G;
    const T* xg = xpad + (n * C + g * Cg) * plane;
    const int kvalid = int(imin(KB, Kg - kb * KB));
    T* y0 = y + (n * K + g * Kg + kb * KB) * OPQ + o * PQ + pp * p.Q;
    const T* wk = wpk + (g * nkb + kb) * CRS * KB;
    const T* bk = bpk + (g * nkb + kb) * KB;
    if (p.stride[2] == 1)
      direct_row<T, true>(p, Cg, xg, Hp, Wp, plane, wk, bk, kvalid, o, pp, y0, OPQ);
    else
      direct_row<T, false>(p, Cg, xg, Hp, Wp, plane, wk, bk, kvalid, o, pp, y0, OPQ);
  }
}

}  // namespace

CK_REGISTER(conv_direct_fwd_stub, conv_direct_fwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
