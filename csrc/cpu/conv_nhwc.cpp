// The forward of a 2-d, one-group convolution as an implicit GEMM over a channel-last copy of
// the input (algo='nhwc'):
//
//   Y^T (positions x K) = X (positions x R*S*C) W^T,
//
// where row n of X is, for each tap (r, s), the C channels of the input position that tap of
// output n reads. In the copy xp (N x Hp x Wp x C, zero-padded) those C values are contiguous,
// so the micro-kernel broadcasts them straight from xp through one pointer per output position
// (MR positions, any of them on another output row or image): no im2col, no packing of the
// activation side. The weights, the micro-tile's vector operand, are packed into blocks of
// NB = NV vectors of output channels, each a run of slices [tap][c][NB] of a chunk of channels
// (zero past K): once (PackedConvWeight), or slice by slice just before use. The MR x NB
// tile accumulates in a channel-last scratch (positions x K rounded up to NB), which
// transpose_epilogue turns into NCHW with the bias, residual and relu.
//
// Against im2col + GEMM on the same layer, this saves packing the B panels from a phase-split
// copy each time (a 16-lane vector of a 7- or 14-wide output row is 2-3 masked loads) and
// wastes no lanes on planes that are not a multiple of the tile's width; it costs the NHWC copy
// (the size of the input) and a transposition of the output.
#include "cpu/common.h"
#include "ops/conv.h"

namespace ck {
namespace CK_ISA_NS {
namespace {

// Widest channel block, in vectors: 32 vector registers hold 24 accumulators and 4 weight
// vectors on AVX-512; 16 registers hold 12 and 3 elsewhere.
constexpr int kMaxNV = CK_ISA == 2 ? 4 : 3;

// Output positions per micro-tile for NV vectors of channels: NV * MR accumulators, plus NV
// weight vectors and a broadcast, fit the register file.
constexpr int tile_rows(int nv) {
  return CK_ISA == 2 ? (nv <= 2 ? 12 : nv == 3 ? 8 : 6) : (nv == 1 ? 8 : nv == 2 ? 6 : 4);
}

// The channel block for K output channels: the fewest padded lanes, ties to the wider block;
// one vector costs a little more per lane (its tile is load-bound: a broadcast per FMA).
template <class T>
int block_vectors(int64_t K) {
  constexpr int L = kLanes<T>;
  int best = 1;
  double best_cost = 0;
  for (int nv = kMaxNV; nv >= 1; --nv) {
    const double cost = double(ceil_div(K, int64_t(nv) * L) * nv * L) * (nv == 1 ? 1.15 : 1.0);
    if (nv == kMaxNV || cost < best_cost) {
      best = nv;
      best_cost = cost;
    }
  }
  return best;
}

// One MR x NB tile: for the taps [0, ntap) and channels [0, cn),
//   acc[i][:] += px[i][tapoff[t] + c] * w[(t * cn + c) * NB + :]
// then ct[i * ldc + :] = acc (or += acc when accumulate).
template <class T, int NV, int MR>
void ukernel(int64_t ntap, const int64_t* tapoff, int64_t cn, const T* const* px, const T* w, T* ct, int64_t ldc,
             bool accumulate, const char* pf, const char* pf_end) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>, NB = NV * L;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (int64_t t = 0; t < ntap; ++t) {
    const T* p[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) p[i] = px[i] + tapoff[t];
    const T* wt = w + t * cn * NB;
#pragma GCC unroll 2
    for (int64_t c = 0; c < cn; ++c) {
      fetch_line(pf, pf_end);
      V wv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) wv[j] = vload<V>(wt + c * NB + j * L);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V a = vbroadcast<V>(p[i][c]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] += a * wv[j];
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      T* q = ct + i * ldc + j * L;
      vstore(q, accumulate ? vload<V>(q) + acc[i][j] : acc[i][j]);
    }
}

// xp (N x Hp x Wp x C) = x (N x C x H x W) zero-padded, channel-last: L x L register
// transposes of (channels x columns) blocks, parallel over the copy's rows.
template <class T>
void to_nhwc(const ConvParams& p, const T* x, int64_t Hp, int64_t Wp, T* xp) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  const int64_t C = p.C, HW = p.H * p.W;
  const int64_t ph = p.pad[1], pw = p.pad[2];
  const int64_t lo = imin(pw, Wp), hi = imax(lo, imin(Wp, pw + p.W));  // copy columns [lo, hi)
  parallel_for(p.N * Hp, max_threads() > 1 && p.N * Hp * Wp * C > kParallelGrain, [&](int64_t row) {
    const int64_t n = row / Hp, ih = row % Hp - ph;
    T* d = xp + row * Wp * C;
    if (ih < 0 || ih >= p.H) {
      std::fill(d, d + Wp * C, T(0));
      return;
    }
    std::fill(d, d + lo * C, T(0));
    std::fill(d + hi * C, d + Wp * C, T(0));
    const T* s = x + n * C * HW + ih * p.W + (lo - pw);
    for (int64_t w0 = lo; w0 < hi; w0 += L) {
      const int64_t wn = imin(L, hi - w0);
      for (int64_t c0 = 0; c0 < C; c0 += L) {
        const int64_t cn = imin(L, C - c0);
        V v[L];
        for (int i = 0; i < L; ++i) {
          const T* src = s + (c0 + i) * HW + (w0 - lo);
          v[i] = i >= cn ? V{} : wn == L ? vload<V>(src) : vload_head<V>(src, wn);
          // the same columns of the next input row: each channel's plane is a stream of its
          // own, more streams than the hardware prefetcher follows (the copy ran at 18 GB/s)
          if (i < cn && ih + 1 < p.H) __builtin_prefetch(src + p.W, 0, 1);
        }
        transpose_tile<T>(v);  // v[j]: column w0 + j, channels c0 ...
        for (int64_t j = 0; j < wn; ++j) {
          T* dst = d + (w0 + j) * C + c0;
          if (cn == L) vstore(dst, v[j]);
          else vstore_head(dst, v[j], cn);
        }
      }
    }
  });
}

// K is walked in slices of all R*S taps of `chunk` channels, about kSlice multiply-adds deep,
// so a block's weight slice (kSlice x NB values) stays in L2 while every tile reads it.
constexpr int64_t kSlice = 2048;
inline int64_t chunk_channels(const ConvParams& p) {
  const int64_t RS = p.R * p.S, cn = imax(1, imin(p.C, kSlice / RS));
  return ceil_div(p.C, ceil_div(p.C, cn));  // equal chunks
}

// One slice of the packed weight: channels [c0, c0 + cn) of block cb as [tap][c][NB], channel
// k = cb * NB + lane, zero past K. L channels x L consecutive values of w at a time, turned by
// a register transpose into L vectors of channels (lane by lane, a 512 x 4608 weight took
// 2.4 ms). flipped: w is (C, K, R, S), read transposed with the taps reversed (ConvFwdOpts).
template <class T, int NV>
void pack_slice(const ConvParams& p, const T* w, bool flipped, int64_t cb, int64_t c0, int64_t cn, T* dst) {
  using V = Vec<T>;
  constexpr int L = kLanes<T>;
  constexpr int64_t NB = NV * L;
  const int64_t RS = p.R * p.S, CRS = p.C * RS;
  for (int64_t kv = 0; kv < NV; ++kv) {
    const int64_t k0 = cb * NB + kv * L, kn = imin(L, p.K - k0);
    T* d0 = dst + kv * L;
    if (kn <= 0) {  // a whole vector past K
      for (int64_t i = 0; i < RS * cn; ++i) vstore(d0 + i * NB, V{});
      continue;
    }
    // rows i < kn (channels k0 + i) of L consecutive values from src(i); after the transpose
    // v[j] holds value j of every channel (zero past K), stored at slot(j)
    auto block = [&](auto src, int64_t jn, auto slot) {
      V v[L];
      for (int i = 0; i < L; ++i) v[i] = i >= kn ? V{} : jn == L ? vload<V>(src(i)) : vload_head<V>(src(i), jn);
      transpose_tile<T>(v);
      for (int64_t j = 0; j < jn; ++j) vstore(d0 + slot(j) * NB, v[j]);
    };
    if (!flipped) {  // w (K, C, R, S): values (c, tap) of channel k contiguous
      const int64_t j1 = (c0 + cn) * RS;
      for (int64_t j0 = c0 * RS; j0 < j1; j0 += L)
        block([&](int i) { return w + (k0 + i) * CRS + j0; }, imin(L, j1 - j0),
              [&](int64_t j) { return ((j0 + j) % RS) * cn + (j0 + j) / RS - c0; });
    } else {  // w (C, K, R, S): the taps of (c, k) contiguous, reversed
      for (int64_t c = c0; c < c0 + cn; ++c)
        for (int64_t t0 = 0; t0 < RS; t0 += L)
          block([&](int i) { return w + (c * p.K + k0 + i) * RS + t0; }, imin(L, RS - t0),
                [&](int64_t j) { return (RS - 1 - (t0 + j)) * cn + c - c0; });
    }
  }
}

// The whole packed weight: slice (cb, c0) at (cb * C + c0) * RS * NB.
template <class T, int NV>
int64_t pack(const ConvParams& p, const T* w, T* dst) {
  constexpr int64_t NB = NV * kLanes<T>;
  const int64_t RS = p.R * p.S, C = p.C, nblk = ceil_div(p.K, NB), cc = chunk_channels(p);
  if (dst)
    parallel_for(nblk, max_threads() > 1 && nblk * NB * C * RS > kParallelGrain, [&](int64_t cb) {
      for (int64_t c0 = 0; c0 < C; c0 += cc)
        pack_slice<T, NV>(p, w, false, cb, c0, imin(cc, C - c0), dst + (cb * C + c0) * RS * NB);
    });
  return nblk * RS * C * NB;
}

// The whole forward with NV-vector channel blocks.
template <class T, int NV>
void forward(const ConvParams& p, const T* x, const T* w, const T* b, T* y, const ConvFwdOpts<T>& o) {
  constexpr int MR = tile_rows(NV);
  constexpr int64_t NB = NV * kLanes<T>;
  const int64_t C = p.C, K = p.K, RS = p.R * p.S, PQ = p.P * p.Q;
  const int64_t sh = p.stride[1], sw = p.stride[2], dh = p.dilation[1], dw = p.dilation[2];
  const int64_t Hp = (p.P - 1) * sh + (p.R - 1) * dh + 1, Wp = (p.Q - 1) * sw + (p.S - 1) * dw + 1;
  const int64_t npos = p.N * PQ, ntile = ceil_div(npos, MR), nblk = ceil_div(K, NB), ldc = nblk * NB;
  const int64_t cc = chunk_channels(p);
  static thread_local Buffer xbuf, cbuf, obuf;
  T* xp = xbuf.get<T>(p.N * Hp * Wp * C);
  T* ct = cbuf.get<T>(ntile * MR * ldc);
  // where each tap sits from an output's corner, and where each output's corner sits in the
  // copy (rows past the last output: the last one again, their results unused)
  int64_t* tapoff = obuf.get<int64_t>(RS + ntile * MR);
  int64_t* posoff = tapoff + RS;
  to_nhwc(p, x, Hp, Wp, xp);
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t s = 0; s < p.S; ++s) tapoff[r * p.S + s] = (r * dh * Wp + s * dw) * C;
  const int nt = max_threads();
  const bool par = nt > 1 && double(npos) * double(K) * double(RS * C) > 2e5;
  // Threads split the channel blocks when they divide evenly enough (each thread then reads,
  // or packs, only its own blocks' weights: on 7x7 planes at batch 1 the weight is most of the
  // traffic) and the weight is the larger operand, or when there are few tiles; else the
  // tiles of positions. (With the blocks split, every thread walks the whole channel-last
  // copy once per block; a copy larger than the weight is better halved: ResNet-50's 3x3/2
  // 128 on 56x56 took 0.89 of the time at batch 1 and at batch 8 (interleaved, packed) on a
  // Xeon whose 2 MB L2 the 1.7 MB copy overflowed.)
  const bool split_blocks =
      par && nblk >= nt &&
      (ntile < 4 * int64_t(nt) ||
       (double(p.N * Hp * Wp) * double(C) < double(K) * double(RS * C) && (nblk % nt == 0 || nblk >= 4 * int64_t(nt))));
  std::exception_ptr err;
#pragma omp parallel num_threads(par ? nt : 1)
  {
    const int tn = team_size(), ti = thread_id();
    const int64_t t0 = split_blocks ? 0 : ntile * ti / tn, t1 = split_blocks ? ntile : ntile * (ti + 1) / tn;
    const int64_t b0 = split_blocks ? nblk * ti / tn : 0, b1 = split_blocks ? nblk * (ti + 1) / tn : nblk;
    static thread_local Buffer sbuf;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < ntile * MR; ++i) {
      const int64_t n = imin(i, npos - 1), im = n / PQ, pp = n % PQ / p.Q, q = n % p.Q;
      posoff[i] = ((im * Hp + pp * sh) * Wp + q * sw) * C;
    }  // (a barrier: with the channel blocks split, every thread reads every tile's offsets)
    try {
      T* slice = o.wpacked ? nullptr : sbuf.get<T>(cc * RS * NB);
      // A packed weight's slices lie one after the other (the layout of pack()): while the
      // tiles read one slice, the next is fetched into L2, a share per tile, a line per
      // channel step. On 7x7 planes at batch 1 a slice serves few tiles, and the first of
      // them waited on L3 for the whole slice: 512 channels at 7x7 took 1.36 times as long with
      // the weights out of L2 as in it; with the fetch ahead 0.80-0.87 of its former time
      // (interleaved, 2 threads, Xeon with AVX-512; 256 channels at 14x14 0.93-0.95).
      const T* wend = o.wpacked ? o.wpacked + b1 * C * RS * NB : nullptr;
      for (int64_t cb = b0; cb < b1; ++cb)
        for (int64_t c0 = 0; c0 < C; c0 += cc) {
          const int64_t cn = imin(cc, C - c0);
          const T* wk = o.wpacked ? o.wpacked + (cb * C + c0) * RS * NB : slice;
          if (!o.wpacked) pack_slice<T, NV>(p, w, o.w_flipped, cb, c0, cn, slice);
          FetchAhead next;
          if (o.wpacked)
            next = {reinterpret_cast<const char*>(wk + cn * RS * NB),
                    int64_t(sizeof(T)) * imin(cc * RS * NB, int64_t(wend - (wk + cn * RS * NB)))};
          for (int64_t tile = t0; tile < t1; ++tile) {
            const char *pf, *pf_end;
            next.part(tile - t0, t1 - t0, pf, pf_end);
            const T* px[MR];
            for (int i = 0; i < MR; ++i) px[i] = xp + posoff[tile * MR + i] + c0;
            ukernel<T, NV, MR>(RS, tapoff, cn, px, wk, ct + tile * MR * ldc + cb * NB, ldc, c0 > 0, pf, pf_end);
          }
        }
    } catch (...) {  // an exception may not leave a parallel region
#pragma omp critical(ck_nhwc_error)
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  transpose_epilogue(ct, PQ, K, ldc, b, o.residual, o.relu, o.relu_max, y, p.N);
}

template <class T>
void conv_nhwc_fwd(const ConvParams& p, const T* x, const T* w, const T* b, T* y, const ConvFwdOpts<T>& o) {
  switch (block_vectors<T>(p.K)) {
    case 1: return forward<T, 1>(p, x, w, b, y, o);
    case 2: return forward<T, 2>(p, x, w, b, y, o);
    case 3: return forward<T, 3>(p, x, w, b, y, o);
#if CK_ISA == 2
    case 4: return forward<T, 4>(p, x, w, b, y, o);
#endif
  }
}

template <class T>
int64_t conv_nhwc_pack(const ConvParams& p, const T* w, T* dst) {
  switch (block_vectors<T>(p.K)) {
    case 1: return pack<T, 1>(p, w, dst);
    case 2: return pack<T, 2>(p, w, dst);
    case 3: return pack<T, 3>(p, w, dst);
#if CK_ISA == 2
    case 4: return pack<T, 4>(p, w, dst);
#endif
  }
  return 0;
}

}  // namespace

CK_REGISTER(conv_nhwc_fwd_stub, conv_nhwc_fwd);
CK_REGISTER(conv_nhwc_pack_stub, conv_nhwc_pack);

}  // namespace CK_ISA_NS
}  // namespace ck
