#include "ops/conv.h"

namespace ck {
CK_DEFINE_STUB(conv_fwd_stub, conv_fwd_sig);
CK_DEFINE_STUB(conv_nhwc_fwd_stub, conv_fwd_ex_sig);
CK_DEFINE_STUB(conv_nhwc_pack_stub, conv_nhwc_pack_sig);
CK_DEFINE_STUB(conv_fwd_ex_stub, conv_fwd_ex_sig);
CK_DEFINE_STUB(conv_pack_weight_stub, conv_pack_weight_sig);
CK_DEFINE_STUB(conv_channel_last_stub, conv_channel_last_sig);
CK_DEFINE_STUB(conv_direct_fwd_stub, conv_direct_fwd_sig);
CK_DEFINE_STUB(conv_bwd_data_stub, conv_bwd_data_sig);
CK_DEFINE_STUB(conv_bwd_weight_stub, conv_bwd_weight_sig);
}  // namespace ck
