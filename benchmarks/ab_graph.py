"""A/B two builds of convkern on a whole ONNX graph in one process, runs interleaved.

    python benchmarks/ab_graph.py OLD_PKG NEW_PKG model.onnx [--batch 1] [--rounds 30] [--random-weights]

OLD_PKG and NEW_PKG are convkern package directories with a built `_C` (as for ab_builds.py,
whose reasons apply: on a shared VM two separate runs differ by more than most changes). Each
build prepares the same graph and the runs alternate which build goes first; prints the lower
quartile and median of each build's run times and new/old.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ab_builds import load  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random-weights", action="store_true")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ck_abg_")
    sys.path.insert(0, root)
    try:
        builds = []
        for alias, pkg in (("ck_abg_old", a.old), ("ck_abg_new", a.new)):
            ck = load(pkg, alias, root)
            ck.set_num_threads(a.threads)
            cli = __import__(alias + ".onnx.cli", fromlist=["cli"])
            backend = __import__(alias + ".onnx.backend", fromlist=["backend"])
            model = backend.load_model(a.model)
            if a.random_weights:
                model = cli._randomize_weights(model, 0)
            model = cli._rebatch(model, a.batch)
            rep = backend.prepare(model)
            feeds = cli._dummy_inputs(rep, a.batch, 0)
            for _ in range(3):
                out = rep.run(feeds)
            builds.append((rep, feeds, out))
        diff = max(float(np.abs(np.asarray(o) - np.asarray(n)).max()) for o, n in zip(builds[0][2], builds[1][2]))
        times = ([], [])
        for i in range(a.rounds):
            order = (0, 1) if i % 2 == 0 else (1, 0)
            for j in order:
                rep, feeds, _ = builds[j]
                t = time.perf_counter()
                rep.run(feeds)
                times[j].append(time.perf_counter() - t)
        q = [np.percentile(t, 25) * 1e3 for t in times]
        m = [np.median(t) * 1e3 for t in times]
        print(f"{os.path.basename(a.model)} batch {a.batch}, {a.threads} threads, {a.rounds} interleaved runs each; "
              f"max |new - old| {diff:.3g}")
        print(f"lower quartile: old {q[0]:.2f} ms  new {q[1]:.2f} ms  new/old {q[1] / q[0]:.3f}")
        print(f"median:         old {m[0]:.2f} ms  new {m[1]:.2f} ms  new/old {m[1] / m[0]:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
