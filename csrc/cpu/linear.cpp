// Fully connected layer through this ISA's gemm<T>: the transposes are strides, nothing is
// copied. Forward: y is pre-filled with the bias rows (then gemm with beta = 1) or written
// by gemm with beta = 0. Backward: gx = gy @ W and gw = gy^T @ x are two gemms; gb is a
// column sum of gy, accumulated in double over blocks of columns (one block per task).
#include "cpu/common.h"

#include "ops/linear.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

constexpr int64_t kColBlock = 256;

template <class T>
void linear_fwd_impl(int64_t M, int64_t K, int64_t O, const T* x, const T* w, const T* b, T* y) {
  T beta = T(0);
  if (b) {
    // serial: a copy of M*O values is small next to the gemm's M*O*K work
    for (int64_t m = 0; m < M; ++m) std::memcpy(y + m * O, b, size_t(O) * sizeof(T));
    beta = T(1);
  }
  // y (M x O) = x (M x K) @ W^T, W^T (K x O) has row stride 1 and column stride K.
  gemm<T>(M, O, K, T(1), x, K, 1, w, 1, K, beta, y, O, 1);
}

template <class T>
void linear_bwd_impl(int64_t M, int64_t K, int64_t O, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb) {
  // gx (M x K) = gy (M x O) @ W (O x K)
  if (gx) gemm<T>(M, K, O, T(1), gy, O, 1, w, K, 1, T(0), gx, K, 1);
  // gw (O x K) = gy^T (O x M: row stride 1, column stride O) @ x (M x K)
  if (gw) gemm<T>(O, K, M, T(1), gy, 1, O, x, K, 1, T(0), gw, K, 1);
  if (gb) {
    // column sums; with fewer column blocks than threads the rows are split too, and the
    // per-chunk partial sums reduced afterwards
    const int64_t nblk = ceil_div(O, kColBlock);
    const bool par = M * O >= (int64_t(1) << 15);
    const int64_t nt = par ? max_threads() : 1;
    const int64_t mch = nblk < nt ? imin(M, ceil_div(nt, nblk)) : 1;
    static thread_local Buffer pbuf;
    double* part = mch > 1 ? pbuf.get<double>(mch * O) : nullptr;
    const int64_t tasks = nblk * mch;
#pragma omp parallel for if (par && tasks > 1) schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bi = t % nblk, mc = t / nblk;
      const int64_t o0 = bi * kColBlock, n = imin(kColBlock, O - o0);
      const int64_t m0 = M * mc / mch, m1 = M * (mc + 1) / mch;
      double acc[kColBlock];
      for (int64_t j = 0; j < n; ++j) acc[j] = 0.0;
      for (int64_t m = m0; m < m1; ++m) {
        const T* row = gy + m * O + o0;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) acc[j] += double(row[j]);
      }
      if (part)
        for (int64_t j = 0; j < n; ++j) part[mc * O + o0 + j] = acc[j];
      else
        for (int64_t j = 0; j < n; ++j) gb[o0 + j] = T(acc[j]);
    }
    if (part)
      for (int64_t o = 0; o < O; ++o) {
        double a = 0.0;
        for (int64_t mc = 0; mc < mch; ++mc) a += part[mc * O + o];
        gb[o] = T(a);
      }
  }
}

}  // namespace

CK_REGISTER(linear_fwd_stub, linear_fwd_impl);
CK_REGISTER(linear_bwd_stub, linear_bwd_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
