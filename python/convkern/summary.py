"""Keras-style model summaries and multiply-accumulate (MAC) counts.

``flops(model, input_shape)`` counts the MACs of convolutions (incl. depthwise and transposed),
linear layers and attention matrix products for one forward pass, the way torchvision's
published numbers do (its docs' "GFLOPS" column is really GMACs of conv + linear; e.g.
ResNet-50 at 224x224: 4,089,184,256). ``summary(model, input_shape)`` prints one row per layer:
name (type), output shape, parameters, MACs, with totals.

Neither runs the numerical kernels: the forward pass is made on a *shape backend* whose
operators only compute output shapes (``shape_backend``), so even VGG-19 or ResNet-152 at
224x224 take a fraction of a second. Conv MACs = output elements x (C_in / groups) x kernel
area; Linear MACs = output elements x in_features; transposed conv MACs = input elements x
(C_out / groups) x kernel area; attention = 2 x N x heads x L x S x head_dim.
"""
from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, field

import numpy as np

from . import autograd as A
from . import functional as F
from .autograd import Tensor
from ._ops._pool_util import pool_out_size
from .nn import layers as L
from .nn.module import Module, forward_hook

__all__ = ["summary", "flops", "Summary", "shape_backend", "layer_macs"]


# ----------------------------------------------------------------------------- shape backend

def _bind(op, args, kwargs):
    ba = inspect.signature(getattr(F, op)).bind(*args, **kwargs)
    ba.apply_defaults()
    return ba.arguments


def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _conv_shape(nd):
    def f(*args, **kwargs):
        a = _bind(f"conv{nd}d", args, kwargs)
        x, w = a["input"], a["weight"]
        ks = w.shape[2:]
        st, dl = _tup(a["stride"], nd), _tup(a["dilation"], nd)
        pad = a["padding"]
        out = []
        for i in range(nd):
            n = x.shape[-nd + i]
            if pad == "same":
                out.append(n)
                continue
            p = 0 if pad == "valid" else _tup(pad, nd)[i]
            out.append((n + 2 * p - dl[i] * (ks[i] - 1) - 1) // st[i] + 1)
        return np.zeros(x.shape[:-nd - 1] + (w.shape[0],) + tuple(out), x.dtype)
    return f


def _convT_shape(nd):
    def f(*args, **kwargs):
        a = _bind(f"conv_transpose{nd}d", args, kwargs)
        x, w = a["input"], a["weight"]
        ks = w.shape[2:]
        st, pd = _tup(a["stride"], nd), _tup(a["padding"], nd)
        op, dl = _tup(a["output_padding"], nd), _tup(a["dilation"], nd)
        out = tuple((x.shape[-nd + i] - 1) * st[i] - 2 * pd[i] + dl[i] * (ks[i] - 1) + op[i] + 1 for i in range(nd))
        return np.zeros(x.shape[:-nd - 1] + (w.shape[1] * a["groups"],) + out, x.dtype)
    return f


def _depthwise_shape(*args, **kwargs):
    a = _bind("depthwise_conv2d", args, kwargs)
    return _conv_shape(2)(a["input"], a["weight"], None, a["stride"], a["padding"], a["dilation"])


def _pool_shape(op):
    def f(*args, **kwargs):
        a = _bind(op, args, kwargs)
        x = a["input"]
        k = _tup(a["kernel_size"], 2)
        s = _tup(a["stride"] if a["stride"] not in (None, (), []) else a["kernel_size"], 2)
        p, d = _tup(a["padding"], 2), _tup(a.get("dilation", 1), 2)
        out = tuple(pool_out_size(x.shape[-2 + i], k[i], s[i], p[i], d[i], a["ceil_mode"]) for i in range(2))
        y = np.zeros(x.shape[:-2] + out, x.dtype)
        return (y, np.zeros(y.shape, np.int64)) if a.get("return_indices") else y
    return f


def _adaptive_shape(op):
    def f(*args, **kwargs):
        a = _bind(op, args, kwargs)
        x, o = a["input"], _tup(a["output_size"], 2)
        out = tuple(x.shape[-2 + i] if o[i] is None else o[i] for i in range(2))
        y = np.zeros(x.shape[:-2] + out, x.dtype)
        return (y, np.zeros(y.shape, np.int64)) if a.get("return_indices") else y
    return f


def _global_shape(input):
    return np.zeros(input.shape[:-2] + (1, 1), input.dtype)


def _linear_shape(input, weight, bias=None):
    return np.zeros(input.shape[:-1] + (weight.shape[0],), input.dtype)


def _same(*args, **kwargs):
    x = args[0] if args else kwargs["input"]
    return np.zeros(x.shape, x.dtype)


def _loss_shape(op):
    def f(*args, **kwargs):
        a = _bind(op, args, kwargs)
        x = a["input"]
        if a["reduction"] == "none":
            return np.zeros(x.shape if op == "mse_loss" else x.shape[:1] + x.shape[2:], x.dtype)
        return np.zeros((), x.dtype)
    return f


def _make_shape_backend():
    ns = types.SimpleNamespace(DIFFERENTIABLE={}, SHAPE_ONLY=True, __name__="convkern.summary.shape_backend")
    for nd in (1, 2, 3):
        setattr(ns, f"conv{nd}d", _conv_shape(nd))
        setattr(ns, f"conv_transpose{nd}d", _convT_shape(nd))
    ns.depthwise_conv2d = _depthwise_shape
    ns.max_pool2d, ns.avg_pool2d = _pool_shape("max_pool2d"), _pool_shape("avg_pool2d")
    ns.adaptive_avg_pool2d = _adaptive_shape("adaptive_avg_pool2d")
    ns.adaptive_max_pool2d = _adaptive_shape("adaptive_max_pool2d")
    ns.global_avg_pool2d = ns.global_max_pool2d = _global_shape
    ns.linear = _linear_shape
    for op in ("batch_norm", "local_response_norm", "layer_norm", "relu", "relu6", "leaky_relu", "prelu", "elu", "sigmoid",
               "tanh", "gelu", "softmax", "log_softmax", "dropout"):
        setattr(ns, op, _same)
    ns.cross_entropy, ns.mse_loss = _loss_shape("cross_entropy"), _loss_shape("mse_loss")
    return ns


shape_backend = _make_shape_backend()


# ----------------------------------------------------------------------------- per-layer MACs

def _shape_of(out):
    if isinstance(out, (tuple, list)):
        out = out[0]
    return tuple(out.shape) if hasattr(out, "shape") else ()


def layer_macs(module: Module, inputs, output) -> tuple:
    """(kind, MACs) of one call of ``module`` (kind None for layers that do no multiply-accumulates
    in the count: pooling, norms, activations, ...)."""
    if isinstance(module, (L._ConvNd, L.DepthwiseConv2d)):
        w = module.weight.shape
        return "conv", int(np.prod(_shape_of(output), dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if isinstance(module, L._ConvTransposeNd):
        w = module.weight.shape
        return "conv", int(np.prod(_shape_of(inputs[0]), dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    if isinstance(module, L.Linear):
        return "linear", int(np.prod(_shape_of(output), dtype=np.int64)) * module.in_features
    if isinstance(module, L.MultiheadAttention):
        q, k = _shape_of(inputs[0]), _shape_of(inputs[1])
        if not module.batch_first:
            q, k = (q[1], q[0]) + q[2:], (k[1], k[0]) + k[2:]
        n, lq, e = q
        s = k[1]
        inproj = (n * lq + 2 * n * s) * e * e
        attn = 2 * n * lq * s * e
        return "attention", inproj + attn
    return None, 0


# ----------------------------------------------------------------------------- summary / flops

@dataclass
class Summary:
    model_name: str
    rows: list = field(default_factory=list)  # (name, type, output shape, params, macs)
    total_params: int = 0
    trainable_params: int = 0
    buffer_elements: int = 0
    total_macs: int = 0
    macs_by_kind: dict = field(default_factory=dict)
    input_shape: tuple = ()
    output_shape: tuple = ()

    def __str__(self):
        w0 = max([len(f"{n} ({t})") for n, t, *_ in self.rows] + [24]) + 2
        w1 = max([len(str(s)) for _, _, s, *_ in self.rows] + [14]) + 2
        width = w0 + w1 + 14 + 18
        lines = [f'Model: "{self.model_name}"', "_" * width,
                 f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>14}{'MACs':>18}", "=" * width]
        for n, t, s, p, m in self.rows:
            lines.append(f"{n + ' (' + t + ')':<{w0}}{str(s):<{w1}}{p:>14,}{m:>18,}")
        lines += ["=" * width,
                  f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.total_params - self.trainable_params:,}",
                  f"Buffers (BatchNorm running statistics etc.): {self.buffer_elements:,}",
                  f"Total MACs: {self.total_macs:,} (" + ", ".join(f"{k} {v:,}" for k, v in self.macs_by_kind.items())
                  + f"); FLOPs = 2 x MACs = {2 * self.total_macs:,}",
                  f"Input shape: {self.input_shape} -> output shape: {self.output_shape}",
                  "_" * width]
        return "\n".join(lines)


def _full_shape(input_shape, batch_size):
    shape = tuple(int(s) for s in input_shape)
    return (batch_size,) + shape


def _trace(model: Module, input_shape, batch_size=1, dtype=np.float32, real=False):
    shape = _full_shape(input_shape, batch_size)
    names = {id(m): n for n, m in model.named_modules()}
    rows, seen, kinds = [], set(), {}
    total = [0]

    def hook(m, inputs, out):
        leaf = not any(True for _ in m.children()) or isinstance(m, L.MultiheadAttention)
        kind, macs = layer_macs(m, inputs, out)
        if kind:
            kinds[kind] = kinds.get(kind, 0) + macs
            total[0] += macs
        if leaf:
            own = 0
            if id(m) not in seen:
                seen.add(id(m))
                own = sum(int(p.size) for p in m.parameters(recurse=False))
            rows.append((names.get(id(m), "?") or type(m).__name__, type(m).__name__, _shape_of(out), own, macs))

    was_training = model.training
    model.eval()
    try:
        with A.no_grad(), forward_hook(hook):
            x = Tensor(np.zeros(shape, dtype))
            if real:
                out = model(x)
            else:
                with A.use_backend(shape_backend):
                    out = model(x)
    finally:
        model.train(was_training)
    return rows, kinds, total[0], shape, _shape_of(out)


def flops(model: Module, input_shape, batch_size: int = 1, by_kind: bool = False):
    """Multiply-accumulates of one forward pass on a (batch_size, *input_shape) input (conv +
    linear + attention products; no BN, activations, pooling, adds). ``by_kind=True`` returns
    {"conv": ..., "linear": ..., "attention": ..., "total": ...}."""
    _, kinds, total, _, _ = _trace(model, input_shape, batch_size)
    if by_kind:
        return dict(kinds, total=total)
    return total


def summary(model: Module, input_shape, batch_size: int = 1, print_fn=print, name: str | None = None) -> Summary:
    """Keras-style table of ``model`` on a (batch_size, *input_shape) input: layer (type), output
    shape, parameters, MACs, and totals. Prints it (``print_fn=None`` to only return it)."""
    rows, kinds, total, shape, out_shape = _trace(model, input_shape, batch_size)
    n_params = model.num_parameters()
    listed = sum(r[3] for r in rows)
    if listed < n_params:  # parameters owned by non-leaf modules (class tokens, position embeddings)
        rows.append(("(other parameters)", "Parameter", "", n_params - listed, 0))
    s = Summary(name or type(model).__name__, rows, n_params, model.num_parameters(trainable_only=True),
                sum(int(b.size) for k, b in model.named_buffers() if not k.endswith("num_batches_tracked")),
                total, kinds, shape, out_shape)
    if print_fn is not None:
        print_fn(str(s))
    return s
