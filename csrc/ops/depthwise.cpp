#include "ops/depthwise.h"

namespace ck {
CK_DEFINE_STUB(depthwise_fwd_stub, depthwise_fwd_sig);
CK_DEFINE_STUB(depthwise_bwd_input_stub, depthwise_bwd_input_sig);
CK_DEFINE_STUB(depthwise_bwd_weight_stub, depthwise_bwd_weight_sig);
}  // namespace ck
