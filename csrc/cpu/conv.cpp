// Convolution by im2col + GEMM: forward, backward-data (col2im) and backward-weight.
// N-d: 1-d and 2-d convolutions arrive as 3-d ones with unit leading dims (see ops/conv.h).
#include <algorithm>
#include <cmath>

#include "cpu/common.h"

#include "ops/conv.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

// Output positions i in [lo, hi) of a length-n output whose input index i*stride + off lies in
// [0, size).
inline void valid_range(int64_t n, int64_t stride, int64_t off, int64_t size, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div(-off, stride);
  hi = size - off <= 0 ? 0 : ceil_div(size - off, stride);
  hi = imin(hi, n);
  lo = imin(lo, hi);
}

inline bool is_pointwise(const ConvParams& p) {
  return p.T == 1 && p.R == 1 && p.S == 1 && p.stride[0] == 1 && p.stride[1] == 1 && p.stride[2] == 1 &&
         p.pad[0] == 0 && p.pad[1] == 0 && p.pad[2] == 0 && p.O == p.D && p.P == p.H && p.Q == p.W;
}

// col (Cg*T*R*S x O*P*Q, rows ld apart; ld = 0: O*P*Q) from the Cg channels of one image
// starting at x.
template <class T>
void im2col(const ConvParams& p, const T* x, int64_t Cg, T* col, bool parallel, int64_t ld = 0) {
  const int64_t TRS = p.kernel_volume(), RS = p.R * p.S, OPQ = p.out_plane(), HW = p.H * p.W;
  const int64_t DHW = p.in_plane(), PQ = p.P * p.Q;
  const int64_t rows = Cg * TRS;
  const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
  const bool par = parallel && max_threads() > 1 && rows * OPQ > kParallelGrain && rows > 1;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / TRS, rem = row % TRS;
    const int64_t t = rem / RS, r = (rem / p.S) % p.R, s = rem % p.S;
    const T* xc = x + c * DHW;
    T* dst = col + row * (ld ? ld : OPQ);
    int64_t o0, o1, p0, p1, q0, q1;
    const int64_t offd = t * p.dilation[0] - p.pad[0];
    const int64_t offh = r * p.dilation[1] - p.pad[1];
    const int64_t offw = s * p.dilation[2] - p.pad[2];
    valid_range(p.O, sd, offd, p.D, o0, o1);
    valid_range(p.P, sh, offh, p.H, p0, p1);
    valid_range(p.Q, sw, offw, p.W, q0, q1);
    std::memset(dst, 0, sizeof(T) * size_t(o0 * PQ));
    for (int64_t o = o0; o < o1; ++o) {
      const T* xd = xc + (o * sd + offd) * HW;
      T* dd = dst + o * PQ;
      std::memset(dd, 0, sizeof(T) * size_t(p0 * p.Q));
      for (int64_t pp = p0; pp < p1; ++pp) {
        // first in-bounds tap of the row (a base pointer at the row's offset offw would lie
        // outside the array with large padding: undefined, flagged by UBSan)
        T* dh = dd + pp * p.Q;
        for (int64_t q = 0; q < q0; ++q) dh[q] = T(0);
        if (q1 > q0) {
          const T* xh = xd + (pp * sh + offh) * p.W + (offw + q0 * sw);
          if (sw == 1) {
            std::memcpy(dh + q0, xh, sizeof(T) * size_t(q1 - q0));
          } else if (sw == 2) {
            copy_stride2(dh + q0, xh, q1 - q0);
          } else {
            for (int64_t q = q0; q < q1; ++q) dh[q] = xh[(q - q0) * sw];
          }
        }
        for (int64_t q = q1; q < p.Q; ++q) dh[q] = T(0);
      }
      std::memset(dd + p1 * p.Q, 0, sizeof(T) * size_t((p.P - p1) * p.Q));
    }
    std::memset(dst + o1 * PQ, 0, sizeof(T) * size_t((p.O - o1) * PQ));
  }
}

// Implicit im2col: the im2col matrix of one image's group (rows c,t,r,s; columns o,p,q)
// packed straight into GEMM panels from a zero-padded, phase-split copy of the image, never
// stored. With strides (sd, sh, sw) the padded image splits into sd*sh*sw phase volumes;
// phase (a, b, e) holds the padded values at (sd*i + a, sh*j + b, sw*l + e). The tap
// (t, r, s) of output (o, p, q) reads padded (sd*o + t*dd, sh*p + r*dh, sw*q + s*dw), which is
// phase (t*dd % sd, r*dh % sh, s*dw % sw) at (o + t*dd/sd, p + r*dh/sh, q + s*dw/sw): every
// row of the im2col matrix is a unit-stride window of one phase volume, at an offset off[k]
// plus the output position's own offset. A panel row is then a few vector copies (one per
// output row the panel's NR columns cross): no bounds checks, no strided gathers, and the
// copy (about the size of the image) stays in L2 where the explicit matrix (kernel-volume
// times larger) would stream from DRAM.
struct PhaseGeom {
  int64_t dph = 0, hph = 0, wph = 0, nph = 0;  // phase-volume extents, number of phases
  PhaseGeom() = default;
  explicit PhaseGeom(const ConvParams& p)
      : dph(p.O + (p.T - 1) * p.dilation[0] / p.stride[0]),
        hph(p.P + (p.R - 1) * p.dilation[1] / p.stride[1]),
        wph(p.Q + (p.S - 1) * p.dilation[2] / p.stride[2]),
        nph(p.stride[0] * p.stride[1] * p.stride[2]) {}
  int64_t vol() const { return dph * hph * wph; }
  int64_t chan() const { return nph * vol(); }  // values per channel
};

// Whether the phase-split copy stays about the size of the image (large strides with small
// kernels would make most phases dead weight). In floating point: huge strides or dilations
// (tests/test_boundaries.py) would overflow PhaseGeom's integers, which only a fitting
// geometry may build.
inline bool phases_fit(const ConvParams& p) {
  const int64_t out[3] = {p.O, p.P, p.Q}, ker[3] = {p.T, p.R, p.S};
  double chan = 1;
  for (int d = 0; d < 3; ++d)
    chan *= double(p.stride[d]) * double(out[d]) + double(ker[d] - 1) * double(p.dilation[d]);  // >= stride * extent
  return chan <= 2.0 * double(p.in_plane()) + 4096.0;
}

// off[k] for every im2col row k = (c, t, r, s) of one group: where its tap of output (0,0,0)
// sits in the group's phase-split copy.
inline void phase_offsets(const ConvParams& p, const PhaseGeom& g, int64_t Cg, int64_t* off) {
  const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
  int64_t k = 0;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) {
          const int64_t td = t * p.dilation[0], rh = r * p.dilation[1], sv = s * p.dilation[2];
          const int64_t ph = ((td % sd) * sh + rh % sh) * sw + sv % sw;
          off[k++] = (c * g.nph + ph) * g.vol() + ((td / sd) * g.hph + rh / sh) * g.wph + sv / sw;
        }
}

// xph (Cg x nph x dph x hph x wph) = the phase-split, zero-padded copy of Cg channels at x.
template <class T>
void build_phases(const ConvParams& p, const PhaseGeom& g, const T* x, int64_t Cg, T* xph, bool parallel) {
  const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
  const int64_t HW = p.H * p.W, DHW = p.in_plane();
  const bool par = parallel && max_threads() > 1 && Cg * g.chan() > kParallelGrain && Cg > 1;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t ph = 0; ph < g.nph; ++ph) {
      const int64_t a = ph / (sh * sw), b = (ph / sw) % sh, e = ph % sw;
      T* dst = xph + (c * g.nph + ph) * g.vol();
      int64_t l0, l1;  // phase columns whose input column sw*l + e - pad lies inside the row
      valid_range(g.wph, sw, e - p.pad[2], p.W, l0, l1);
      for (int64_t i = 0; i < g.dph; ++i)
        for (int64_t j = 0; j < g.hph; ++j) {
          T* row = dst + (i * g.hph + j) * g.wph;
          const int64_t id = sd * i + a - p.pad[0], ih = sh * j + b - p.pad[1];
          if (id < 0 || id >= p.D || ih < 0 || ih >= p.H || l1 <= l0) {
            std::fill(row, row + g.wph, T(0));
            continue;
          }
          const T* xr = x + c * DHW + id * HW + ih * p.W + (sw * l0 + e - p.pad[2]);  // first in-bounds tap
          std::fill(row, row + l0, T(0));
          if (sw == 1) copy_short(row + l0, xr, l1 - l0);
          else if (sw == 2) copy_stride2(row + l0, xr, l1 - l0);
          else
            for (int64_t l = l0; l < l1; ++l) row[l] = xr[(l - l0) * sw];
          std::fill(row + l1, row + g.wph, T(0));
        }
    }
}

// Lanes [lo, hi) of a vector: merge(acc, p) returns acc with those lanes replaced by p[lo..hi)
// (p is lane 0's address; no other lane of p is read, so p may point before or past a buffer).
template <class T>
struct LaneRange {
  using V = Vec<T>;
#if CK_ISA == 2
  uint32_t m = 0;
  LaneRange() = default;
  LaneRange(int lo, int hi) : m(((1u << hi) - 1) & ~((1u << lo) - 1)) {}
  V merge(V acc, const T* p) const {
    if constexpr (sizeof(T) == 4) return (V)_mm512_mask_loadu_ps((__m512)acc, __mmask16(m), p);
    else return (V)_mm512_mask_loadu_pd((__m512d)acc, __mmask8(m), p);
  }
#elif CK_ISA == 1
  __m256i m{};
  LaneRange() = default;
  LaneRange(int lo, int hi) {
    const __m256i lane = sizeof(T) == 4 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi64x(0, 1, 2, 3);
    if constexpr (sizeof(T) == 4)
      m = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
    else
      m = _mm256_and_si256(_mm256_cmpgt_epi64(lane, _mm256_set1_epi64x(lo - 1)), _mm256_cmpgt_epi64(_mm256_set1_epi64x(hi), lane));
  }
  V merge(V acc, const T* p) const {
    if constexpr (sizeof(T) == 4)
      return (V)_mm256_blendv_ps((__m256)acc, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
    else
      return (V)_mm256_blendv_pd((__m256d)acc, _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
#else
  int lo = 0, hi = 0;
  LaneRange() = default;
  LaneRange(int l, int h) : lo(l), hi(h) {}
  V merge(V acc, const T* p) const {
    for (int i = lo; i < hi; ++i) acc[i] = p[i];
    return acc;
  }
#endif
};

// Panels W values wide from the phase-split copy, k-major: panel j holds, for each im2col row
// k in [pc, pc + kc), the values of W consecutive output positions (n0 + j*W ...; zero past
// nc). As the GEMM's B (W = NR): the im2col matrix. As its A (W = MR): the transposed im2col
// matrix (rows: output positions), the product then computing the output channel-last.
template <class T, int W>
struct PhasedPanels {
  const T* xph;        // the group's phase-split copy
  const int64_t* off;  // per im2col row
  const ConvParams* p;
  PhaseGeom g;
  int64_t img = 0;  // distance between images' copies when the batch is folded into the columns

  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst) {
    const PhasedPanels& m = *static_cast<const PhasedPanels*>(ctx);
    const ConvParams& p = *m.p;
    using V = Vec<T>;
    constexpr int L = kLanes<T>, NV = (W + L - 1) / L;
    const int64_t PQ = p.P * p.Q, OPQ = p.O * PQ;
    const int64_t* off = m.off + pc;
    for (int64_t j0 = 0; j0 < nc; j0 += W) {
      T* panel = dst + j0 * kc;
      const int64_t n = n0 + j0, nr = imin(W, nc - j0);
      // image and output position of lane 0
      int64_t im = n / OPQ, o = n % OPQ / PQ, pp = (n % PQ) / p.Q, q = n % p.Q;
      for (int v = 0; v < NV; ++v) {
        const int width = W - v * L < L ? W - v * L : L;  // this vector's lanes in the panel
        // This vector's lanes as runs along output rows: lanes [lo, hi) of row k come from
        // xph + off[k] + src (lane 0's address; one run unless output rows are short).
        int64_t src[L];
        LaneRange<T> lanes[L] = {};
        int nrun = 0;
        for (int lo = 0, end = int(imin(width, nr - v * L)); lo < end;) {
          const int hi = int(imin(end, lo + (p.Q - q)));
          src[nrun] = im * m.img + (o * m.g.hph + pp) * m.g.wph + q - lo;
          lanes[nrun++] = LaneRange<T>(lo, hi);
          q += hi - lo;
          lo = hi;
          if (q == p.Q) {
            q = 0;
            if (++pp == p.P) {
              pp = 0;
              if (++o == p.O) {
                o = 0;
                ++im;
              }
            }
          }
        }
        // Down the rows: a load (merged under masks) per run and one store, lanes past nr zero
        // (a panel narrower than the vector stores its lanes only).
        T* d = panel + v * L;
        if (width == L && nrun == 1 && nr - v * L >= L) {
          const T* x = m.xph + src[0];
          for (int64_t k = 0; k < kc; ++k) vstore(d + k * W, vload<V>(x + off[k]));
          continue;
        }
        for (int64_t k = 0; k < kc; ++k) {
          V acc{};
          const T* x = m.xph + off[k];
          for (int r = 0; r < nrun; ++r) acc = lanes[r].merge(acc, x + src[r]);
          if (width == L) vstore(d + k * W, acc);
          else vstore_head(d + k * W, acc, width);
        }
      }
    }
  }
};
template <class T>
using PhasedB = PhasedPanels<T, int(kGemmNR<T>)>;
template <class T>
using PhasedA = PhasedPanels<T, int(kGemmMR)>;

// The transposed im2col matrix of one image's group (rows: output positions n0 + k; columns
// c,t,r,s), for the weight gradient, packed from the phase-split copy: each panel's columns
// are copied, as runs along output rows, into a small column-major block (in L1), which
// pack_b_columns transposes into the panel.
template <class T>
struct PhasedBT {
  const T* xph;
  const int64_t* off;
  const ConvParams* p;
  PhaseGeom g;
  int64_t n0;  // first output position of this product's rows

  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t j0, int64_t nc, T* dst) {
    const PhasedBT& m = *static_cast<const PhasedBT*>(ctx);
    const ConvParams& p = *m.p;
    constexpr int64_t NR = kGemmNR<T>;
    static thread_local Buffer tbuf, rbuf;
    T* tmp = tbuf.get<T>(NR * kc);
    // runs of positions along output rows: rows [k0, k0 + len) of every column read src..
    const int64_t PQ = p.P * p.Q, n = m.n0 + pc;
    int64_t* runs = rbuf.get<int64_t>(3 * (kc / p.Q + 2));
    int64_t nrun = 0;
    {
      int64_t o = n / PQ, pp = (n % PQ) / p.Q, q = n % p.Q;
      for (int64_t k = 0; k < kc;) {
        const int64_t len = imin(kc - k, p.Q - q);
        runs[3 * nrun] = k;
        runs[3 * nrun + 1] = len;
        runs[3 * nrun++ + 2] = (o * m.g.hph + pp) * m.g.wph + q;
        k += len;
        q = 0;
        if (++pp == p.P) {
          pp = 0;
          ++o;
        }
      }
    }
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t nr = imin(NR, nc - jp);
      for (int64_t j = 0; j < nr; ++j) {
        const T* x = m.xph + m.off[j0 + jp + j];
        T* t = tmp + j * kc;
        for (int64_t r = 0; r < nrun; ++r) copy_short(t + runs[3 * r], x + runs[3 * r + 2], runs[3 * r + 1]);
      }
      pack_b_columns(kc, nr, tmp, kc, dst + jp * kc);
    }
  }
};

// x (Cg channels of one image) += col2im(col), col's rows ld apart (OPQ unless the batch is
// folded into its columns). Parallel over channels (each owns its plane).
template <class T>
void col2im_add(const ConvParams& p, const T* col, int64_t Cg, T* x, bool parallel, int64_t ld = 0) {
  const int64_t TRS = p.kernel_volume(), OPQ = p.out_plane(), HW = p.H * p.W;
  const int64_t DHW = p.in_plane(), PQ = p.P * p.Q;
  const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
  const bool par = parallel && max_threads() > 1 && Cg * TRS * OPQ > kParallelGrain && Cg > 1;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < Cg; ++c) {
    T* xc = x + c * DHW;
    for (int64_t t = 0; t < p.T; ++t)
      for (int64_t r = 0; r < p.R; ++r)
        for (int64_t s = 0; s < p.S; ++s) {
          const T* src = col + ((c * p.T + t) * p.R * p.S + r * p.S + s) * (ld ? ld : OPQ);
          int64_t o0, o1, p0, p1, q0, q1;
          const int64_t offd = t * p.dilation[0] - p.pad[0];
          const int64_t offh = r * p.dilation[1] - p.pad[1];
          const int64_t offw = s * p.dilation[2] - p.pad[2];
          valid_range(p.O, sd, offd, p.D, o0, o1);
          valid_range(p.P, sh, offh, p.H, p0, p1);
          valid_range(p.Q, sw, offw, p.W, q0, q1);
          for (int64_t o = o0; o < o1; ++o) {
            T* xd = xc + (o * sd + offd) * HW;
            for (int64_t pp = p0; pp < p1; ++pp) {
              if (q1 <= q0) break;
              T* xh = xd + (pp * sh + offh) * p.W + (offw + q0 * sw);  // first in-bounds tap
              const T* sh_ = src + o * PQ + pp * p.Q + q0;
              const int64_t nq = q1 - q0;
              if (sw == 1) {
#pragma omp simd
                for (int64_t q = 0; q < nq; ++q) xh[q] += sh_[q];
              } else {
                for (int64_t q = 0; q < nq; ++q) xh[q * sw] += sh_[q];
              }
            }
          }
        }
  }
}

// y (K x plane) += b per channel (b may be null), += res (null, or K x plane), then clamped to
// [0, relu_max] if relu: the epilogue, for products that could not apply it themselves.
template <class T>
void add_bias(const T* b, int64_t K, int64_t plane, T* y, bool relu = false, const T* res = nullptr,
              T relu_max = std::numeric_limits<T>::infinity()) {
  for (int64_t k = 0; k < K; ++k) {
    T* yk = y + k * plane;
    if (b) {
      const T bk = b[k];
#pragma omp simd
      for (int64_t i = 0; i < plane; ++i) yk[i] += bk;
    }
    if (res) {
      const T* rk = res + k * plane;
#pragma omp simd
      for (int64_t i = 0; i < plane; ++i) yk[i] += rk[i];
    }
    if (relu)
#pragma omp simd
      for (int64_t i = 0; i < plane; ++i) yk[i] = relu_clamp<T>(yk[i], relu_max);
  }
}

// src (A, B, PQ) -> dst (B, A, PQ): the batch folded into the columns of a pointwise GEMM
// and back (A, B = N, C or C, N).
template <class T>
void swap_outer(const T* src, int64_t A, int64_t B, int64_t PQ, T* dst) {
  const bool par = max_threads() > 1 && A * B * PQ > kParallelGrain;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t j = 0; j < B; ++j)
    for (int64_t i = 0; i < A; ++i) std::memcpy(dst + (j * A + i) * PQ, src + (i * B + j) * PQ, sizeof(T) * size_t(PQ));
}

// Whether a batch-1, one-group forward computes its product channel-last: Y^T (OPQ x K) =
// col^T W^T, output positions in the micro-tile's MR rows (a partial row panel computes its
// rows only) and channels in its NR lanes, stored back as NCHW (by the micro-kernel up to
// channel_last_kc's depth, else by transpose_epilogue). Small planes waste lanes the
// other way round: 196 positions (14x14) fill 224 lanes, 49 (7x7) fill 64. Unit-stride 1x1
// kernels read x in place as A^T (no copy); strided ones (gathered columns) stay K x OPQ.
// Measured with packed weights (2 threads, AVX-512, calls interleaved): on the 2-core Zen 4
// 1x1 layers at 14x14 and 7x7 took 0.82-0.94 of the time (2048->512 at 7x7 0.82, 1024->256
// at 14x14 0.92); an earlier measurement on a Xeon, with im2col's copy of x, had them 4-6%
// slower. 3x3 layers: 5% faster (Xeon).
template <class T>
bool channel_last_product(const ConvParams& p) {
  if (p.N != 1 || p.G != 1 || (p.kernel_volume() == 1 && !is_pointwise(p))) return false;
  return channel_last_pads_less<T>(p.K, p.out_plane());
}

// The K slice depth of a channel-last product (and of its packed weight): the whole reduction
// in one slice up to 2048 deep, so that the product writes y itself (see conv_fwd_ex_impl),
// else kGemmKC (0). One deep slice reads its B panel (32 x up to 2048 values) from L2 rather
// than L1; measured interleaved against 256-deep slices + transpose_epilogue (packed weights,
// 2 threads, Zen 4): 320 -> 1280 and 960 -> 160 at 7x7 0.92-0.94, 576 -> 96 at 14x14 0.91,
// 1024 -> 256 at 14x14 0.93, 1024 -> 512 at 7x7 0.91; 2048 -> 512 and 1280 -> 320 at 7x7
// 0.94 against 1024 as the limit. 4608 deep (3x3 layers with 512 channels at 7x7) gained
// nothing (1.00), so the limit stays at 2048.
inline int64_t channel_last_kc(int64_t CRS) { return CRS <= 2048 ? CRS : 0; }

// Pointwise layers with small planes (the 7x7 and 14x14 1x1 convolutions at batch > 1) run as
// one GEMM over the whole batch, its columns packed from every image (FoldedColumns) and its
// output copied back channel-major: per-image GEMMs would repack the whole weight (up to MBs)
// for every image and run with an output only PQ wide. (pw: the layer
// is pointwise, or, in the forward, a strided 1x1 through its gathered columns.)
inline bool batch_pointwise(const ConvParams& p, bool pw) { return pw && p.G == 1 && p.N > 1 && p.out_plane() < 256; }

// C (M x N, contiguous) = A (M x K) B (K x N) with the epilogue ex (bias, residual and relu
// per row of C, A prepacked): through gemm_blocked when the epilogue can apply there, else
// gemm() and a pass.
template <class T>
void gemm_epi(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa, const T* B, int64_t rsb,
              int64_t csb, T* C, const GemmEpi<T>& ex) {
  if (M > 1 && N > 1 && !gemm_prefers_transpose<T>(M, N))
    return gemm_blocked<T>(M, N, K, T(1), A, rsa, csa, B, rsb, csb, T(0), C, N, 1, ex);
  gemm<T>(M, N, K, T(1), A, rsa, csa, B, rsb, csb, T(0), C, N, 1);
  add_bias(ex.bias, M, N, C, ex.relu, ex.residual, ex.relu_max);
}

// out (N x Cout x PQ) = A (Cout x Cin; strides rsa, csa) times the images' columns: the batch
// folded into the columns of one GEMM (forward: A = W; backward data: A = W^T), with the
// forward's epilogue ex. fill(it) writes the Cin x N*PQ input (image n's columns at it + n*PQ,
// rows N*PQ apart).
template <class T, class Fill>
void folded_product(int64_t N, int64_t Cin, int64_t Cout, int64_t PQ, const T* A, int64_t rsa, int64_t csa,
                    Fill&& fill, T* out, const GemmEpi<T>& ex = {}) {
  static thread_local Buffer in_buf, out_buf;
  const int64_t NP = N * PQ;
  T* it = in_buf.get<T>(Cin * NP);
  T* ot = out_buf.get<T>(Cout * NP);
  fill(it);
  gemm_epi<T>(Cout, NP, Cin, A, rsa, csa, it, NP, 1, ot, ex);
  swap_outer(ot, Cout, N, PQ, out);
}

// The Cin x N*PQ columns of a batch-folded pointwise product (column n*PQ + q of row c is
// x[n][c][q]) packed straight from the N x Cin x PQ array: each panel row is copied from the
// one or more images its columns cross; a full panel inside one image may be read in place
// (GemmEpi::bdirect).
template <class T>
struct FoldedColumns {
  const T* x;
  int64_t C, PQ;
  const T* at(int64_t col, int64_t row) const { return x + ((col / PQ) * C + row) * PQ + col % PQ; }
  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst) {
    const FoldedColumns& f = *static_cast<const FoldedColumns*>(ctx);
    constexpr int64_t NR = kGemmNR<T>;
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
      const int64_t nr = imin(NR, nc - j0), col = n0 + j0;
      T* d = dst + j0 * kc;
      if (nr == NR && col % f.PQ + NR <= f.PQ) {  // one image: constant-size row copies
        const T* s = f.at(col, pc);
        for (int64_t k = 0; k < kc; ++k) std::memcpy(d + k * NR, s + k * f.PQ, NR * sizeof(T));
        continue;
      }
      for (int64_t done = 0; done < nr;) {  // runs, one per image crossed
        const int64_t c = col + done, len = imin(nr - done, f.PQ - c % f.PQ);
        const T* s = f.at(c, pc);
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t j = 0; j < len; ++j) d[k * NR + done + j] = s[k * f.PQ + j];
        done += len;
      }
      if (nr < NR)
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t j = nr; j < NR; ++j) d[k * NR + j] = T(0);
    }
  }
  static const T* direct(const void* ctx, int64_t pc, int64_t n0, int64_t* ldb) {
    const FoldedColumns& f = *static_cast<const FoldedColumns*>(ctx);
    if (n0 % f.PQ + kGemmNR<T> > f.PQ) return nullptr;
    *ldb = f.PQ;
    return f.at(n0, pc);
  }
};

// the same with in (N x Cin x PQ) as the columns, packed in place (FoldedColumns), unless
// gemm() would rather transpose the product (a handful of positions: then through copies)
template <class T>
void pointwise_batched(int64_t N, int64_t Cin, int64_t Cout, int64_t PQ, const T* A, int64_t rsa, int64_t csa,
                       const T* in, T* out, const GemmEpi<T>& ex = {}) {
  const int64_t NP = N * PQ;
  if (Cout > 1 && NP > 1 && !gemm_prefers_transpose<T>(Cout, NP)) {
    static thread_local Buffer out_buf;
    T* ot = out_buf.get<T>(Cout * NP);
    const FoldedColumns<T> fc{in, Cin, PQ};
    GemmEpi<T> e = ex;
    e.bdirect = &FoldedColumns<T>::direct;
    gemm_packed<T>(Cout, NP, Cin, T(1), A, rsa, csa, &FoldedColumns<T>::pack, &fc, T(0), ot, NP, 1, e);
    swap_outer(ot, Cout, N, PQ, out);
    return;
  }
  folded_product<T>(N, Cin, Cout, PQ, A, rsa, csa, [&](T* it) { swap_outer(in, N, Cin, PQ, it); }, out, ex);
}

// Runs image(n, col, par) for n in [0, N): images in parallel, each thread with its own colsz
// scratch, when there are at least as many images as threads; else one after another, the
// kernels inside (im2col, GEMM) parallel (par = true).
template <class T, class F>
void for_each_image(int64_t N, int64_t colsz, F&& image) {
  const int nt = max_threads();
  const bool batch_par = nt > 1 && N >= nt;
  static thread_local Buffer scratch;
  T* cols = scratch.get<T>(colsz * (batch_par ? nt : 1));
  if (batch_par) {
#pragma omp parallel num_threads(nt)
    {
      T* col = cols + colsz * thread_id();
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n) image(n, col, false);
    }
  } else {
    for (int64_t n = 0; n < N; ++n) image(n, cols, true);
  }
}

// ---------------------------------------------------------------- forward
// The weight as the forward's products read it: per group, the Kg x CRS matrix packed into
// this ISA's micro-kernel panels (pack_a_whole), groups one after another; channel_last (one
// group): W^T (CRS x K) as the channel-last product's B panels (pack_b_whole).
template <class T>
int64_t conv_pack_weight_impl(const ConvParams& p, const T* w, T* dst, bool channel_last) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.kernel_volume(), per = packed_a_size<T>(Kg, CRS);
  if (channel_last) {
    if (dst) pack_b_whole<T>(CRS, p.K, w, 1, CRS, dst, channel_last_kc(CRS));
    return packed_b_size<T>(CRS, p.K);
  }
  if (dst)
    for (int64_t g = 0; g < p.G; ++g) pack_a_whole<T>(Kg, CRS, w + g * Kg * CRS, CRS, 1, dst + g * per);
  return per * p.G;
}

template <class T>
void conv_fwd_ex_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y, const ConvFwdOpts<T>& o) {
  const int64_t N = p.N, C = p.C, K = p.K, G = p.G, Cg = p.Cg(), Kg = p.Kg();
  const int64_t TRS = p.kernel_volume(), OPQ = p.out_plane(), DHW = p.in_plane();
  const int64_t CRS = Cg * TRS;
  const bool pw = is_pointwise(p);
  // A 1x1 kernel with strides (the ResNet downsampling shortcut): its im2col matrix is the
  // subsampled image, smaller than the image, so it is gathered once and the product runs as
  // a pointwise one (a phase-split copy would copy every phase to use one).
  const bool gather = !pw && TRS == 1;
  // Pack the im2col matrix straight from a phase-split copy of the image, unless gemm() would
  // rather transpose the product (a handful of output positions) or the copy would be large.
  const bool implicit = !pw && !gather && Kg > 1 && !gemm_prefers_transpose<T>(Kg, OPQ) && phases_fit(p);
  const PhaseGeom pg = implicit ? PhaseGeom(p) : PhaseGeom();
  const int64_t colsz = pw ? 0 : implicit ? Cg * pg.chan() : CRS * OPQ;
  static thread_local Buffer off_buf;
  int64_t* off = implicit ? off_buf.get<int64_t>(CRS) : nullptr;
  if (implicit) phase_offsets(p, pg, Cg, off);
  // image n's group g's epilogue: its bias, residual, the relu, its packed weight; whether the
  // input is too large to be in cache (8 MB: a quarter of a 32 MB L3 shared with the output)
  const int64_t wper = packed_a_size<T>(Kg, CRS);
  const bool streamed = double(N) * double(C) * double(DHW) * double(sizeof(T)) > double(8 << 20);
  auto epi = [&](int64_t n, int64_t g) {
    GemmEpi<T> e;
    e.apacked = o.wpacked ? o.wpacked + g * wper : nullptr;
    e.bias = b ? b + g * Kg : nullptr;
    e.residual = o.residual ? o.residual + (n * K + g * Kg) * OPQ : nullptr;
    e.relu = o.relu;
    e.relu_max = o.relu_max;
    e.b_streamed = streamed;
    return e;
  };
  // The batch-folded products below write K x N*OPQ, not y's layout: there a residual, and
  // the relu after it, follow the copy back (same order of operations, so the same values).
  // Without a residual the relu (elementwise) stays in the product's epilogue.
  auto folded_epi = [&] {
    GemmEpi<T> e = epi(0, 0);
    e.residual = nullptr;
    e.relu = o.relu && !o.residual;
    return e;
  };
  auto folded_tail = [&] {
    if (!o.residual) return;
    const int64_t total = N * K * OPQ;
    parallel_for(ceil_div(total, kParallelGrain), max_threads() > 1 && total > kParallelGrain, [&](int64_t c) {
      const int64_t i0 = c * kParallelGrain;
      add_bias<T>(nullptr, 1, imin(total - i0, kParallelGrain), y + i0, o.relu, o.residual ? o.residual + i0 : nullptr,
                  o.relu_max);
    });
  };

  if (channel_last_product<T>(p)) {  // Y^T (OPQ x K) = A (OPQ x CRS) W^T, A = col^T
    // With one K slice (channel_last_kc), the product writes y as a column-major C (the
    // micro-kernel transposes each tile, the bias per column). With more, every slice would
    // write and read back its partial sums transposed, with masked vectors: it computes Y^T
    // into ct instead, and transpose_epilogue writes y. Measured interleaved (packed weights,
    // Zen 4): one slice (64 -> 384 and 96 -> 576 at 14x14) 0.91-0.95 of the time of 256-deep
    // slices into ct + transpose_epilogue; 2-8 slices written transposed 1.01-1.04.
    const int64_t kc = channel_last_kc(CRS), ctsz = kc > 0 ? 0 : OPQ * K;
    static thread_local Buffer ct_buf;
    T* ct = ct_buf.get<T>(ctsz + colsz);
    T* col = ct + ctsz;
    GemmEpi<T> e;
    e.bpacked = o.wpacked_cl;
    e.kc = kc;
    // the im2col matrix (CRS x OPQ; x itself when pointwise) as A^T, or packed from the phases
    const T* A = pw ? x : col;
    const PhasedA<T> pa{col, off, &p, pg};
    if (implicit) {
      build_phases(p, pg, x, C, col, true);
      e.apack = &PhasedA<T>::pack;
      e.actx = &pa;
    } else if (!pw) {
      im2col(p, x, C, col, true);
    }
    if (kc > 0) {
      e.bias = b;
      e.bias_cols = true;
      e.residual = o.residual;
      e.relu = o.relu;
      e.relu_max = o.relu_max;
      return gemm_blocked<T>(OPQ, K, CRS, T(1), A, 1, OPQ, w, 1, CRS, T(0), y, 1, OPQ, e);
    }
    gemm_blocked<T>(OPQ, K, CRS, T(1), A, 1, OPQ, w, 1, CRS, T(0), ct, K, 1, e);
    transpose_epilogue(ct, OPQ, K, K, b, o.residual, o.relu, o.relu_max, y);
    return;
  }
  if (batch_pointwise(p, pw || gather)) {  // Y' (K x N*PQ) = W (K x C) X' (C x N*PQ)
    if (pw) {
      pointwise_batched<T>(N, C, K, OPQ, w, C, 1, x, y, folded_epi());
    } else {  // X' the images' gathered columns
      const int64_t NP = N * OPQ;
      folded_product<T>(N, C, K, OPQ, w, C, 1, [&](T* xt) {
        parallel_for(N, max_threads() > 1 && C * NP > kParallelGrain,
                     [&](int64_t n) { im2col(p, x + n * C * DHW, C, xt + n * OPQ, false, NP); });
      }, y, folded_epi());
    }
    folded_tail();
    return;
  }
  if (implicit && G == 1 && N > 1 && OPQ < 256) {
    // Small planes (7x7, 14x14) at batch > 1: the batch folded into the columns of one
    // product, Y' (K x N*OPQ) = W (K x CRS) col(all images), then back to N x K x OPQ. Per
    // image, a 7x7 plane fills 49 of 64 lanes and each thread repacks the whole weight.
    static thread_local Buffer fold_buf;
    const int64_t img = Cg * pg.chan(), NP = N * OPQ;
    T* xph = fold_buf.get<T>(N * img + K * NP);
    T* ot = xph + N * img;
    const bool par = max_threads() > 1 && N * img > kParallelGrain;
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t n = 0; n < N; ++n) build_phases(p, pg, x + n * C * DHW, Cg, xph + n * img, false);
    const PhasedB<T> pb{xph, off, &p, pg, img};
    gemm_packed<T>(K, NP, CRS, T(1), w, CRS, 1, &PhasedB<T>::pack, &pb, T(0), ot, NP, 1, folded_epi());
    swap_outer(ot, K, N, OPQ, y);
    folded_tail();
    return;
  }

  auto image = [&](int64_t n, T* col, bool par) {
    const T* xn = x + n * C * DHW;
    T* yn = y + n * K * OPQ;
    for (int64_t g = 0; g < G; ++g) {
      const T* B = xn + g * Cg * DHW;
      T* yg = yn + g * Kg * OPQ;
      if (implicit) {
        build_phases(p, pg, B, Cg, col, par);
        const PhasedB<T> pb{col, off, &p, pg};
        gemm_packed<T>(Kg, OPQ, CRS, T(1), w + g * Kg * CRS, CRS, 1, &PhasedB<T>::pack, &pb, T(0), yg, OPQ, 1,
                       epi(n, g));
        continue;
      }
      if (!pw) {
        im2col(p, B, Cg, col, par);
        B = col;
      }
      gemm_epi<T>(Kg, OPQ, CRS, w + g * Kg * CRS, CRS, 1, B, OPQ, 1, yg, epi(n, g));
    }
  };
  for_each_image<T>(N, colsz, image);
}

template <class T>
void conv_fwd_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y) {
  conv_fwd_ex_impl<T>(p, x, w, b, y, {});
}

// ---------------------------------------------------------------- backward data
template <class T>
void conv_bwd_data_impl(const ConvParams& p, const T* dy, const T* w, T* dx) {
  const int64_t N = p.N, C = p.C, K = p.K, G = p.G, Cg = p.Cg(), Kg = p.Kg();
  const int64_t TRS = p.kernel_volume(), OPQ = p.out_plane(), DHW = p.in_plane();
  const int64_t CRS = Cg * TRS;
  const bool pw = is_pointwise(p);
  const int64_t colsz = pw ? 0 : CRS * OPQ;

  if (batch_pointwise(p, pw)) {  // dX' (C x N*PQ) = W^T (C x K) dY' (K x N*PQ)
    pointwise_batched<T>(N, K, C, OPQ, w, 1, C, dy, dx);
    return;
  }
  if (!pw && G == 1 && N > 1 && OPQ < 256 && double(CRS) * double(N * OPQ) <= double(1 << 24)) {
    // Small planes at batch > 1: one product over the whole batch, col (CRS x N*OPQ) =
    // W^T dY' (dY' = K x N*OPQ), then col2im per image (see the forward's fold).
    static thread_local Buffer fold_buf;
    const int64_t NP = N * OPQ;
    T* dyt = fold_buf.get<T>(K * NP + CRS * NP);
    T* col = dyt + K * NP;
    swap_outer(dy, N, K, OPQ, dyt);
    gemm<T>(CRS, NP, K, T(1), w, 1, CRS, dyt, NP, 1, T(0), col, NP, 1);
    std::memset(dx, 0, sizeof(T) * size_t(N * C * DHW));
    for (int64_t n = 0; n < N; ++n) col2im_add(p, col + n * OPQ, C, dx + n * C * DHW, true, NP);
    return;
  }

  auto image = [&](int64_t n, T* col, bool par) {
    const T* dyn = dy + n * K * OPQ;
    T* dxn = dx + n * C * DHW;
    if (!pw) std::memset(dxn, 0, sizeof(T) * size_t(C * DHW));
    for (int64_t g = 0; g < G; ++g) {
      const T* wg = w + g * Kg * CRS;  // W_g^T: (CRS x Kg), row stride 1, column stride CRS
      const T* dyg = dyn + g * Kg * OPQ;
      if (pw) {
        gemm<T>(Cg, OPQ, Kg, T(1), wg, 1, CRS, dyg, OPQ, 1, T(0), dxn + g * Cg * DHW, DHW, 1);
      } else {
        gemm<T>(CRS, OPQ, Kg, T(1), wg, 1, CRS, dyg, OPQ, 1, T(0), col, OPQ, 1);
        col2im_add(p, col, Cg, dxn + g * Cg * DHW, par);
      }
    }
  };
  for_each_image<T>(N, colsz, image);
}

// ---------------------------------------------------------------- backward weight
template <class T>
void conv_bwd_weight_impl(const ConvParams& p, const T* x, const T* dy, T* dw, T* db) {
  const int64_t N = p.N, C = p.C, K = p.K, G = p.G, Cg = p.Cg(), Kg = p.Kg();
  const int64_t TRS = p.kernel_volume(), OPQ = p.out_plane(), DHW = p.in_plane();
  const int64_t CRS = Cg * TRS;
  const int64_t wsz = K * CRS;
  const bool pw = is_pointwise(p);
  // The columns of the product are packed from a phase-split copy of the image (see the
  // forward), unless the copy would be large.
  const bool implicit = !pw && TRS > 1 && phases_fit(p);  // (1x1 kernels: see the forward)
  const PhaseGeom pg = implicit ? PhaseGeom(p) : PhaseGeom();
  const int64_t colsz = pw ? 0 : implicit ? Cg * pg.chan() : CRS * OPQ;
  static thread_local Buffer off_buf;
  int64_t* off = implicit ? off_buf.get<int64_t>(CRS) : nullptr;
  if (implicit) phase_offsets(p, pg, Cg, off);
  const int nt = max_threads();
  const bool batch_par = nt > 1 && N >= nt;
  // Fewer images than threads: with a small weight and many output positions (stems, early
  // layers), the threads split the positions (the product's K) instead, each summing into its
  // own partial dW; a split of dW's rows or columns would have every thread pack the same
  // columns, and it leaves threads idle when dW is only a few micro-tiles (32 x 27).
  const bool pos_par = !batch_par && implicit && nt > 1 && N > 0 && wsz <= 16 * OPQ && OPQ >= 64 * nt;
  const int nparts = batch_par || pos_par ? nt : 1;
  const int ncols = batch_par ? nt : 1;  // the position split shares one phase copy
  static thread_local Buffer scratch;
  // [ncols col buffers][nparts partial dW (only when split)]
  T* cols = scratch.get<T>(colsz * ncols + (nparts > 1 ? wsz * nparts : 0));
  T* partial = cols + colsz * ncols;

  // acc (K x CRS) (+)= dy_n @ col(x_n)^T
  auto image = [&](int64_t n, T* col, T* acc, bool first, bool par) {
    const T* xn = x + n * C * DHW;
    const T* dyn = dy + n * K * OPQ;
    for (int64_t g = 0; g < G; ++g) {
      const T* B = xn + g * Cg * DHW;
      if (implicit) {
        build_phases(p, pg, B, Cg, col, par);
        const PhasedBT<T> pb{col, off, &p, pg, 0};
        gemm_packed<T>(Kg, CRS, OPQ, T(1), dyn + g * Kg * OPQ, OPQ, 1, &PhasedBT<T>::pack, &pb, first ? T(0) : T(1),
                       acc + g * Kg * CRS, CRS, 1);
        continue;
      }
      if (!pw) {
        im2col(p, B, Cg, col, par);
        B = col;
      }
      gemm<T>(Kg, CRS, OPQ, T(1), dyn + g * Kg * OPQ, OPQ, 1, B, 1, OPQ, first ? T(0) : T(1),
              acc + g * Kg * CRS, CRS, 1);
    }
  };

  int used = nt;  // threads the parallel regions below actually get, each with a partial dW
  // dw = the sum of the `used` partial dWs
  auto sum_partials = [&] {
    const bool par = wsz > kParallelGrain;
    (void)par;
#pragma omp parallel for schedule(static) num_threads(nt) if (par)
    for (int64_t i = 0; i < wsz; ++i) {
      T s = partial[i];
      for (int j = 1; j < used; ++j) s += partial[int64_t(j) * wsz + i];
      dw[i] = s;
    }
  };
  if (N == 0) {
    std::memset(dw, 0, sizeof(T) * size_t(wsz));
  } else if (batch_par) {
#pragma omp parallel num_threads(nt)
    {
      const int tid = thread_id(), nthr = team_size();
      if (tid == 0) used = nthr;
      T* col = cols + colsz * tid;
      T* acc = partial + wsz * tid;
      const int64_t n0 = N * tid / nthr, n1 = N * (tid + 1) / nthr;
      for (int64_t n = n0; n < n1; ++n) image(n, col, acc, n == n0, false);
      if (n1 == n0) std::memset(acc, 0, sizeof(T) * size_t(wsz));
    }
    sum_partials();
  } else if (pos_par) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        build_phases(p, pg, x + (n * C + g * Cg) * DHW, Cg, cols, true);
        const T* dyg = dy + (n * K + g * Kg) * OPQ;
        const T beta = n == 0 ? T(0) : T(1);
#pragma omp parallel num_threads(nt)
        {
          const int tid = thread_id(), nthr = team_size();
          if (tid == 0) used = nthr;
          const int64_t a = OPQ * tid / nthr, b = OPQ * (tid + 1) / nthr;
          T* acc = partial + wsz * tid + g * Kg * CRS;
          const PhasedBT<T> pb{cols, off, &p, pg, a};
          if (b > a)
            gemm_packed<T>(Kg, CRS, b - a, T(1), dyg + a, OPQ, 1, &PhasedBT<T>::pack, &pb, beta, acc, CRS, 1);
          else if (n == 0)
            std::fill(acc, acc + Kg * CRS, T(0));
        }
      }
    sum_partials();
  } else {
    for (int64_t n = 0; n < N; ++n) image(n, cols, dw, n == 0, true);
  }

  if (db) bias_grad(N, K, OPQ, dy, db);
}

}  // namespace

CK_REGISTER(conv_fwd_stub, conv_fwd_impl);
CK_REGISTER(conv_fwd_ex_stub, conv_fwd_ex_impl);
CK_REGISTER(conv_pack_weight_stub, conv_pack_weight_impl);
CK_REGISTER(conv_channel_last_stub, channel_last_product);
CK_REGISTER(conv_bwd_data_stub, conv_bwd_data_impl);
CK_REGISTER(conv_bwd_weight_stub, conv_bwd_weight_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
