"""``convkern onnx run | info | bench`` (also ``python -m convkern.onnx.cli``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np


def _dummy_inputs(rep, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    feeds = []
    for name in rep.input_names:
        dt, dims = rep.input_specs.get(name, (None, None))
        if dims is None:
            raise SystemExit(f"input {name!r} has no declared shape: pass --input")
        shape = [d if d else 1 for d in dims]
        if shape and dims[0] in (None, 0) or (shape and batch != 1):
            shape[0] = batch
        dt = dt or np.dtype(np.float32)
        if dt.kind == "f":
            feeds.append(rng.standard_normal(shape).astype(dt))
        elif dt.kind == "b":
            feeds.append(np.ones(shape, dtype=dt))
        else:
            feeds.append(np.zeros(shape, dtype=dt))
    return feeds


def _load_inputs(rep, paths):
    feeds = {}
    order = list(rep.input_names)
    for k, p in enumerate(paths):
        name = None
        if "=" in p and not os.path.exists(p):
            name, p = p.split("=", 1)
        if p.endswith(".npz"):
            with np.load(p, allow_pickle=False) as z:
                for key in z.files:
                    feeds[key] = z[key]
            continue
        a = np.load(p, allow_pickle=False)
        if name is None:
            if k >= len(order):
                raise SystemExit(f"too many --input files: the model takes {order}")
            name = order[k]
        dt = rep.input_specs.get(name, (None, None))[0]
        if dt is not None and a.dtype != dt and a.dtype.kind == dt.kind:
            a = a.astype(dt)
        feeds[name] = a
    return feeds


def _macs(node, args, outs):
    op = node.op_type
    try:
        if op == "Conv":
            w = args[1]
            return int(outs[0].size) * int(np.prod(w.shape[1:]))
        if op == "ConvTranspose":
            w = args[1]
            return int(args[0].size) * int(np.prod(w.shape[1:]))
        if op == "Gemm":
            a = args[0]
            k = a.shape[0] if node.attr("transA", 0) else a.shape[1]
            return int(outs[0].size) * int(k)
        if op == "MatMul":
            return int(outs[0].size) * int(args[0].shape[-1])
    except Exception:  # noqa: BLE001
        return 0
    return 0


def cmd_info(args):
    import onnx

    from .backend import load_model, prepare

    model = load_model(args.model)
    g = model.graph
    print(f"model: {args.model}")
    print(f"  ir_version {model.ir_version}, producer {model.producer_name or '?'} {model.producer_version}, "
          f"opsets {', '.join((o.domain or 'ai.onnx') + ':' + str(o.version) for o in model.opset_import)}")
    ops = Counter(n.op_type for n in g.node)
    print(f"  nodes: {len(g.node)}")
    print("  operators: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])))
    rep = prepare(model, optimize=not args.no_optimize)
    params = sum(int(v.size) for v in rep.graph.consts.values()
                 if isinstance(v, np.ndarray) and v.dtype.kind == "f")
    print(f"  parameters: {params:,} (float constants after constant folding)")
    for name in rep.input_names:
        dt, dims = rep.input_specs[name]
        print(f"  input  {name}: {dt} {tuple('?' if d is None else d for d in dims) if dims is not None else '?'}")
    for vi in g.output:
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else "?" for d in t.shape.dim]
        print(f"  output {vi.name}: {onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else '?'} "
              f"{tuple(dims)}")
    print(f"  prepared plan: {len(rep.plan)} steps; passes: {rep.stats}")
    total = [0]

    def hook(node, a, o):
        total[0] += _macs(node, a, o)

    try:
        feeds = _dummy_inputs(rep, 1)
        rep.run(feeds, hook=hook)
        print(f"  MACs for inputs {', '.join(str(f.shape) for f in feeds)}: {total[0]:,} "
              f"({2 * total[0] / 1e9:.3f} GFLOP)")
    except SystemExit as e:
        print(f"  MACs: unknown ({e})")
    return 0


def cmd_run(args):
    from .backend import prepare

    rep = prepare(args.model, optimize=not args.no_optimize)
    feeds = _load_inputs(rep, args.input) if args.input else None
    if feeds is None:
        feeds = dict(zip(rep.input_names, _dummy_inputs(rep, args.batch, args.seed)))
        print(f"(no --input: seeded random inputs {[f.shape for f in feeds.values()]})", file=sys.stderr)
    t0 = time.perf_counter()
    outs = rep.run(feeds)
    dt = time.perf_counter() - t0
    names = rep.output_names
    for n, o in zip(names, outs):
        o = np.asarray(o)
        extra = f" argmax {int(np.argmax(o.reshape(o.shape[0], -1)[0]))}" if o.ndim >= 2 and o.dtype.kind == "f" else ""
        print(f"{n}: {o.dtype} {o.shape}{extra}")
    print(f"time: {dt * 1e3:.2f} ms", file=sys.stderr)
    if args.output:
        if len(args.output) == 1 and len(outs) > 1 and args.output[0].endswith(".npz"):
            np.savez(args.output[0], **{n: np.asarray(o) for n, o in zip(names, outs)})
        elif len(args.output) == 1 and len(outs) > 1:
            np.save(args.output[0], np.asarray(outs[0]))
        else:
            for p, o in zip(args.output, outs):
                np.save(p, np.asarray(o))
    return 0


def _median_time(fn, repeat, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _randomize_weights(model, seed):
    """Seeded random float initializers (He-scaled tensors, 1-d ones in [0.5, 1.5] so that
    BatchNormalization variances stay positive): shipped test graphs often have constant weights."""
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype.kind != "f" or a.size <= 1:
            continue
        if a.ndim >= 2:
            new = rng.standard_normal(a.shape) * np.sqrt(2.0 / max(1, int(np.prod(a.shape[1:]))))
        else:
            new = rng.uniform(0.5, 1.5, a.shape)
        init.CopyFrom(numpy_helper.from_array(new.astype(a.dtype), init.name))
    return model


def _rebatch(model, batch):
    """The model with every graph input's and output's leading dimension set to ``batch`` when
    it is fixed to another value (the shipped test models are fixed to batch 1). Reshape nodes of
    activations whose constant target shape starts with the old batch get the new one; stale
    intermediate shapes (value_info) are dropped. Returns the model (changed in place)."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    olds = {vi.type.tensor_type.shape.dim[0].dim_value for vi in g.input
            if vi.name not in inits and vi.type.tensor_type.shape.dim and vi.type.tensor_type.shape.dim[0].dim_value}
    if len(olds) != 1 or batch in olds:
        return model
    old = olds.pop()
    for vi in list(g.input) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.name not in inits and dims and dims[0].dim_value == old:
            dims[0].dim_value = batch
    for n in g.node:
        if n.op_type == "Reshape" and len(n.input) > 1 and n.input[0] not in inits and n.input[1] in inits:
            shape = numpy_helper.to_array(inits[n.input[1]]).copy()
            if shape.ndim == 1 and shape.size and shape[0] == old:
                shape[0] = batch
                inits[n.input[1]].CopyFrom(numpy_helper.from_array(shape, n.input[1]))
    del g.value_info[:]
    return model


def cmd_bench(args):
    from .backend import load_model, prepare

    model = load_model(args.model)
    if args.random_weights:
        model = _randomize_weights(model, args.seed)
    model = _rebatch(model, args.batch)
    rep = prepare(model)
    feeds = _dummy_inputs(rep, args.batch, args.seed)
    try:
        import onnxruntime as ort
    except ImportError:
        t_ck = _median_time(lambda: rep.run(feeds), args.repeat, args.warmup)
        print(f"model: {args.model}  batch {args.batch}  median of {args.repeat} runs")
        print(f"  convkern     {t_ck * 1e3:10.2f} ms")
        print("  onnxruntime  not installed (pip install onnxruntime for a comparison)")
        return 0
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.ort_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = dict(zip(names, feeds))
    # --interleave B: the engines take turns in blocks of B runs (a slow spell of the shared
    # machine then hits both), the first run of each block untimed (the other engine's worker
    # threads may still be spinning from its last run). Each turn starts with the caches full of
    # the other engine's data (convkern's pool and packed weights are the larger footprint).
    # 0: all of convkern's runs, then all of ONNX Runtime's.
    fns = (lambda: rep.run(feeds), lambda: sess.run(None, feed))
    times = ([], [])
    for fn in fns:
        for _ in range(args.warmup):
            fn()
    block = args.repeat if args.interleave <= 0 else min(args.interleave, args.repeat)
    while len(times[1]) < args.repeat:
        for fn, ts in zip(fns, times):
            fn()
            for _ in range(min(block, args.repeat - len(ts))):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    t_ck, t_ort = (float(np.median(ts)) for ts in times)
    q = [np.percentile(ts, [25, 75]) * 1e3 for ts in times]
    ref = sess.run(None, feed)
    out = rep.run(feeds)
    how = f"the engines in turns of {block}" if block < args.repeat else "one engine after the other"
    print(f"model: {args.model}  batch {args.batch}  median of {args.repeat} runs, {how}")
    print(f"  convkern     {t_ck * 1e3:10.2f} ms  (quartiles {q[0][0]:.2f}-{q[0][1]:.2f})")
    print(f"  onnxruntime  {t_ort * 1e3:10.2f} ms  ({args.ort_threads} threads; quartiles {q[1][0]:.2f}-{q[1][1]:.2f})")
    print(f"  ratio convkern/onnxruntime: {t_ck / t_ort:.2f}   max |diff|/max|ort|: {_rel_err(out, ref):.1e}")
    logits = _softmax_inputs(model)
    if logits:
        # random weights often leave logits so large and alike that Softmax returns 1/classes
        # exactly on both engines (a zero difference that checks nothing): compare its input too
        probe = _with_outputs(model, logits)
        names = [n for n, _ in logits]
        got = prepare(probe).run(feeds)[len(out):]
        want = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
            names, feed)
        print(f"  Softmax input {', '.join(names)}: max |diff|/max|ort|: {_rel_err(got, want):.1e}")
    return 0


def _rel_err(out, ref):
    """max over float outputs of max |convkern - ort| / max |ort| (0 when there are none)."""
    errs = [float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(1e-30, float(np.max(np.abs(b)))))
            for a, b in zip(out, ref) if np.asarray(b).dtype.kind == "f" and np.asarray(b).size]
    return max(errs) if errs else 0.0


def _softmax_inputs(model):
    """(input name, element type) of each Softmax/LogSoftmax node that produces a graph output
    (its input has the output's element type)."""
    outs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    return [(n.input[0], outs[n.output[0]]) for n in model.graph.node
            if n.op_type in ("Softmax", "LogSoftmax") and n.output[0] in outs]


def _with_outputs(model, tensors):
    """A copy of model with the (name, element type) ``tensors`` appended to its outputs (shape
    left open)."""
    from onnx import helper

    m = type(model)()
    m.CopyFrom(model)
    for name, elem_type in tensors:
        m.graph.output.append(helper.make_tensor_value_info(name, elem_type, None))
    return m


def build_parser(parser=None):
    p = parser or argparse.ArgumentParser(prog="convkern onnx", description="run ONNX models on convkern")
    sub = p.add_subparsers(dest="onnx_cmd")
    r = sub.add_parser("run", help="run a model on .npy inputs")
    r.add_argument("model")
    r.add_argument("--input", "-i", action="append", default=[],
                   help="input .npy (graph input order), NAME=file.npy, or an .npz of named inputs; repeatable")
    r.add_argument("--output", "-o", action="append", default=[], help="output .npy per graph output (or one .npz)")
    r.add_argument("--batch", type=int, default=1, help="batch of the random input when no --input")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-optimize", action="store_true")
    i = sub.add_parser("info", help="operators, parameters, MACs")
    i.add_argument("model")
    i.add_argument("--no-optimize", action="store_true")
    b = sub.add_parser("bench", help="median latency, convkern vs onnxruntime")
    b.add_argument("model")
    b.add_argument("--batch", type=int, default=1,
                   help="batch of the random input; a model fixed to another batch is re-batched (inputs, outputs, "
                        "activation Reshape targets)")
    b.add_argument("--repeat", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--interleave", type=int, default=0, metavar="B",
                   help="alternate the engines in blocks of B runs (0: all of one, then the other)")
    b.add_argument("--ort-threads", type=int, default=2)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--random-weights", action="store_true",
                   help="replace the float initializers with seeded random values (both engines)")
    return p


def main(argv=None, args=None) -> int:
    parser = build_parser()
    if args is None:
        args = parser.parse_args(argv)
    cmd = getattr(args, "onnx_cmd", None)
    if cmd is None:
        parser.print_help()
        return 2
    try:
        return {"run": cmd_run, "info": cmd_info, "bench": cmd_bench}[cmd](args)
    except (ValueError, TypeError, NotImplementedError, FileNotFoundError) as e:
        print(f"convkern onnx {cmd}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
