#include "ops/linear.h"

namespace ck {
CK_DEFINE_STUB(linear_fwd_stub, linear_fwd_sig);
CK_DEFINE_STUB(linear_bwd_stub, linear_bwd_sig);
}  // namespace ck
