#include "ops/activation.h"

namespace ck {
CK_DEFINE_STUB(act_fwd_stub, act_fwd_sig);
CK_DEFINE_STUB(act_bwd_stub, act_bwd_sig);
CK_DEFINE_STUB(prelu_fwd_stub, prelu_fwd_sig);
CK_DEFINE_STUB(prelu_bwd_stub, prelu_bwd_sig);
CK_DEFINE_STUB(softmax_fwd_stub, softmax_fwd_sig);
CK_DEFINE_STUB(softmax_bwd_stub, softmax_bwd_sig);
CK_DEFINE_STUB(dropout_stub, dropout_sig);
}  // namespace ck
