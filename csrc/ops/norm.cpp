#include "ops/norm.h"

namespace ck {
CK_DEFINE_STUB(batch_norm_fwd_stub, batch_norm_fwd_sig);
CK_DEFINE_STUB(batch_norm_bwd_stub, batch_norm_bwd_sig);
CK_DEFINE_STUB(lrn_fwd_stub, lrn_fwd_sig);
CK_DEFINE_STUB(lrn_bwd_stub, lrn_bwd_sig);
CK_DEFINE_STUB(layer_norm_fwd_stub, layer_norm_fwd_sig);
CK_DEFINE_STUB(layer_norm_bwd_stub, layer_norm_bwd_sig);
}  // namespace ck
