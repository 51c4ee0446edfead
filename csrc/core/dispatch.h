// Dispatch stubs: one table of function pointers per operator, with a slot per CPU ISA
// (scalar, AVX2, AVX-512) and one for CUDA, for float and for double.
//
// Recipe (after ATen's DispatchStub):
//   1. in ops/<op>.h:    template <class T> using relu_fwd_sig = void(int64_t n, const T* x, T* y);
//                        CK_DECLARE_STUB(relu_fwd, relu_fwd_sig);
//   2. in ops/<op>.cpp:  CK_DEFINE_STUB(relu_fwd, relu_fwd_sig);
//   3. in cpu/<op>.cpp:  template <class T> void relu_fwd_impl(int64_t n, const T* x, T* y) {...}
//                        CK_REGISTER(relu_fwd, relu_fwd_impl);   // fills this ISA's slot
//   4. callers:          ck::relu_fwd.get<float>()(n, x, y);     // the active ISA's kernel
// Every cpu/ file is compiled for every ISA, so every CPU slot is filled; a slot is never
// an empty function. The CUDA kernels (csrc/cuda/*.cu) fill kCudaSlot with CK_REGISTER_CUDA;
// get<T>() returns that slot while a binding runs on device arrays (cuda/api.h: cuda::Scope).
#pragma once
#include <cstdint>
#include <stdexcept>

namespace ck {

enum Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kNumIsa = 3 };
constexpr int kCudaSlot = kNumIsa;

// The ISA chosen at import (best supported, or CONVKERN_ISA), changeable with set_isa().
Isa active_isa();
void set_active_isa(Isa isa);          // throws ValueError if the CPU lacks it
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Thread-local flag set by cuda::Scope (core/runtime.cpp): dispatch to the CUDA slot.
bool cuda_dispatch_active();

template <template <class> class Sig>
struct Stub {
  // Zero-initialised static storage, filled by CK_REGISTER's static initialisers.
  Sig<float>* f32[kNumIsa + 1];
  Sig<double>* f64[kNumIsa + 1];

  template <class T>
  Sig<T>* get(Isa isa) const {
    Sig<T>* fn;
    if constexpr (sizeof(T) == 4) fn = f32[isa]; else fn = f64[isa];
    if (!fn) throw std::runtime_error("convkern: no kernel registered for this ISA");
    return fn;
  }
  template <class T>
  Sig<T>* get_cuda() const {
    Sig<T>* fn;
    if constexpr (sizeof(T) == 4) fn = f32[kCudaSlot]; else fn = f64[kCudaSlot];
    if (!fn) throw std::runtime_error("convkern: this operator has no CUDA kernel (or convkern was built without CUDA)");
    return fn;
  }
  template <class T>
  Sig<T>* get() const { return cuda_dispatch_active() ? get_cuda<T>() : get<T>(active_isa()); }
};

}  // namespace ck

#define CK_DECLARE_STUB(name, sig) extern ::ck::Stub<sig> name
#define CK_DEFINE_STUB(name, sig) ::ck::Stub<sig> name{}
