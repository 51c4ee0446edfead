#include "ops/winograd.h"

namespace ck {
CK_DEFINE_STUB(winograd3x3_fwd_stub, winograd_fwd_sig);
CK_DEFINE_STUB(winograd3x3_fwd_ex_stub, winograd_fwd_ex_sig);
CK_DEFINE_STUB(winograd_transform_stub, winograd_transform_sig);
CK_DEFINE_STUB(winograd3x3_bwd_weight_stub, winograd_bwd_weight_sig);
}  // namespace ck
