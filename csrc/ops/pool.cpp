#include "ops/pool.h"

namespace ck {
CK_DEFINE_STUB(max_pool2d_fwd_stub, max_pool2d_fwd_sig);
CK_DEFINE_STUB(max_pool2d_bwd_stub, max_pool2d_bwd_sig);
CK_DEFINE_STUB(avg_pool2d_fwd_stub, avg_pool2d_fwd_sig);
CK_DEFINE_STUB(avg_pool2d_bwd_stub, avg_pool2d_bwd_sig);
CK_DEFINE_STUB(adaptive_avg_pool2d_fwd_stub, adaptive_avg_pool2d_fwd_sig);
CK_DEFINE_STUB(adaptive_avg_pool2d_bwd_stub, adaptive_avg_pool2d_bwd_sig);
CK_DEFINE_STUB(adaptive_max_pool2d_fwd_stub, adaptive_max_pool2d_fwd_sig);
CK_DEFINE_STUB(adaptive_max_pool2d_bwd_stub, adaptive_max_pool2d_bwd_sig);
CK_DEFINE_STUB(global_avg_pool_fwd_stub, global_pool_fwd_sig);
CK_DEFINE_STUB(global_max_pool_fwd_stub, global_pool_fwd_sig);
CK_DEFINE_STUB(global_avg_pool_bwd_stub, global_avg_pool_bwd_sig);
CK_DEFINE_STUB(global_max_pool_bwd_stub, global_max_pool_bwd_sig);
}  // namespace ck
