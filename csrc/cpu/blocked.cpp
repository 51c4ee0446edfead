// Channel-blocked (NCHW16c) 1x1 and depthwise convolutions (ops/blocked.h).
//
// 1x1: the product runs channel-last, Y^T (P x K) = X^T (P x C) W^T, output positions in the
// micro-tile's rows and channels in its lanes (the layout's natural orientation: a position's
// kBlk channels are one or more whole vectors), the weight packed once as W^T's panels:
// - a blocked input is read in place by the micro-kernel (GemmEpi::ablk: it broadcasts each
//   position's channels straight from the blocks, no packing), an NCHW input is read in place
//   as A^T (as conv.cpp's channel-last product does);
// - a blocked output is stored by the micro-kernel through GemmEpi::cblock, one vector per
//   (position, L channels), the bias, residual and relu in its epilogue; an NCHW output as a
//   column-major C (the micro-kernel's transposed store).
// From a blocked input into an NCHW output with few channels over many positions (24 at
// 56x56, where 24 channels would fill 24 of a tile's 32 lanes) the product runs the other
// way, Y (K x P) = W X, the weight prepacked as A and X's panels packed from the blocks by BlkB
// (blk_rows decides, as conv.cpp's channel_last_product does).
// The reduction runs as one K slice up to 2048 channels deep, so that y is written once.
// A blocked output of K channels not a multiple of kBlk is computed with its last block's
// padding lanes (zero weight rows and biases: whole-vector tiles and stores); a blocked input's
// reduction runs over its C real channels, never reading the padding.
// Blocked in and out, the batch is one product over all images' positions (the layout puts
// every image's positions of a channel block side by side); otherwise image by image.
//
// Depthwise: one vector holds L of a block's kBlk channels at one position; output row by
// output row, the columns whose taps all lie inside the row (the interior) QB at a time with
// the taps' weights in registers (3x3 at stride 1 or 2: compile-time offsets, so loads shared
// between neighbouring outputs are issued once), the border columns with each tap checked.
// Tasks are (channel block, image, run of output rows), so that small batches still fill both
// cores.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/common.h"
#include "ops/blocked.h"
#include "ops/gemm.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

static_assert(kBlk == kCBlock, "the GEMM's channel blocks are the layout's");

// K slice depth of the product and of its packed weight: the whole reduction up to 2048 deep.
inline int64_t blk_kc(int64_t C) { return C <= 2048 ? C : 0; }

// A W-wide panel of positions from a blocked input x whose channel blocks are bs values apart:
// dst[k * W + i] = channel pc + k of position m + i, for k < kc and i < rows (0 for i >= rows).
// L channels of L positions at a time, turned by one L x L register transpose into L runs of
// positions.
template <class T, int W>
void pack_positions(const T* x, int64_t bs, int64_t pc, int64_t kc, int64_t m, int64_t rows, T* dst) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  auto at = [&](int64_t c, int64_t pos) { return x + (c / kBlk) * bs + pos * kBlk + c % kBlk; };
  int64_t k = 0;
  for (; k + L <= kc && (pc + k) % L == 0; k += L)
    for (int g = 0; g < W; g += L) {
      V v[L];
      for (int i = 0; i < L; ++i) v[i] = g + i < rows ? vload<V>(at(pc + k, m + g + i)) : V{};
      transpose_tile<T>(v);
      const int n = W - g < L ? W - g : L;
      for (int u = 0; u < L; ++u) {
        if (n == L) vstore(dst + (k + u) * W + g, v[u]);
        else vstore_head(dst + (k + u) * W + g, v[u], n);
      }
    }
  for (; k < kc; ++k)
    for (int i = 0; i < W; ++i) dst[k * W + i] = i < rows ? *at(pc + k, m + i) : T(0);
}

// B (channels x positions) of the product Y = W X from a blocked input: columns [n0, n0 + nc)
// of channels [pc, pc + kc) into NR-wide panels.
template <class T>
struct BlkB {
  const T* x;
  int64_t bs;
  static void pack(const void* ctx, int64_t pc, int64_t kc, int64_t n0, int64_t nc, T* dst) {
    const BlkB& b = *static_cast<const BlkB*>(ctx);
    constexpr int NR = int(kGemmNR<T>);
    for (int64_t jp = 0; jp * NR < nc; ++jp)
      pack_positions<T, NR>(b.x, b.bs, pc, kc, n0 + jp * NR, imin(NR, nc - jp * NR), dst + jp * NR * kc);
  }
};

// The product's columns: a blocked output's K channels with their block's padding lanes.
inline int64_t blk_cols(int64_t K, bool out_blk) { return out_blk ? ceil_div(K, kBlk) * kBlk : K; }

template <class T>
int64_t blk_pack_1x1_impl(int64_t C, int64_t K, const T* w, T* dst, bool rows, bool out_blk) {
  if (rows) {
    if (dst) pack_a_whole<T>(K, C, w, C, 1, dst);
    return packed_a_size<T>(K, C);
  }
  const int64_t KP = blk_cols(K, out_blk);
  if (dst && KP == K) pack_b_whole<T>(C, K, w, 1, C, dst, blk_kc(C));
  if (dst && KP != K) {  // (zero weight rows for the padding lanes: they compute 0)
    Buffer wb;
    T* wp = wb.get<T>(KP * C);
    std::memcpy(wp, w, size_t(K * C) * sizeof(T));
    std::memset(static_cast<void*>(wp + K * C), 0, size_t((KP - K) * C) * sizeof(T));
    pack_b_whole<T>(C, KP, wp, 1, C, dst, blk_kc(C));
  }
  return packed_b_size<T>(C, KP);
}

// The channel-last product unless it pads more lanes (channel_last_pads_less, as conv.cpp does)
// (measured interleaved, Zen 4, 2 threads: a blocked input into 24 NCHW channels at 56x56,
// 96 -> 24 and 144 -> 24, 0.80-0.82 of the channel-last time in rows).
template <class T>
bool blk_rows_impl(int64_t K, int64_t P) {
  return !channel_last_pads_less<T>(K, P);
}

template <class T>
void blk_conv1x1_impl(const BlkConv1x1& q, const T* x, const T* wpk, const T* b, const T* res, T* y) {
  // K: the product's columns (a blocked output's padding lanes computed, from zero weights and
  // biases)
  const int64_t C = q.C, K = q.rows ? q.K : blk_cols(q.K, q.out_blk), P = q.P;
  // a blocked tensor's channel blocks are N*P positions apart (the layout of ops/blocked.h):
  // blocked in and out, the whole batch is one product over N*P positions
  const int64_t NP = q.N * P, bs = NP * kBlk;
  const bool fold = q.in_blk && q.out_blk;
  static thread_local Buffer bbuf;  // (the caller's thread: the product's threads only read it)
  if (b && K != q.K) {  // (the bias with zeros for the padding lanes)
    T* bp = bbuf.get<T>(K);
    for (int64_t k = 0; k < K; ++k) bp[k] = k < q.K ? b[k] : T(0);
    b = bp;
  }
  for (int64_t n = 0; n < (fold ? 1 : q.N); ++n) {
    const int64_t M = fold ? NP : P;
    // image n's input, output and residual
    const T* xn = q.in_blk ? x + n * P * kBlk : x + n * C * P;
    const int64_t yo = q.out_blk ? n * P * kBlk : n * K * P;
    T* yn = y + yo;
    const T* rn = res ? res + yo : nullptr;
    GemmEpi<T> e;
    e.bias = b;
    e.residual = rn;
    e.relu = q.relu;
    e.relu_max = T(q.relu_max);
    if (q.rows) {  // Y (K x P) = W X: the weight's panels prepacked, X's packed from the blocks
      const BlkB<T> bb{xn, bs};
      e.apacked = wpk;
      gemm_packed<T>(K, P, C, T(1), nullptr, 0, 0, &BlkB<T>::pack, &bb, T(0), yn, P, 1, e);
      continue;
    }
    e.bpacked = wpk;
    e.kc = blk_kc(C);
    if (q.in_blk) {  // A read in place (the micro-kernel broadcasts each position's channels)
      e.ablk = xn;
      e.ablk_bs = bs;
    }
    e.bias_cols = true;
    if (q.out_blk) e.cblock = bs;
    // A^T = x (C x P) when NCHW; C = y blocked (rows kBlk apart) or column-major (NCHW)
    gemm_blocked<T>(M, K, C, T(1), q.in_blk ? nullptr : xn, 1, P, nullptr, 1, C, T(0), yn, q.out_blk ? kBlk : 1,
                    q.out_blk ? 1 : P, e);
  }
}

// Output rows [p0, p1) of one (image, channel block): xp, yp its input and output planes
// (H*W*kBlk, P*Q*kBlk values), wt its weights tap-major (R*S*kBlk), bt its biases (kBlk).
// KR, KS, SW: compile-time kernel size and column stride with unit dilation (0: p's).
template <class T, int KR, int KS, int SW>
void blk_dw_rows(const DwParams& p, const T* xp, const T* wt, const T* bt, T* yp, int64_t p0, int64_t p1) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  constexpr bool FIX = KR > 0;
  const int64_t R = FIX ? KR : p.R, S = FIX ? KS : p.S, sw = FIX ? SW : p.sw, dw = FIX ? 1 : p.dw;
  const int64_t W = p.W, Q = p.Q;
  // interior columns [qa, qb): every tap of the row inside [0, W)
  const int64_t qa = imin(Q, ceil_div(p.pw, sw));
  const int64_t last = W - 1 - (S - 1) * dw + p.pw;
  const int64_t qb = imax(qa, last < 0 ? 0 : imin(Q, last / sw + 1));
  const V hi = vbroadcast<V>(T(p.relu_max));
  for (int g = 0; g < int(kBlk) / L; ++g) {
    const T* xg = xp + g * L;
    V wl[FIX ? KR * KS : 1];
    if constexpr (FIX)
      for (int t = 0; t < KR * KS; ++t) wl[t] = vload<V>(wt + t * kBlk + g * L);
    auto wv = [&](int64_t t) { return FIX ? wl[FIX ? t : 0] : vload<V>(wt + t * kBlk + g * L); };
    const V bv = vload<V>(bt + g * L);
    auto finish = [&](V a) { return p.relu ? relu_clamp<T>(a, hi) : a; };
    auto point = [&](int64_t pr, int64_t q) {  // any output, every tap checked
      V a = bv;
      const int64_t ih0 = pr * p.sh - p.ph, iw0 = q * sw - p.pw;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t ih = ih0 + r * p.dh;
        if (ih < 0 || ih >= p.H) continue;
        for (int64_t s = 0; s < S; ++s) {
          const int64_t iw = iw0 + s * dw;
          if (iw >= 0 && iw < W) a += wv(r * S + s) * vload<V>(xg + (ih * W + iw) * kBlk);
        }
      }
      vstore(yp + (pr * Q + q) * kBlk + g * L, finish(a));
    };
    // QB interior outputs of row pr from column q on
    auto block = [&](auto qb_tag, int64_t pr, int64_t q) {
      constexpr int QB = decltype(qb_tag)::value;
      const int64_t ih0 = pr * p.sh - p.ph;
      V a[QB];
      for (int u = 0; u < QB; ++u) a[u] = bv;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t ih = ih0 + r * p.dh;
        if (ih < 0 || ih >= p.H) continue;
        const T* row = xg + (ih * W + q * sw - p.pw) * kBlk;
        for (int64_t s = 0; s < S; ++s) {
          const V wk = wv(r * S + s);
#pragma GCC unroll 8
          for (int u = 0; u < QB; ++u) a[u] += wk * vload<V>(row + (u * sw + s * dw) * kBlk);
        }
      }
      T* yr = yp + (pr * Q + q) * kBlk + g * L;
#pragma GCC unroll 8
      for (int u = 0; u < QB; ++u) vstore(yr + u * kBlk, finish(a[u]));
    };
    // row pr from column q on
    auto row = [&](int64_t pr, int64_t q) {
      for (; q < qa; ++q) point(pr, q);
      for (; q + 8 <= qb; q += 8) block(std::integral_constant<int, 8>{}, pr, q);
      for (; q + 4 <= qb; q += 4) block(std::integral_constant<int, 4>{}, pr, q);
      for (; q < qb; ++q) block(std::integral_constant<int, 1>{}, pr, q);
      for (; q < Q; ++q) point(pr, q);
    };
    int64_t pr = p0;
    // 3x3 at unit strides with 32 vector registers: the interior of two rows at once, 8 columns
    // at a time, each of the 4 input rows loaded once for both (10 vectors a row): 40 loads for
    // 144 multiply-adds instead of 60 (the 112x112 layer ran at 1.15 of the NCHW kernel's time
    // one row at a time)
    constexpr bool PAIR = FIX && KR == 3 && KS == 3 && SW == 1 && L * int(sizeof(T)) == 64;
    if constexpr (PAIR) {
      if (p.sh == 1 && p.dh == 1)
        for (; pr + 2 <= p1; pr += 2) {
          int64_t q = 0;
          for (; q < qa; ++q) point(pr, q), point(pr + 1, q);
          const int64_t ih0 = pr - p.ph;
          for (; q + 8 <= qb; q += 8) {
            V a0[8], a1[8];
            for (int u = 0; u < 8; ++u) a0[u] = bv, a1[u] = bv;
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
              const int64_t ih = ih0 + j;
              if (ih < 0 || ih >= p.H) continue;
              const T* rw = xg + (ih * W + q - p.pw) * kBlk;
              V v[10];
#pragma GCC unroll 10
              for (int t = 0; t < 10; ++t) v[t] = vload<V>(rw + t * kBlk);
#pragma GCC unroll 3
              for (int s = 0; s < 3; ++s) {
                if (j < 3) {
                  const V wk = wl[j * 3 + s];
#pragma GCC unroll 8
                  for (int u = 0; u < 8; ++u) a0[u] += wk * v[u + s];
                }
                if (j > 0) {
                  const V wk = wl[(j - 1) * 3 + s];
#pragma GCC unroll 8
                  for (int u = 0; u < 8; ++u) a1[u] += wk * v[u + s];
                }
              }
            }
            T* y0 = yp + (pr * Q + q) * kBlk + g * L;
#pragma GCC unroll 8
            for (int u = 0; u < 8; ++u) {
              vstore(y0 + u * kBlk, finish(a0[u]));
              vstore(y0 + (Q + u) * kBlk, finish(a1[u]));
            }
          }
          row(pr, q);
          row(pr + 1, q);
        }
    }
    for (; pr < p1; ++pr) row(pr, 0);
  }
}

template <class T>
void blk_depthwise_impl(const DwParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t CB = ceil_div(p.C, kBlk), RS = p.R * p.S, planes = p.N * CB;
  const int64_t in_plane = p.H * p.W * kBlk, out_plane = p.P * p.Q * kBlk;
  // runs of output rows: about 8 tasks per thread where the planes are fewer
  const int nt = max_threads();
  const int64_t per = imax(1, imin(p.P, ceil_div(8 * nt, planes)));
  const int64_t rows = ceil_div(p.P, per);
  const int64_t tasks = planes * ceil_div(p.P, rows);
  const bool k3 = p.R == 3 && p.S == 3 && p.dh == 1 && p.dw == 1;
  const bool par = nt > 1 && tasks > 1 && planes * out_plane * RS > kParallelGrain;
  parallel_for_steal(tasks, par, [&](int64_t task) {
    const int64_t chunks = ceil_div(p.P, rows);
    const int64_t plane = task / chunks, p0 = (task % chunks) * rows, p1 = imin(p.P, p0 + rows);
    const int64_t cb = plane / p.N;  // (planes in the layout's order: block-major)
    static thread_local Buffer wbuf;
    T* wt = wbuf.get<T>((RS + 1) * kBlk);
    T* bt = wt + RS * kBlk;
    for (int64_t l = 0; l < kBlk; ++l) {  // (padding lanes past p.C: zero weights and bias)
      const int64_t c = cb * kBlk + l;
      for (int64_t t = 0; t < RS; ++t) wt[t * kBlk + l] = c < p.C ? w[c * RS + t] : T(0);
      bt[l] = b && c < p.C ? b[c] : T(0);
    }
    const T* xp = x + plane * in_plane;
    T* yp = y + plane * out_plane;
    if (k3 && p.sw == 1) blk_dw_rows<T, 3, 3, 1>(p, xp, wt, bt, yp, p0, p1);
    else if (k3 && p.sw == 2) blk_dw_rows<T, 3, 3, 2>(p, xp, wt, bt, yp, p0, p1);
    else blk_dw_rows<T, 0, 0, 0>(p, xp, wt, bt, yp, p0, p1);
  });
}

// Output rows [p0, p1) of image n's vectors [v0, v0 + NV) of a direct convolution into a blocked
// output (BlkConvDirect): xn the image's input (C x H x W), wt the weights as (vectors, C*R*S, L),
// bt the biases (whole blocks, zero past K), yn the image's output (block 0's plane; blocks are
// bs values apart). SW: a compile-time column stride (0: p's). Interior columns QB at a time,
// NV vectors each (QB*NV accumulators), each input value broadcast once for the NV vectors; the
// border columns one at a time with each tap checked.
template <class T, int NV, int SW, int KS>
void blk_direct_rows(const BlkConvDirect& p, const T* xn, const T* wt, const T* bt, T* yn, int64_t bs, int64_t v0,
                     int64_t p0, int64_t p1) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  constexpr int QB = sizeof(V) == 64 ? 12 : 6;  // (32 or 16 vector registers)
  const int64_t sw = SW ? SW : p.sw, W = p.W, Q = p.Q, S = KS ? KS : p.S, CRS = p.C * p.R * S;
  const int64_t dw = KS ? 1 : p.dw;  // (KS: unit dilation along columns)
  const int64_t qa = imin(Q, ceil_div(p.pw, sw));
  const int64_t last = W - 1 - (S - 1) * dw + p.pw;
  const int64_t qb = imax(qa, last < 0 ? 0 : imin(Q, last / sw + 1));
  const V hi = vbroadcast<V>(T(p.relu_max));
  const T* wj[NV];
  T* yj[NV];
  V bv[NV];
  for (int j = 0; j < NV; ++j) {
    const int64_t k0 = (v0 + j) * L;  // (a vector's channels lie in one block: L divides kBlk)
    wj[j] = wt + (v0 + j) * CRS * L;
    yj[j] = yn + (k0 / kBlk) * bs + k0 % kBlk;
    bv[j] = vload<V>(bt + k0);
  }
  // N outputs of row pr from column q on; CHECK: each tap's column checked (border columns)
  auto block = [&](auto n_tag, auto check_tag, int64_t pr, int64_t q) {
    constexpr int N = decltype(n_tag)::value;
    constexpr bool CHECK = decltype(check_tag)::value;
    V a[N][NV];
    for (int u = 0; u < N; ++u)
      for (int j = 0; j < NV; ++j) a[u][j] = bv[j];
    const int64_t ih0 = pr * p.sh - p.ph, iw0 = q * sw - p.pw;
    for (int64_t c = 0; c < p.C; ++c)
      for (int64_t r = 0; r < p.R; ++r) {
        const int64_t ih = ih0 + r * p.dh;
        if (ih < 0 || ih >= p.H) continue;
        const T* row = xn + (c * p.H + ih) * W + iw0;
        const int64_t t0 = (c * p.R + r) * S;
#pragma GCC unroll 3
        for (int64_t s = 0; s < S; ++s) {
          const int64_t o = s * dw;
          if (CHECK && (iw0 + o < 0 || iw0 + o >= W)) continue;
          V wk[NV];
          for (int j = 0; j < NV; ++j) wk[j] = vload<V>(wj[j] + (t0 + s) * L);
#pragma GCC unroll 12
          for (int u = 0; u < N; ++u) {
            const V xv = vbroadcast<V>(row[u * sw + o]);
            for (int j = 0; j < NV; ++j) a[u][j] += wk[j] * xv;
          }
        }
      }
#pragma GCC unroll 12
    for (int u = 0; u < N; ++u)
      for (int j = 0; j < NV; ++j) {
        V v = a[u][j];
        if (p.relu) v = relu_clamp<T>(v, hi);
        vstore(yj[j] + (pr * Q + q + u) * kBlk, v);
      }
  };
  using One = std::integral_constant<int, 1>;
  using Yes = std::true_type;
  using No = std::false_type;
  for (int64_t pr = p0; pr < p1; ++pr) {
    int64_t q = 0;
    for (; q < qa; ++q) block(One{}, Yes{}, pr, q);
    for (; q + QB <= qb; q += QB) block(std::integral_constant<int, QB>{}, No{}, pr, q);
    for (; q < qb; ++q) block(One{}, No{}, pr, q);
    for (; q < Q; ++q) block(One{}, Yes{}, pr, q);
  }
}

template <class T>
void blk_conv_direct_impl(const BlkConvDirect& p, const T* x, const T* w, const T* b, T* y) {
  constexpr int L = kLanes<T>;
  static_assert(kBlk % L == 0, "a vector's channels lie in one block");
  const int64_t KP = ceil_div(p.K, kBlk) * kBlk, KV = KP / L, CRS = p.C * p.R * p.S;
  // the weights as (vectors, C*R*S, L) and the biases, zero past K (the padding lanes compute 0)
  static thread_local Buffer wbuf;  // (the caller's thread: the tasks only read it)
  T* wt = wbuf.get<T>(KP * CRS + KP);
  T* bt = wt + KP * CRS;
  for (int64_t v = 0; v < KV; ++v)
    for (int64_t t = 0; t < CRS; ++t)
      for (int l = 0; l < L; ++l) {
        const int64_t k = v * L + l;
        wt[(v * CRS + t) * L + l] = k < p.K ? w[k * CRS + t] : T(0);
      }
  for (int64_t k = 0; k < KP; ++k) bt[k] = b && k < p.K ? b[k] : T(0);
  // tasks: (image, pair of vectors, run of output rows), about 8 per thread
  const int64_t groups = ceil_div(KV, 2), planes = p.N * groups, bs = p.N * p.P * p.Q * kBlk;
  const int nt = max_threads();
  const int64_t per = imax(1, imin(p.P, ceil_div(8 * nt, planes)));
  const int64_t rows = ceil_div(p.P, per), chunks = ceil_div(p.P, rows);
  const bool par = nt > 1 && planes * chunks > 1 && p.N * KP * p.P * p.Q * CRS > kParallelGrain;
  parallel_for_steal(planes * chunks, par, [&](int64_t task) {
    const int64_t plane = task / chunks, p0 = (task % chunks) * rows, p1 = imin(p.P, p0 + rows);
    const int64_t n = plane / groups, v0 = (plane % groups) * 2;
    const T* xn = x + n * p.C * p.H * p.W;
    T* yn = y + n * p.P * p.Q * kBlk;
    const bool k3 = p.S == 3 && p.dw == 1;
    if (v0 + 2 > KV) blk_direct_rows<T, 1, 0, 0>(p, xn, wt, bt, yn, bs, v0, p0, p1);
    else if (k3 && p.sw == 2) blk_direct_rows<T, 2, 2, 3>(p, xn, wt, bt, yn, bs, v0, p0, p1);
    else if (k3 && p.sw == 1) blk_direct_rows<T, 2, 1, 3>(p, xn, wt, bt, yn, bs, v0, p0, p1);
    else blk_direct_rows<T, 2, 0, 0>(p, xn, wt, bt, yn, bs, v0, p0, p1);
  });
}

template <class T>
void blk_subsample_impl(int64_t planes, int64_t H, int64_t W, int64_t P, int64_t Q, int64_t sh, int64_t sw,
                        const T* x, T* y) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  parallel_for(planes * P, max_threads() > 1 && planes * P * Q * kBlk > kParallelGrain, [&](int64_t row) {
    const int64_t pl = row / P, pr = row % P;
    const T* xr = x + (pl * H + pr * sh) * W * kBlk;
    T* yr = y + row * Q * kBlk;
    for (int64_t q = 0; q < Q; ++q)
      for (int g = 0; g < int(kBlk); g += L) vstore(yr + q * kBlk + g, vload<V>(xr + q * sw * kBlk + g));
  });
}

template <class T>
void blk_gap_impl(int64_t CB, int64_t N, int64_t HW, int64_t C, const T* x, T* y) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  parallel_for(CB * N, max_threads() > 1 && CB * N > 1 && CB * N * HW * kBlk > kParallelGrain, [&](int64_t pl) {
    const int64_t cb = pl / N, n = pl % N;
    const T* xp = x + pl * HW * kBlk;
    for (int g = 0; g < int(kBlk); g += L) {
      V a0{}, a1{};  // (two chains: the adds' latency)
      int64_t i = 0;
      for (; i + 2 <= HW; i += 2) {
        a0 += vload<V>(xp + i * kBlk + g);
        a1 += vload<V>(xp + (i + 1) * kBlk + g);
      }
      if (i < HW) a0 += vload<V>(xp + i * kBlk + g);
      T t[L];
      vstore(t, (a0 + a1) / vbroadcast<V>(T(HW)));
      for (int l = 0; l < L; ++l) {
        const int64_t c = cb * kBlk + g + l;
        if (c < C) y[n * C + c] = t[l];
      }
    }
  });
}

}  // namespace

CK_REGISTER(blk_subsample_stub, blk_subsample_impl);
CK_REGISTER(blk_gap_stub, blk_gap_impl);
CK_REGISTER(blk_conv_direct_stub, blk_conv_direct_impl);
CK_REGISTER(blk_pack_1x1_stub, blk_pack_1x1_impl);
CK_REGISTER(blk_conv1x1_stub, blk_conv1x1_impl);
CK_REGISTER(blk_rows_stub, blk_rows_impl);
CK_REGISTER(blk_depthwise_stub, blk_depthwise_impl);

}  // namespace CK_ISA_NS
}  // namespace ck
