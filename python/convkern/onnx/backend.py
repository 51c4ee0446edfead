"""``onnx.backend.base.Backend`` implementation running every node on convkern.

    import convkern.onnx as ckonnx
    rep = ckonnx.prepare("model.onnx")          # or a ModelProto / serialized bytes
    (y,) = rep.run([x])                           # or rep.run({"input": x})

prepare() loads and validates the model once (external data confined to the model's
directory), refuses unsupported operators with one message listing all of them, infers
static shapes, folds constants (shape subgraphs, ConstantOfShape weights), folds
BatchNormalization into Conv, fuses Relu/Clip into their producer and builds an execution
plan that frees every intermediate right after its last use.  run() executes the plan.
"""
from __future__ import annotations

import functools
import os
import time
from collections import namedtuple

import numpy as np

try:
    import onnx
    from onnx import numpy_helper
    from onnx.backend.base import Backend as _BaseBackend
    from onnx.backend.base import BackendRep as _BaseRep
    from onnx.backend.base import Device, DeviceType
except ImportError as e:  # pragma: no cover
    raise ImportError("convkern.onnx needs the 'onnx' package: pip install convkern[onnx]") from e

from . import optimize as _opt
from .ops import OPS, Node, OnnxRuntimeError

MAX_MODEL_BYTES = 4 << 30      # a protobuf model cannot exceed 2 GiB; refuse absurd files early
MAX_TENSOR_ELEMENTS = 1 << 34  # absurd initializer / input sizes are refused


class UnsupportedOperatorError(NotImplementedError):
    """The model uses operators convkern.onnx does not implement (all listed at once)."""


class ModelLoadError(ValueError):
    """The file is not a readable ONNX model (malformed, truncated, unsafe external data)."""


# ----------------------------------------------------------------------------- loading
def _parse(data: bytes, what: str) -> "onnx.ModelProto":
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except Exception as e:  # noqa: BLE001  (protobuf DecodeError and friends)
        raise ModelLoadError(f"{what}: not a valid ONNX model (malformed or truncated protobuf: {e})") from None
    if not m.HasField("graph") or (len(m.graph.node) == 0 and len(m.graph.output) == 0):
        raise ModelLoadError(f"{what}: not a valid ONNX model (no graph)")
    return m


def _safe_external_path(base_dir, location, tensor_name):
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
        raise ModelLoadError(f"initializer {tensor_name!r}: external data path {location!r} must be relative to "
                             f"the model's directory")
    base = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, full]) != base:
        raise ModelLoadError(f"initializer {tensor_name!r}: external data path {location!r} leaves the model's "
                             f"directory {base_dir!r}; refused")
    if not os.path.isfile(full):
        raise ModelLoadError(f"initializer {tensor_name!r}: external data file {location!r} not found in {base_dir!r}")
    return full


def _load_external(model, base_dir):
    from onnx.external_data_helper import _get_all_tensors

    for t in _get_all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        if base_dir is None:
            raise ModelLoadError(f"initializer {t.name!r} uses external data but the model was not loaded from a "
                                 f"file: pass the path instead")
        path = _safe_external_path(base_dir, info.get("location", ""), t.name)
        offset = int(info.get("offset", 0) or 0)
        size = os.path.getsize(path)
        length = int(info["length"]) if info.get("length") else size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise ModelLoadError(f"initializer {t.name!r}: external data range [{offset}, {offset + length}) is "
                                 f"outside {info.get('location')!r} ({size} bytes)")
        with open(path, "rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]


def load_model(source) -> "onnx.ModelProto":
    """ModelProto from a ModelProto, serialized bytes or a file path (external data checked)."""
    base_dir = None
    if isinstance(source, onnx.ModelProto):
        model = source
        has_ext = any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        if has_ext:
            m2 = onnx.ModelProto()
            m2.CopyFrom(model)
            model = m2
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model = _parse(bytes(source), "model bytes")
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file not found: {path!r}")
        if os.path.getsize(path) > MAX_MODEL_BYTES:
            raise ModelLoadError(f"{path}: file too large ({os.path.getsize(path)} bytes) for an ONNX protobuf")
        with open(path, "rb") as f:
            model = _parse(f.read(), path)
        base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise TypeError(f"model: expected an onnx.ModelProto, bytes or a path, got {type(source).__name__}")
    _load_external(model, base_dir)
    return model


def _to_array(t):
    n = 1
    for d in t.dims:
        if d < 0:
            raise ModelLoadError(f"tensor {t.name!r}: negative dimension in {list(t.dims)}")
        n *= d
    if n > MAX_TENSOR_ELEMENTS:
        raise ModelLoadError(f"tensor {t.name!r}: absurd size {list(t.dims)}")
    try:
        return numpy_helper.to_array(t)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"tensor {t.name!r} (dims {list(t.dims)}): unreadable data ({e})") from None


def _static_shape(vi):
    t = vi.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            return None
    return tuple(dims)


def _declared(vi):
    """(numpy dtype or None, [dim or None per axis] or None)."""
    t = vi.type
    if not t.HasField("tensor_type"):
        return None, None
    dt = None
    if t.tensor_type.elem_type:
        try:
            dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type))
        except Exception:  # noqa: BLE001
            dt = None
    if not t.tensor_type.HasField("shape"):
        return dt, None
    return dt, [int(d.dim_value) if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]


def default_opset(model):
    v = None
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            v = int(o.version)
    if v is None:
        v = 1 if model.ir_version < 3 else 9
    return v


def check_supported(model):
    """Raise UnsupportedOperatorError listing every operator this backend lacks."""
    opset = default_opset(model)
    missing = {}
    for n in model.graph.node:
        dom = n.domain if n.domain not in ("", "ai.onnx") else ""
        key = f"{dom}::{n.op_type}" if dom else n.op_type
        if dom or n.op_type not in OPS:
            missing.setdefault(key, 0)
            missing[key] += 1
    if missing:
        lst = ", ".join(f"{k} (x{v})" for k, v in sorted(missing.items()))
        raise UnsupportedOperatorError(f"convkern.onnx does not support these operators (ai.onnx opset {opset}): {lst}")


def _toposort(nodes, available):
    avail = set(available)
    out, pending = [], list(nodes)
    while pending:
        progress = False
        rest = []
        for n in pending:
            if all((not i) or i in avail for i in n.inputs):
                out.append(n)
                avail.update(o for o in n.outputs if o)
                progress = True
            else:
                rest.append(n)
        if not progress:
            n = rest[0]
            miss = [i for i in n.inputs if i and i not in avail]
            raise ModelLoadError(f"{n.op_type} node {n.name or n.outputs[0]!r} uses undefined value(s) {miss} "
                                 f"(or the graph has a cycle)")
        pending = rest
    return out


# ----------------------------------------------------------------------------- the prepared model
class BackendRep(_BaseRep):
    """A prepared model: ``run(inputs)`` returns the graph outputs (a tuple of NumPy arrays)."""

    def __init__(self, model, device="CPU", optimize=True, check_shapes=True, **_kw):
        if model.ir_version > 0 and not model.HasField("graph"):
            raise ModelLoadError("model has no graph")
        check_supported(model)
        g = model.graph
        self.opset = default_opset(model)
        self.device = device
        consts = {}
        for t in g.initializer:
            consts[t.name] = _to_array(t)
        for t in g.sparse_initializer:
            consts[t.values.name] = OPS["Constant"](Node("Constant", attrs={"sparse_value": t}), [])[0]
        self.input_names = [vi.name for vi in g.input if vi.name not in consts]
        self.input_specs = {vi.name: _declared(vi) for vi in g.input if vi.name not in consts}
        self.output_names = [vi.name for vi in g.output]
        if not self.output_names:
            raise ModelLoadError("model has no outputs")
        nodes = [Node.from_proto(n, self.opset) for n in g.node]
        nodes = _toposort(nodes, list(consts) + self.input_names)
        static = {}
        for vi in g.input:
            if vi.name not in consts:
                s = _static_shape(vi)
                if s is not None:
                    static[vi.name] = s
        if static and len(static) == len(self.input_names):
            static.update(self._infer_shapes(model))
        self.graph = _opt.Graph(nodes, consts, self.input_names, self.output_names, static)
        self.stats = _opt.optimize(self.graph, 2 if optimize else 0)
        produced = set(consts) | set(self.input_names)
        for n in self.graph.nodes:
            produced.update(o for o in n.outputs if o)
        for o in self.output_names:
            if self.graph.resolve(o) not in produced:
                raise ModelLoadError(f"graph output {o!r} is never produced")
        self.check_shapes = check_shapes
        self._build_plan()

    @staticmethod
    def _infer_shapes(model):
        out = {}
        try:
            inf = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # noqa: BLE001  shape inference is only an optimization aid
            return out
        for vi in list(inf.graph.value_info):
            s = _static_shape(vi)
            if s is not None:
                out[vi.name] = s
        return out

    def _build_plan(self):
        g = self.graph
        last_use = {}
        for k, n in enumerate(g.nodes):
            for i in n.inputs:
                if i:
                    last_use[i] = k
        keep = set(self.output_names) | set(g.consts)
        self.plan = []
        for k, n in enumerate(g.nodes):
            if n.op_type == "Conv":  # a constant weight is packed once, at the first run (ops.conv)
                n.extra["const_weight"] = len(n.inputs) > 1 and n.inputs[1] in g.consts
            free = [i for i in dict.fromkeys(n.inputs) if i and last_use.get(i) == k and i not in keep]
            free += [o for o in n.outputs if o and o not in last_use and o not in keep]
            self.plan.append((OPS[n.op_type], n, free))

    # -- execution
    def _feeds(self, inputs):
        if isinstance(inputs, dict):
            miss = [n for n in self.input_names if n not in inputs]
            if miss:
                raise ValueError(f"missing inputs {miss}; the model takes {self.input_names}")
            vals = [inputs[n] for n in self.input_names]
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            vals = list(inputs)
            if len(vals) != len(self.input_names):
                raise ValueError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(vals)}")
        env = {}
        for name, v in zip(self.input_names, vals):
            if isinstance(v, (list, tuple)) or v is None:  # sequence / optional inputs
                env[name] = v
                continue
            a = np.asarray(v)
            dt, dims = self.input_specs.get(name, (None, None))
            if dt is not None and a.dtype != dt and a.dtype != object:
                raise TypeError(f"input {name!r}: expected dtype {dt}, got {a.dtype}")
            if self.check_shapes and dims is not None:
                if a.ndim != len(dims) or any(d is not None and d > 0 and d != s for d, s in zip(dims, a.shape)):
                    shown = tuple("?" if d is None else d for d in dims)
                    raise ValueError(f"input {name!r}: expected shape {shown}, got {a.shape}")
            if a.size > MAX_TENSOR_ELEMENTS:
                raise ValueError(f"input {name!r}: absurd size {a.shape}")
            env[name] = a
        return env

    def run(self, inputs, profile=None, hook=None, **kwargs):
        """Run the graph; ``inputs`` is a list (graph input order) or a dict by name.
        ``profile``: a dict receiving seconds per op type; ``hook(node, args, outs)``: called
        after every node (used by ``convkern onnx info`` to count MACs)."""
        g = self.graph
        env = dict(g.consts)
        env.update(self._feeds(inputs))
        with np.errstate(all="ignore"):  # (entered once per run: per node it cost about 1 us)
            for fn, node, free in self.plan:
                args = [env[i] if i else None for i in node.inputs]
                t0 = time.perf_counter() if profile is not None else 0.0
                try:
                    outs = fn(node, args)
                except (NotImplementedError, OnnxRuntimeError):
                    raise
                except (ValueError, TypeError, IndexError) as e:
                    raise OnnxRuntimeError(f"{node.op_type} ({node.name or node.outputs[0]}): {e}") from e
                except MemoryError as e:
                    raise OnnxRuntimeError(f"{node.op_type} ({node.name or node.outputs[0]}): out of memory") from e
                if profile is not None:
                    profile[node.op_type] = profile.get(node.op_type, 0.0) + time.perf_counter() - t0
                if hook is not None:
                    hook(node, args, outs)
                for name, o in zip(node.outputs, outs):
                    if name:
                        env[name] = o
                for f in free:
                    env.pop(f, None)
        res = []
        for name in self.output_names:
            v = env[g.resolve(name)]
            if name in g.consts or g.resolve(name) in g.consts or g.resolve(name) in self.input_names:
                v = np.array(v, copy=True)
            res.append(np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v)
        return _outputs(self.output_names, res)


@functools.lru_cache(maxsize=256)
def _outputs_type(names):
    """The namedtuple class for these output names, made once (making one costs 30-100 us, a
    few per cent of a batch-1 MobileNetV2 run), or None where the names cannot make one."""
    try:
        return namedtuple("Outputs", names, rename=True)
    except Exception:  # noqa: BLE001
        return None


def _outputs(names, values):
    T = _outputs_type(tuple(names))  # (ONNX value names: strings)
    return tuple(values) if T is None else T(*values)


# ----------------------------------------------------------------------------- the Backend class
class Backend(_BaseBackend):
    """convkern as an ONNX backend (CPU)."""

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return cls.supports_device(device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            d = Device(device)
        except Exception:  # noqa: BLE001
            return False
        return d.type == DeviceType.CPU

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        if not cls.supports_device(device):
            raise NotImplementedError(f"convkern.onnx runs on CPU only, not {device!r}")
        kwargs.pop("intra_op_num_threads", None)
        return BackendRep(load_model(model), device, **kwargs)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        if not cls.supports_device(device):
            raise NotImplementedError(f"convkern.onnx runs on CPU only, not {device!r}")
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
            raise UnsupportedOperatorError(f"convkern.onnx does not support operator {node.op_type!r}")
        opset = int(kwargs.get("opset_version") or onnx.defs.onnx_opset_version())
        n = Node.from_proto(node, opset)
        if isinstance(inputs, dict):
            args = [inputs.get(i) if i else None for i in node.input]
        else:
            it = iter(list(inputs))
            args = []
            for i in node.input:
                args.append(next(it, None) if i else None)
        args = [np.asarray(a) if a is not None and not isinstance(a, np.ndarray) else a for a in args]
        with np.errstate(all="ignore"):
            outs = OPS[node.op_type](n, args)
        names = [o for o in node.output if o]
        return _outputs(names, [o for o, name in zip(outs, node.output) if name])


prepare = Backend.prepare
run_model = Backend.run_model
run_node = Backend.run_node
supports_device = Backend.supports_device
is_compatible = Backend.is_compatible
