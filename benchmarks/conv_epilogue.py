"""Inference forward of ResNet-50's convolutions as a graph runtime runs them: the weight packed
once (F.PackedConvWeight) and bias + residual + ReLU in the GEMM's epilogue, against the plain
call followed by separate passes, and against PyTorch (conv, then add and relu in place) when
installed. Engines interleaved, lower quartile and median of the rounds.

    python benchmarks/conv_epilogue.py [--batch 1] [--rounds 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import convkern
import convkern.functional as F
from convkern._ops.conv import conv_nd

# (name, C, H, K, kernel, stride, residual join after it)
LAYERS = [
    ("rn50.l1 1x1 64->256 +res", 64, 56, 256, 1, 1, True),
    ("rn50.l2 3x3 128", 128, 28, 128, 3, 1, False),
    ("rn50.l2 1x1 128->512 +res", 128, 28, 512, 1, 1, True),
    ("rn50.l3 3x3 256", 256, 14, 256, 3, 1, False),
    ("rn50.l3 1x1 1024->256", 1024, 14, 256, 1, 1, False),
    ("rn50.l3 3x3/2 512", 512, 14, 512, 3, 2, False),
    ("rn50.l4 3x3 512", 512, 7, 512, 3, 1, False),
    ("rn50.l4 1x1 2048->512", 2048, 7, 512, 1, 1, False),
    ("rn50.l4 1x1 512->2048 +res", 512, 7, 2048, 1, 1, True),
    ("rn50.l4 1x1/2 1024->2048", 1024, 14, 2048, 1, 2, False),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    convkern.set_num_threads(a.threads)
    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"batch {a.batch}, {a.threads} threads, {a.rounds} interleaved rounds; ms as lower quartile / median")
    print("| layer | plain + passes | packed + epilogue | ratio | torch conv + add_ + relu_ | packed / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, C, H, K, k, s, res in LAYERS:
        x = rng.standard_normal((a.batch, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((K, C, k, k)) * np.sqrt(2 / (C * k * k))).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        pad = k // 2
        Ho = (H + 2 * pad - k) // s + 1
        r = rng.standard_normal((a.batch, K, Ho, Ho)).astype(np.float32) if res else None
        pw = F.PackedConvWeight(w)

        def plain():
            y = F.conv2d(x, w, b, stride=s, padding=pad)
            if r is not None:
                y += r
            return F.relu(y)

        def fused():
            return conv_nd(2, x, pw, b, stride=s, padding=pad, relu=True, residual=r)

        engines = {"plain": plain, "fused": fused}
        if torch is not None:
            tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
            tr = None if r is None else torch.from_numpy(r)

            def tfn():
                with torch.no_grad():
                    y = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=pad)
                    if tr is not None:
                        y.add_(tr)
                    return y.relu_()

            engines["torch"] = tfn
        np.testing.assert_allclose(fused(), plain(), rtol=1e-5, atol=1e-5)
        ts = {e: [] for e in engines}
        for _ in range(3):
            for fn in engines.values():
                fn()
        for _ in range(a.rounds):
            for e, fn in engines.items():
                t0 = time.perf_counter()
                fn()
                ts[e].append(time.perf_counter() - t0)
        q = {e: (np.percentile(v, 25) * 1e3, np.median(v) * 1e3) for e, v in ts.items()}
        tcol = f"{q['torch'][0]:.3f} / {q['torch'][1]:.3f}" if "torch" in q else "-"
        tr_ = f"{q['fused'][0] / q['torch'][0]:.2f}" if "torch" in q else "-"
        print(f"| {name} | {q['plain'][0]:.3f} / {q['plain'][1]:.3f} | {q['fused'][0]:.3f} / {q['fused'][1]:.3f} | "
              f"{q['fused'][0] / q['plain'][0]:.2f} | {tcol} | {tr_} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
