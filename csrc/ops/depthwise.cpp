#include "ops/depthwise.h"

namespace ck {
CK_DEFINE_STUB(dw_fwd_stub, dw_fwd_sig);
CK_DEFINE_STUB(dw_bwd_data_stub, dw_bwd_data_sig);
CK_DEFINE_STUB(dw_bwd_weight_stub, dw_bwd_weight_sig);
}  // namespace ck
