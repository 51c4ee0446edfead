// CUDA GEMM stub (any strides) and linear (fully connected) forward / backward, on the tiled
// main loop of cuda/gemm.cuh.
#include "cuda/gemm.cuh"
#include "ops/gemm.h"
#include "ops/linear.h"

namespace ck {
namespace cuda {
namespace {

template <class T>
void gemm_impl(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa, const T* B,
               int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc) {
  if (M <= 0 || N <= 0) return;
  StridedEpilogue<T> e;
  e.c = C;
  e.rs = rsc;
  e.cs = csc;
  gemm_strided<T>(M, N, K, alpha, strided_loader(A, M, K, rsa, csa), strided_loader(B, K, N, rsb, csb), beta, e);
}

template <class T>
void gemm_tile_impl(int64_t* t) {
  t[0] = GemmCfg<T>::BM;
  t[1] = GemmCfg<T>::BN;
  t[2] = GemmCfg<T>::BK;
}

// out[o] = sum over rows m of g[m * O + o]: 32 columns x 8 row lanes per block, fixed order.
template <class T>
__global__ void column_sum_kernel(int64_t M, int64_t O, const T* __restrict__ g, T* __restrict__ out) {
  __shared__ T part[8][33];
  const int64_t o = int64_t(blockIdx.x) * 32 + threadIdx.x;
  T s = T(0);
  if (o < O)
    for (int64_t m = threadIdx.y; m < M; m += 8) s += g[m * O + o];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && o < O) {
    T t = T(0);
#pragma unroll
    for (int r = 0; r < 8; ++r) t += part[r][threadIdx.x];
    out[o] = t;
  }
}

template <class T>
void column_sum(int64_t M, int64_t O, const T* g, T* out) {
  const int64_t blocks = ceil_div(O, 32);
  column_sum_kernel<T><<<unsigned(blocks), dim3(32, 8), 0, stream()>>>(M, O, g, out);
  CK_CUDA_LAUNCH_CHECK();
}

// y (M x O) = x (M x K) W^T + b: B(k, o) = W[o * K + k], bias per column.
template <class T>
void linear_fwd_impl(int64_t M, int64_t K, int64_t O, const T* x, const T* w, const T* b, T* y) {
  if (M <= 0 || O <= 0) return;
  StridedEpilogue<T> e;
  e.c = y;
  e.rs = O;
  e.cs = 1;
  e.bias = b;
  e.bias_mode = b ? 2 : 0;
  gemm_strided<T>(M, O, K, T(1), strided_loader(x, M, K, K, int64_t(1)), strided_loader(w, K, O, int64_t(1), K),
                  T(0), e);
}

template <class T>
void linear_bwd_impl(int64_t M, int64_t K, int64_t O, const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb) {
  if (gx) {  // gx (M x K) = gy (M x O) W (O x K)
    StridedEpilogue<T> e;
    e.c = gx; e.rs = K; e.cs = 1;
    gemm_strided<T>(M, K, O, T(1), strided_loader(gy, M, O, O, int64_t(1)), strided_loader(w, O, K, K, int64_t(1)),
                    T(0), e);
  }
  if (gw) {  // gw (O x K) = gy^T (O x M) x (M x K)
    StridedEpilogue<T> e;
    e.c = gw; e.rs = K; e.cs = 1;
    gemm_strided<T>(O, K, M, T(1), strided_loader(gy, O, M, int64_t(1), O), strided_loader(x, M, K, K, int64_t(1)),
                    T(0), e);
  }
  if (gb) column_sum(M, O, gy, gb);
}

}  // namespace
}  // namespace cuda

CK_REGISTER_CUDA(gemm_stub, cuda::gemm_impl);
CK_REGISTER_CUDA(gemm_tile_stub, cuda::gemm_tile_impl);
CK_REGISTER_CUDA(linear_fwd_stub, cuda::linear_fwd_impl);
CK_REGISTER_CUDA(linear_bwd_stub, cuda::linear_bwd_impl);

}  // namespace ck
