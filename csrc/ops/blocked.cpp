#include "ops/blocked.h"

namespace ck {
CK_DEFINE_STUB(blk_pack_1x1_stub, blk_pack_1x1_sig);
CK_DEFINE_STUB(blk_conv1x1_stub, blk_conv1x1_sig);
CK_DEFINE_STUB(blk_rows_stub, blk_rows_sig);
CK_DEFINE_STUB(blk_depthwise_stub, blk_depthwise_sig);
CK_DEFINE_STUB(blk_conv_direct_stub, blk_conv_direct_sig);
CK_DEFINE_STUB(blk_subsample_stub, blk_subsample_sig);
CK_DEFINE_STUB(blk_gap_stub, blk_gap_sig);
}  // namespace ck
