// Included first by every file in cpu/. Those files are compiled three times, with
// CK_ISA = 0 (scalar, baseline x86-64), 1 (AVX2+FMA) or 2 (AVX-512), and CK_ISA_NS naming a
// namespace of that ISA. Rules for cpu/ files (see csrc/README.md):
//   * everything goes inside `namespace ck { namespace CK_ISA_NS { ... } }`;
//   * no inline functions or templates shared with other translation units (the linker could
//     keep the AVX-512 copy and crash an older CPU): no std::vector, std::function, etc.;
//     use ck::CK_ISA_NS::Buffer for scratch memory;
//   * the only thing leaving the file is CK_REGISTER(stub, template_fn).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>
#include <utility>

#include <immintrin.h>

#include "core/dispatch.h"
#include "core/params.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef CK_ISA
#error "cpu/ files are compiled with CK_ISA defined (see CMakeLists.txt)"
#endif

#define CK_CAT_(a, b) a##b
#define CK_CAT(a, b) CK_CAT_(a, b)
// Fills this ISA's float and double slots of `stub` with fn<float> and fn<double>.
#define CK_REGISTER(stub, fn)                                                            \
  static const bool CK_CAT(ck_registered_, __LINE__) =                                   \
      ((void)(::ck::stub.f32[CK_ISA] = &fn<float>), (void)(::ck::stub.f64[CK_ISA] = &fn<double>), true)

namespace ck {
namespace CK_ISA_NS {

// Vector width in bytes of this ISA (scalar: 0, code falls back to plain loops).
#if CK_ISA == 2
constexpr int kVecBytes = 64;
#elif CK_ISA == 1
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 0;
#endif

// GCC/Clang vector extension of T with this ISA's width: arithmetic with +,-,*, broadcast by
// `vbroadcast<V>(s)`, loads/stores through memcpy (compile to unaligned moves).
template <class T>
struct VecOf {
#if CK_ISA == 0
  typedef T type __attribute__((vector_size(16)));  // SSE2 is baseline x86-64
#else
  typedef T type __attribute__((vector_size(kVecBytes)));
#endif
};
template <class T> using Vec = typename VecOf<T>::type;
template <class T> constexpr int kLanes = int(sizeof(Vec<T>) / sizeof(T));

// f(std::integral_constant<int, 0>{}) ... f(<N - 1>): a loop unrolled with compile-time indices,
// for register arrays (V acc[MR][NV]) that GCC keeps in registers only when every index is a
// constant before its early scalar replacement (a `#pragma GCC unroll` loop unrolls later, and
// left the GEMM micro-kernel's accumulators zeroed, stored and reloaded through the stack on
// every tile).
// Sanitized builds (CMake's CONVKERN_SANITIZE defines CK_SANITIZED) run a plain loop instead,
// with gemm.cpp at -O1: instrumented, the unrolled lambdas of the micro-kernel's 96 variants
// took GCC over 15 minutes on that one file (2 minutes this way).
#ifdef CK_SANITIZED
#define CK_FORCE_INLINE
template <int N, class F>
inline void static_for(F&& f) {
  for (int i = 0; i < N; ++i) f(i);
}
#else
#define CK_FORCE_INLINE __attribute__((always_inline))
template <class F, int... I>
CK_FORCE_INLINE inline void static_for_(F& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
CK_FORCE_INLINE inline void static_for(F&& f) {
  static_for_(f, std::make_integer_sequence<int, N>{});
}
#endif

template <class V, class T> inline V vload(const T* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <class V, class T> inline void vstore(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
template <class V, class T> inline V vbroadcast(T s) {
  // Through the intrinsic: GCC turns neither `V{} + s` (an add: 0 + -0.0 != -0.0) nor a
  // lane-by-lane fill into a single broadcast.
  if constexpr (sizeof(V) == 64 && sizeof(T) == 4) return (V)_mm512_set1_ps(s);
  else if constexpr (sizeof(V) == 64) return (V)_mm512_set1_pd(s);
  else if constexpr (sizeof(V) == 32 && sizeof(T) == 4) return (V)_mm256_set1_ps(s);
  else if constexpr (sizeof(V) == 32) return (V)_mm256_set1_pd(s);
  else if constexpr (sizeof(T) == 4) return (V)_mm_set1_ps(s);
  else return (V)_mm_set1_pd(s);
}

// Lanes [0, n) of p, 0 < n < L, the others 0 / not written; nothing past p[n-1] is touched.
template <class V, class T>
inline V vload_head(const T* p, int64_t n) {
#if CK_ISA == 2
  const auto k = (1u << n) - 1;
  if constexpr (sizeof(T) == 4) return (V)_mm512_maskz_loadu_ps(__mmask16(k), p);
  else return (V)_mm512_maskz_loadu_pd(__mmask8(k), p);
#elif CK_ISA == 1
  const __m256i lane = sizeof(T) == 4 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi64x(0, 1, 2, 3);
  if constexpr (sizeof(T) == 4) return (V)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lane));
  else return (V)_mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane));
#else
  T t[kLanes<T>] = {};
  for (int64_t i = 0; i < n; ++i) t[i] = p[i];
  return vload<V>(t);
#endif
}
template <class V, class T>
inline void vstore_head(T* p, V v, int64_t n) {
#if CK_ISA == 2
  const auto k = (1u << n) - 1;
  if constexpr (sizeof(T) == 4) _mm512_mask_storeu_ps(p, __mmask16(k), (__m512)v);
  else _mm512_mask_storeu_pd(p, __mmask8(k), (__m512d)v);
#elif CK_ISA == 1
  const __m256i lane = sizeof(T) == 4 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi64x(0, 1, 2, 3);
  if constexpr (sizeof(T) == 4) _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lane), (__m256)v);
  else _mm256_maskstore_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), lane), (__m256d)v);
#else
  for (int64_t i = 0; i < n; ++i) p[i] = v[i];
#endif
}

// v[i][j] <- v[j][i] for an L x L tile held in L vectors: log2(L) butterfly stages, stage k
// exchanging the off-diagonal k x k blocks of each 2k x 2k block (one index bit of row and
// column swapped per stage).
template <class M, int K, int... I>
inline M bfly_lo(std::integer_sequence<int, I...>) {
  constexpr int L = int(sizeof...(I));
  return M{((I & K) ? L + I - K : I)...};
}
template <class M, int K, int... I>
inline M bfly_hi(std::integer_sequence<int, I...>) {
  constexpr int L = int(sizeof...(I));
  return M{((I & K) ? L + I : I + K)...};
}
template <class T, int K>
inline void transpose_stage(Vec<T>* v) {
  using V = Vec<T>;
  using M = decltype(Vec<T>{} < Vec<T>{});
  constexpr int L = kLanes<T>;
  const M lo = bfly_lo<M, K>(std::make_integer_sequence<int, L>{});
  const M hi = bfly_hi<M, K>(std::make_integer_sequence<int, L>{});
  for (int i = 0; i < L; ++i) {
    if (i & K) continue;
    const V a = v[i], b = v[i + K];
    v[i] = V(__builtin_shuffle(a, b, lo));
    v[i + K] = V(__builtin_shuffle(a, b, hi));
  }
  if constexpr (K > 1) transpose_stage<T, K / 2>(v);
}
template <class T>
inline void transpose_tile(Vec<T>* v) {
  transpose_stage<T, kLanes<T> / 2>(v);
}

// dst[0..n) = src[0..n) in vectors, the tail masked (memcpy's call and size dispatch cost
// more than these rows of a few dozen elements). With CHECK_NAN, *nan |= lanes holding a
// NaN. The empty asm keeps GCC from turning the loop back into a memmove call.
template <class T, bool CHECK_NAN = false>
inline void copy_short(T* __restrict dst, const T* __restrict src, int64_t n, decltype(Vec<T>{} < Vec<T>{})* nan = nullptr) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  decltype(Vec<T>{} < Vec<T>{}) bad{};
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v = vload<V>(src + i);
    asm("" : "+v"(v));
    if (CHECK_NAN) bad |= v != v;
    vstore(dst + i, v);
  }
  if (i < n) {
    const V v = vload_head<V>(src + i, n - i);
    if (CHECK_NAN) bad |= v != v;
    vstore_head(dst + i, v, n - i);
  }
  if (CHECK_NAN) *nan |= bad;
}

// dst[i] = src[2 * i] for i < n: two vector loads turned into one by a lane shuffle (a scalar
// loop made the stride-2 phase split of strided convolutions 9% of their time). Nothing past
// src[2 * (n - 1)] is read: the last partial vector is copied lane by lane.
template <class T>
inline void copy_stride2(T* __restrict dst, const T* __restrict src, int64_t n) {
  using V = Vec<T>;
  using I = decltype(V{} < V{});  // the integer vector of T's width
  constexpr int L = kLanes<T>;
  I even{};
  for (int i = 0; i < L; ++i) even[i] = 2 * i;
  int64_t i = 0;
  for (; i + L < n; i += L) vstore(dst + i, __builtin_shuffle(vload<V>(src + 2 * i), vload<V>(src + 2 * i + L), even));
  for (; i < n; ++i) dst[i] = src[2 * i];
}

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
// b > 0. No a + b - 1 overflow for a >= 0 (huge strides reach here: found by tests/test_fuzz.py).
inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? a / b + (a % b != 0) : (a + b - 1) / b; }

// A byte range [p, p + bytes) fetched into L2 ahead of its use, while the data before it is
// being computed on (nullptr: nothing to fetch). upto(num, den) fetches, at once, what is not
// yet fetched up to num/den of the range (the next pooling plane row by row, gemm's next
// packed A block panel by panel). part(i, n, lo, hi) gives the bounds of part i of n for a
// micro-kernel to take a line per step with fetch_line, spread among its multiply-adds (a
// packed weight's next panel or slice: issued at once before each tile, the prefetches
// stalled the tile's own loads).
struct FetchAhead {
  const char* p = nullptr;
  int64_t bytes = 0;
  int64_t done = 0;
  void upto(int64_t num, int64_t den) {
    if (!p) return;
    for (const int64_t end = bytes * num / den; done < end; done += 64) __builtin_prefetch(p + done, 0, 2);
  }
  void part(int64_t i, int64_t n, const char*& lo, const char*& hi) const {
    lo = p ? p + (bytes * i / n & ~int64_t(63)) : nullptr;
    hi = p ? p + bytes * (i + 1) / n : nullptr;
  }
};
inline void fetch_line(const char*& pf, const char* end) {
  if (pf < end) {
    __builtin_prefetch(pf, 0, 2);
    pf += 64;
  }
}

// Number of threads the next parallel region may use (1 inside an outer region).
inline int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
// Threads of the current parallel region (1 outside one).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Grow-only, 64-byte aligned scratch memory. Keep one per call site as `static thread_local`
// to avoid page-faulting fresh buffers on every call (costly on this VM), or as a local for
// one-off use. Throws std::bad_alloc (-> MemoryError) when the allocation fails.
struct Buffer {
  void* p = nullptr;
  size_t bytes = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(p); }
  template <class T>
  T* get(int64_t n) {
    size_t need = size_t(n > 0 ? n : 1) * sizeof(T);
    if (need > bytes) {
      std::free(p);
      size_t rounded = (need + 63) / 64 * 64;
      p = std::aligned_alloc(64, rounded);
      if (!p) { bytes = 0; throw_bad_alloc(); }
      bytes = rounded;
    }
    return static_cast<T*>(p);
  }
  static void throw_bad_alloc();
};

// body(i) inside an OpenMP region, where an exception may not escape: the first one is kept
// in err (for the caller to rethrow after the region), later ones dropped.
template <class F>
inline void run_guarded(F& body, int64_t i, std::exception_ptr& err) {
  try {
    body(i);
  } catch (...) {
#pragma omp critical(ck_parallel_for_error)
    if (!err) err = std::current_exception();
  }
}

// for (i in [0, n)) body(i), in parallel (static schedule) when par. An exception may not leave
// an OpenMP region (it terminates the process), so one thrown by a body (std::bad_alloc from
// scratch memory) is caught, the remaining iterations run, and the first one is rethrown here.
template <class F>
void parallel_for(int64_t n, bool par, F&& body) {
  std::exception_ptr err;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t i = 0; i < n; ++i) run_guarded(body, i, err);
  if (err) std::rethrow_exception(err);
}

// Work stealing between the threads of one parallel region. Each thread owns a range of task
// numbers, runs them from the front, then takes other threads' tasks from the back. A range is
// one 64-bit word, (front << 32) | end, changed by compare-and-swap, on its own cache line.
// (The two vCPUs of the VM do not run at one speed: with equal static shares each thread
// waited for the other about a tenth of a batch-1 MobileNetV2 run.)
constexpr int kMaxStealThreads = 64;
struct StealQueues {
  alignas(64) uint64_t q[kMaxStealThreads * 8];
  void set(int t, int64_t begin, int64_t end) {
    __atomic_store_n(&q[t * 8], (uint64_t(begin) << 32) | uint64_t(end), __ATOMIC_RELAXED);
  }
  // a task of thread b's range: from its front (b's own) or back (another's); false when empty
  bool take(int b, bool front, int64_t& u) {
    uint64_t cur = __atomic_load_n(&q[b * 8], __ATOMIC_RELAXED);
    for (;;) {
      const uint64_t f = cur >> 32, e = cur & 0xffffffffu;
      if (f >= e) return false;
      const uint64_t want = front ? ((f + 1) << 32) | e : (f << 32) | (e - 1);
      if (__atomic_compare_exchange_n(&q[b * 8], &cur, want, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        u = int64_t(front ? f : e - 1);
        return true;
      }
    }
  }
  // thread t of nt (after every range is set and a barrier): its own tasks, then the others'
  template <class F>
  void run(int t, int nt, F&& task) {
    int64_t u;
    while (take(t, true, u)) task(t, u);
    for (int o = 1; o < nt; ++o) {
      const int b = (t + o) % nt;
      while (take(b, false, u)) task(b, u);
    }
  }
};

// parallel_for with each thread's static share (a contiguous range) run first, then other
// threads' remaining iterations taken from the back of their ranges (StealQueues). For up to
// 2^31 iterations and kMaxStealThreads threads; otherwise as parallel_for.
template <class F>
void parallel_for_steal(int64_t n, bool par, F&& body) {
  if (!par || n >= (int64_t(1) << 31)) return parallel_for(n, par, body);
  std::exception_ptr err;
  StealQueues sq;
#pragma omp parallel
  {
    const int nt = team_size(), t = thread_id();
    auto guarded = [&](int, int64_t i) { run_guarded(body, i, err); };
    if (nt > kMaxStealThreads) {
      for (int64_t i = n * t / nt; i < n * (t + 1) / nt; ++i) guarded(t, i);
    } else {
      sq.set(t, n * t / nt, n * (t + 1) / nt);
#pragma omp barrier
      sq.run(t, nt, guarded);
    }
  }
  if (err) std::rethrow_exception(err);
}

// Work (elements) below which a loop stays single-threaded.
constexpr int64_t kParallelGrain = 1 << 15;

// The fused activation of the convolution epilogues: relu clamps to [0, hi] (hi = +inf: ReLU;
// 6: ReLU6, as MobileNetV2 uses it). NaN stays NaN, as in activation.cpp's relu and relu6.
// V is a vector of T or T itself.
template <class T, class V>
inline V relu_clamp(V r, V hi) {
  r = r < T(0) ? V{} : r;
  return r > hi ? hi : r;
}

// y (K x P) = ct (P x K, rows ld >= K apart)^T, + b per channel (b may be null), + res (null, or K x P), then
// clamped to [0, relu_max] if relu: a channel-last product back to y's layout with the epilogue, in the
// micro-kernel's order of operations (so the same values as a product that applied it).
// For N images at once: image n's rows at ct + n*P*ld, its y and res at + n*K*P; the threads
// split images x channel vectors (per image, a 14x14 plane with 48 channels stayed on one thread).
template <class T>
void transpose_epilogue(const T* ct, int64_t P, int64_t K, int64_t ld, const T* b, const T* res, bool relu,
                        T relu_max, T* y, int64_t N = 1) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const int64_t kb = ceil_div(K, L);
  const V hi = vbroadcast<V>(relu_max);
  parallel_for(N * kb, max_threads() > 1 && N * P * K > kParallelGrain && N * kb > 1, [&](int64_t job) {
    const int64_t n = job / kb, k0 = job % kb * L, kn = imin(L, K - k0);
    const T* ctn = ct + n * P * ld;
    T* yn = y + n * K * P;
    const T* rn = res ? res + n * K * P : nullptr;
    for (int64_t p0 = 0; p0 < P; p0 += L) {
      const int64_t pn = imin(L, P - p0);
      V v[L];
      for (int i = 0; i < L; ++i) {
        const T* src = ctn + (p0 + i) * ld + k0;
        v[i] = i >= pn ? V{} : kn == L ? vload<V>(src) : vload_head<V>(src, kn);
      }
      transpose_tile<T>(v);  // v[j]: channel k0 + j at positions p0 ...
      for (int64_t j = 0; j < kn; ++j) {
        V r = v[j];
        T* dst = yn + (k0 + j) * P + p0;
        if (b) r += vbroadcast<V>(b[k0 + j]);
        if (rn) {
          const T* rs = rn + (k0 + j) * P + p0;
          r += pn == L ? vload<V>(rs) : vload_head<V>(rs, pn);
        }
        if (relu) r = relu_clamp<T>(r, hi);
        if (pn == L) vstore(dst, r);
        else vstore_head(dst, r, pn);
      }
    }
  });
}

// C = alpha * A(MxK) * B(KxN) + beta * C, every matrix given by (row stride, column stride),
// so transposes cost nothing. beta == 0 never reads C. Parallel (OpenMP) unless called from
// inside a parallel region. Defined in cpu/gemm.cpp.
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
          int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc);

// The same GEMM with B given by a packing function instead of a matrix: pack(ctx, pc, kc, n0,
// nc, dst) writes rows [pc, pc+kc) x columns [n0, n0+nc) of B as NR-wide panels (NR =
// kGemmNR<T>; panel j holds kc rows of NR values, columns n0 + j*NR ...; columns past nc are
// zero). Used to pack a convolution's im2col matrix straight from the image (implicit im2col).
// gemm_prefers_transpose<T>(M, N) tells whether gemm() would compute C^T = B^T A^T instead
// (less tile padding), which a packing function cannot.
//
// GemmEpi: what the product may do besides C = alpha A B + beta C. apacked: A already packed
// by pack_a_whole (all M rows; A is then not read, and is only needed for its shape). apack:
// A given by a packing function like B's (apack(actx, pc, kc, i0, mc, dst) writes rows [i0,
// i0+mc) x columns [pc, pc+kc) as MR-wide panels, zero past mc; A is then not read). bpacked:
// B already packed by pack_b_whole (all N columns; the packing function is then not called).
// bias, residual, relu: once C is complete, C[i][j] += bias[i] (bias non-null; bias[j] with
// bias_cols), C += residual
// (non-null: a matrix with C's strides, which may not overlap C), then C clamped to [0,
// relu_max] if relu (relu_clamp; NaN stays NaN): a convolution's epilogue, applied while the
// tile is in registers.
// bdirect: where B's full NR-wide panel of columns [n0, n0+NR) in the slice starting at row pc
// already lies in memory as a panel would (NR unit-stride values per row, rows *ldb apart), to
// be read in place; nullptr: pack it. Called with the packing function's ctx. Only taken when
// each B panel serves at most two MR-row panels of A: packing then costs about what the
// product does (a 1x1 convolution with 16 output channels spent 40% of its time copying).
// brows: the packing function reads B's rows in long runs when asked for many panels at once,
// so that panels are packed about 512 KB at a time (into L2) rather than one by one (into L1,
// each of its rows a separate stream from DRAM); for a B streamed from memory once.
// b_streamed: a hint for gemm_blocked that B comes from memory (a layer whose whole input is
// larger than the caches), so that it packs B by rows (brows) more often.
template <class T>
using PackB = void (*)(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst);
template <class T>
using DirectB = const T* (*)(const void* ctx, int64_t pc, int64_t n0, int64_t* ldb);
template <class T>
struct GemmEpi {
  const T* apacked = nullptr;
  PackB<T> apack = nullptr;
  const void* actx = nullptr;
  const T* bpacked = nullptr;
  DirectB<T> bdirect = nullptr;
  bool brows = false;
  bool b_streamed = false;  // gemm_blocked: B will not be in cache (see there)
  const T* bias = nullptr;
  bool bias_cols = false;  // bias[j] per column of C (a channel-last product), not bias[i] per row
  const T* residual = nullptr;
  bool relu = false;
  T relu_max = std::numeric_limits<T>::infinity();
  int64_t kc = 0;  // K slice depth; 0: kGemmKC. Not with apacked; bpacked must be packed with it
  // Channel-blocked C (an NCHW16c output, ops/blocked.h): column j of row i at C + i * rsc +
  // cblock_offset(j, cblock) (rsc = kCBlock, csc = 1): columns in blocks of kCBlock, cblock
  // values apart. 0: C is strided (rsc, csc). The residual is read the same way.
  int64_t cblock = 0;
  // A read in place from a channel-blocked input (a channel-last product's positions x
  // channels): row i, column k at ablk + i * kCBlock + (k / kCBlock) * ablk_bs + k % kCBlock;
  // K slices start at multiples of kCBlock. No packing of A at all.
  const T* ablk = nullptr;
  int64_t ablk_bs = 0;
};
// Where column j of a channel-blocked C lies from column 0 (see GemmEpi::cblock).
constexpr int64_t kCBlock = 16;
inline int64_t cblock_offset(int64_t j, int64_t cblock) { return (j / kCBlock) * cblock + j % kCBlock; }
template <class T>
void gemm_packed(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, PackB<T> pack,
                 const void* ctx, T beta, T* C, int64_t rsc, int64_t csc, const GemmEpi<T>& ex = {});
// gemm() without its shortcuts (no transposed product, no gemv), so that ex applies as given.
template <class T>
void gemm_blocked(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
                  int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc, const GemmEpi<T>& ex = {});
// A (M x K, strides rsa, csa) packed once into this ISA's micro-kernel panels, in the order
// gemm_packed reads them (KC-deep slices, MR-row panels): packed_a_size<T>(M, K) values.
template <class T>
int64_t packed_a_size(int64_t M, int64_t K);
template <class T>
void pack_a_whole(int64_t M, int64_t K, const T* A, int64_t rsa, int64_t csa, T* dst);
// B (K x N, strides rsb, csb) packed once into NR-wide panels, in the order gemm_packed reads
// them (KC-deep slices, then panels; kc > 0: slices kc deep, for a product with GemmEpi::kc =
// kc): packed_b_size<T>(K, N) values. Column n of slice pc starts at pc * npad + (n - n % NR) *
// kc (npad = N rounded up to NR; kc this slice's depth).
template <class T>
int64_t packed_b_size(int64_t K, int64_t N);
template <class T>
void pack_b_whole(int64_t K, int64_t N, const T* B, int64_t rsb, int64_t csb, T* dst, int64_t kc = 0);
template <class T>
constexpr int64_t kGemmNR = 2 * kLanes<T>;  // the micro-tile's width (cpu/gemm.cpp's Tile<T>::NR)
constexpr int64_t kGemmMR = CK_ISA == 2 ? 12 : (CK_ISA == 1 ? 6 : 4);  // its height (Tile<T>::MR)
// Whether a product of K channels over P positions pads at least 10% fewer of the micro-tile's
// lanes channel-last (positions in the MR rows, channels in the NR lanes) than channel-major
// (channels in the rows, positions in the lanes): 196 positions (14x14) fill 224 lanes as
// columns and 49 (7x7) fill 64, while 256 or 512 channels fill whole panels.
template <class T>
inline bool channel_last_pads_less(int64_t K, int64_t P) {
  const double NR = double(kGemmNR<T>);
  return std::ceil(double(K) / NR) * NR * double(P) < 0.9 * std::ceil(double(P) / NR) * NR * double(K);
}
constexpr int64_t kGemmKC = 256;                                      // K slice depth (Tile<T>::KC)
// Where A[i][k] of an M x K matrix lies in pack_a_whole's layout (mpad = M rounded up to MR):
// slice pc = k - k % KC (kc = min(KC, K - pc) deep), then MR-row panels, each k-major.
inline int64_t packed_a_index(int64_t mpad, int64_t K, int64_t i, int64_t k) {
  const int64_t pc = k - k % kGemmKC, kc = K - pc < kGemmKC ? K - pc : kGemmKC;
  return pc * mpad + (i - i % kGemmMR) * kc + (k - pc) * kGemmMR + i % kGemmMR;
}
template <class T>
bool gemm_prefers_transpose(int64_t M, int64_t N);
// One NR-wide panel of B from nr <= NR columns stored contiguously (column j at B + j*ld):
// dst[k*NR + j] = B[j*ld + k] for k < kc, zero for j >= nr (in-register transposes).
template <class T>
void pack_b_columns(int64_t kc, int64_t nr, const T* B, int64_t ld, T* dst);

// db[k] = the sum of dy (N x K x PQ) over images and positions: a convolution's bias gradient.
template <class T>
void bias_grad(int64_t N, int64_t K, int64_t PQ, const T* dy, T* db) {
  const bool par = max_threads() > 1 && N * K * PQ > kParallelGrain;
  (void)par;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t k = 0; k < K; ++k) {
    T s = T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T* d = dy + (n * K + k) * PQ;
      T part = T(0);
#pragma omp simd reduction(+ : part)
      for (int64_t i = 0; i < PQ; ++i) part += d[i];
      s += part;
    }
    db[k] = s;
  }
}

}  // namespace CK_ISA_NS
}  // namespace ck
