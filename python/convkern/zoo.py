"""``convkern zoo``: every architecture with its parameters, MACs, output shape and the forward
time of one image; ``--check`` runs the whole-model gradient checks of the small networks."""
from __future__ import annotations

import time

import numpy as np


def run(names=None, timing=True, check=False, repeat=1, markdown=False, log=print) -> int:
    from . import autograd as A
    from . import models as M
    from . import nn
    from .summary import summary

    names = names or list(M.ZOO)
    ok = True
    if markdown:
        log("| model | follows | input | params | published | MACs | output | forward ms/image |")
        log("|---|---|---|---:|---:|---:|---|---:|")
    else:
        log(f"{'model':14s} {'input':>13s} {'params':>13s} {'published':>13s} {'MACs':>16s} {'output':>16s} "
            f"{'ms/image':>9s}")
    for name in names:
        build, shape, published, keras, source = M.ZOO[name]
        with nn.skip_init():
            m = build()
        params = nn.count_params(m, include_bn_stats=keras)
        s = summary(m, shape, print_fn=None)
        ok &= params == published
        ms = ""
        if timing:
            m = build().eval()
            x = A.Tensor(np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32))
            with A.no_grad():
                best = np.inf
                for _ in range(max(1, repeat)):
                    t0 = time.perf_counter()
                    m(x)
                    best = min(best, time.perf_counter() - t0)
            ms = f"{best * 1e3:.1f}"
            del m
        inp = "x".join(map(str, shape))
        mark = "" if params == published else " MISMATCH"
        if markdown:
            log(f"| {name} | {source} | {inp} | {params:,} | {published:,}{mark} | {s.total_macs:,} | "
                f"{s.output_shape} | {ms} |")
        else:
            log(f"{name:14s} {inp:>13s} {params:>13,} {published:>13,} {s.total_macs:>16,} {str(s.output_shape):>16s} "
                f"{ms:>9s}{mark}")
    if check:
        from .models.checks import WHOLE_MODEL_CHECKS

        log("\nwhole-model gradient checks (float64): finite differences and NumPy reference operators")
        for name, (make, shape, samples) in WHOLE_MODEL_CHECKS.items():
            nn.manual_seed(0)
            m = make().train()
            x = np.random.default_rng(3).standard_normal(shape)
            t0 = time.perf_counter()
            try:
                err = max(nn.gradcheck_model(m, x, samples=samples).values())
                diff = max(nn.compare_backends(m, x).values())
                good = diff < 1e-10
            except AssertionError as e:  # GradcheckError
                err, diff, good = float("nan"), float("nan"), False
                log(f"  {name}: {e}")
            ok &= good
            log(f"  {name:22s} max |analytic - numerical| {err:.2e}   native vs reference {diff:.2e}   "
                f"{'ok' if good else 'FAILED'} ({time.perf_counter() - t0:.1f}s)")
    return 0 if ok else 1


def add_arguments(p):
    p.add_argument("models", nargs="*", help="architectures (default: all)")
    p.add_argument("--check", action="store_true", help="whole-model gradient checks of the small networks")
    p.add_argument("--no-time", action="store_true", help="skip the forward timing (shapes/params/MACs only)")
    p.add_argument("--repeat", type=int, default=1, help="timing repetitions (best of)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--threads", type=int, default=None, help="kernel threads for the timing")
