// Shape letters used everywhere (after CUTLASS):
//   N batch, C input channels, K output channels, G groups,
//   D,H,W input depth/height/width, T,R,S kernel depth/height/width, O,P,Q output depth/height/width.
// 1-d and 2-d convolutions are 3-d ones with unit leading spatial sizes.
#pragma once
#include <cstdint>

namespace ck {

struct ConvParams {
  int64_t N = 1, C = 1, K = 1, G = 1;
  int64_t D = 1, H = 1, W = 1;        // input spatial
  int64_t T = 1, R = 1, S = 1;        // kernel spatial
  int64_t O = 1, P = 1, Q = 1;        // output spatial
  int64_t stride[3] = {1, 1, 1};      // (d, h, w)
  int64_t pad[3] = {0, 0, 0};         // leading pad per spatial dim (trailing pad is implied by O,P,Q)
  int64_t dilation[3] = {1, 1, 1};

  int64_t in_plane() const { return D * H * W; }
  int64_t out_plane() const { return O * P * Q; }
  int64_t kernel_volume() const { return T * R * S; }
  int64_t Cg() const { return C / G; }  // input channels per group
  int64_t Kg() const { return K / G; }  // output channels per group
};

}  // namespace ck
