"""The course notes' 1x1-bottleneck and depthwise-separable examples, from real convkern layers.

Multiplications come from the FLOP counter (``convkern.flops``) run on the layers, never typed
in: a 5x5 convolution 14x14x480 -> 48 ('same') against a 1x1 bottleneck to 16 channels followed
by the 5x5; the parameters of a 3x3 convolution 3 -> 8 against depthwise 3x3 + pointwise 1x1.
Then the measured forward and forward+backward times of both paths (CPU; the GPU when convkern
has one) beside the theoretical ratio.

    PYTHONPATH=python python benchmarks/bottleneck.py [--batch 8] [--repeat 5] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import convkern
import convkern.nn as nn


def _time(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        convkern.set_num_threads(args.threads)
    nn.manual_seed(0)

    direct = nn.Sequential(nn.Conv2d(480, 48, 5, padding=2))
    reduce_ = nn.Conv2d(480, 16, 1)
    expand = nn.Conv2d(16, 48, 5, padding=2)
    bottleneck = nn.Sequential(reduce_, expand)
    shape = (480, 14, 14)
    m_direct = convkern.flops(direct, shape)
    m_reduce = convkern.flops(reduce_, shape)
    m_expand = convkern.flops(expand, (16, 14, 14))
    m_bottle = convkern.flops(bottleneck, shape)
    assert m_bottle == m_reduce + m_expand
    print("1x1 bottleneck (per image, 14x14x480 input -> 48 channels, 'same'):")
    print(f"  direct 5x5 convolution:        {m_direct:>13,} multiplications  ({m_direct / 1e6:.1f}M), "
          f"{direct.num_parameters():,} parameters")
    print(f"  1x1 to 16 channels:            {m_reduce:>13,}")
    print(f"  then 5x5 to 48 channels:       {m_expand:>13,}")
    print(f"  bottleneck total:              {m_reduce:,} + {m_expand:,} = {m_bottle:,}  ({m_bottle / 1e6:.1f}M), "
          f"{bottleneck.num_parameters():,} parameters")
    ratio = m_direct / m_bottle
    print(f"  theoretical ratio:             {ratio:.2f}x fewer multiplications")

    full = nn.Conv2d(3, 8, 3)
    dw = nn.DepthwiseConv2d(3, 3, bias=True)
    pw = nn.Conv2d(3, 8, 1)
    print("\ndepthwise separable convolution (3x3, 3 -> 8 channels):")
    print(f"  Conv2D 3x3:                    {full.num_parameters():>4} parameters")
    print(f"  depthwise 3x3 + pointwise 1x1: {dw.num_parameters()} + {pw.num_parameters()} = "
          f"{dw.num_parameters() + pw.num_parameters()} parameters")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch,) + shape).astype(np.float32)
    g = rng.standard_normal((args.batch, 48, 14, 14)).astype(np.float32)

    def fwd(model):
        def f():
            with nn.no_grad():
                model(nn.Tensor(x))
        return f

    def fwd_bwd(model):
        def f():
            xt = nn.Tensor(x, requires_grad=True)
            model.zero_grad()
            model(xt).backward(g)
        return f

    print(f"\nmeasured on the CPU ({convkern.get_isa()}, {convkern.get_num_threads()} threads), batch {args.batch}, "
          f"float32, median of {args.repeat}:")
    res = {}
    for label, model in (("direct 5x5", direct), ("1x1 bottleneck + 5x5", bottleneck)):
        tf = _time(fwd(model), args.repeat)
        tb = _time(fwd_bwd(model), args.repeat)
        res[label] = (tf, tb)
        print(f"  {label:22s} forward {tf * 1e3:8.2f} ms   forward+backward {tb * 1e3:8.2f} ms   "
              f"({3 * m_direct * args.batch / tb / 1e9 if label == 'direct 5x5' else 3 * m_bottle * args.batch / tb / 1e9:.1f} "
              f"GMAC/s fwd+bwd)")
    (f1, b1), (f2, b2) = res.values()
    print(f"  measured speedup: forward {f1 / f2:.2f}x, forward+backward {b1 / b2:.2f}x "
          f"(theoretical {ratio:.2f}x)")
    info = convkern.info()
    print("  GPU: " + (f"CUDA devices {info['cuda_devices']} (the autograd layer runs NumPy arrays on the CPU kernels)"
                       if info.get("cuda_devices") else "none in this build/machine (CPU only)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
