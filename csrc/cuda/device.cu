// CUDA runtime queries for convkern.info(). The CUDA kernels themselves fill the
// kCudaSlot of each dispatch stub (issue: the CUDA path); this file is the seam.
#include <cuda_runtime.h>

#include <string>

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

}  // namespace ck
