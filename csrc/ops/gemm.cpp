#include "ops/gemm.h"

namespace ck {
CK_DEFINE_STUB(gemm_stub, gemm_sig);
CK_DEFINE_STUB(gemm_tile_stub, gemm_tile_sig);
}  // namespace ck
