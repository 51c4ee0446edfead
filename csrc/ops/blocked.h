// Channel-blocked ("NCHW16c") convolutions, for graph runtimes that keep a chain of 1x1 and
// depthwise layers in that layout (the ONNX backend's MobileNetV2 blocks, see
// python/convkern/onnx/optimize.py). An (N, C, H, W) tensor is held as (ceil(C/kBlk), N, H, W,
// kBlk): element (n, c, h, w) at ((c/kBlk*N + n)*H*W + h*W + w)*kBlk + c%kBlk. When C is not a
// multiple of kBlk, the last block's lanes from C%kBlk on are padding: these kernels write zeros
// there (from finite inputs: the padded weights and biases are zero) and never read them into a
// real channel (a reduction runs over the C real channels only). Each position's kBlk channels
// are contiguous, so a 1x1 layer's product reads and writes whole vectors of channels per
// position (no transposes on either side) and a
// depthwise layer computes kBlk channels per vector, with no short rows on small planes; and
// a block holds every image's positions in a row, so that a batch of 1x1 products between
// blocked tensors is one product over N*H*W positions.
#pragma once
#include <cstdint>
#include <limits>

#include "core/dispatch.h"
#include "ops/depthwise.h"

namespace ck {

constexpr int64_t kBlk = 16;

// A 1x1, stride-1, unpadded, one-group convolution of N images of P positions, C -> K channels.
// in_blk / out_blk: x / y (and the residual, which has y's layout) channel-blocked (C / K real
// channels in ceil(C/kBlk) / ceil(K/kBlk) blocks) or NCHW.
struct BlkConv1x1 {
  int64_t N = 1, C = 1, K = 1, P = 1;
  bool in_blk = false, out_blk = false;
  // The product's orientation: false: channel-last, Y^T (P x K) = X^T W^T (the weight packed
  // with rows = false); true (a blocked input, an NCHW output only): Y (K x P) = W X, the
  // weight packed with rows = true. blk_rows says which wastes fewer of the tile's lanes.
  bool rows = false;
  bool relu = false;  // y clamped to [0, relu_max] after the bias and residual (NaN stays NaN)
  double relu_max = std::numeric_limits<double>::infinity();
};

// A direct 2-d convolution (one group) of an NCHW input (N, C, H, W) into a blocked output of K
// channels, for layers with few input channels (a network's first layer: MobileNetV2's 3 -> 32
// 3x3/2), whose im2col product has too short a reduction to run at speed: each output
// position's channels are vectors, and each input value is broadcast against them.
struct BlkConvDirect {
  int64_t N = 1, C = 1, K = 1, H = 1, W = 1, P = 1, Q = 1, R = 1, S = 1;
  int64_t sh = 1, sw = 1;  // stride
  int64_t ph = 0, pw = 0;  // leading padding (the trailing padding follows from P and Q)
  int64_t dh = 1, dw = 1;  // dilation
  bool relu = false;       // y clamped to [0, relu_max] after the bias (NaN stays NaN)
  double relu_max = std::numeric_limits<double>::infinity();
};

// The weight (K x C, row-major) packed as blk_conv1x1 reads it in the orientation `rows`, for
// an output blocked or not (out_blk: K's zero rows up to a multiple of kBlk too): returns the
// packed size in values; packs into dst unless it is null.
template <class T>
using blk_pack_1x1_sig = int64_t(int64_t C, int64_t K, const T* w, T* dst, bool rows, bool out_blk);
// Whether a product of K channels over P positions reading a blocked input and writing NCHW
// runs with rows = true (this ISA's tile width decides).
template <class T> using blk_rows_sig = bool(int64_t K, int64_t P);
// y = conv1x1(x, w) + b (nullable) + res (nullable), then the relu.
template <class T>
using blk_conv1x1_sig = void(const BlkConv1x1& q, const T* x, const T* wpk, const T* b, const T* res, T* y);
// Depthwise (p.M == 1, p.C real channels), x and y channel-blocked; p.relu, p.relu_max apply.
template <class T> using blk_depthwise_sig = void(const DwParams& p, const T* x, const T* w, const T* b, T* y);

// y (blocked) = conv2d(x (NCHW), w (K, C, R, S)) + b (nullable), then the relu.
template <class T>
using blk_conv_direct_sig = void(const BlkConvDirect& p, const T* x, const T* w, const T* b, T* y);

// Every sh-th row and sw-th column of `planes` blocked planes (H x W positions of kBlk values)
// into P x Q planes (P = ceil(H/sh), Q = ceil(W/sw)): a strided 1x1 layer's input.
template <class T>
using blk_subsample_sig = void(int64_t planes, int64_t H, int64_t W, int64_t P, int64_t Q, int64_t sh, int64_t sw,
                               const T* x, T* y);
// Global average pooling of a blocked (CB, N, HW, kBlk) tensor of C channels into y (N x C).
template <class T> using blk_gap_sig = void(int64_t CB, int64_t N, int64_t HW, int64_t C, const T* x, T* y);

CK_DECLARE_STUB(blk_pack_1x1_stub, blk_pack_1x1_sig);
CK_DECLARE_STUB(blk_conv1x1_stub, blk_conv1x1_sig);
CK_DECLARE_STUB(blk_rows_stub, blk_rows_sig);
CK_DECLARE_STUB(blk_depthwise_stub, blk_depthwise_sig);
CK_DECLARE_STUB(blk_conv_direct_stub, blk_conv_direct_sig);
CK_DECLARE_STUB(blk_subsample_stub, blk_subsample_sig);
CK_DECLARE_STUB(blk_gap_stub, blk_gap_sig);

}  // namespace ck
