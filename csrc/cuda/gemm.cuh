// The tiled, register-blocked GEMM main loop shared by the plain (strided) GEMM, linear,
// the im2col convolution and the implicit-GEMM convolution.
//
//   C (M x N) = A (M x K) * B (K x N), per batch index z (blockIdx.z + z0).
//
// A block of 256 threads computes a BM x BN tile of C (float: 128 x 128, double: 64 x 64),
// walking K in steps of BK = 8 with two shared-memory buffers (the next tile is fetched into
// registers while the current one is multiplied, one __syncthreads per step). Each thread
// owns a TM x TN register block (float 8 x 8, double 4 x 4) split in two halves per axis
// (rows ty*TM/2 + i and BM/2 + ty*TM/2 + i, the same for columns), so its shared-memory
// fragment reads are 16-byte vector loads that hit distinct banks across a quarter warp.
//
// Operands come through loaders (A: element (m, k); B: element (k, n)) that fetch a group of
// VEC = 16 / sizeof(T) consecutive elements along their contiguous dimension: one 16-byte
// load when the group is aligned and in bounds, guarded scalar loads otherwise. The epilogue
// functor receives every (z, m, n, value) inside the problem.
#pragma once
#include <type_traits>

#include "cuda/common.cuh"

namespace ck {
namespace cuda {
// Internal linkage: every .cu file gets its own instantiations of the kernel templates (no
// cross-translation-unit merging of kernel host stubs).
namespace {

template <class T> struct GemmCfg;
template <> struct GemmCfg<float> { static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8; };
template <> struct GemmCfg<double> { static constexpr int BM = 64, BN = 64, BK = 8, TM = 4, TN = 4; };

constexpr int kGemmThreads = 256;

template <class T> struct Vec16;
template <> struct Vec16<float> { using type = float4; static constexpr int n = 4; };
template <> struct Vec16<double> { using type = double2; static constexpr int n = 2; };

// 16-byte vector <-> VEC scalars (explicit lanes: local arrays need not be 16-byte aligned).
__device__ __forceinline__ void unpack(const float4& v, float* o) { o[0] = v.x; o[1] = v.y; o[2] = v.z; o[3] = v.w; }
__device__ __forceinline__ void unpack(const double2& v, double* o) { o[0] = v.x; o[1] = v.y; }
__device__ __forceinline__ float4 pack(const float* o) { return make_float4(o[0], o[1], o[2], o[3]); }
__device__ __forceinline__ double2 pack(const double* o) { return make_double2(o[0], o[1]); }

// Element (r, c) at p[z_off + r * rs + c * cs], zero outside [0, R) x [0, Cn).
// The batch offset of index z is (z / zdiv) * zs_hi + (z % zdiv) * zs_lo.
// `c_fast`: groups run along c (else along r). `vec`: the fast stride is 1 and the other
// stride and every batch offset keep 16-byte alignment, so full groups use one vector load.
template <class T>
struct StridedLoader {
  const T* p;
  int64_t rs, cs, R, Cn;
  int64_t zdiv = 1, zs_hi = 0, zs_lo = 0;
  bool c_fast = true, vec = false;

  struct Ctx {};
  __device__ __forceinline__ const T* base(int64_t z) const { return p + (z / zdiv) * zs_hi + (z % zdiv) * zs_lo; }
  // Per-thread state for the coordinate that stays fixed across k tiles (none needed here).
  __device__ __forceinline__ Ctx prepare(const T*, int64_t) const { return Ctx{}; }
  __device__ __forceinline__ void load(const T* b, const Ctx&, int64_t r, int64_t c, T* v) const {
    constexpr int VEC = Vec16<T>::n;
    using V = typename Vec16<T>::type;
    if (vec && c_fast && r < R && c + VEC <= Cn) {
      unpack(__ldg(reinterpret_cast<const V*>(b + r * rs + c)), v);
      return;
    }
    if (vec && !c_fast && c < Cn && r + VEC <= R) {
      unpack(__ldg(reinterpret_cast<const V*>(b + r + c * cs)), v);
      return;
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      const int64_t rr = c_fast ? r : r + i, cc = c_fast ? c + i : c;
      v[i] = (rr < R && cc < Cn) ? b[rr * rs + cc * cs] : T(0);
    }
  }
};

// Host: a StridedLoader for an R x Cn operand with strides (rs, cs).
template <class T>
StridedLoader<T> strided_loader(const T* p, int64_t R, int64_t Cn, int64_t rs, int64_t cs, int64_t zdiv = 1,
                                int64_t zs_hi = 0, int64_t zs_lo = 0) {
  constexpr int VEC = Vec16<T>::n;
  StridedLoader<T> L;
  L.p = p; L.rs = rs; L.cs = cs; L.R = R; L.Cn = Cn; L.zdiv = zdiv < 1 ? 1 : zdiv; L.zs_hi = zs_hi; L.zs_lo = zs_lo;
  L.c_fast = cs == 1 || rs != 1;
  const int64_t other = L.c_fast ? rs : cs;
  const bool unit = L.c_fast ? cs == 1 : rs == 1;
  L.vec = unit && (reinterpret_cast<uintptr_t>(p) % 16 == 0) && (other % VEC == 0 || (L.c_fast ? R : Cn) == 1) &&
          zs_hi % VEC == 0 && zs_lo % VEC == 0;
  return L;
}

// C (z, m, n) = alpha * acc + beta * C + bias (bias per row m or per column n; beta == 0
// never reads C).
template <class T>
struct StridedEpilogue {
  T* c;
  int64_t rs, cs;
  int64_t zdiv = 1, zs_hi = 0, zs_lo = 0;
  T alpha = T(1), beta = T(0);
  const T* bias = nullptr;
  int bias_mode = 0;  // 0 none, 1 bias[m], 2 bias[n]
  __device__ __forceinline__ void operator()(int64_t z, int64_t m, int64_t n, T v) const {
    T* cz = c + (z / zdiv) * zs_hi + (z % zdiv) * zs_lo;
    T* o = cz + m * rs + n * cs;
    T r = alpha * v;
    if (bias_mode == 1) r += bias[m];
    else if (bias_mode == 2) r += bias[n];
    if (beta != T(0)) r += beta * *o;
    *o = r;
  }
};

// The main loop. LA::load(base, ctx, m, k, v) with groups along k if la.c_fast else along m;
// LB::load(base, ctx, k, n, v) with groups along n if lb.c_fast else along k. A thread's m
// (for A) and n (for B) stay fixed across k tiles: ctx = prepare(base, that coordinate) is
// computed once (the implicit-GEMM loader decomposes its output pixel there).
template <class T, class LA, class LB, class Epi>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_tiled_kernel(int64_t M, int64_t N, int64_t K, int64_t z0, LA la, LB lb, Epi epi) {
  using Cfg = GemmCfg<T>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int VEC = Vec16<T>::n;
  using V = typename Vec16<T>::type;
  static_assert(BM * BK / VEC == kGemmThreads && BN * BK / VEC == kGemmThreads, "one load group per thread");
  static_assert(TM / 2 == VEC && TN / 2 == VEC, "fragments are two vectors per axis");
  constexpr int PAD = VEC;  // keeps rows 16-byte aligned and spreads column-wise stores over banks
  __shared__ __align__(16) T As[2][BK][BM + PAD];
  __shared__ __align__(16) T Bs[2][BK][BN + PAD];

  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int64_t z = z0 + blockIdx.z;
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
  const T* pa = la.base(z);
  const T* pb = lb.base(z);

  // this thread's load group in the A and B tiles
  const bool a_kfast = la.c_fast, b_nfast = lb.c_fast;
  const int am = a_kfast ? tid / (BK / VEC) : (tid % (BM / VEC)) * VEC;
  const int ak = a_kfast ? (tid % (BK / VEC)) * VEC : tid / (BM / VEC);
  const int bn = b_nfast ? (tid % (BN / VEC)) * VEC : tid / (BK / VEC);
  const int bk = b_nfast ? tid / (BN / VEC) : (tid % (BK / VEC)) * VEC;

  const auto actx = la.prepare(pa, m0 + am);
  const auto bctx = lb.prepare(pb, n0 + bn);
  T ra[VEC], rb[VEC];
  auto fetch = [&](int64_t k0) {
    la.load(pa, actx, m0 + am, k0 + ak, ra);
    lb.load(pb, bctx, k0 + bk, n0 + bn, rb);
  };
  auto stash = [&](int buf) {
    if (a_kfast) {
#pragma unroll
      for (int i = 0; i < VEC; ++i) As[buf][ak + i][am] = ra[i];
    } else {
      *reinterpret_cast<V*>(&As[buf][ak][am]) = pack(ra);
    }
    if (b_nfast) {
      *reinterpret_cast<V*>(&Bs[buf][bk][bn]) = pack(rb);
    } else {
#pragma unroll
      for (int i = 0; i < VEC; ++i) Bs[buf][bk + i][bn] = rb[i];
    }
  };

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const int64_t ktiles = (K + BK - 1) / BK;
  fetch(0);
  stash(0);
  __syncthreads();
  int cur = 0;
  for (int64_t kt = 0; kt < ktiles; ++kt) {
    const bool more = kt + 1 < ktiles;
    if (more) fetch((kt + 1) * BK);  // global loads in flight during the math below
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
      unpack(*reinterpret_cast<const V*>(&As[cur][kk][ty * VEC]), &a[0]);
      unpack(*reinterpret_cast<const V*>(&As[cur][kk][BM / 2 + ty * VEC]), &a[VEC]);
      unpack(*reinterpret_cast<const V*>(&Bs[cur][kk][tx * VEC]), &b[0]);
      unpack(*reinterpret_cast<const V*>(&Bs[cur][kk][BN / 2 + tx * VEC]), &b[VEC]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    if (more) stash(cur ^ 1);  // the other buffer was last read before the previous barrier
    __syncthreads();
    cur ^= 1;
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + (i < VEC ? ty * VEC + i : BM / 2 + ty * VEC + (i - VEC));
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + (j < VEC ? tx * VEC + j : BN / 2 + tx * VEC + (j - VEC));
      if (n < N) epi(z, m, n, acc[i][j]);
    }
  }
}

// Host: launches the main loop over batch indices [0, batch) (chunked to the grid limits).
template <class T, class LA, class LB, class Epi>
void gemm_launch(int64_t M, int64_t N, int64_t K, int64_t batch, const LA& la, const LB& lb, const Epi& epi) {
  using Cfg = GemmCfg<T>;
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const int64_t gy = ceil_div(M, Cfg::BM), gx = ceil_div(N, Cfg::BN);
  if (gy > 65535 || gx > 2147483647LL)
    throw Error("convkern CUDA: GEMM too large for one launch (M = " + std::to_string(M) + ")");
  for (int64_t z0 = 0; z0 < batch; z0 += 65535) {
    const int64_t nz = batch - z0 < 65535 ? batch - z0 : 65535;
    const dim3 grid{unsigned(gx), unsigned(gy), unsigned(nz)};
    gemm_tiled_kernel<T, LA, LB, Epi><<<grid, kGemmThreads, 0, stream()>>>(M, N, K, z0, la, lb, epi);
    CK_CUDA_LAUNCH_CHECK();
  }
}

// Strided GEMM for the stub and the convolution helpers: C = alpha A B + beta C (+ bias).
template <class T>
void gemm_strided(int64_t M, int64_t N, int64_t K, T alpha, const StridedLoader<T>& a, const StridedLoader<T>& b,
                  T beta, const StridedEpilogue<T>& c, int64_t batch = 1) {
  StridedEpilogue<T> e = c;
  e.alpha = alpha;
  e.beta = beta;
  gemm_launch<T>(M, N, K, batch, a, b, e);
}

}  // namespace
}  // namespace cuda
}  // namespace ck
