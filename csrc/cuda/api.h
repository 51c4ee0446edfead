// Host-side view of the CUDA path, usable from plain C++ (bind/, core/): no CUDA headers.
//
// How a call reaches a CUDA kernel:
//   1. bind/common.h's arr() accepts any object with __cuda_array_interface__ (CuPy arrays):
//      it reads the data pointer, shape, dtype and the producer's stream (CAI v3 "stream",
//      CuPy's current stream) and asks the driver which device owns the pointer.
//   2. check_same_dtype / check_same_place refuse a mix of host and device arrays (TypeError).
//   3. dispatch_float() opens a cuda::Scope for a device array: it makes that device current,
//      publishes the stream (cuda::stream() in the kernels) and makes Stub::get<T>() return the
//      stub's kCudaSlot; so every binding runs the CUDA kernel with the CPU kernel's signature.
// Builds without CUDA get stubs that refuse device arrays with a TypeError.
#pragma once
#include <cstdint>
#include <string>

namespace ck {
namespace cuda {

// Device that owns `ptr`; throws TypeError(name: ...) if it is not device (or managed) memory,
// or if convkern was built without CUDA.
int pointer_device(const void* ptr, const char* name);

// While alive, the calling thread dispatches to the CUDA slot, on `device`, on `stream`
// (a cudaStream_t as an integer: 0 default, 1 legacy, 2 per-thread, else a handle).
class Scope {
 public:
  Scope(int device, intptr_t stream);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  int prev_device_ = -1;
  intptr_t prev_stream_ = 0;
  bool prev_active_ = false;
};

// The stream convkern.functional publishes for the calling thread (CuPy's current stream,
// set around every op that runs on a GPU); it wins over the arrays' CAI stream. -1: none.
// Returns the previous value.
intptr_t set_call_stream(intptr_t stream);

// Forward-algorithm choice of the CUDA conv_fwd kernel: 0 auto, 1 im2col + GEMM, 2 implicit GEMM.
void set_conv_algo(int algo);
int get_conv_algo();

// Waits for all work on the device (used by tests / benchmarks; converts errors to exceptions).
void synchronize();
// Free / total memory of the current device, in bytes.
void mem_info(int64_t* free_b, int64_t* total_b);
// Compute capability (major*10 + minor) of `device`, or 0.
int compute_capability(int device);

}  // namespace cuda

// Thread-local: true inside a cuda::Scope (Stub::get<T>() then returns the CUDA slot).
bool cuda_dispatch_active();
void set_cuda_dispatch_active(bool on);

}  // namespace ck
