"""Command line: ``python -m convkern info`` and ``python -m convkern demo`` (also the ``convkern`` script)."""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args) -> int:
    import numpy as np

    import convkern
    import convkern.functional as F
    import convkern.reference as R
    from convkern.gradcheck import check_op

    print(convkern.format_info())
    rng = np.random.default_rng(0)
    n, c, h, k = args.batch, 64, 56, 64
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((k, c, 3, 3)) * 0.05).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    print(f"\nconv2d 3x3 'same' + relu + max_pool2d 2x2 on a ({n}, {c}, {h}, {h}) float32 batch -> {k} channels")

    def step():
        y = F.conv2d(x, w, b, padding=1)
        z = F.relu(y)
        p = F.max_pool2d(z, 2)
        gp = np.ones_like(p)
        (gz,) = F.max_pool2d_backward(gp, z, 2)
        (gy,) = F.relu_backward(gz, y)
        return (p,) + tuple(F.conv2d_backward(gy, x, w, b, padding=1))

    outs = step()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    macs = n * k * h * h * c * 9
    print(f"  forward + backward: {t * 1e3:.1f} ms (median of {args.repeat}); conv MACs {macs:,} x 3 passes "
          f"= {3 * 2 * macs / t / 1e9:.1f} GFLOP/s")

    # The same step on the NumPy reference, in float64.
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    y = R.conv2d(x64, w64, b64, padding=1)
    z = R.relu(y)
    p = R.max_pool2d(z, 2)
    (gz,) = R.max_pool2d_backward(np.ones_like(p), z, 2)
    (gy,) = R.relu_backward(gz, y)
    ref = (p,) + tuple(R.conv2d_backward(gy, x64, w64, b64, padding=1))
    names = ["pooled output", "grad input", "grad weight", "grad bias"]
    worst = 0.0
    for name, a, e in zip(names, outs, ref):
        err = float(np.max(np.abs(a - e)) / max(1.0, np.max(np.abs(e))))
        worst = max(worst, err)
        print(f"  {name:14s} max relative difference to the float64 reference: {err:.2e}")

    # float64 finite-difference check of the native backward on a small slice.
    ok = check_op(F, "conv2d", x64[:1, :3, :6, :6], w64[:4, :3], b64[:4], stride=2, padding=1)
    print(f"  float64 gradient check of conv2d (stride 2, padding 1): {'passed' if ok else 'FAILED'}")
    return 0 if worst < 1e-3 and ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="convkern", description="convkern command line")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("info", help="version, ISAs, threads, CUDA")
    d = sub.add_parser("demo", help="a conv layer forward+backward: native vs reference, gradcheck, time")
    d.add_argument("--batch", type=int, default=8)
    d.add_argument("--repeat", type=int, default=5)
    o = sub.add_parser("onnx", help="run / inspect / benchmark ONNX models (needs convkern[onnx])")
    try:
        from .onnx.cli import build_parser as _onnx_parser
    except ImportError:  # onnx not installed: the subcommand reports it when used
        _onnx_parser = None
    if _onnx_parser is not None:
        _onnx_parser(o)
    from . import train as _train_mod  # noqa: F401  (argument definitions only; heavy imports happen later)
    from . import zoo as _zoo_mod

    t = sub.add_parser("train", help="train a zoo model, e.g. `convkern train lenet5 --dataset digits`")
    _train_mod.add_arguments(t)
    t.add_argument("--threads", type=int, default=1,
                   help="kernel threads (1 is fastest for LeNet-sized layers; more for big models)")
    z = sub.add_parser("zoo", help="every architecture: parameters, MACs, output shape, time per image")
    _zoo_mod.add_arguments(z)
    args = parser.parse_args(argv)
    if args.cmd == "onnx":
        if _onnx_parser is None:
            print("convkern onnx: needs the 'onnx' package (pip install convkern[onnx])", file=sys.stderr)
            return 1
        from .onnx.cli import main as _onnx_main

        return _onnx_main(args=args)
    if args.cmd == "train":
        import convkern

        convkern.set_num_threads(args.threads)
        return _train_mod.main(args)
    if args.cmd == "zoo":
        names = args.models or None
        if args.threads:
            import convkern

            convkern.set_num_threads(args.threads)
        return _zoo_mod.run(names, timing=not args.no_time, check=args.check, repeat=args.repeat,
                            markdown=args.markdown)
    if args.cmd in (None, "info"):
        import convkern

        print(convkern.format_info())
        return 0
    if args.cmd == "demo":
        return _demo(args)
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
