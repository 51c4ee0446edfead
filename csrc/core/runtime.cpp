#include "core/runtime.h"

#include <cstdlib>

#include "core/check.h"
#include "cuda/api.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ck {

#ifdef CK_HAVE_CUDA
// Defined in cuda/device.cu.
int cuda_device_count_impl();
std::string cuda_device_name_impl(int device);
#endif

namespace {
int initial_threads() {
  // CONVKERN_NUM_THREADS wins over OMP_NUM_THREADS (which OpenMP already applies).
  const char* env = std::getenv("CONVKERN_NUM_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n >= 1) {
#ifdef _OPENMP
      omp_set_num_threads(n);
#endif
      return n;
    }
  }
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
int g_threads = initial_threads();
}  // namespace

void set_num_threads(int n) {
  CK_CHECK(n >= 1, "num_threads", "must be >= 1, got " + std::to_string(n));
#ifdef _OPENMP
  omp_set_num_threads(n);
  g_threads = n;
#else
  g_threads = 1;
#endif
}
int get_num_threads() { return g_threads; }
bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}
bool cuda_built() {
#ifdef CK_HAVE_CUDA
  return true;
#else
  return false;
#endif
}
int cuda_device_count() {
#ifdef CK_HAVE_CUDA
  return cuda_device_count_impl();
#else
  return 0;
#endif
}
std::string cuda_device_name(int device) {
#ifdef CK_HAVE_CUDA
  return cuda_device_name_impl(device);
#else
  (void)device;
  return "";
#endif
}

namespace {
thread_local bool t_cuda_dispatch = false;
}
bool cuda_dispatch_active() { return t_cuda_dispatch; }
void set_cuda_dispatch_active(bool on) { t_cuda_dispatch = on; }

#ifndef CK_HAVE_CUDA
// CPU-only build: device arrays are refused where they enter (bind/common.h's arr()).
namespace cuda {
int pointer_device(const void*, const char* name) {
  throw TypeError(std::string(name) + ": is a CUDA array, but convkern was built without CUDA "
                  "(rebuild with CONVKERN_CUDA=ON) - use a numpy.ndarray");
}
Scope::Scope(int, intptr_t) { throw std::runtime_error("convkern was built without CUDA"); }
Scope::~Scope() = default;
intptr_t set_call_stream(intptr_t) { return -1; }
void set_conv_algo(int) {}
int get_conv_algo() { return 0; }
void synchronize() {}
void mem_info(int64_t* f, int64_t* t) { *f = *t = 0; }
int compute_capability(int) { return 0; }
}  // namespace cuda
#endif

}  // namespace ck
