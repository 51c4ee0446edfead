"""A small reverse-mode automatic differentiation over NumPy arrays.

``Tensor`` wraps an ndarray (``.data``), its gradient (``.grad``, an ndarray or None) and
``requires_grad``. Every operation on tensors records, on the result, the tensors it read
and a closure computing their gradients; ``loss.backward()`` walks that graph in reverse
topological order, so any DAG (residual adds, concatenations, shared layers, U-Net skips)
back-propagates with no per-model code.

The operators themselves are the stateless ``op`` / ``op_backward`` pairs of an op
*backend*: ``convkern.functional`` (native kernels, the default) or ``convkern.reference``
(plain NumPy), switched with ``use_backend``. The backward closure remembers the backend
of its forward. A few glue operations (add, mul, matmul, reshape, concat, indexing, ...)
are written here in NumPy.

    import convkern.autograd as A
    x = A.Tensor(np.random.rand(2, 3, 8, 8), requires_grad=True)
    y = A.relu(A.conv2d(x, w, b, padding=1)).sum()
    y.backward()              # x.grad, w.grad, b.grad
"""
from __future__ import annotations

import contextlib
import inspect
import threading

import numpy as np

from . import _C

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "use_backend", "get_backend",
    "set_backend", "apply", "add", "sub", "mul", "div", "matmul", "cat", "stack", "reshape", "flatten",
    "permute", "transpose", "getitem", "sum", "mean", "clip", "pad",
]


# ----------------------------------------------------------------------------- global state

class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.backend = None


_state = _State()


def get_backend():
    """The op module ops run on (default ``convkern.functional``)."""
    if _state.backend is None:
        from . import functional

        _state.backend = functional
    return _state.backend


def set_backend(module):
    """Make ``module`` (``convkern.functional``, ``convkern.reference`` or any module with the same
    ``op`` / ``op_backward`` / ``DIFFERENTIABLE``) the op backend; returns the previous one."""
    prev = get_backend()
    _state.backend = module
    return prev


@contextlib.contextmanager
def use_backend(module):
    """Run the ops inside the block on ``module``: ``with use_backend(convkern.reference): ...``."""
    prev = set_backend(module)
    try:
        yield module
    finally:
        _state.backend = prev


def is_grad_enabled() -> bool:
    return _state.grad_enabled


@contextlib.contextmanager
def no_grad():
    """Record no graph inside the block (inference)."""
    prev = _state.grad_enabled
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = _state.grad_enabled
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = prev


# ----------------------------------------------------------------------------- Tensor

def _as_array(x, dtype=None):
    if isinstance(x, Tensor):
        return x.data
    a = np.asarray(x)
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    return a


class Tensor:
    """An ndarray with a gradient and the record of how it was computed."""

    __array_priority__ = 1000  # ndarray (op) Tensor -> Tensor's reflected operator

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        a = data.data if isinstance(data, Tensor) else np.asarray(data)
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        elif a.dtype.kind in "iub" and requires_grad:
            a = a.astype(np.float32)
        self.data = a
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()   # tensors this one was computed from
        self._backward = None  # grad_output -> tuple of gradients, one per parent (None allowed)
        self._op = None

    # -- array-like attributes
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self):
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        self.requires_grad = bool(flag)
        return self

    def __repr__(self):
        extra = f", grad_fn={self._op}" if self._op else (", requires_grad=True" if self.requires_grad else "")
        return f"Tensor({np.array2string(self.data, threshold=20, precision=4)}, dtype={self.dtype}{extra})"

    # -- backward
    def backward(self, grad=None, retain_graph: bool = False):
        """Accumulate d(self)/d(leaf) * grad into ``.grad`` of every leaf that requires a gradient.
        ``grad`` defaults to 1 for a single-element tensor."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require a gradient (no graph was recorded)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError("grad: backward of a non-scalar tensor needs an explicit gradient")
            grad = np.ones_like(self.data)
        grad = np.asarray(_as_array(grad), dtype=self.data.dtype)
        if grad.shape != self.data.shape:
            raise ValueError(f"grad: shape {grad.shape} differs from the tensor's {self.data.shape}")
        # iterative depth-first topological order (deep nets would overflow recursion)
        order, seen = [], {id(self)}
        stack = [(self, iter(self._parents))]
        while stack:
            node, it = stack[-1]
            for p in it:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, iter(p._parents)))
                    break
            else:
                stack.pop()
                order.append(node)
        grads = {id(self): grad}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # leaf
                g = np.asarray(g, dtype=node.data.dtype)
                if g.shape != node.data.shape:
                    g = np.broadcast_to(g, node.data.shape)
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            pgrads = node._backward(g)
            for p, pg in zip(node._parents, pgrads):
                if pg is None or not p.requires_grad:
                    continue
                k = id(p)
                grads[k] = pg if k not in grads else grads[k] + pg
            if not retain_graph:
                node._backward, node._parents = _freed, ()
        return None

    # -- operators
    def __add__(self, o):
        return add(self, o)

    def __radd__(self, o):
        return add(o, self)

    def __sub__(self, o):
        return sub(self, o)

    def __rsub__(self, o):
        return sub(o, self)

    def __mul__(self, o):
        return mul(self, o)

    def __rmul__(self, o):
        return mul(o, self)

    def __truediv__(self, o):
        return div(self, o)

    def __rtruediv__(self, o):
        return div(o, self)

    def __neg__(self):
        return mul(self, -1.0)

    def __matmul__(self, o):
        return matmul(self, o)

    def __rmatmul__(self, o):
        return matmul(o, self)

    def __getitem__(self, idx):
        return getitem(self, idx)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return flatten(self, start_dim, end_dim)

    def permute(self, *axes):
        return permute(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)

    def transpose(self, a, b):
        return transpose(self, a, b)

    def sum(self, axis=None, keepdims=False):
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def __hash__(self):
        return id(self)


def _freed(g):  # pragma: no cover - only reached by a second backward through a freed graph
    raise RuntimeError("backward: the graph was freed by a previous backward (use retain_graph=True)")


def tensor(data, requires_grad=False, dtype=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _result(data, parents, backward, op) -> Tensor:
    """A new tensor; records the graph only when grad mode is on and a parent needs a gradient."""
    out = Tensor(data)
    if _state.grad_enabled:
        parents = tuple(parents)
        if any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = parents
            out._backward = backward
            out._op = op
    return out


def _t(x, like=None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if like is not None and a.dtype != like.dtype and a.dtype.kind in "iufb" and like.dtype.kind == "f":
        a = a.astype(like.dtype)
    return Tensor(a)


def _pair(a, b):
    """Two tensors; a non-tensor operand takes the other's float dtype (NumPy 2 would promote
    float32 with a float64 0-d array)."""
    if not isinstance(a, Tensor):
        a = _t(a, b.data if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = _t(b, a.data)
    return a, b


def _unbroadcast(g, shape):
    """Sum a broadcast gradient back to ``shape``."""
    if g.shape == tuple(shape):
        return g
    nd = g.ndim - len(shape)
    if nd > 0:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


# ----------------------------------------------------------------------------- backend ops

_SIG_CACHE: dict = {}


def _param_names(backend, name):
    key = (id(backend), name)
    names = _SIG_CACHE.get(key)
    if names is None:
        names = list(inspect.signature(getattr(backend, name)).parameters)
        _SIG_CACHE[key] = names
    return names


def apply(op: str, *args, **kwargs):
    """Run backend op ``op`` on tensors/arrays and record its backward.

    Tensor arguments are unwrapped; gradients flow to those named in the backend's
    ``DIFFERENTIABLE[op]``. Returns a Tensor (a tuple when the op returns one, e.g.
    ``max_pool2d(..., return_indices=True)``: gradient flows through the first element only)."""
    B = get_backend()
    fwd = getattr(B, op)
    arrays = [a.data if isinstance(a, Tensor) else a for a in args]
    kw = {k: (v.data if isinstance(v, Tensor) else v) for k, v in kwargs.items()}
    out = fwd(*arrays, **kw)
    extra = None
    if isinstance(out, tuple):
        out, extra = out[0], out[1:]
    diff = B.DIFFERENTIABLE.get(op, ())
    parents, slots = [], []
    if _state.grad_enabled and diff:
        names = _param_names(B, op)
        for j, name in enumerate(diff):
            pos = names.index(name)
            t = args[pos] if pos < len(args) else kwargs.get(name)
            if isinstance(t, Tensor) and t.requires_grad:
                parents.append(t)
                slots.append(j)

    def backward(g):
        grads = getattr(B, op + "_backward")(g, *arrays, **kw)
        return tuple(grads[j] for j in slots)

    res = _result(out, parents, backward, op)
    if extra is not None:
        return (res,) + tuple(extra)
    return res


def _make_op(name):
    def f(*args, **kwargs):
        return apply(name, *args, **kwargs)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = f"Tensor version of the backend op ``{name}`` (see ``convkern.functional.{name}``)."
    return f


_BACKEND_OPS = (
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "depthwise_conv2d",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "global_avg_pool2d",
    "global_max_pool2d", "batch_norm", "local_response_norm", "layer_norm", "linear", "relu", "relu6",
    "leaky_relu", "prelu", "elu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax", "dropout", "cross_entropy",
    "mse_loss",
)
for _name in _BACKEND_OPS:
    globals()[_name] = _make_op(_name)
__all__ += list(_BACKEND_OPS)


# ----------------------------------------------------------------------------- NumPy glue ops

def add(a, b) -> Tensor:
    """a + b with NumPy broadcasting (residual connections)."""
    a, b = _pair(a, b)
    sa, sb = a.shape, b.shape
    return _result(a.data + b.data, (a, b), lambda g: (_unbroadcast(g, sa), _unbroadcast(g, sb)), "add")


def sub(a, b) -> Tensor:
    a, b = _pair(a, b)
    sa, sb = a.shape, b.shape
    return _result(a.data - b.data, (a, b), lambda g: (_unbroadcast(g, sa), _unbroadcast(-g, sb)), "sub")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)
    ad, bd = a.data, b.data
    out = ad * bd
    if out.dtype != ad.dtype and ad.dtype.kind == "f" and np.ndim(bd) == 0:
        out = out.astype(ad.dtype)
    return _result(out, (a, b), lambda g: (_unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
                                           _unbroadcast(g * ad, np.shape(bd)) if b.requires_grad else None), "mul")


def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    ad, bd = a.data, b.data
    out = ad / bd
    if out.dtype != ad.dtype and ad.dtype.kind == "f" and np.ndim(bd) == 0:
        out = out.astype(ad.dtype)
    return _result(out, (a, b), lambda g: (_unbroadcast(g / bd, ad.shape) if a.requires_grad else None,
                                           _unbroadcast(-g * ad / (bd * bd), np.shape(bd)) if b.requires_grad
                                           else None), "div")


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with NumPy's broadcasting, float32/float64 matrices through convkern's GEMM (its
    threads, no BLAS thread pool of NumPy's competing for the cores); else NumPy."""
    if (a.ndim < 2 or b.ndim < 2 or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or a.shape[-1] != b.shape[-2] or getattr(get_backend(), "__name__", "") == "convkern.reference"):
        return a @ b  # the reference backend stays pure NumPy
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    nb = int(np.prod(lead, dtype=np.int64))
    A = np.ascontiguousarray(np.broadcast_to(a, lead + (M, K))).reshape(nb, M, K)
    B = np.ascontiguousarray(np.broadcast_to(b, lead + (K, N))).reshape(nb, K, N)
    out = np.empty((nb, M, N), a.dtype)
    if K == 0:
        out[...] = 0
    elif out.size:
        for i in range(A.shape[0]):
            _C.gemm(A[i], B[i], out[i])
    return out.reshape(lead + (M, N))


def matmul(a, b) -> Tensor:
    """Batched matrix product (attention scores and mixing)."""
    a, b = _pair(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        ga = _unbroadcast(_bmm(g, np.swapaxes(bd, -1, -2)), ad.shape) if a.requires_grad else None
        gb = _unbroadcast(_bmm(np.swapaxes(ad, -1, -2), g), bd.shape) if b.requires_grad else None
        return ga, gb

    if getattr(get_backend(), "SHAPE_ONLY", False):  # convkern.summary's shape pass: skip the arithmetic
        lead = np.broadcast_shapes(ad.shape[:-2], bd.shape[:-2])
        out = np.zeros(lead + (ad.shape[-2], bd.shape[-1]), np.result_type(ad, bd))
    else:
        out = _bmm(ad, bd)
    return _result(out, (a, b), backward, "matmul")


def cat(tensors, axis: int = 1) -> Tensor:
    """Concatenate along ``axis`` (channels by default: Inception, DenseNet, U-Net)."""
    ts = [_t(x) for x in tensors]
    if not ts:
        raise ValueError("tensors: nothing to concatenate")
    axis = axis % ts[0].ndim
    sizes = np.cumsum([t.shape[axis] for t in ts])[:-1]
    return _result(np.concatenate([t.data for t in ts], axis=axis), ts,
                   lambda g: tuple(np.split(g, sizes, axis=axis)), "cat")


concat = cat


def stack(tensors, axis: int = 0) -> Tensor:
    ts = [_t(x) for x in tensors]
    return _result(np.stack([t.data for t in ts], axis=axis), ts,
                   lambda g: tuple(np.moveaxis(g, axis, 0)), "stack")


def reshape(x, shape) -> Tensor:
    x = _t(x)
    s = x.shape
    return _result(x.data.reshape(shape), (x,), lambda g: (g.reshape(s),), "reshape")


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    x = _t(x)
    nd = x.ndim
    s, e = start_dim % nd, end_dim % nd
    shape = x.shape[:s] + (int(np.prod(x.shape[s:e + 1], dtype=np.int64)),) + x.shape[e + 1:]
    return reshape(x, shape)


def permute(x, axes) -> Tensor:
    x = _t(x)
    axes = tuple(int(a) % x.ndim for a in axes)
    inv = tuple(np.argsort(axes))
    return _result(np.ascontiguousarray(x.data.transpose(axes)), (x,),
                   lambda g: (np.ascontiguousarray(g.transpose(inv)),), "permute")


def transpose(x, a: int, b: int) -> Tensor:
    x = _t(x)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, axes)


def getitem(x, idx) -> Tensor:
    x = _t(x)
    shape, dtype = x.shape, x.dtype

    def backward(g):
        gx = np.zeros(shape, dtype)
        np.add.at(gx, idx, g) if _fancy(idx) else gx.__setitem__(idx, g)
        return (gx,)

    return _result(np.ascontiguousarray(x.data[idx]), (x,), backward, "getitem")


def _fancy(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(isinstance(i, (list, np.ndarray, Tensor)) for i in items)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - torch/NumPy name
    x = _t(x)
    shape = x.shape

    def backward(g):
        if axis is not None and not keepdims:
            g = np.expand_dims(g, axis)
        elif axis is None and not keepdims:
            g = np.reshape(g, (1,) * len(shape))
        return (np.broadcast_to(g, shape).astype(x.dtype, copy=True),)

    return _result(np.asarray(x.data.sum(axis=axis, keepdims=keepdims)), (x,), backward, "sum")


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    x = _t(x)
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    return mul(sum(x, axis, keepdims), np.asarray(1.0 / n, dtype=x.dtype))


def clip(x, lo=None, hi=None) -> Tensor:
    """min(max(x, lo), hi); the gradient passes where lo < x < hi (and at the bounds' inside)."""
    x = _t(x)
    d = x.data
    mask = np.ones(d.shape, dtype=bool)
    if lo is not None:
        mask &= d > lo
    if hi is not None:
        mask &= d < hi
    return _result(np.clip(d, lo, hi).astype(d.dtype, copy=False), (x,), lambda g: (g * mask,), "clip")


def pad(x, pad_width, value: float = 0.0) -> Tensor:
    """Constant padding, ``pad_width`` as for np.pad (U-Net's crop/pad)."""
    x = _t(x)
    pw = [tuple(p) for p in pad_width]
    sl = tuple(slice(lo, lo + s) for (lo, _), s in zip(pw, x.shape))
    return _result(np.pad(x.data, pw, constant_values=value), (x,), lambda g: (np.ascontiguousarray(g[sl]),), "pad")
