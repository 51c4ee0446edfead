// GEMM, BLIS style: five loops around a register-blocked MR x NR micro-kernel.
//
//   C(MxN) = alpha * A(MxK) * B(KxN) + beta * C
//
// Loop 5 (jc) walks N in NC-wide column blocks, loop 4 (pc) walks K in KC-deep slices and
// packs B(KC x NC) into NR-wide panels, loop 3 (ic) walks M in MC-tall blocks and packs
// A(MC x KC) into MR-tall panels, loops 2/1 (jr, ir) call the micro-kernel on one MR x NR
// tile. Packing zero-pads partial panels, so the micro-kernel runs NR-wide register tiles
// (a variant per row count skips a partial panel's zero rows) and handles an edge tile only
// when it writes C (through a small buffer).
// Packed panels are contiguous and 64-byte aligned; A and B may have any strides.
//
// Tiles per ISA (accumulators must fit the register file: 16 vector registers on AVX2,
// 32 on AVX-512):
//   scalar (SSE2 baseline)  float 4 x 8,   double 4 x 4
//   AVX2                    float 6 x 16,  double 6 x 8    (12 accumulators)
//   AVX-512                 float 12 x 32, double 12 x 16  (24 accumulators)
#include <array>
#include <new>
#include <type_traits>
#include <utility>

#include "cpu/common.h"
#include "ops/gemm.h"

namespace ck {
namespace CK_ISA_NS {

void Buffer::throw_bad_alloc() { throw std::bad_alloc(); }

namespace {

template <class T>
struct Tile {
  static constexpr int NV = 2;                       // vectors per micro-tile row
  static constexpr int NR = NV * kLanes<T>;
  static_assert(NR == kGemmNR<T>, "common.h's kGemmNR is the micro-tile width");
  static constexpr int MR = int(kGemmMR);
  static constexpr int KC = int(kGemmKC);
  static constexpr int MC = MR * 24;
  static constexpr int NC = NR * 128;
};

// One MR x NR tile: acc = sum_k a[k][0:MR] (x) b[k][0:NR], then C = alpha*acc + beta*C
// for the top-left mr x nr corner; then, when C is final, C += bias[i] per row (bias non-null;
// bias[j] per column if bias_cols), C += res (res non-null: a matrix with C's strides) and, if
// relu, C clamped to [0, relu_max] (relu_clamp; NaN stays NaN). A column-major C (rsc == 1:
// a channel-last convolution writing its NCHW output, or a transposed product) with over L/2
// rows is written through register transposes, each column's mr values at once.
// a is a packed panel (MR values per k); b holds NR values per k, rows ldb apart (a packed
// panel: ldb = NR; a panel read in place: the matrix's row stride). Only the first ROWS (>= mr) rows are
// computed: a partial panel's zero rows cost nothing (a 64-row weight is 5 full panels and a
// 4-row one, not 72 rows of multiply-adds).
template <class T, int ROWS, int NV, bool AB>
void ukernel(int64_t kc, const T* __restrict a, const T* __restrict b, int64_t ldb, T* __restrict c, int64_t rsc,
             int64_t csc, int mr, int nr, T alpha, T beta, const T* bias, bool bias_cols, const T* res, bool relu,
             T relu_max, int64_t cb, int cph, int64_t abs, const char* pf, const char* pf_end) {
  using V = Vec<T>;
  constexpr int MR = ROWS, L = kLanes<T>, NR = Tile<T>::NR, STEP = Tile<T>::MR;
  static_assert(NV >= 1 && NV <= Tile<T>::NV, "a tile row is one or two vectors");
  // (every index of acc a compile-time constant: see static_for)
  V acc[MR][NV];
  static_for<MR>([&](auto i) CK_FORCE_INLINE {
    static_for<NV>([&](auto j) CK_FORCE_INLINE { acc[i][j] = V{}; });
  });
  // column jj of the tile: at c + jj (row-major C), or in C's channel blocks (cb: see GemmEpi::cblock;
  // cph: the tile's first column's place in its block)
  auto col = [&](int64_t jj) -> int64_t {
    if (!cb) return jj * csc;
    const int64_t u = cph + jj;
    return (u / kCBlock) * cb + u % kCBlock - cph;
  };
  // Start fetching the C tile now: it is written once per KC slice, often from beyond L2.
  const int64_t cend = col(nr - 1);
  for (int i = 0; i < mr; ++i) {
    __builtin_prefetch(c + i * rsc, 1, 3);
    __builtin_prefetch(c + i * rsc + cend, 1, 3);
  }
  // one k: B's row times the MR values of A's column k, which lie rs apart from ak; and a line
  // of [pf, pf_end) fetched into L2 (the caller's next B panel)
  auto step = [&](const T* __restrict ak, int64_t rs) CK_FORCE_INLINE {
    fetch_line(pf, pf_end);
    V bv[NV];
    static_for<NV>([&](auto j) CK_FORCE_INLINE { bv[j] = vload<V>(b + j * L); });
    static_for<MR>([&](auto i) CK_FORCE_INLINE {
      const V ai = vbroadcast<V>(ak[i * rs]);
      static_for<NV>([&](auto j) CK_FORCE_INLINE { acc[i][j] += ai * bv[j]; });
    });
    b += ldb;
  };
  if constexpr (AB) {
    // A read in place from a channel-blocked input (GemmEpi::ablk): row i, column k of this
    // slice at a + i * kCBlock + (k / kCBlock) * abs + k % kCBlock
    for (int64_t k0 = 0; k0 < kc; k0 += kCBlock) {
      const T* ak = a + (k0 / kCBlock) * abs;
      const int64_t kn = kc - k0 < kCBlock ? kc - k0 : kCBlock;
      // the next block's MR lines into L1: MR streams bs apart, which the hardware
      // prefetchers do not follow (Xeon, interleaved: blocked in and out at batch 8 0.89-0.93
      // of the time on ResNet-50's 1x1 layers; the light ResNet-50 and MobileNetV2 graphs at
      // batch 8 0.95, at batch 1 0.97-0.99)
      if (k0 + kCBlock < kc)
        static_for<MR>([&](auto i) CK_FORCE_INLINE { __builtin_prefetch(ak + abs + i * kCBlock, 0, 3); });
#pragma GCC unroll 4
      for (int64_t k = 0; k < kn; ++k) step(ak + k, kCBlock);
    }
  } else {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k, a += STEP) step(a, 1);
  }
  if (mr == MR && csc == 1 && nr % L == 0) {
    // (with a partial tile of whole vectors, e.g. 16 output channels in 32 lanes, too)
    const V va = vbroadcast<V>(alpha), hi = vbroadcast<V>(relu_max);
    const int nv = nr / L;
    int64_t off[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) off[j] = cb ? col(j * L) : j * L;
    if (alpha == T(1) && beta == T(0)) {
      // The usual case (a product's only K slice, or its first with beta 0): the epilogue's
      // options fixed per instantiation, so that each stored vector costs its few operations
      // and no tests (with a 16-deep product, 16 -> 96 at 112x112, the tests and offset
      // arithmetic per vector took about as many instructions as the multiply-adds).
      // BM: no bias, bias per row, bias per column.
      auto store = [&](auto bm, auto with_res, auto with_relu) CK_FORCE_INLINE {
        constexpr int BM = decltype(bm)::value;
        constexpr bool RES = decltype(with_res)::value, RELU = decltype(with_relu)::value;
        static_for<NV>([&](auto j) CK_FORCE_INLINE {
          if (j >= nv) return;
          const V bc = BM == 2 ? vload<V>(bias + j * L) : V{};
          T* cj = c + off[j];
          const T* rj = RES ? res + off[j] : nullptr;
          static_for<MR>([&](auto i) CK_FORCE_INLINE {
            V r = acc[i][j];
            if constexpr (BM == 1) r += vbroadcast<V>(bias[i]);
            if constexpr (BM == 2) r += bc;
            if constexpr (RES) r += vload<V>(rj + i * rsc);
            if constexpr (RELU) r = relu_clamp<T>(r, hi);
            vstore(cj + i * rsc, r);
          });
        });
      };
      auto with_bias = [&](auto bm) CK_FORCE_INLINE {
        using Y = std::true_type;
        using N = std::false_type;
        if (res) relu ? store(bm, Y{}, Y{}) : store(bm, Y{}, N{});
        else relu ? store(bm, N{}, Y{}) : store(bm, N{}, N{});
      };
      if (!bias) with_bias(std::integral_constant<int, 0>{});
      else if (bias_cols) with_bias(std::integral_constant<int, 2>{});
      else with_bias(std::integral_constant<int, 1>{});
      return;
    }
    static_for<MR>([&](auto i) CK_FORCE_INLINE {
      static_for<NV>([&](auto j) CK_FORCE_INLINE {
        if (j >= nv) return;
        const int64_t o = i * rsc + off[j];
        T* p = c + o;
        V r = va * acc[i][j];
        if (beta != T(0)) r += vbroadcast<V>(beta) * vload<V>(p);
        if (bias) r += bias_cols ? vload<V>(bias + j * L) : vbroadcast<V>(bias[i]);
        if (res) r += vload<V>(res + o);
        if (relu) r = relu_clamp<T>(r, hi);
        vstore(p, r);
      });
    });
    return;
  }
  alignas(64) T t[MR * NR];
  static_for<MR>([&](auto i) CK_FORCE_INLINE {
    static_for<NV>([&](auto j) CK_FORCE_INLINE { vstore(t + i * NR + j * L, acc[i][j]); });
  });
  if (rsc == 1 && csc != 1 && 2 * mr > L) {
    // column-major C: an L x L transpose per L rows and L columns, then each column's run of
    // up to L rows in one (masked) vector. (With at most L/2 rows the scalar loop below is
    // faster: gemm()'s transposed 500 x 3 x 300 product took 1.10 of its time this way.)
    const V va = vbroadcast<V>(alpha), vb = vbroadcast<V>(beta), hi = vbroadcast<V>(relu_max);
    auto head = [](const T* p, int n) { return n == L ? vload<V>(p) : vload_head<V>(p, n); };
    for (int i0 = 0; i0 < mr; i0 += L) {
      const int n = mr - i0 < L ? mr - i0 : L;
      for (int j0 = 0; j0 < nr; j0 += L) {
        V v[L];
        for (int i = 0; i < L; ++i) v[i] = i0 + i < MR ? vload<V>(t + (i0 + i) * NR + j0) : V{};
        transpose_tile<T>(v);
        const int un = nr - j0 < L ? nr - j0 : L;
        for (int u = 0; u < un; ++u) {
          const int64_t j = j0 + u;
          T* p = c + j * csc + i0;
          V r = va * v[u];
          if (beta != T(0)) r += vb * head(p, n);
          if (bias) r += bias_cols ? vbroadcast<V>(bias[j]) : head(bias + i0, n);
          if (res) r += head(res + j * csc + i0, n);
          if (relu) r = relu_clamp<T>(r, hi);
          if (n == L) vstore(p, r);
          else vstore_head(p, r, n);
        }
      }
    }
    return;
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      const int64_t o = i * rsc + col(j);
      T* p = c + o;
      T r = alpha * t[i * NR + j];
      if (beta != T(0)) r += beta * *p;
      if (bias) r += bias[bias_cols ? j : i];
      if (res) r += res[o];
      if (relu) r = relu_clamp<T>(r, relu_max);
      *p = r;
    }
}

// ukernel<T, ROWS> for ROWS = 1..MR, indexed by ROWS - 1
template <class T>
using UkernelFn = void (*)(int64_t, const T*, const T*, int64_t, T*, int64_t, int64_t, int, int, T, T, const T*,
                           bool, const T*, bool, T, int64_t, int, int64_t, const char*, const char*);
template <class T, int NV, bool AB, std::size_t... R>
constexpr std::array<UkernelFn<T>, sizeof...(R)> ukernel_table(std::index_sequence<R...>) {
  return {&ukernel<T, int(R) + 1, NV, AB>...};
}
// kUkernels[AB][one vector wide][rows - 1]: one vector wide for tiles of at most L columns (16
// output channels of a channel-last product in a 32-lane tile would otherwise cost a full
// tile's multiply-adds); AB: A read in place from a channel-blocked input (GemmEpi::ablk).
template <class T>
constexpr std::array<std::array<UkernelFn<T>, Tile<T>::MR>, 2> kUkernelsP = {
    ukernel_table<T, Tile<T>::NV, false>(std::make_index_sequence<Tile<T>::MR>{}),
    ukernel_table<T, 1, false>(std::make_index_sequence<Tile<T>::MR>{})};
template <class T>
constexpr std::array<std::array<UkernelFn<T>, Tile<T>::MR>, 2> kUkernelsB = {
    ukernel_table<T, Tile<T>::NV, true>(std::make_index_sequence<Tile<T>::MR>{}),
    ukernel_table<T, 1, true>(std::make_index_sequence<Tile<T>::MR>{})};

// A W-wide panel made k-major from `rows` <= W runs along k (row i at src + i*ld, unit stride
// along k): dst[k*W + i] = src[i*ld + k] for i < rows, 0 for rows <= i < W. L columns at a time,
// each group of up to L runs turned by one L x L register transpose. Serves row-major weights as
// A and a transposed operand as B (a scalar loop here cost 40% of the micro-kernel's time on
// 512 x 4608 weights against 49 columns).
template <class T, int W>
void pack_transposed(int64_t kc, int rows, const T* src, int64_t ld, T* dst) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  int64_t k = 0;
  for (; k + L <= kc; k += L)
    for (int g = 0; g < W; g += L) {
      const int n = rows - g < 0 ? 0 : (rows - g < L ? rows - g : L);  // runs of this group
      const int w = W - g < L ? W - g : L;                            // lanes it writes
      V v[L];
      for (int i = 0; i < L; ++i) v[i] = i < n ? vload<V>(src + (g + i) * ld + k) : V{};
      transpose_tile<T>(v);
      for (int u = 0; u < L; ++u) {
        T* d = dst + (k + u) * W + g;
        if (w == L) vstore(d, v[u]);
        else vstore_head(d, v[u], w);
      }
    }
  for (; k < kc; ++k)
    for (int i = 0; i < W; ++i) dst[k * W + i] = i < rows ? src[i * ld + k] : T(0);
}

// Packs one MR-row panel of A: for each k, the MR values A[i][k] (zero past row mr).
template <class T>
void pack_a_panel(int64_t kc, int64_t mr, const T* A, int64_t rsa, int64_t csa, T* dst) {
  constexpr int MR = Tile<T>::MR;
  if (csa == 1) return pack_transposed<T, MR>(kc, int(mr), A, rsa, dst);
  for (int64_t k = 0; k < kc; ++k) {
    int i = 0;
    for (; i < mr; ++i) dst[k * MR + i] = A[i * rsa + k * csa];
    for (; i < MR; ++i) dst[k * MR + i] = T(0);
  }
}

// Packs rows [0, mc) x cols [0, kc) of A into MR-row panels (panel ip at dst + ip*MR*kc).
// When A's columns are contiguous (rsa == 1: a transposed operand, or the output positions
// of a channel-last convolution) all panels are filled KB columns at a time, so each column
// is read as one run of mc values (a short run per panel at a large stride defeats the
// hardware prefetcher) and each panel is written a few whole cache lines at a time (panels
// kc*MR values apart often share their cache set: filled one column at a time, 16 of them
// evicted one another, and the packing cost a quarter of a 1x1 convolution's product).
template <class T>
void pack_a_block(int64_t kc, int64_t mc, const T* A, int64_t rsa, int64_t csa, T* dst) {
  constexpr int MR = Tile<T>::MR;
  constexpr int64_t KB = 16;
  const int64_t full = mc / MR;
  if (rsa == 1 && full > 1) {
    for (int64_t k0 = 0; k0 < kc; k0 += KB) {
      const int64_t k1 = imin(kc, k0 + KB);
      for (int64_t ip = 0; ip < full; ++ip)
        for (int64_t k = k0; k < k1; ++k) std::memcpy(dst + ip * MR * kc + k * MR, A + k * csa + ip * MR, MR * sizeof(T));
    }
    if (full * MR < mc) pack_a_panel(kc, mc - full * MR, A + full * MR, rsa, csa, dst + full * MR * kc);
    return;
  }
  for (int64_t ip = 0; ip * MR < mc; ++ip)
    pack_a_panel(kc, imin(MR, mc - ip * MR), A + ip * MR * rsa, rsa, csa, dst + ip * MR * kc);
}

template <class T>
void pack_b_panel(int64_t kc, int64_t nr, const T* B, int64_t rsb, int64_t csb, T* dst) {
  constexpr int NR = Tile<T>::NR;
  if (nr == NR && csb == 1) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, B + k * rsb, NR * sizeof(T));
    return;
  }
  if (rsb == 1) return pack_transposed<T, NR>(kc, int(nr), B, csb, dst);  // a transposed operand
  for (int64_t k = 0; k < kc; ++k) {
    int j = 0;
    for (; j < nr; ++j) dst[k * NR + j] = B[k * rsb + j * csb];
    for (; j < NR; ++j) dst[k * NR + j] = T(0);
  }
}

// y[i] = alpha * sum_k P[i*psi + k*psk] * v[k*vs] + beta * y[i*ys], for i < L: the GEMM with
// M == 1 or N == 1 (a batch-1 linear layer), where packing would cost more than the product.
template <class T>
void gemv(int64_t L, int64_t K, T alpha, const T* P, int64_t psi, int64_t psk, const T* v, int64_t vs, T beta,
          T* y, int64_t ys) {
  using V = Vec<T>;
  constexpr int W = kLanes<T>;
  const int nthreads = double(L) * double(K) > 1e5 ? max_threads() : 1;
  (void)nthreads;
  static thread_local Buffer vbuf;
  const T* vc = v;
  if (vs != 1) {  // gather v once so the inner loops are unit-stride
    T* t = vbuf.get<T>(K);
    for (int64_t k = 0; k < K; ++k) t[k] = v[k * vs];
    vc = t;
  }
  if (psk == 1) {  // rows of P contiguous: one vectorized dot product per output
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t i = 0; i < L; ++i) {
      const T* row = P + i * psi;
      V acc0{}, acc1{};
      int64_t k = 0;
      for (; k + 2 * W <= K; k += 2 * W) {
        acc0 += vload<V>(row + k) * vload<V>(vc + k);
        acc1 += vload<V>(row + k + W) * vload<V>(vc + k + W);
      }
      acc0 += acc1;
      T sum = 0;
      for (int j = 0; j < W; ++j) sum += acc0[j];
      for (; k < K; ++k) sum += row[k] * vc[k];
      T r = alpha * sum;
      y[i * ys] = beta != T(0) ? r + beta * y[i * ys] : r;
    }
    return;
  }
  // columns of P contiguous (or general strides): accumulate column by column (axpy).
  T* acc = static_cast<T*>(nullptr);
  Buffer local;
  acc = local.get<T>(L);
  for (int64_t i = 0; i < L; ++i) acc[i] = T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T* col = P + k * psk;
    const T vk = vc[k];
    if (psi == 1) {
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) acc[i] += col[i] * vk;
    } else {
      for (int64_t i = 0; i < L; ++i) acc[i] += col[i * psi] * vk;
    }
  }
  for (int64_t i = 0; i < L; ++i) {
    T r = alpha * acc[i];
    y[i * ys] = beta != T(0) ? r + beta * y[i * ys] : r;
  }
}

}  // namespace


template <class T>
void pack_b_columns(int64_t kc, int64_t nr, const T* B, int64_t ld, T* dst) {
  pack_b_panel(kc, nr, B, 1, ld, dst);
}

// C = beta * C (an empty product); beta == 0 never reads C.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t rsc, int64_t csc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T* p = C + i * rsc + j * csc;
      *p = beta == T(0) ? T(0) : beta * *p;
    }
}

// The epilogue of an empty product (K == 0): C += bias per row, += residual, then relu.
template <class T>
void epilogue_c(int64_t M, int64_t N, const GemmEpi<T>& ex, T* C, int64_t rsc, int64_t csc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T* p = C + i * rsc + j * csc;
      if (ex.bias) *p += ex.bias[ex.bias_cols ? j : i];
      if (ex.residual) *p += ex.residual[i * rsc + j * csc];
      if (ex.relu) *p = relu_clamp<T>(*p, ex.relu_max);
    }
}

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
          int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) return scale_c(M, N, beta, C, rsc, csc);
  if (N == 1) return gemv<T>(M, K, alpha, A, rsa, csa, B, rsb, beta, C, rsc);
  if (M == 1) return gemv<T>(N, K, alpha, B, csb, rsb, A, csa, beta, C, csc);
  // Tiles are MR x NR with NR > MR; when N is far below NR and M large, computing
  // C^T = B^T A^T instead pads far fewer lanes. Strides make it free.
  if (gemm_prefers_transpose<T>(M, N))
    return gemm_blocked<T>(N, M, K, alpha, B, csb, rsb, A, csa, rsa, beta, C, csc, rsc, {});
  return gemm_blocked<T>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, {});
}

// Packs rows [pc, pc+kc) x columns [n0, n0+nc) of an ordinary strided B into NR-wide panels;
// rows: B is larger than L2 and unit-stride, so several panels are packed row by row
// (GemmEpi::brows).
template <class T>
struct MatrixB {
  const T* B;
  int64_t rsb, csb;
  bool rows = false;
  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst) {
    const MatrixB& m = *static_cast<const MatrixB*>(ctx);
    constexpr int64_t NR = Tile<T>::NR;
    if (m.rows && nc > NR) {
      // Several panels of unit-stride rows: row by row, each read as one run (the hardware
      // prefetcher follows it; panel by panel, every row is a separate stream from DRAM).
      const int64_t full = nc / NR, tail = nc - full * NR;
      for (int64_t k = 0; k < kc; ++k) {
        const T* row = m.B + (pc + k) * m.rsb + n0;
        T* d = dst + k * NR;
        for (int64_t jp = 0; jp < full; ++jp) std::memcpy(d + jp * NR * kc, row + jp * NR, NR * sizeof(T));
        if (tail) {
          T* dt = d + full * NR * kc;
          std::memcpy(dt, row + full * NR, size_t(tail) * sizeof(T));
          std::memset(dt + tail, 0, size_t(NR - tail) * sizeof(T));
        }
      }
      return;
    }
    for (int64_t jp = 0; jp * NR < nc; ++jp)
      pack_b_panel(kc, imin(NR, nc - jp * NR), m.B + pc * m.rsb + (n0 + jp * NR) * m.csb, m.rsb, m.csb,
                   dst + jp * NR * kc);
    // One panel at a time (gemm_serial's small-M loop): start fetching the next panel's rows,
    // which lie a row stride apart (too far apart for the hardware prefetcher; an activation
    // read from DRAM made a batch-1 1x1 convolution 35% slower than with the same data in cache).
    if (nc <= NR && m.csb == 1)
      for (int64_t k = 0; k < kc; ++k) {
        const T* r = m.B + (pc + k) * m.rsb + (n0 + nc) * m.csb;
        __builtin_prefetch(r, 0, 2);
        __builtin_prefetch(r + NR - 1, 0, 2);
      }
  }
  // Full panels of a unit-stride B are read in place. (Measured at batch 8, 2 threads: faster
  // than packing for every row stride tried, 784 bytes to 50 KB, powers of two included, with
  // 12 to 24 rows of A; prefetching the next panel's rows in software made it slower.)
  static const T* direct(const void* ctx, int64_t pc, int64_t n0, int64_t* ldb) {
    const MatrixB& m = *static_cast<const MatrixB*>(ctx);
    if (m.csb != 1) return nullptr;
    *ldb = m.rsb;
    return m.B + pc * m.rsb + n0;
  }
};

// One thread's GEMM on rows [m0, m0 + M) and columns [n0, n0 + N) of the whole product (A, C
// and ex.bias already point at row m0, C at column n0): loops 5..1 in order, packing into this
// thread's own panels (reused across calls), or reading A's panels from ex.apacked (the whole
// A, packed by pack_a_whole: row m0's panel of slice pc at apacked + pc*mpad + m0*kc). No
// synchronization: the parallel driver below gives each thread its own block of C. B is only
// seen through `pack` (a strided matrix, or the implicit im2col matrix of a convolution), or
// read from ex.bpacked (the whole B, packed by pack_b_whole).
template <class T>
void gemm_serial(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                 PackB<T> pack, const void* ctx, int64_t m0, int64_t n0, T beta, T* C, int64_t rsc, int64_t csc,
                 const GemmEpi<T>& ex, int64_t mpad, int64_t npad) {
  using TL = Tile<T>;
  constexpr int64_t MR = TL::MR, NR = TL::NR, MC = TL::MC, NC = TL::NC;
  const int64_t KC = ex.kc > 0 ? ex.kc : TL::KC;
  static thread_local Buffer abuf, bbuf;
  const int64_t nc_max = imin(NC, ceil_div(N, NR) * NR);
  const int64_t mc_max = imin(MC, ceil_div(M, MR) * MR);
  const int64_t kc_max = imin(KC, K);
  T* pa = ex.apacked || ex.ablk ? nullptr : abuf.get<T>(mc_max * kc_max);
  T* pb = ex.bpacked ? nullptr : bbuf.get<T>(nc_max * kc_max);
  // A's panels of rows [ic, ic + mc) of slice pc (packed now unless prepacked)
  auto a_panels = [&](int64_t pc, int64_t kc, int64_t ic, int64_t mc) -> const T* {
    if (ex.ablk) return nullptr;
    if (ex.apacked) return ex.apacked + packed_a_index(mpad, K, m0 + ic, pc);
    if (ex.apack) {
      ex.apack(ex.actx, pc, kc, m0 + ic, mc, pa);
      return pa;
    }
    pack_a_block(kc, mc, A + ic * rsa + pc * csa, rsa, csa, pa);
    return pa;
  };
  // B's panels of columns [j, j + nc) of slice pc (packed now unless prepacked)
  auto b_panels = [&](int64_t pc, int64_t kc, int64_t j, int64_t nc) -> const T* {
    if (ex.bpacked) return ex.bpacked + pc * npad + (n0 + j) * kc;
    pack(ctx, pc, kc, n0 + j, nc, pb);
    return pb;
  };
  // Prepacked A (a layer's weights) streams from DRAM once per call; the panels of the block
  // after (pc, ic) are fetched into L2 while this block's are reused from there, a part per B
  // panel (without it the first B panel of each block waited on DRAM).
  auto next_a = [&](int64_t pc, int64_t ic) -> FetchAhead {
    if (!ex.apacked) return {};
    ic += MC;
    if (ic >= M) {
      ic = 0;
      pc += KC;
      if (pc >= K) return {};
    }
    const int64_t kc = imin(KC, K - pc), mc = imin(MC, M - ic);
    return {reinterpret_cast<const char*>(ex.apacked + packed_a_index(mpad, K, m0 + ic, pc)),
            ceil_div(mc, MR) * MR * kc * int64_t(sizeof(T))};
  };
  // row panel ip of the block at row ic, slice pc: in the packed panels ap, or in place in a
  // channel-blocked A (GemmEpi::ablk)
  auto a_at = [&](const T* ap, int64_t pc, int64_t kc, int64_t ic, int64_t ip) -> const T* {
    if (ex.ablk) return ex.ablk + (m0 + ic + ip * MR) * kCBlock + (pc / kCBlock) * ex.ablk_bs;
    return ap + ip * MR * kc;
  };
  // the epilogue applies once C is complete: on the last K slice
  auto tile = [&](int64_t kc, const T* a, const T* b, int64_t ldb, int64_t i, int64_t j, int64_t mr, int64_t nr,
                  T beta_pc, bool last, const char* pf = nullptr, const char* pf_end = nullptr) {
    const int64_t co = i * rsc + (ex.cblock ? cblock_offset(n0 + j, ex.cblock) - cblock_offset(n0, ex.cblock) : j * csc);
    (ex.ablk ? kUkernelsB<T> : kUkernelsP<T>)[nr <= kLanes<T>][mr - 1](
        kc, a, b, ldb, C + co, rsc, csc, int(mr), int(nr), alpha, beta_pc,
        last && ex.bias ? ex.bias + (ex.bias_cols ? j : i) : nullptr, ex.bias_cols,
        last && ex.residual ? ex.residual + co : nullptr, last && ex.relu, ex.relu_max, ex.cblock,
        int((n0 + j) % kCBlock), ex.ablk_bs, pf, pf_end);
  };
  if (M <= MC) {
    // All of A fits one MC block, so each B panel is used once: pack it just before use, into
    // L1, instead of packing the whole NC x KC block out to L3 and reading it back.
    // With one or two A panels, B's full panels are read in place where ex.bdirect finds them.
    // Otherwise, with ex.brows, B is packed a group of panels at a time (about 512 KB, in L2).
    const int64_t mpanels = ceil_div(M, MR);
    const bool direct = ex.bdirect && !ex.bpacked && mpanels <= 2;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = imin(KC, K - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const T* ap = a_panels(pc, kc, 0, M);
      const int64_t npanels = ceil_div(N, NR);
      FetchAhead na = next_a(pc, 0);
      const int64_t group = direct || ex.bpacked || !ex.brows
                                ? 1
                                : imax(1, imin(NC / NR, (int64_t(512) << 10) / (kc * NR * int64_t(sizeof(T)))));
      for (int64_t j0 = 0; j0 < N; j0 += group * NR) {
        const int64_t nb = imin(group * NR, N - j0);
        const T* block = group > 1 ? b_panels(pc, kc, j0, nb) : nullptr;
        for (int64_t j = j0; j < j0 + nb; j += NR) {
          const int64_t nr = imin(NR, N - j);
          na.upto(j / NR + 1, npanels);
          int64_t ldb = NR;
          const T* bp = block ? block + (j - j0) * kc : direct && nr == NR ? ex.bdirect(ctx, pc, n0 + j, &ldb) : nullptr;
          if (!bp) {
            ldb = NR;
            bp = b_panels(pc, kc, j, nr);
          }
          // A prepacked B (a layer's weights) comes from beyond L2 on a layer's first pass:
          // the next panel is fetched into L2 while this one's tiles run, a part per tile, a
          // line per k (else the first tile of each panel waits on L3 for it): this slice's
          // next panel, else the next slice's first, else, for a call of one panel
          // (gemm_packed's units on short products, taken in column order), the panel after
          // it. Batch 1, packed weights, caches evicted, 2 threads (ab_builds.py --packed
          // --cold, Xeon with AVX-512): 2048 -> 512 at 7x7 0.83 of the time, 1024 -> 256 at
          // 14x14 0.91.
          FetchAhead nextb;
          if (ex.bpacked) {
            if (j + NR >= N && pc + kc < K) {
              const int64_t kn = imin(KC, K - pc - kc);
              nextb = {reinterpret_cast<const char*>(ex.bpacked + (pc + kc) * npad + n0 * kn), NR * kn * int64_t(sizeof(T))};
            } else if (j + NR < N || (N <= NR && n0 + j + NR < npad)) {
              nextb = {reinterpret_cast<const char*>(bp + NR * kc), NR * kc * int64_t(sizeof(T))};
            }
          }
          for (int64_t ip = 0; ip < mpanels; ++ip) {
            const char *pf, *pf_end;
            nextb.part(ip, mpanels, pf, pf_end);
            tile(kc, a_at(ap, pc, kc, 0, ip), bp, ldb, ip * MR, j, imin(MR, M - ip * MR), nr, beta_pc, pc + kc == K, pf,
                 pf_end);
          }
        }
      }
    }
    return;
  }
  // Loop 5: over N, NC columns at a time.
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = imin(NC, N - jc);
    const int64_t npanels = ceil_div(nc, NR);
    // Loop 4: over K, KC at a time; the first slice applies beta, later ones accumulate.
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = imin(KC, K - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const T* bp = b_panels(pc, kc, jc, nc);
      // Loop 3: over M, MC rows at a time.
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = imin(MC, M - ic);
        const int64_t mpanels = ceil_div(mc, MR);
        const T* ap = a_panels(pc, kc, ic, mc);
        FetchAhead na = next_a(pc, ic);
        // Loops 2 and 1: each NR-wide B panel (in L1) against every MR-tall A panel (in L2).
        for (int64_t jp = 0; jp < npanels; ++jp) {
          na.upto(jp + 1, npanels);
          for (int64_t ip = 0; ip < mpanels; ++ip)
            tile(kc, a_at(ap, pc, kc, ic, ip), bp + jp * NR * kc, NR, ic + ip * MR, jc + jp * NR, imin(MR, mc - ip * MR),
                 imin(NR, nc - jp * NR), beta_pc, pc + kc == K);
        }
      }
    }
  }
}

// About how many units a thread's block of C is cut into where threads take each other's
// (gemm_packed).
constexpr int64_t kUnitsPerBlock = 8;

// How `nt` threads split C: a tm x tn grid of blocks (tm * tn == nt), whole micro-tiles each.
// Each thread packs the A rows and B columns of its own block, so the grid minimizes the
// largest block's cost: its multiply-adds plus (in the same units, about 8 per packed value
// per k) its packing.
template <class T>
void thread_grid(int64_t M, int64_t N, int nt, int& tm, int& tn, bool a_prepacked, bool b_prepacked) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  const int64_t mp = ceil_div(M, MR), np = ceil_div(N, NR);
  double best = 0;
  tm = 1;
  tn = nt;
  for (int a = 1; a <= nt; ++a) {
    if (nt % a) continue;
    const int b = nt / a;
    // (a partial row panel computes its rows only; a partial column panel all NR lanes)
    const double mt = double(imin(ceil_div(mp, a) * MR, M)), ntl = double(ceil_div(np, b) * NR);
    const double cost = mt * ntl + 8.0 * ((a_prepacked ? 0.0 : mt) + (b_prepacked ? 0.0 : ntl));
    if (a == 1 || cost < best) {
      best = cost;
      tm = a;
      tn = b;
    }
  }
}

template <class T>
void gemm_packed(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, PackB<T> pack,
                 const void* ctx, T beta, T* C, int64_t rsc, int64_t csc, const GemmEpi<T>& ex) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (ex.cblock) {  // (a blocked C: every column at its place in the blocks)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          const int64_t o = i * rsc + cblock_offset(j, ex.cblock);
          T r = beta == T(0) ? T(0) : beta * C[o];
          if (ex.bias) r += ex.bias[ex.bias_cols ? j : i];
          if (ex.residual) r += ex.residual[o];
          if (ex.relu) r = relu_clamp<T>(r, ex.relu_max);
          C[o] = r;
        }
      return;
    }
    scale_c(M, N, beta, C, rsc, csc);
    return epilogue_c(M, N, ex, C, rsc, csc);
  }
  const int64_t mpad = ceil_div(M, MR) * MR, npad = ceil_div(N, NR) * NR;
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int nthreads = flops > 2e5 ? max_threads() : 1;
  if (nthreads == 1)
    return gemm_serial<T>(M, N, K, alpha, A, rsa, csa, pack, ctx, 0, 0, beta, C, rsc, csc, ex, mpad, npad);
  // Each thread computes one block of C on its own: no barriers inside (they cost more than
  // the work on small layers, and a thread that wakes late stalls every other one).
  // When nothing is packed per call (A prepacked or read in place from channel blocks, B
  // prepacked), a block is cut into units that cost the same wherever they run: its owner takes
  // them from the front, and a thread done with its own takes the other blocks' last units
  // (equal static blocks left each thread waiting for the other about a tenth of a batch-1
  // MobileNetV2 run on the 2-core VM, whose cores do not run at one speed).
  const bool steal = (ex.apacked || ex.ablk) && ex.bpacked;
  bool failed = false;
  StealQueues queues;
  struct Block {
    int64_t m0, m1, n0, n1;  // rows, columns
    int64_t r, rc, cw;       // a unit: r row panels x cw columns; rc units down the rows
  };
  Block blocks[kMaxStealThreads];
#pragma omp parallel num_threads(nthreads)
  {
    const int nt = team_size(), t = thread_id();
    int tm, tn;
    thread_grid<T>(M, N, nt, tm, tn, ex.apacked != nullptr || ex.ablk != nullptr, ex.bpacked != nullptr);
    const int64_t mp = ceil_div(M, MR), np = ceil_div(N, NR);
    auto block_of = [&](int b) {
      const int ti = b / tn, tj = b % tn;
      Block k;
      k.m0 = imin(M, mp * ti / tm * MR);
      k.m1 = imin(M, mp * (ti + 1) / tm * MR);
      k.n0 = imin(N, np * tj / tn * NR);
      k.n1 = imin(N, np * (tj + 1) / tn * NR);
      // Tall blocks: runs of rows across all the block's columns (each run's A reused from L1
      // across the panels, as one block would; column-panel units re-read a batch-8 input);
      // otherwise units of one column panel (B's panel reused down the rows)
      const int64_t bm = ceil_div(k.m1 - k.m0, MR), bn = ceil_div(k.n1 - k.n0, NR);
      const bool tall = bm >= kUnitsPerBlock;
      k.r = tall ? bm / kUnitsPerBlock : imin(bm, imax(1, bm * bn / kUnitsPerBlock));
      k.rc = ceil_div(bm, k.r);
      k.cw = tall ? imax(1, k.n1 - k.n0) : NR;
      return k;
    };
    // C's rows [m0, m1) x columns [n0, n1)
    auto run = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
      if (m1 <= m0 || n1 <= n0) return;
      GemmEpi<T> mine = ex;
      if (mine.bias) mine.bias += mine.bias_cols ? n0 : m0;
      const int64_t co = m0 * rsc + (ex.cblock ? cblock_offset(n0, ex.cblock) : n0 * csc);
      if (mine.residual) mine.residual += co;
      try {
        gemm_serial<T>(m1 - m0, n1 - n0, K, alpha, A ? A + m0 * rsa : A, rsa, csa, pack, ctx, m0, n0, beta, C + co,
                       rsc, csc, mine, mpad, npad);
      } catch (...) {  // an exception may not leave a parallel region
#pragma omp atomic write
        failed = true;
      }
    };
    if (!steal || nt > kMaxStealThreads) {
      const Block k = block_of(t);
      run(k.m0, k.m1, k.n0, k.n1);
    } else {
      blocks[t] = block_of(t);
      const Block& mine = blocks[t];
      const int64_t units = mine.m1 > mine.m0 && mine.n1 > mine.n0 ? mine.rc * ceil_div(mine.n1 - mine.n0, mine.cw) : 0;
      queues.set(t, 0, units);
#pragma omp barrier
      // unit u of block b: columns u / rc, row run u % rc
      auto unit = [&](int b, int64_t u) {
        const Block& k = blocks[b];
        const int64_t m0 = k.m0 + (u % k.rc) * k.r * MR, n0 = k.n0 + (u / k.rc) * k.cw;
        run(m0, imin(k.m1, m0 + k.r * MR), n0, imin(k.n1, n0 + k.cw));
      };
      queues.run(t, nt, unit);
    }
  }
  if (failed) Buffer::throw_bad_alloc();
}

template <class T>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
                  int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc, const GemmEpi<T>& ex) {
  // (a B larger than L2 streams from memory; a smaller one, such as Winograd's transformed
  // tiles, is read faster panel by panel: 3x3 layers through Winograd ran 10% slower grouped)
  // Also a B beyond L2 that one or two A panels would read in place (each B panel then K row
  // streams at once, too many for the hardware prefetcher) when the caller says it comes from
  // memory (ex.b_streamed): a batch-8 MobileNetV2 projection 32 -> 16 at 112x112 took 0.69 of the
  // time with its input out of cache, but 1.21 (1 thread) with it in L3, as at batch 1.
  const double bbytes = double(K) * double(N) * double(sizeof(T));
  const bool streamed = ex.b_streamed && csb == 1 && ceil_div(M, int64_t(Tile<T>::MR)) <= 2 && K >= 16 &&
                        bbytes > double(1 << 20);
  const bool rows = csb == 1 && (bbytes > double(2 << 20) || streamed);
  const MatrixB<T> mb{B, rsb, csb, rows};
  GemmEpi<T> e = ex;
  e.bdirect = streamed ? nullptr : &MatrixB<T>::direct;
  e.brows = rows;
  gemm_packed<T>(M, N, K, alpha, A, rsa, csa, &MatrixB<T>::pack, &mb, beta, C, rsc, csc, e);
}

template <class T>
int64_t packed_a_size(int64_t M, int64_t K) {
  return ceil_div(M, int64_t(Tile<T>::MR)) * Tile<T>::MR * K;
}

template <class T>
void pack_a_whole(int64_t M, int64_t K, const T* A, int64_t rsa, int64_t csa, T* dst) {
  constexpr int64_t KC = Tile<T>::KC;
  const int64_t mpad = packed_a_size<T>(M, 1);
  for (int64_t pc = 0; pc < K; pc += KC) pack_a_block(imin(KC, K - pc), M, A + pc * csa, rsa, csa, dst + pc * mpad);
}

template <class T>
int64_t packed_b_size(int64_t K, int64_t N) {
  return ceil_div(N, int64_t(Tile<T>::NR)) * Tile<T>::NR * K;
}

template <class T>
void pack_b_whole(int64_t K, int64_t N, const T* B, int64_t rsb, int64_t csb, T* dst, int64_t kc) {
  const int64_t KC = kc > 0 ? kc : Tile<T>::KC;
  const MatrixB<T> mb{B, rsb, csb};
  const int64_t npad = packed_b_size<T>(1, N);
  for (int64_t pc = 0; pc < K; pc += KC) MatrixB<T>::pack(&mb, pc, imin(KC, K - pc), 0, N, dst + pc * npad);
}

template <class T>
bool gemm_prefers_transpose(int64_t M, int64_t N) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  // Transposing moves the large operand into A's MR-wide panels, whose packing reads it in
  // short runs: measured (2 threads, AVX-512), it only pays when it saves over 30% of the
  // padded lanes (64 x 3136 x 576: 236 GFLOP/s as is, 189 transposed; 100 x 10 x 500: 46 as
  // is, 74 transposed; 2048 x 49 x 512 (saves 6%): 182 as is, 176 transposed).
  auto padded = [](int64_t n, int64_t t) { return double(ceil_div(n, t) * t) / double(n); };
  return padded(N, MR) * padded(M, NR) < 0.7 * padded(M, MR) * padded(N, NR);
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float, float*, int64_t, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t);
template void gemm_packed<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, PackB<float>,
                                 const void*, float, float*, int64_t, int64_t, const GemmEpi<float>&);
template void gemm_packed<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, PackB<double>,
                                  const void*, double, double*, int64_t, int64_t, const GemmEpi<double>&);
template void gemm_blocked<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                                  int64_t, int64_t, float, float*, int64_t, int64_t, const GemmEpi<float>&);
template void gemm_blocked<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                                   const double*, int64_t, int64_t, double, double*, int64_t, int64_t,
                                   const GemmEpi<double>&);
template int64_t packed_a_size<float>(int64_t, int64_t);
template int64_t packed_a_size<double>(int64_t, int64_t);
template void pack_a_whole<float>(int64_t, int64_t, const float*, int64_t, int64_t, float*);
template void pack_a_whole<double>(int64_t, int64_t, const double*, int64_t, int64_t, double*);
template int64_t packed_b_size<float>(int64_t, int64_t);
template int64_t packed_b_size<double>(int64_t, int64_t);
template void pack_b_whole<float>(int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
template void pack_b_whole<double>(int64_t, int64_t, const double*, int64_t, int64_t, double*, int64_t);
template void pack_b_columns<float>(int64_t, int64_t, const float*, int64_t, float*);
template void pack_b_columns<double>(int64_t, int64_t, const double*, int64_t, double*);
template bool gemm_prefers_transpose<float>(int64_t, int64_t);
template bool gemm_prefers_transpose<double>(int64_t, int64_t);

namespace {
// Stub entry: the same signature, plus a query of this ISA's micro-tile.
template <class T>
void gemm_entry(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
                int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc) {
  gemm<T>(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc);
}
template <class T>
void gemm_tile_entry(int64_t* mr_nr_kc) {
  mr_nr_kc[0] = Tile<T>::MR;
  mr_nr_kc[1] = Tile<T>::NR;
  mr_nr_kc[2] = Tile<T>::KC;
}
}  // namespace

CK_REGISTER(gemm_stub, gemm_entry);
CK_REGISTER(gemm_tile_stub, gemm_tile_entry);

}  // namespace CK_ISA_NS
}  // namespace ck
