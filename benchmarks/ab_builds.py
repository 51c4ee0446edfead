"""A/B two builds of convkern in one process, calls interleaved: is a kernel change faster?

    python benchmarks/ab_builds.py OLD_PKG NEW_PKG [--threads 2] [--batch 1] [--filter rn50] [--rounds 30]
        [--layer C,H,W,K,R,S,stride,pad,groups ...] [--packed] [--cold]

OLD_PKG and NEW_PKG are convkern package directories that contain a built `_C` (for example
`python/convkern` of two worktrees after `scripts/dev_build.sh`). Both are imported under other
names (their imports are relative), and every convolution layer of `shapes.py` matching
--filter runs forward through each build in turn, alternating which goes first. It prints the
lower quartile of each build's times and new/old.

Why: on a shared VM, run-to-run noise (other tenants, clock changes) is often 20-50%, larger
than the effect of a kernel change, so two separate benchmark runs cannot tell them apart.
Interleaving call by call in one process exposes both builds to the same conditions. With one
thread it times with thread CPU time (less sensitive to being descheduled).
"""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shapes  # noqa: E402


def load(pkg_dir: str, alias: str, root: str):
    if not os.path.isdir(pkg_dir) or not any(f.startswith("_C") for f in os.listdir(pkg_dir)):
        raise SystemExit(f"{pkg_dir}: not a convkern package directory with a built _C")
    shutil.copytree(pkg_dir, os.path.join(root, alias))
    return importlib.import_module(alias)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--filter", default="")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--packed", action="store_true",
                    help="weights as each build's PackedConvWeight (as the ONNX backend and nn layers pass them)")
    ap.add_argument("--cold", action="store_true",
                    help="evict the caches (rewrite 64 MB) before every call, untimed")
    ap.add_argument("--layer", action="append", default=[], metavar="C,H,W,K,R,S,stride,pad,groups",
                    help="a layer of your own (repeatable); with --layer only these run unless --filter is given")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ck_ab_")
    sys.path.insert(0, root)
    try:
        old, new = load(a.old, "ck_ab_old", root), load(a.new, "ck_ab_new", root)
        old.set_num_threads(a.threads)
        new.set_num_threads(a.threads)
        clock = time.thread_time if a.threads == 1 else time.perf_counter
        flush = np.zeros(16 << 20, np.float32) if a.cold else None
        rng = np.random.default_rng(0)
        layers = (shapes.RESNET50_CONV + shapes.GOOGLENET_4A_CONV + shapes.VGG16_CONV + shapes.ALEXNET_CONV
                  + shapes.MOBILENETV2_CONV)
        own = []
        for spec in a.layer:
            v = [int(t) for t in spec.split(",")]
            if len(v) != 9:
                raise SystemExit(f"--layer {spec}: want C,H,W,K,R,S,stride,pad,groups")
            own.append((f"layer {spec}", *v))
        if own:
            layers = own + (layers if a.filter else [])
        print(f"{a.threads} threads, batch {a.batch}; lower quartile of {a.rounds} interleaved calls each")
        for name, C, H, W, K, R, S, stride, pad, groups in layers:
            if a.filter not in name:
                continue
            x = rng.standard_normal((a.batch, C, H, W), dtype=np.float32)
            w = rng.standard_normal((K, C // groups, R, S), dtype=np.float32)
            wo = old.functional.PackedConvWeight(w, groups) if a.packed and groups == 1 else w
            wn = new.functional.PackedConvWeight(w, groups) if a.packed and groups == 1 else w
            fo = lambda: old.functional.conv2d(x, wo, stride=stride, padding=pad, groups=groups)  # noqa: E731
            fn = lambda: new.functional.conv2d(x, wn, stride=stride, padding=pad, groups=groups)  # noqa: E731
            yo, yn = fo(), fn()
            scale = float(np.abs(yo).max()) or 1.0
            if not np.allclose(yo, yn, rtol=1e-3, atol=1e-4 * scale):
                print(f"{name}: the builds disagree (max diff {np.abs(yo - yn).max():.3g})")
            to, tn = [], []
            for i in range(a.rounds):
                pair = ((fo, to), (fn, tn)) if i % 2 == 0 else ((fn, tn), (fo, to))
                for f, acc in pair:
                    if flush is not None:
                        np.add(flush, 1, out=flush)
                    t = clock()
                    f()
                    acc.append(clock() - t)
            q = lambda v: sorted(v)[len(v) // 4] * 1e3  # noqa: E731
            print(f"{name:36s} old {q(to):8.3f} ms   new {q(tn):8.3f} ms   new/old {q(tn) / q(to):.2f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
