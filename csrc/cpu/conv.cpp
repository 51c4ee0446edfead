// Convolution by im2col + GEMM: forward, backward-data (col2im) and backward-weight.
// N-d: 1-d and 2-d convolutions arrive as 3-d ones with unit leading dims (see ops/conv.h).
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

// Work (elements) below which a loop stays single-threaded.
constexpr int64_t kParallelGrain = 1 << 15;

// col (Cg*T*R*S x O*P*Q) from the Cg channels of one image starting at x.
template <class T>
void im2col(const ConvParams& p, const T* x, int64_t Cg, T* col, bool parallel) {
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
    T* dst = col + row * OPQ;
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

// The im2col matrix of one image's group (rows c,t,r,s; columns o,p,q), packed straight into
// GEMM panels without being stored (implicit im2col): one pass over the image instead of
// writing the matrix and reading it back to pack it. Panel by panel (NR output positions,
// whose input taps sit in L1), row by row; a run of in-bounds taps of one output row is a
// vector copy at unit stride (a deinterleave at stride 2), padding taps are zeros.
// `qab` holds, per kernel column s, the output columns [qa, qb) whose tap is inside the row.
template <class T>
struct Im2colB {
  const ConvParams* p;
  const T* x;          // the group's first channel of the image
  const int64_t* qab;  // 2 * S values

  struct Seg {
    int64_t lane, len, o, p, q;
  };

  // dst[0:len] = src[0], src[sw], ... (in-bounds taps)
  static void taps(T* dst, const T* src, int64_t len, int64_t sw, bool tail_ok) {
    int64_t i = 0;
    if (sw == 1) {
      for (; i < len; ++i) dst[i] = src[i];
      return;
    }
#if CK_ISA >= 1
    if (sizeof(T) == 4 && sw == 2 && tail_ok) {  // reads src[0 .. 2*len): one past the last tap
      const float* s = reinterpret_cast<const float*>(src);
      float* d = reinterpret_cast<float*>(dst);
      for (; i + 8 <= len; i += 8) {
        const __m256 a = _mm256_loadu_ps(s + 2 * i), b = _mm256_loadu_ps(s + 2 * i + 8);
        const __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
        _mm256_storeu_ps(d + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), _MM_SHUFFLE(3, 1, 2, 0))));
      }
    }
#endif
    (void)tail_ok;
    for (; i < len; ++i) dst[i] = src[i * sw];
  }

  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst) {
    const Im2colB& me = *static_cast<const Im2colB*>(ctx);
    const ConvParams& p = *me.p;
    constexpr int64_t NR = kGemmNR<T>;
    const int64_t PQ = p.P * p.Q, HW = p.H * p.W, DHW = p.in_plane();
    const int64_t sd = p.stride[0], sh = p.stride[1], sw = p.stride[2];
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
      const int64_t nr = imin(NR, nc - j0);
      // the panel's columns as runs along output rows
      Seg seg[NR];
      int nseg = 0;
      {
        const int64_t n = n0 + j0;
        int64_t o = n / PQ, pp = (n % PQ) / p.Q, q = n % p.Q;
        for (int64_t lane = 0; lane < nr;) {
          const int64_t len = imin(nr - lane, p.Q - q);
          seg[nseg++] = Seg{lane, len, o, pp, q};
          lane += len;
          q = 0;
          if (++pp == p.P) {
            pp = 0;
            ++o;
          }
        }
      }
      T* panel = dst + j0 * kc;
      // row pc decoded once, then stepped
      int64_t c = pc / (p.T * p.R * p.S), t = (pc / (p.R * p.S)) % p.T, r = (pc / p.S) % p.R, s = pc % p.S;
      for (int64_t k = 0; k < kc; ++k) {
        T* d = panel + k * NR;
        const T* xc = me.x + c * DHW;
        const int64_t offd = t * p.dilation[0] - p.pad[0];
        const int64_t offh = r * p.dilation[1] - p.pad[1];
        const int64_t offw = s * p.dilation[2] - p.pad[2];
        const int64_t qa = me.qab[2 * s], qb = me.qab[2 * s + 1];
        for (int g = 0; g < nseg; ++g) {
          const Seg& sg = seg[g];
          T* dd = d + sg.lane;
          const int64_t id = sg.o * sd + offd, ih = sg.p * sh + offh;
          if (id < 0 || id >= p.D || ih < 0 || ih >= p.H) {
            for (int64_t i = 0; i < sg.len; ++i) dd[i] = T(0);
            continue;
          }
          const T* xr = xc + id * HW + ih * p.W;
          // lanes before qa and from qb on are padding
          const int64_t a = imin(imax(qa - sg.q, 0), sg.len), b = imax(imin(qb - sg.q, sg.len), a);
          for (int64_t i = 0; i < a; ++i) dd[i] = T(0);
          if (b > a) {
            const int64_t w0 = (sg.q + a) * sw + offw, wlast = (sg.q + b - 1) * sw + offw;
            taps(dd + a, xr + w0, b - a, sw, wlast + 1 < p.W);
          }
          for (int64_t i = b; i < sg.len; ++i) dd[i] = T(0);
        }
        for (int64_t i = nr; i < NR; ++i) d[i] = T(0);
        if (++s == p.S) {
          s = 0;
          if (++r == p.R) {
            r = 0;
            if (++t == p.T) {
              t = 0;
              ++c;
            }
          }
        }
      }
    }
  }
};

// x (Cg channels of one image) += col2im(col). Parallel over channels (each owns its plane).
template <class T>
void col2im_add(const ConvParams& p, const T* col, int64_t Cg, T* x, bool parallel) {
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
          const T* src = col + ((c * p.T + t) * p.R * p.S + r * p.S + s) * OPQ;
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

template <class T>
void add_bias(const T* b, int64_t K, int64_t plane, T* y) {
  for (int64_t k = 0; k < K; ++k) {
    const T bk = b[k];
    T* yk = y + k * plane;
#pragma omp simd
    for (int64_t i = 0; i < plane; ++i) yk[i] += bk;
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

// Pointwise layers with small planes (the 7x7 and 14x14 1x1 convolutions at batch > 1) run as
// one GEMM over the whole batch through channel-major copies: per-image GEMMs would repack the
// whole weight (up to MBs) for every image and run with an output only PQ wide.
inline bool batch_pointwise(const ConvParams& p, bool pw) { return pw && p.G == 1 && p.N > 1 && p.out_plane() < 256; }

// out (N x Cout x PQ) = A (Cout x Cin; strides rsa, csa) times in (N x Cin x PQ): the batch
// folded into the columns of one GEMM (forward: A = W; backward data: A = W^T).
template <class T>
void pointwise_batched(int64_t N, int64_t Cin, int64_t Cout, int64_t PQ, const T* A, int64_t rsa, int64_t csa,
                       const T* in, T* out) {
  static thread_local Buffer in_buf, out_buf;
  const int64_t NP = N * PQ;
  T* it = in_buf.get<T>(Cin * NP);
  T* ot = out_buf.get<T>(Cout * NP);
  swap_outer(in, N, Cin, PQ, it);
  gemm<T>(Cout, NP, Cin, T(1), A, rsa, csa, it, NP, 1, T(0), ot, NP, 1);
  swap_outer(ot, Cout, N, PQ, out);
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
template <class T>
void conv_fwd_impl(const ConvParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t N = p.N, C = p.C, K = p.K, G = p.G, Cg = p.Cg(), Kg = p.Kg();
  const int64_t TRS = p.kernel_volume(), OPQ = p.out_plane(), DHW = p.in_plane();
  const int64_t CRS = Cg * TRS;
  const bool pw = is_pointwise(p);
  // Pack the im2col matrix straight from the image when output rows are at least two panels
  // wide (most panels are then one run of taps; with narrow rows the explicit matrix packs
  // faster) and gemm() would not rather transpose the product.
  const bool implicit = !pw && p.Q >= 2 * kGemmNR<T> && Kg > 1 && !gemm_prefers_transpose<T>(Kg, OPQ);
  const int64_t colsz = pw || implicit ? 0 : CRS * OPQ;
  static thread_local Buffer qab_buf;
  int64_t* qab = implicit ? qab_buf.get<int64_t>(2 * p.S) : nullptr;
  for (int64_t s = 0; implicit && s < p.S; ++s)
    valid_range(p.Q, p.stride[2], s * p.dilation[2] - p.pad[2], p.W, qab[2 * s], qab[2 * s + 1]);

  if (batch_pointwise(p, pw)) {  // Y' (K x N*PQ) = W (K x C) X' (C x N*PQ)
    pointwise_batched<T>(N, C, K, OPQ, w, C, 1, x, y);
    if (b)
      for (int64_t n = 0; n < N; ++n) add_bias(b, K, OPQ, y + n * K * OPQ);
    return;
  }

  auto image = [&](int64_t n, T* col, bool par) {
    const T* xn = x + n * C * DHW;
    T* yn = y + n * K * OPQ;
    for (int64_t g = 0; g < G; ++g) {
      const T* B = xn + g * Cg * DHW;
      if (implicit) {
        const Im2colB<T> ib{&p, B, qab};
        gemm_packed<T>(Kg, OPQ, CRS, T(1), w + g * Kg * CRS, CRS, 1, &Im2colB<T>::pack, &ib, T(0), yn + g * Kg * OPQ,
                       OPQ, 1);
        continue;
      }
      if (!pw) {
        im2col(p, B, Cg, col, par);
        B = col;
      }
      gemm<T>(Kg, OPQ, CRS, T(1), w + g * Kg * CRS, CRS, 1, B, OPQ, 1, T(0), yn + g * Kg * OPQ, OPQ, 1);
    }
    if (b) add_bias(b, K, OPQ, yn);
  };
  for_each_image<T>(N, colsz, image);
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
  const int64_t colsz = pw ? 0 : CRS * OPQ;
  const int nt = max_threads();
  const bool batch_par = nt > 1 && N >= nt;
  const int nparts = batch_par ? nt : 1;
  static thread_local Buffer scratch;
  // [nparts col buffers][nparts partial dW (only when batch_par)]
  T* cols = scratch.get<T>(colsz * nparts + (batch_par ? wsz * nparts : 0));
  T* partial = cols + colsz * nparts;

  // acc (K x CRS) (+)= dy_n @ col(x_n)^T
  auto image = [&](int64_t n, T* col, T* acc, bool first, bool par) {
    const T* xn = x + n * C * DHW;
    const T* dyn = dy + n * K * OPQ;
    for (int64_t g = 0; g < G; ++g) {
      const T* B = xn + g * Cg * DHW;
      if (!pw) {
        im2col(p, B, Cg, col, par);
        B = col;
      }
      gemm<T>(Kg, CRS, OPQ, T(1), dyn + g * Kg * OPQ, OPQ, 1, B, 1, OPQ, first ? T(0) : T(1),
              acc + g * Kg * CRS, CRS, 1);
    }
  };

  if (N == 0) {
    std::memset(dw, 0, sizeof(T) * size_t(wsz));
  } else if (batch_par) {
#pragma omp parallel num_threads(nt)
    {
      const int tid = thread_id();
      int nthr = 1;
#ifdef _OPENMP
      nthr = omp_get_num_threads();
#endif
      T* col = cols + colsz * tid;
      T* acc = partial + wsz * tid;
      const int64_t n0 = N * tid / nthr, n1 = N * (tid + 1) / nthr;
      for (int64_t n = n0; n < n1; ++n) image(n, col, acc, n == n0, false);
      if (n1 == n0) std::memset(acc, 0, sizeof(T) * size_t(wsz));
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t i = 0; i < wsz; ++i) {
        T s = partial[i];
        for (int j = 1; j < nthr; ++j) s += partial[int64_t(j) * wsz + i];
        dw[i] = s;
      }
    }
  } else {
    for (int64_t n = 0; n < N; ++n) image(n, cols, dw, n == 0, true);
  }

  if (db) {
    const bool par = max_threads() > 1 && N * K * OPQ > kParallelGrain;
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t k = 0; k < K; ++k) {
      T s = T(0);
      for (int64_t n = 0; n < N; ++n) {
        const T* d = dy + (n * K + k) * OPQ;
        T part = T(0);
#pragma omp simd reduction(+ : part)
        for (int64_t i = 0; i < OPQ; ++i) part += d[i];
        s += part;
      }
      db[k] = s;
    }
  }
}

}  // namespace

CK_REGISTER(conv_fwd_stub, conv_fwd_impl);
CK_REGISTER(conv_bwd_data_stub, conv_bwd_data_impl);
CK_REGISTER(conv_bwd_weight_stub, conv_bwd_weight_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
