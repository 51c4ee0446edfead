// Shared by every csrc/cuda/*.cu file: error handling, launch geometry, the current stream,
// stream-ordered scratch memory, block reductions and CK_REGISTER_CUDA.
//
// Conventions of the CUDA kernels:
//   * same signatures as the CPU kernels (ops/*.h); pointers are device pointers;
//   * they run on cuda::stream(), the stream of the calling binding's arrays (CuPy's current
//     stream), asynchronously: nothing here synchronizes except cross_entropy's bad-target count;
//   * all index arithmetic in int64_t; elementwise kernels use grid-stride loops;
//   * every launch is followed by CK_CUDA_LAUNCH_CHECK(): launch errors become C++ exceptions
//     (ck::cuda::Error -> RuntimeError, ck::cuda::OutOfMemory -> MemoryError), never aborts.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "core/check.h"
#include "core/dispatch.h"
#include "core/params.h"
#include "cuda/api.h"

namespace ck {
namespace cuda {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// pybind11 maps std::bad_alloc to MemoryError.
struct OutOfMemory : std::bad_alloc {
  explicit OutOfMemory(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
  std::string msg;
};

[[noreturn]] void throw_error(cudaError_t e, const char* what, const char* file, int line);

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) throw_error(e, what, file, line);
}

// The stream of the current binding call (set by cuda::Scope).
cudaStream_t stream();
// Multiprocessor count of the current device (cached per device).
int sm_count();

}  // namespace cuda
}  // namespace ck

#define CK_CUDA_CHECK(expr) ::ck::cuda::check((expr), #expr, __FILE__, __LINE__)
#define CK_CUDA_LAUNCH_CHECK() ::ck::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

#define CK_CUDA_CAT_(a, b) a##b
#define CK_CUDA_CAT(a, b) CK_CUDA_CAT_(a, b)
// Fills the CUDA slot of `stub` with fn<float> and fn<double> (host functions that launch kernels).
#define CK_REGISTER_CUDA(stub, fn)                                                       \
  static const bool CK_CUDA_CAT(ck_cuda_registered_, __LINE__) =                         \
      ((void)(::ck::stub.f32[::ck::kCudaSlot] = &fn<float>),                             \
       (void)(::ck::stub.f64[::ck::kCudaSlot] = &fn<double>), true)

namespace ck {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill the device, never more than needed.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t want = (n + threads - 1) / threads;
  int64_t cap = int64_t(sm_count()) * 32;
  if (want > cap) want = cap;
  if (want < 1) want = 1;
  return unsigned(want);
}

#define CK_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

// Stream-ordered scratch memory (cudaMallocAsync on the current stream), freed on scope exit.
template <class T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : n_(n) {
    if (n <= 0) return;
    cudaError_t e = cudaMallocAsync(reinterpret_cast<void**>(&p_), size_t(n) * sizeof(T), stream());
    if (e != cudaSuccess) {
      cudaGetLastError();
      if (e == cudaErrorMemoryAllocation)
        throw OutOfMemory("convkern: CUDA out of memory allocating " + std::to_string(size_t(n) * sizeof(T)) +
                          " bytes of workspace");
      throw_error(e, "cudaMallocAsync", __FILE__, __LINE__);
    }
  }
  ~Scratch() {
    if (p_) cudaFreeAsync(p_, stream());
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }
  int64_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// Workspace budget of the im2col paths (elements are chunked to stay below it).
constexpr int64_t kWorkspaceBytes = int64_t(256) << 20;

// ---------------------------------------------------------------- reductions

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T u = __shfl_down_sync(0xffffffffu, v, o);
    v = (u > v || u != u) ? u : v;  // NaN propagates
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); the result is valid in thread 0.
// `sh` holds 32 values. Deterministic (fixed tree). Ends with a __syncthreads so `sh` can be reused.
template <class T>
__device__ T block_sum(T v, T* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = (threadIdx.x < nw) ? sh[threadIdx.x] : T(0);
  if (wid == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}
// Same, result broadcast to every thread.
template <class T>
__device__ T block_sum_all(T v, T* sh) {
  v = block_sum(v, sh);
  if (threadIdx.x == 0) sh[0] = v;
  __syncthreads();
  v = sh[0];
  __syncthreads();
  return v;
}
template <class T>
__device__ T block_max_all(T v, T* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  v = warp_max(v);
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  if (wid == 0) {
    v = (threadIdx.x < nw) ? sh[threadIdx.x] : v;
    v = warp_max(v);
    if (threadIdx.x == 0) sh[0] = v;
  }
  __syncthreads();
  v = sh[0];
  __syncthreads();
  return v;
}

template <class T> __device__ __forceinline__ T ninf() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double ninf<double>() { return -__longlong_as_double(0x7ff0000000000000ll); }

// Math wrappers picking the float or double function.
__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_expm1(float x) { return expm1f(x); }
__device__ __forceinline__ double d_expm1(double x) { return expm1(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return erf(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float d_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double d_rsqrt(double x) { return rsqrt(x); }

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace ck
