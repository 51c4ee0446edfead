"""Where a whole ONNX graph loses to ONNX Runtime, convolution by convolution.

Runs the graph in convkern (each Conv node timed around its call) and in ONNX Runtime with
profiling on (per-node kernel times), matches the convolutions by output tensor name (ORT's
NCHWc rewrite appends "_nchwc"; nodes ORT fused into another are left out) and prints, per
layer shape, both engines' summed median times, their ratio and the milliseconds lost, largest
loss first.

    PYTHONPATH=python python benchmarks/onnx_conv_vs_ort.py model.onnx --batch 1
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import convkern.onnx.ops as ops
    from convkern.onnx import cli
    from convkern.onnx.backend import load_model, prepare

    model = cli._rebatch(cli._randomize_weights(load_model(args.model), args.seed), args.batch)
    rep = prepare(model)
    feeds = cli._dummy_inputs(rep, args.batch, args.seed)

    times, shapes = collections.defaultdict(list), {}
    conv = ops.OPS["Conv"]

    def timed(node, ins):
        t = time.perf_counter()
        out = conv(node, ins)
        times[node.outputs[0]].append(time.perf_counter() - t)
        shapes[node.outputs[0]] = (ins[0].shape, ins[1].shape, tuple(node.attr("strides") or ()))
        return out

    rep.plan = [(timed, node, free) if node.op_type == "Conv" else (fn, node, free) for fn, node, free in rep.plan]
    rep.run(feeds)
    times.clear()
    for _ in range(args.repeat):
        rep.run(feeds)

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = dict(zip([i.name for i in sess.get_inputs()], feeds))
    for _ in range(3 + args.repeat):
        sess.run(None, feed)
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    ort_times = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            ort_times[e["name"][: -len("_kernel_time")]].append(e["dur"] * 1e-6)

    agg = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for name, ts in times.items():
        o = ort_times.get(name) or ort_times.get(name + "_nchwc")
        if not o:
            continue
        a = agg[shapes[name]]
        a[0] += float(np.median(ts))
        a[1] += float(np.median(o[-args.repeat:]))
        a[2] += 1
    n = sum(v[2] for v in agg.values())
    ck, ot = sum(v[0] for v in agg.values()), sum(v[1] for v in agg.values())
    print(f"{args.model}  batch {args.batch}: {n} of {len(times)} convolutions matched; "
          f"convkern {ck * 1e3:.1f} ms, ONNX Runtime {ot * 1e3:.1f} ms over them")
    print("| input | weight | stride | count | convkern ms | ORT ms | ratio | ms lost |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for (xs, ws, st), (a, b, c) in sorted(agg.items(), key=lambda kv: kv[1][1] - kv[1][0]):
        print(f"| {xs} | {ws} | {st} | {c} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.2f} | {(a - b) * 1e3:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
