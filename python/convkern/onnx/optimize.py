"""Graph passes run once at prepare time.

* constant folding (every deterministic node whose inputs are all constants, e.g. the
  ConstantOfShape weights of the light models and Shape->Gather->Concat->Reshape chains;
  Shape nodes whose input shape is static are folded too)
* BatchNormalization folded into the preceding Conv (or ConvTranspose-free Conv chain)
* Conv / Gemm / BatchNormalization / Add + Relu / Clip / LeakyRelu fused into one step
  (the activation runs in place on the producer's fresh output, or in the GEMM's epilogue)
* Conv + Add / Sum of two tensors (+ Relu): the addend joins the Conv's epilogue (ResNet's
  residual join, no separate pass)
* the exported GELU pattern x * 0.5 * (1 + Erf(x / sqrt 2)) -> one convkern gelu call
* inference Dropout / Identity removed (aliases)
* Gemm constant B pre-transposed, MatMul constant B transposed once
* chains of 1x1 and depthwise Conv nodes (and a first layer of few channels that starts
  one) kept channel-blocked (NCHW16c, blocked_layout)
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .ops import NONDETERMINISTIC, OPS, Node

FOLD_LIMIT = 1 << 26  # don't materialize folded constants larger than this many elements


class Graph:
    """Mutable node list + constants + graph inputs/outputs (names)."""

    def __init__(self, nodes, consts, inputs, outputs, static_shapes=None):
        self.nodes = nodes
        self.consts = consts
        self.inputs = inputs
        self.outputs = outputs
        self.static_shapes = static_shapes or {}
        self.aliases = {}

    def consumers(self):
        c = defaultdict(list)
        for n in self.nodes:
            for i, name in enumerate(n.inputs):
                if name:
                    c[name].append((n, i))
        return c

    def resolve(self, name):
        seen = 0
        while name in self.aliases and seen < 10000:
            name = self.aliases[name]
            seen += 1
        return name


def _run_node(node, vals):
    fn = OPS[node.op_type]
    with np.errstate(all="ignore"):
        return fn(node, vals)


def fold_constants(g: Graph):
    keep = []
    folded = 0
    for n in g.nodes:
        ins = [g.resolve(i) if i else "" for i in n.inputs]
        n.inputs = ins
        if n.op_type == "Shape" and ins and ins[0] not in g.consts and ins[0] in g.static_shapes:
            shp = g.static_shapes[ins[0]]
            g.consts[n.outputs[0]] = _run_node(n, [np.broadcast_to(np.uint8(0), shp)])[0]
            folded += 1
            continue
        if n.op_type in NONDETERMINISTIC and n.op_type != "Dropout":
            keep.append(n)
            continue
        if n.op_type == "Dropout":
            train = False
            if n.opset >= 12 and len(ins) > 2 and ins[2]:
                train = ins[2] not in g.consts or bool(np.asarray(g.consts[ins[2]]))
            elif n.opset < 7:
                train = not n.attr("is_test", 0)
            if not train and not n.wants(1) and n.outputs[0] not in g.outputs:
                g.aliases[n.outputs[0]] = ins[0]
                continue
            keep.append(n)
            continue
        if n.op_type == "Identity" and n.outputs[0] not in g.outputs and ins[0] not in g.consts:
            g.aliases[n.outputs[0]] = ins[0]
            continue
        if all((not i) or i in g.consts for i in ins) and n.op_type in OPS:
            vals = [g.consts[i] if i else None for i in ins]
            try:
                outs = _run_node(n, vals)
            except NotImplementedError:
                keep.append(n)
                continue
            if all(getattr(o, "size", 0) <= FOLD_LIMIT for o in outs):
                for name, o in zip(n.outputs, outs):
                    if name:
                        g.consts[name] = np.asarray(o)
                folded += 1
                continue
        keep.append(n)
    g.nodes = keep
    return folded


def _single_consumer(g, cons, name):
    c = cons.get(name, [])
    if len(c) != 1 or name in g.outputs:
        return None
    return c[0][0]


def fold_batchnorm(g: Graph):
    cons = g.consumers()
    removed = set()
    n_fold = 0
    for n in g.nodes:
        if n.op_type != "Conv" or id(n) in removed or n.post is not None:
            continue
        if len(n.inputs) < 2 or n.inputs[1] not in g.consts or (len(n.inputs) > 2 and n.inputs[2]
                                                                 and n.inputs[2] not in g.consts):
            continue
        bn = _single_consumer(g, cons, n.outputs[0])
        if bn is None or bn.op_type != "BatchNormalization" or bn.inputs[0] != n.outputs[0] or bn.n_outputs != 1:
            continue
        if bn.opset >= 14 and bn.attr("training_mode", 0):
            continue
        if len(bn.inputs) < 5 or not all(i in g.consts for i in bn.inputs[1:5]):
            continue  # (a malformed node is left to its own op, which names what is wrong)
        w = g.consts[n.inputs[1]]
        if w.dtype not in (np.float32, np.float64) or w.ndim < 3:
            continue
        eps = bn.attr("epsilon", 1e-5)
        if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
            continue
        sc, bb, mu, var = (np.asarray(g.consts[i], dtype=np.float64) for i in bn.inputs[1:5])
        k = w.shape[0]
        if any(a.shape != (k,) for a in (sc, bb, mu, var)):
            continue
        eps = float(eps)
        s = sc / np.sqrt(var + eps)
        b0 = np.asarray(g.consts[n.inputs[2]], dtype=np.float64) if len(n.inputs) > 2 and n.inputs[2] else 0.0
        w2 = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b2 = ((b0 - mu) * s + bb).astype(w.dtype)
        wn, bn_name = n.outputs[0] + "::bnfold_w", n.outputs[0] + "::bnfold_b"
        g.consts[wn], g.consts[bn_name] = w2, b2
        n.inputs = [n.inputs[0], wn, bn_name]
        n.outputs = [bn.outputs[0]]
        removed.add(id(bn))
        n_fold += 1
    g.nodes = [n for n in g.nodes if id(n) not in removed]
    return n_fold


_FUSABLE_PRODUCERS = {"Conv", "ConvTranspose", "Gemm", "BatchNormalization", "MaxPool", "Add", "Sum"}


def fuse_activations(g: Graph):
    cons = g.consumers()
    removed = set()
    n_fused = 0
    for n in g.nodes:
        if n.op_type not in _FUSABLE_PRODUCERS or n.post is not None or id(n) in removed or n.n_outputs != 1:
            continue
        if n.op_type == "Add" and n.opset < 7:
            continue
        act = _single_consumer(g, cons, n.outputs[0])
        if act is None or act.inputs[0] != n.outputs[0]:
            continue
        if act.op_type == "Relu":
            post = ("relu",)
        elif act.op_type == "LeakyRelu":
            post = ("leaky", float(act.attr("alpha", 0.01)))
        elif act.op_type == "Clip":
            if act.opset < 11:
                lo, hi = act.attr("min", -np.inf), act.attr("max", np.inf)
            else:
                ins = act.inputs + ["", ""]
                if any(i and i not in g.consts for i in ins[1:3]):
                    continue
                lo = float(np.asarray(g.consts[ins[1]])) if ins[1] else -np.inf
                hi = float(np.asarray(g.consts[ins[2]])) if ins[2] else np.inf
            post = ("clip", lo, hi)
        else:
            continue
        n.post = post
        n.outputs = [act.outputs[0]]
        removed.add(id(act))
        n_fused += 1
    g.nodes = [n for n in g.nodes if id(n) not in removed]
    return n_fused


def fuse_residual(g: Graph):
    """Add(conv, other) / Sum(conv, other) -> one Conv node with ``other`` as its last input
    (node.extra["residual"]; the Add's fused activation moves along). Only when the Conv's
    output feeds nothing else and ``other`` is computed before the Conv runs and is not a
    constant; which addend is the Conv's output does not matter (addition commutes; a shape
    that would broadcast falls back to the Add at run time, ops.conv)."""
    cons = g.consumers()
    where = {o: k for k, n in enumerate(g.nodes) for o in n.outputs if o}
    removed = set()
    count = 0
    for s in g.nodes:
        if s.op_type not in ("Add", "Sum") or len(s.inputs) != 2 or not all(s.inputs) or s.n_outputs != 1:
            continue
        if s.op_type == "Add" and s.opset < 7:
            continue
        # the addend produced last (the other one then already exists when it runs)
        for k in sorted((0, 1), key=lambda i: -where.get(s.inputs[i], -1)):
            name, other = s.inputs[k], s.inputs[1 - k]
            p = g.nodes[where[name]] if name in where else None
            if (p is None or p.op_type != "Conv" or p.post is not None or p.n_outputs != 1 or id(p) in removed
                    or p.extra.get("residual") or other == name or _single_consumer(g, cons, name) is not s
                    or where.get(other, -1) >= where[name] or other in g.consts):  # (a constant: a bias)
                continue
            ins = list(p.inputs) + [""] * (3 - len(p.inputs))
            p.inputs = ins[:3] + [other]
            p.extra["residual"] = True
            p.outputs = list(s.outputs)
            p.post = s.post
            removed.add(id(s))
            count += 1
            break
    g.nodes = [n for n in g.nodes if id(n) not in removed]
    return count


def _const_scalar(g, name):
    if name in g.consts and np.asarray(g.consts[name]).size == 1:
        return float(np.asarray(g.consts[name]).reshape(-1)[0])
    return None


def fuse_gelu(g: Graph):
    """Div(x, sqrt2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)  (and Mul(0.5) before Mul(x))."""
    cons = g.consumers()
    removed = set()
    count = 0
    for d in g.nodes:
        if d.op_type not in ("Div", "Mul") or id(d) in removed or len(d.inputs) != 2:
            continue
        c = _const_scalar(g, d.inputs[1])
        if c is None or not (abs(c - 2 ** 0.5) < 1e-3 if d.op_type == "Div" else abs(c - 2 ** -0.5) < 1e-3):
            continue
        x = d.inputs[0]
        e = _single_consumer(g, cons, d.outputs[0])
        if e is None or e.op_type != "Erf":
            continue
        a = _single_consumer(g, cons, e.outputs[0])
        if a is None or a.op_type != "Add":
            continue
        other = a.inputs[1] if a.inputs[0] == e.outputs[0] else a.inputs[0]
        if _const_scalar(g, other) != 1.0:
            continue
        m1 = _single_consumer(g, cons, a.outputs[0])
        if m1 is None or m1.op_type != "Mul":
            continue
        o1 = m1.inputs[1] if m1.inputs[0] == a.outputs[0] else m1.inputs[0]
        m2 = _single_consumer(g, cons, m1.outputs[0])
        if m2 is None or m2.op_type != "Mul":
            continue
        o2 = m2.inputs[1] if m2.inputs[0] == m1.outputs[0] else m2.inputs[0]
        if o1 == x and _const_scalar(g, o2) == 0.5:
            pass
        elif _const_scalar(g, o1) == 0.5 and o2 == x:
            pass
        else:
            continue
        gelu = Node("Gelu", d.name + "::gelu", [x], [m2.outputs[0]], {}, d.opset)
        for nn in (e, a, m1, m2):
            removed.add(id(nn))
        d.op_type, d.inputs, d.outputs, d.attrs = gelu.op_type, gelu.inputs, gelu.outputs, {}
        count += 1
    g.nodes = [n for n in g.nodes if id(n) not in removed]
    return count


def pretranspose(g: Graph):
    for n in g.nodes:
        if n.op_type == "Gemm" and len(n.inputs) > 1 and n.inputs[1] in g.consts and not n.attr("transB", 0):
            b = g.consts[n.inputs[1]]
            if b.ndim == 2:
                name = n.inputs[1] + "::T"
                g.consts[name] = np.ascontiguousarray(b.T)
                n.inputs[1] = name
                n.attrs["transB"] = 1
        elif n.op_type == "MatMul" and len(n.inputs) > 1 and n.inputs[1] in g.consts:
            b = g.consts[n.inputs[1]]
            if b.ndim == 2:
                n.extra["wT"] = np.ascontiguousarray(b.T)


def prune(g: Graph):
    """Drop nodes whose outputs are never used, and unused constants."""
    needed = set(g.outputs)
    keep = []
    for n in reversed(g.nodes):
        if any(o in needed for o in n.outputs if o):
            keep.append(n)
            needed.update(i for i in n.inputs if i)
    g.nodes = keep[::-1]
    g.consts = {k: v for k, v in g.consts.items() if k in needed}


BLOCK = 16  # channels per block of the blocked layout (convkern._ops.blocked)


# Input channels up to which a one-group convolution writing a blocked tensor runs direct
# (convkern._ops.blocked.conv_direct_blocked: MobileNetV2's 3 -> 32 3x3/2 stem 0.63 of the NCHW
# convolution's time (interleaved, Zen 4, 2 threads), its depthwise and 1x1 consumers blocked)
DIRECT_C = 4


def _blockable(c):
    """Whether a tensor of c channels is held blocked: its padding lanes at most a quarter of
    the lanes (24 channels in 32 lanes, as ONNX Runtime's NCHWc layout holds MobileNetV2's
    24-channel stage; not 8 in 16)."""
    return c >= BLOCK and -(-c // BLOCK) * BLOCK * 3 <= c * 4


def _blocked_kind(g, n):
    """'1x1', 'dw' or 'direct' where Conv node n can run channel-blocked (convkern._ops.blocked:
    a 2-d 1x1, unpadded, one-group layer (a strided one reads its input subsampled); a
    depthwise one; a one-group layer of at most DIRECT_C input channels (a network's first
    layer), from an NCHW input: no fused residual but the 1x1's), else None. The weight must
    be a float constant. 'gap': a GlobalAveragePool node, or an unpadded 2-d AveragePool
    (global when its window is the whole plane; else it runs on its input converted), which
    reads a blocked input."""
    if n.op_type == "GlobalAveragePool" or (
            n.op_type == "AveragePool" and len(n.attr("kernel_shape") or ()) == 2 and not any(n.attr("pads") or ())
            and n.attr("auto_pad", "NOTSET") in ("NOTSET", "VALID") and not int(n.attr("ceil_mode", 0))
            and all(int(v) == 1 for v in (n.attr("dilations") or ()))):
        return "gap"  # (an AveragePool pools globally when its window is the plane: checked as it runs)
    if n.op_type != "Conv" or len(n.inputs) < 2 or n.inputs[1] not in g.consts:
        return None
    w = g.consts[n.inputs[1]]
    if not isinstance(w, np.ndarray) or w.ndim != 4 or w.dtype not in (np.float32, np.float64) or w.size == 0:
        return None
    ks = n.attr("kernel_shape")
    if ks is not None and tuple(int(k) for k in ks) != tuple(w.shape[2:]):
        return None
    group = int(n.attr("group", 1))
    if group == 1 and w.shape[2:] == (1, 1):
        strides = [int(v) for v in (n.attr("strides") or [1, 1])]
        pads = [int(v) for v in (n.attr("pads") or [0] * 4)]
        if (len(strides) == 2 and min(strides) >= 1 and not any(pads)
                and n.attr("auto_pad", "NOTSET") in ("NOTSET", "VALID")):
            return "1x1"
        return None
    if n.extra.get("residual") or len(n.attr("strides") or [1, 1]) != 2:
        return None
    if group == w.shape[0] and w.shape[1] == 1:
        return "dw"
    if group == 1 and w.shape[1] <= DIRECT_C:
        return "direct"
    return None


def blocked_layout(g: Graph):
    """Keeps chains of 1x1 and depthwise convolutions channel-blocked (convkern._ops.blocked: an
    (N, C, H, W) tensor held as (ceil(C/16), N, H, W, 16)): a tensor is stored blocked when its
    producer and every consumer are such Conv nodes (reading it as the input, or as a 1x1
    node's fused residual; a 'direct' node only writes one) or global average pooling, its
    channels fill at least three quarters of its blocks' lanes (_blockable) and it is not a
    graph output, whatever its plane size (leaving 56x56 and 112x112 NCHW measured the
    same). A depthwise node then runs blocked in and out, or not at all, and a 1x1 node's residual has its
    output's layout: tensors are unblocked until both hold. The 1x1 nodes at a
    chain's ends read or write NCHW themselves, so no conversion node is added. Sets
    node.extra["blocked"] = (input blocked, output blocked) on the nodes that take part (and
    "blocked_res_channels", a blocked residual's channels, for the fallback of a residual that
    broadcasts, and "blocked_in_channels", a blocked input's); returns how many tensors are
    blocked."""
    kinds = {id(n): _blocked_kind(g, n) for n in g.nodes}
    cons = g.consumers()
    outputs = set(g.outputs) | {g.resolve(o) for o in g.outputs}

    def reads(n, i):
        kind = kinds[id(n)]
        if kind is None:
            return False
        if i == 0:
            return kind != "direct"
        return i == 3 and kind == "1x1" and bool(n.extra.get("residual"))

    blocked, channels = set(), {}
    for n in g.nodes:
        if kinds[id(n)] in (None, "gap") or not n.outputs or not n.outputs[0]:
            continue
        out = n.outputs[0]
        k = g.consts[n.inputs[1]].shape[0]
        if not _blockable(k) or out in outputs or not cons.get(out):
            continue
        if all(reads(c, i) for c, i in cons[out]):
            blocked.add(out)
            channels[out] = k
    changed = True
    while changed:
        changed = False
        for n in g.nodes:
            kind = kinds[id(n)]
            if kind is None:
                continue
            pair = (n.inputs[0], n.outputs[0]) if kind == "dw" else (
                (n.inputs[3], n.outputs[0]) if n.extra.get("residual") else None)
            if pair is not None and (pair[0] in blocked) != (pair[1] in blocked):
                blocked.difference_update(pair)
                changed = True
    for n in g.nodes:
        if kinds[id(n)] is not None:
            io = (n.inputs[0] in blocked, bool(n.outputs) and n.outputs[0] in blocked)
            if any(io):
                n.extra["blocked"] = io
            if kinds[id(n)] == "1x1" and n.extra.get("residual") and n.inputs[3] in blocked:
                n.extra["blocked_res_channels"] = channels[n.inputs[3]]
            if io[0]:
                n.extra["blocked_in_channels"] = channels[n.inputs[0]]
    return len(blocked)


def optimize(g: Graph, level=2):
    stats = {"folded": fold_constants(g)}
    if level >= 1:
        stats["gelu"] = fuse_gelu(g)
        stats["bn_folded"] = fold_batchnorm(g)
        stats["act_fused"] = fuse_activations(g)
        stats["residual_fused"] = fuse_residual(g)
        pretranspose(g)
    prune(g)
    if level >= 2:
        stats["blocked"] = blocked_layout(g)
    return stats
