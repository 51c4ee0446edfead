#include "ops/winograd.h"

namespace ck {
CK_DEFINE_STUB(winograd3x3_fwd_stub, winograd_fwd_sig);
}  // namespace ck
