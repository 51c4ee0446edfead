"""Winograd F(4x4, 3x3) against im2col + GEMM on 3x3 stride-1 layers: the data behind
``_prefer_winograd`` (conv2d's algo='auto' rule), and with --grad-weight, Winograd F(3x3, 4x4)
against im2col for the weight gradient: the data behind ``_prefer_winograd_weight``.

Each layer runs with ``algo='im2col'`` and ``algo='winograd'`` forced (the weight gradient: the
two native kernels), calls interleaved in one process; prints the lower quartile of each, their
ratio, the output tile count, and what 'auto' picks now (W or I).

    PYTHONPATH=python python benchmarks/winograd_vs_im2col.py [--threads 2] [--batches 1 2 8]
        [--grad-weight]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import convkern
import convkern.functional as F
from convkern import _C
from convkern._ops import conv as _conv

# (C, K, H): the 3x3 stride-1 layers of ResNet-50, VGG-16, AlexNet and GoogLeNet (4a), plus a few
LAYERS = [(64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7), (256, 256, 56), (512, 512, 28),
          (512, 512, 14), (192, 384, 13), (384, 256, 13), (96, 208, 14), (128, 192, 28), (32, 64, 28)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--grad-weight", action="store_true", help="the weight gradient instead of the forward")
    a = ap.parse_args(argv)
    convkern.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    print(f"convkern {convkern.__version__} ({convkern.info().get('isa', '?')}, {a.threads} threads): "
          f"lower quartile of interleaved calls, ms")
    for B in a.batches:
        for C, K, H in LAYERS:
            if B * C * H * H > 8 * 256 * 56 * 56:
                continue
            x = rng.standard_normal((B, C, H, H), dtype=np.float32)
            w = rng.standard_normal((K, C, 3, 3), dtype=np.float32)
            if a.grad_weight:
                dy = rng.standard_normal((B, K, H, H), dtype=np.float32)
                dw = np.empty((K, C, 3, 3), np.float32)
                geom = _conv._geom(2, x.shape, w.shape, 1, 1, 1, 1)
                calls = {"im2col": lambda: _C.conv_backward_weight(x[:, :, None], dy[:, :, None], dw[:, :, None], None,
                                                                   (1, 1, 1), (0, 1, 1), (1, 1, 1), 1),
                         "winograd": lambda: _C.conv_winograd_backward_weight(x, dy, dw, None, 1, 1)}
                auto = "W" if _conv._prefer_winograd_weight(geom, x, dy) else "I"
            else:
                calls = {algo: (lambda algo=algo: F.conv2d(x, w, padding=1, algo=algo)) for algo in ("im2col", "winograd")}
                auto = "W" if _conv._prefer_winograd(np.dtype(np.float32), B, (H, H), C, K) else "I"
            runs = {algo: [] for algo in calls}
            for call in calls.values():
                call()
            rounds = 12 if B * C * H * H * K > 1e9 else 30
            for r in range(rounds):
                for algo in (("im2col", "winograd") if r % 2 else ("winograd", "im2col")):
                    t0 = time.perf_counter()
                    calls[algo]()
                    runs[algo].append(time.perf_counter() - t0)
            ti, tw = (float(np.percentile(runs[k], 25)) * 1e3 for k in ("im2col", "winograd"))
            tiles = B * (-(-H // 4)) ** 2
            print(f"B={B} C={C:3d} K={K:3d} H={H:3d} tiles={tiles:4d} auto={auto}: im2col {ti:8.3f} "
                  f"winograd {tw:8.3f} w/i {tw / ti:.2f}", flush=True)


if __name__ == "__main__":
    main()
