// CUDA runtime plumbing: device queries for convkern.info(), the per-thread call scope
// (device, stream, dispatch to the CUDA slot), pointer checks and error conversion.
#include <cuda_runtime.h>

#include <string>

#include "core/check.h"
#include "cuda/api.h"
#include "cuda/common.cuh"

namespace ck {

int cuda_device_count_impl() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string cuda_device_name_impl(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return std::string(prop.name);
}

namespace cuda {
namespace {
thread_local cudaStream_t t_stream = nullptr;
thread_local intptr_t t_call_stream = -1;
int g_conv_algo = 0;
}  // namespace

void throw_error(cudaError_t e, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so that later calls can proceed
  std::string msg = std::string("convkern CUDA error: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                    ") in " + what + " at " + file + ":" + std::to_string(line);
  if (e == cudaErrorMemoryAllocation) throw OutOfMemory(msg);
  throw Error(msg);
}

cudaStream_t stream() { return t_stream; }

int sm_count() {
  static int cache[64] = {};
  int dev = 0;
  CK_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return 80;
  if (!cache[dev]) {
    int n = 0;
    CK_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    cache[dev] = n > 0 ? n : 1;
  }
  return cache[dev];
}

int pointer_device(const void* ptr, const char* name) {
  cudaPointerAttributes a;
  cudaError_t e = cudaPointerGetAttributes(&a, ptr);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw TypeError(std::string(name) + ": is a CUDA array but its pointer is not valid device memory (" +
                    cudaGetErrorString(e) + ")");
  }
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
    throw TypeError(std::string(name) + ": __cuda_array_interface__ points to host memory, not device memory");
  return a.device;
}

Scope::Scope(int device, intptr_t stream_handle) {
  CK_CUDA_CHECK(cudaGetDevice(&prev_device_));
  if (device >= 0 && device != prev_device_) CK_CUDA_CHECK(cudaSetDevice(device));
  prev_stream_ = reinterpret_cast<intptr_t>(t_stream);
  prev_active_ = cuda_dispatch_active();
  t_stream = reinterpret_cast<cudaStream_t>(t_call_stream >= 0 ? t_call_stream : stream_handle);
  set_cuda_dispatch_active(true);
}

Scope::~Scope() {
  t_stream = reinterpret_cast<cudaStream_t>(prev_stream_);
  set_cuda_dispatch_active(prev_active_);
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && prev_device_ >= 0 && cur != prev_device_) cudaSetDevice(prev_device_);
  cudaGetLastError();
}

intptr_t set_call_stream(intptr_t s) {
  const intptr_t prev = t_call_stream;
  t_call_stream = s;
  return prev;
}

void set_conv_algo(int algo) {
  CK_CHECK(algo >= 0 && algo <= 2, "algo", "expected 0 (auto), 1 (im2col) or 2 (implicit)");
  g_conv_algo = algo;
}
int get_conv_algo() { return g_conv_algo; }

void synchronize() { CK_CUDA_CHECK(cudaDeviceSynchronize()); }

void mem_info(int64_t* free_b, int64_t* total_b) {
  size_t f = 0, t = 0;
  CK_CUDA_CHECK(cudaMemGetInfo(&f, &t));
  *free_b = int64_t(f);
  *total_b = int64_t(t);
}

int compute_capability(int device) {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return major * 10 + minor;
}

}  // namespace cuda
}  // namespace ck
