import sys, time, numpy as np
sys.path.insert(0, "python")
from convkern import _C
from convkern._ops import conv as C
rng = np.random.default_rng(0)
L = 16
def to_blk(a):  # (N, C, H, W) -> (N, C/L, H*W, L)
    N, Cc, H, W = a.shape
    return np.ascontiguousarray(a.reshape(N, Cc // L, L, H * W).transpose(0, 1, 3, 2))
def from_blk(a, H, W):
    N, CB, P, _ = a.shape
    return np.ascontiguousarray(a.transpose(0, 1, 3, 2).reshape(N, CB * L, H, W))
junk = np.ones(16 << 20, np.float32)
def t(fn, cold, r=40):
    ts = []
    for _ in range(5): fn()
    for _ in range(r):
        if cold: np.add(junk, 1, out=junk)
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return np.percentile(ts, 25) * 1e6
for N, ci, co, h in [(1, 64, 384, 14), (1, 96, 576, 14), (1, 160, 960, 7), (1, 384, 64, 14), (1, 960, 160, 7), (1, 16, 96, 112), (1, 32, 16, 112),
                     (1, 32, 192, 28), (1, 144, 32, 28), (1, 512, 128, 28), (1, 256, 64, 56), (8, 64, 384, 14), (8, 16, 96, 112)]:
    x = rng.standard_normal((N, ci, h, h), dtype=np.float32); w = rng.standard_normal((co, ci, 1, 1), dtype=np.float32) * .1
    b = rng.standard_normal(co).astype(np.float32)
    y, plan = C.conv_nd_plan(2, x, C.PackedConvWeight(w), b, relu=True, relu_max=6.0)
    n, isa = _C.conv_packed_size(w[:, :, None], 1, True)
    wpk = np.zeros(n, np.float32); _C.conv_pack_weight(w[:, :, None], wpk, 1, True)
    xb = to_blk(x); yb = np.empty((N, co // L, h * h, L), np.float32)
    _C.xblk(xb, wpk, b, yb, N, ci, co, h * h, True, 6.0)
    err = np.abs(from_blk(yb, h, h) - y).max()
    res = {}
    for cold in (False, True):
        a = t(lambda: plan.run(x, None), cold); bb = t(lambda: _C.xblk(xb, wpk, b, yb, N, ci, co, h * h, True, 6.0), cold)
        res[cold] = (a, bb)
    print(f"N{N} {ci}->{co}@{h}: err {err:.1e}  warm: nchw {res[False][0]:.0f} blk {res[False][1]:.0f} us ({res[False][1]/res[False][0]:.2f})"
          f"  cold: nchw {res[True][0]:.0f} blk {res[True][1]:.0f} us ({res[True][1]/res[True][0]:.2f})")
