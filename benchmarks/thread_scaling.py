"""Target 7 of the CPU-speed issue: two threads against one on the large convolutions.

Every layer runs forward (algo 'auto', as a user gets it) with 1 and with 2 threads, calls
interleaved in one process (so both see the same machine state); prints the lower quartile of
each and the speedup t1 / t2.

    PYTHONPATH=python python benchmarks/thread_scaling.py [--batch 8] [--rounds 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

import convkern  # noqa: E402
import convkern.functional as F  # noqa: E402

LARGE = ("vgg16.c1_2", "vgg16.c2_2", "vgg16.c3_2", "vgg16.c4_2", "rn50.conv1", "rn50.l1 3x3", "rn50.l2 3x3 128",
         "rn50.l3 3x3", "alexnet.c2", "rn50.l1 1x1 64->256")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args(argv)
    layers = [s for s in shapes.RESNET50_CONV + shapes.VGG16_CONV + shapes.ALEXNET_CONV if s[0].startswith(LARGE)]
    rng = np.random.default_rng(0)
    print(f"convkern {convkern.__version__} ({convkern.info().get('isa', '?')}), batch {a.batch}; "
          f"lower quartile of {a.rounds} interleaved calls")
    print(f"{'layer':28s} {'1 thread ms':>12s} {'2 threads ms':>13s} {'speedup':>8s}")
    speedups = []
    for name, C, H, W, K, R, S, st, pd, g in layers:
        x = rng.standard_normal((a.batch, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C // g, R, S)).astype(np.float32)
        t = {1: [], 2: []}
        for r in range(a.rounds + 1):
            for nt in ((1, 2) if r % 2 else (2, 1)):
                convkern.set_num_threads(nt)
                t0 = time.perf_counter()
                F.conv2d(x, w, stride=st, padding=pd, groups=g)
                if r:
                    t[nt].append(time.perf_counter() - t0)
        q1, q2 = (float(np.percentile(t[n], 25)) for n in (1, 2))
        speedups.append(q1 / q2)
        print(f"{name:28s} {q1 * 1e3:12.2f} {q2 * 1e3:13.2f} {q1 / q2:8.2f}")
    print(f"geometric mean speedup {np.exp(np.mean(np.log(speedups))):.2f}, min {min(speedups):.2f}")


if __name__ == "__main__":
    main()
