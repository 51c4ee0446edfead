#!/usr/bin/env python
"""Every operator on real layer shapes (ResNet-50, VGG-16, AlexNet, GoogLeNet inception 4a,
MobileNetV2): convkern vs the NumPy reference vs PyTorch NCHW vs PyTorch channels_last vs ONNX
Runtime (each when installed), in one run, engines interleaved.

Prints time (median of interleaved rounds, and the spread (max-min)/median of convkern's
samples), GFLOP/s and % of the FMA peak for compute-bound ops or GB/s and % of DRAM bandwidth
for memory-bound ones, and the time ratios convkern / other (< 1 means convkern is faster).
Writes Markdown and JSON with --md / --json and a PNG of % of peak per convolution layer with
--plot (matplotlib).

    python benchmarks/bench_ops.py [--batch 1] [--threads 2] [--filter conv] [--no-reference]
        [--no-ort] [--no-channels-last] [--md out.md] [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import machine  # noqa: E402
import shapes  # noqa: E402

import convkern  # noqa: E402
import convkern.functional as F  # noqa: E402
import convkern.reference as R  # noqa: E402
from convkern._ops import blocked as BK  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # PyTorch is optional
    torch = None
try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # ONNX Runtime is optional
    ort = None

ORT_THREADS = [2]


def ort_fn(op_type, x, inits=(), **attrs):
    """A one-node ONNX model y = op_type(x, *inits) run by ONNX Runtime: a callable, or None."""
    if ort is None:
        return None
    names = [f"i{k}" for k in range(len(inits))]
    node = helper.make_node(op_type, ["x"] + names, ["y"], **attrs)
    graph = helper.make_graph([node], "bench", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(a), n) for a, n in zip(inits, names)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = ORT_THREADS[0]
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"x": x})


def cl(t):
    """A channels_last copy of a 4-d torch tensor."""
    return t.contiguous(memory_format=torch.channels_last)


class Case:
    def __init__(self, group, name, flops, nbytes, ck, ref=None, th=None, cl=None, ort=None):
        self.group, self.name, self.flops, self.nbytes = group, name, flops, nbytes
        self.ck, self.ref, self.th, self.cl, self.ort = ck, ref, th, cl, ort


def _build_info():
    """Which convkern was measured: an installed copy shadows the working tree unless
    PYTHONPATH=python (see README.md), so the table names the package and its native module's
    build time."""
    import glob
    import datetime

    pkg = os.path.dirname(convkern.__file__)
    so = sorted(glob.glob(os.path.join(pkg, "_C*")))
    when = datetime.datetime.fromtimestamp(os.path.getmtime(so[0]), datetime.timezone.utc) if so else None
    return f"{pkg}" + (f" (_C built {when:%Y-%m-%d %H:%M} UTC)" if when else "")


def _blocked_fwd(name, x, wt, b, c, k, r, s, st, pd, g):
    """MobileNetV2's layers as the ONNX backend runs them in a chain: the channel-blocked kernels
    (convkern._ops.blocked) from a blocked input into a blocked output (24 channels in two
    blocks, the second one half padding; the layout conversion is not timed: inside a chain
    there is none); the stem from its NCHW input (conv_direct_blocked). None for other layers."""
    if not name.startswith("mbv2"):
        return None
    if g == 1 and c <= 4:
        return lambda: BK.conv_direct_blocked(x, wt, b, st, pd)
    xb = BK.to_blocked(x)
    if g == c == k:
        return lambda: BK.depthwise_blocked(xb, wt, b, st, pd)
    if g == 1 and r == s == 1 and st == 1 and pd == 0:
        pk = BK.pack_conv1x1_blocked(wt)
        return lambda: BK.conv1x1_blocked(xb, pk, b, in_blocked=True, out_blocked=True)
    return None


def conv_cases(batch, rng):
    out = []
    for table in (shapes.RESNET50_CONV, shapes.VGG16_CONV, shapes.ALEXNET_CONV, shapes.GOOGLENET_4A_CONV,
                  shapes.MOBILENETV2_CONV):
        for name, c, h, w, k, r, s, st, pd, g in table:
            x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
            wt = (rng.standard_normal((k, c // g, r, s)) * 0.1).astype(np.float32)
            b = rng.standard_normal(k).astype(np.float32)
            p = (h + 2 * pd - r) // st + 1
            q = (w + 2 * pd - s) // st + 1
            gy = rng.standard_normal((batch, k, p, q)).astype(np.float32)
            flops = 2.0 * batch * k * p * q * (c // g) * r * s
            nbytes = 4.0 * (x.size + wt.size + gy.size)
            kw = dict(stride=st, padding=pd, groups=g)
            x64, w64, b64, gy64 = (a.astype(np.float64) for a in (x, wt, b, gy))
            if torch is not None:
                tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, wt, b, gy))
            out.append(Case("conv fwd", name, flops, nbytes,
                            lambda x=x, wt=wt, b=b, kw=kw: F.conv2d(x, wt, b, **kw),
                            lambda x=x64, wt=w64, b=b64, kw=kw: R.conv2d(x, wt, b, **kw),
                            (lambda tx=tx, tw=tw, tb=tb, kw=kw: TF.conv2d(tx, tw, tb, **kw)) if torch else None,
                            (lambda tx=cl(tx), tw=cl(tw), tb=tb, kw=kw: TF.conv2d(tx, tw, tb, **kw)) if torch else None,
                            ort_fn("Conv", x, (wt, b), kernel_shape=[r, s], strides=[st, st], pads=[pd] * 4, group=g)))
            blocked = _blocked_fwd(name, x, wt, b, c, k, r, s, st, pd, g)
            if blocked is not None:
                out.append(Case("conv fwd blocked", name, flops, nbytes, blocked,
                                lambda x=x64, wt=w64, b=b64, kw=kw: R.conv2d(x, wt, b, **kw),
                                (lambda tx=tx, tw=tw, tb=tb, kw=kw: TF.conv2d(tx, tw, tb, **kw)) if torch else None,
                                (lambda tx=cl(tx), tw=cl(tw), tb=tb, kw=kw: TF.conv2d(tx, tw, tb, **kw))
                                if torch else None,
                                ort_fn("Conv", x, (wt, b), kernel_shape=[r, s], strides=[st, st], pads=[pd] * 4,
                                       group=g)))
            out.append(Case("conv grad input", name, flops, nbytes,
                            lambda x=x, wt=wt, gy=gy, kw=kw: F.conv2d_input(x.shape, wt, gy, **kw),
                            lambda x=x64, wt=w64, gy=gy64, kw=kw: R.conv2d_input(x.shape, wt, gy, **kw),
                            (lambda tx=tx, tw=tw, tgy=tgy, kw=kw:
                             torch.nn.grad.conv2d_input(tx.shape, tw, tgy, **kw)) if torch else None))
            out.append(Case("conv grad weight", name, flops, nbytes,
                            lambda x=x, wt=wt, gy=gy, kw=kw: F.conv2d_weight(x, wt.shape, gy, **kw),
                            lambda x=x64, wt=w64, gy=gy64, kw=kw: R.conv2d_weight(x, wt.shape, gy, **kw),
                            (lambda tx=tx, tw=tw, tgy=tgy, kw=kw:
                             torch.nn.grad.conv2d_weight(tx, tw.shape, tgy, **kw)) if torch else None))
    return out


def memory_cases(batch, rng):
    out = []
    T = (lambda a: torch.from_numpy(a)) if torch else None
    for name, c, h, w, k, st, pd in shapes.POOL:
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        x64 = x.astype(np.float64)
        p = (h + 2 * pd - k) // st + 1
        nb = 4.0 * (x.size + batch * c * p * p)
        fl = batch * c * p * p * k * k
        pattrs = dict(kernel_shape=[k, k], strides=[st, st], pads=[pd] * 4)
        out.append(Case("max_pool2d", name, fl, nb, lambda x=x, a=(k, st, pd): F.max_pool2d(x, *a),
                        lambda x=x64, a=(k, st, pd): R.max_pool2d(x, *a),
                        (lambda t=T(x), a=(k, st, pd): TF.max_pool2d(t, *a)) if torch else None,
                        (lambda t=cl(T(x)), a=(k, st, pd): TF.max_pool2d(t, *a)) if torch else None,
                        ort_fn("MaxPool", x, **pattrs)))
        out.append(Case("avg_pool2d", name, fl, nb, lambda x=x, a=(k, st, pd): F.avg_pool2d(x, *a),
                        lambda x=x64, a=(k, st, pd): R.avg_pool2d(x, *a),
                        (lambda t=T(x), a=(k, st, pd): TF.avg_pool2d(t, *a)) if torch else None,
                        (lambda t=cl(T(x)), a=(k, st, pd): TF.avg_pool2d(t, *a)) if torch else None,
                        ort_fn("AveragePool", x, count_include_pad=1, **pattrs)))
    for name, c, h, w in shapes.GLOBAL_POOL:
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        out.append(Case("global_avg_pool2d", name, x.size, 4.0 * x.size, lambda x=x: F.global_avg_pool2d(x),
                        lambda x=x.astype(np.float64): R.global_avg_pool2d(x),
                        (lambda t=T(x): TF.adaptive_avg_pool2d(t, 1)) if torch else None,
                        (lambda t=cl(T(x)): TF.adaptive_avg_pool2d(t, 1)) if torch else None,
                        ort_fn("GlobalAveragePool", x)))
        out.append(Case("global_max_pool2d", name, x.size, 4.0 * x.size, lambda x=x: F.global_max_pool2d(x),
                        lambda x=x.astype(np.float64): R.global_max_pool2d(x),
                        (lambda t=T(x): TF.adaptive_max_pool2d(t, 1)) if torch else None,
                        (lambda t=cl(T(x)): TF.adaptive_max_pool2d(t, 1)) if torch else None,
                        ort_fn("GlobalMaxPool", x)))
    for name, c, h, w in shapes.NORM:
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        m, v = rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + 0.5
        gm, bt = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        a64 = [a.astype(np.float64) for a in (x, m, v, gm, bt)]
        nb = 8.0 * x.size
        out.append(Case("batch_norm eval", name, 2 * x.size, nb, lambda a=(x, m, v, gm, bt): F.batch_norm(*a),
                        lambda a=a64: R.batch_norm(*a),
                        (lambda t=[T(a) for a in (x, m, v, gm, bt)]: TF.batch_norm(*t)) if torch else None,
                        (lambda t=[cl(T(x))] + [T(a) for a in (m, v, gm, bt)]: TF.batch_norm(*t)) if torch else None,
                        ort_fn("BatchNormalization", x, (gm, bt, m, v))))
        out.append(Case("batch_norm train", name, 6 * x.size, 3 * 4.0 * x.size,
                        lambda x=x, gm=gm, bt=bt: F.batch_norm(x, None, None, gm, bt, training=True),
                        lambda a=a64: R.batch_norm(a[0], None, None, a[3], a[4], training=True),
                        (lambda t=[T(a) for a in (x, gm, bt)]: TF.batch_norm(t[0], None, None, t[1], t[2], True))
                        if torch else None))
    for name, c, h, w, size in shapes.LRN:
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        out.append(Case("local_response_norm", name, x.size * (size + 4), 8.0 * x.size,
                        lambda x=x, size=size: F.local_response_norm(x, size),
                        lambda x=x.astype(np.float64), size=size: R.local_response_norm(x, size),
                        (lambda t=T(x), size=size: TF.local_response_norm(t, size)) if torch else None))
    for name, shp in shapes.ELEMENTWISE:
        x = rng.standard_normal((batch,) + shp).astype(np.float32)
        op = name.split()[0]
        out.append(Case(op, name, x.size, 8.0 * x.size, lambda x=x, op=op: getattr(F, op)(x),
                        lambda x=x.astype(np.float64), op=op: getattr(R, op)(x),
                        (lambda t=T(x), op=op: getattr(torch, op)(t)) if torch else None))
    for name, fin, fout in shapes.LINEAR:
        x = rng.standard_normal((batch, fin)).astype(np.float32)
        w = (rng.standard_normal((fout, fin)) * 0.02).astype(np.float32)
        b = rng.standard_normal(fout).astype(np.float32)
        out.append(Case("linear", name, 2.0 * batch * fin * fout, 4.0 * (w.size + x.size),
                        lambda a=(x, w, b): F.linear(*a),
                        lambda a=[x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)]: R.linear(*a),
                        (lambda t=[T(a) for a in (x, w, b)]: TF.linear(*t)) if torch else None))
    logits = rng.standard_normal((batch, 1000)).astype(np.float32)
    target = rng.integers(0, 1000, batch)
    out.append(Case("softmax", "classifier 1000", 3 * logits.size, 8.0 * logits.size,
                    lambda: F.softmax(logits, 1), lambda a=logits.astype(np.float64): R.softmax(a, 1),
                    (lambda t=T(logits): TF.softmax(t, 1)) if torch else None))
    out.append(Case("cross_entropy", "classifier 1000", 4 * logits.size, 4.0 * logits.size,
                    lambda: F.cross_entropy(logits, target),
                    lambda a=logits.astype(np.float64): R.cross_entropy(a, target),
                    (lambda t=T(logits), tt=T(target): TF.cross_entropy(t, tt)) if torch else None))
    return out


def timeit(fn, min_time=0.05, max_reps=50, settle=0.02):
    # Let the previous engine's worker threads stop spinning first: ONNX Runtime's pool and
    # each OpenMP runtime keep spinning for a while after a call, and on 2 cores that takes
    # the CPU from whichever engine runs next (it inflated short kernels up to 3x).
    time.sleep(settle)
    fn()  # warm up (and fault in workspaces)
    reps, t0 = 0, time.perf_counter()
    times = []
    while reps < max_reps and (time.perf_counter() - t0 < min_time or reps < 3):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        reps += 1
    return times


def _median(v):
    return statistics.median(v) if v else None


def plot(results, path, title):
    """% of peak per convolution layer (forward), convkern vs the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r["group"] == "conv fwd"]
    if not rows:
        return
    engines = [("convkern", "ck_ms"), ("PyTorch NCHW", "torch_ms"), ("PyTorch channels_last", "cl_ms"),
               ("ONNX Runtime", "ort_ms")]
    fig, ax = plt.subplots(figsize=(max(8, 0.42 * len(rows)), 5))
    width = 0.8 / len(engines)
    xs = np.arange(len(rows))
    for i, (label, key) in enumerate(engines):
        vals = [100 * r["gflops"] * r["ck_ms"] / r[key] / r["peak"] if r.get(key) else 0.0 for r in rows]
        ax.bar(xs + (i - 1.5) * width, vals, width, label=label)
    ax.axhline(85, color="k", lw=0.8, ls="--")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["name"] for r in rows], rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("% of FMA peak (direct-convolution FLOPs)")
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default="", help="substring of group or name")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median over all)")
    ap.add_argument("--no-reference", action="store_true", help="skip timing the NumPy reference")
    ap.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    ap.add_argument("--no-channels-last", action="store_true", help="skip PyTorch channels_last")
    ap.add_argument("--md", help="write the table as Markdown")
    ap.add_argument("--json", help="write results as JSON")
    ap.add_argument("--plot", help="write a PNG of %% of peak per convolution layer")
    a = ap.parse_args(argv)

    global ort
    if a.no_ort:
        ort = None
    ORT_THREADS[0] = a.threads
    convkern.set_num_threads(a.threads)
    if torch is not None:
        torch.set_num_threads(a.threads)
    mach = machine.measure(a.threads)  # this CPU now: VMs move between CPU models
    peak_gflops, bw = mach["gflops"], mach["dram_gbs"]
    rng = np.random.default_rng(0)
    cases = [c for c in conv_cases(a.batch, rng) + memory_cases(a.batch, rng)
             if a.filter in c.group or a.filter in c.name]
    if a.no_channels_last:
        for c in cases:
            c.cl = None
    results = []
    grad = torch.no_grad() if torch is not None else None
    if grad:
        grad.__enter__()
    engines = ("ck", "th", "cl", "ort")
    samples = {id(c): {k: [] for k in engines + ("ref",)} for c in cases}
    for rnd in range(a.rounds):  # interleave engines and cases: this VM's speed drifts
        for c in cases:
            for k in engines:
                fn = getattr(c, k)
                if fn is not None:
                    samples[id(c)][k] += timeit(fn)
            if c.ref and not a.no_reference and rnd == 0:
                samples[id(c)]["ref"] += timeit(c.ref, min_time=0.0, max_reps=1)
    for c in cases:
        s = samples[id(c)]
        ck = _median(s["ck"])
        th, clt, ot, ref = (_median(s[k]) for k in ("th", "cl", "ort", "ref"))
        compute_bound = c.group.startswith("conv") or c.group == "linear"
        ms = lambda v: v * 1e3 if v else None  # noqa: E731
        results.append(dict(group=c.group, name=c.name, batch=a.batch, threads=a.threads, peak=peak_gflops,
                            ck_ms=ck * 1e3,
                            ck_spread=(max(s["ck"]) - min(s["ck"])) / ck if len(s["ck"]) > 1 else 0.0,
                            torch_ms=ms(th), cl_ms=ms(clt), ort_ms=ms(ot), ref_ms=ms(ref),
                            gflops=c.flops / ck / 1e9, gbs=c.nbytes / ck / 1e9,
                            pct_peak=100 * c.flops / ck / 1e9 / peak_gflops if compute_bound else None,
                            pct_bw=None if compute_bound else 100 * c.nbytes / ck / 1e9 / bw,
                            ratio_torch=ck / th if th else None, ratio_cl=ck / clt if clt else None,
                            ratio_ort=ck / ot if ot else None, speedup_ref=ref / ck if ref else None))
    if grad:
        grad.__exit__(None, None, None)

    head = (f"convkern {convkern.__version__} ({convkern.get_isa()}, {a.threads} threads) vs NumPy reference"
            f"{' vs PyTorch ' + torch.__version__ + ' (NCHW, channels_last)' if torch else ''}"
            f"{' vs ONNX Runtime ' + ort.__version__ if ort else ''}, batch {a.batch}; "
            f"{mach['cpu']} ({mach['isa']}), peak {peak_gflops:.0f} GFLOP/s, DRAM triad {bw:.0f} GB/s "
            f"({mach['source']}); median of {a.rounds} interleaved rounds; measured build: {_build_info()}")
    lines = [head, "",
             "| op | layer | convkern ms | spread | GFLOP/s | % peak | GB/s | % DRAM bw | ref/convkern | torch ms "
             "| torch CL ms | ORT ms | ck/torch | ck/torch CL | ck/ORT |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
    for r in results:
        lines.append(f"| {r['group']} | {r['name']} | {r['ck_ms']:.3f} | {100 * r['ck_spread']:.0f}% | "
                     f"{r['gflops']:.1f} | {f(r['pct_peak'], '.0f')} | {r['gbs']:.1f} | {f(r['pct_bw'], '.0f')} | "
                     f"{f(r['speedup_ref'], '.0f')} | {f(r['torch_ms'], '.3f')} | {f(r['cl_ms'], '.3f')} | "
                     f"{f(r['ort_ms'], '.3f')} | {f(r['ratio_torch'], '.2f')} | {f(r['ratio_cl'], '.2f')} | "
                     f"{f(r['ratio_ort'], '.2f')} |")
    lines.append("")
    for key, label in (("ratio_torch", "PyTorch NCHW"), ("ratio_cl", "PyTorch channels_last"), ("ratio_ort", "ONNX Runtime")):
        ratios = [r[key] for r in results if r[key]]
        if ratios:
            lines.append(f"geometric mean convkern / {label} over {len(ratios)} cases: "
                         f"{float(np.exp(np.mean(np.log(ratios)))):.2f}")
    text = "\n".join(lines)
    print(text)
    if a.md:
        open(a.md, "w").write(text + "\n")
    if a.json:
        json.dump(dict(header=head, results=results), open(a.json, "w"), indent=1)
    if a.plot:
        plot(results, a.plot, head)


if __name__ == "__main__":
    main()
