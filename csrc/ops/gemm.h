#pragma once
#include <cstdint>

#include "core/dispatch.h"

namespace ck {
template <class T>
using gemm_sig = void(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rsa, int64_t csa,
                      const T* B, int64_t rsb, int64_t csb, T beta, T* C, int64_t rsc, int64_t csc);
template <class T>
using gemm_tile_sig = void(int64_t* mr_nr_kc);
CK_DECLARE_STUB(gemm_stub, gemm_sig);
CK_DECLARE_STUB(gemm_tile_stub, gemm_tile_sig);
}  // namespace ck
