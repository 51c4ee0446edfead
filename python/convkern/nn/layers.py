"""Layers: torch.nn-shaped modules over ``convkern.autograd`` (parameter names as in torch).

Initialisation follows torch's defaults (Conv/Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
weight and bias; norms: weight 1, bias 0), drawn from ``convkern.nn.manual_seed``'s generator.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autograd as A
from ..autograd import Tensor
from .module import Module, Parameter, get_rng, new_array

__all__ = [
    "Identity", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "DepthwiseConv2d", "SeparableConv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "GlobalAvgPool2d", "GlobalMaxPool2d", "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm", "LayerNorm", "Linear",
    "Dropout", "ZeroPad2d", "same_padding", "Flatten", "Permute", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "Sigmoid", "Tanh", "GELU",
    "Softmax", "LogSoftmax", "MultiheadAttention", "Add", "Concat", "CrossEntropyLoss", "MSELoss",
]


def _uniform(bound):
    return lambda rng, shape: rng.uniform(-bound, bound, size=shape)


def _tuple(v, n):
    if isinstance(v, str):
        return v
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    return (int(v),) * n


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


# ----------------------------------------------------------------------------- convolutions

class _ConvNd(Module):
    _nd = 2
    _op = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float32):
        super().__init__()
        n = self._nd
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: {groups} must divide in_channels {in_channels} and out_channels {out_channels}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.padding, self.dilation = _tuple(stride, n), _tuple(padding, n), _tuple(dilation, n)
        fan_in = in_channels // groups * int(np.prod(self.kernel_size))
        init = _uniform(1.0 / math.sqrt(fan_in))
        self.weight = Parameter(new_array((out_channels, in_channels // groups) + self.kernel_size, dtype, init=init))
        if bias:
            self.bias = Parameter(new_array((out_channels,), dtype, init=init))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return A.apply(self._op, x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ("valid", (0,) * self._nd):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    _nd, _op = 1, "conv1d"


class Conv2d(_ConvNd):
    _nd, _op = 2, "conv2d"


class Conv3d(_ConvNd):
    _nd, _op = 3, "conv3d"


class _ConvTransposeNd(Module):
    _nd = 2
    _op = "conv_transpose2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, dtype=np.float32):
        super().__init__()
        n = self._nd
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.padding = _tuple(stride, n), _tuple(padding, n)
        self.output_padding, self.dilation = _tuple(output_padding, n), _tuple(dilation, n)
        # torch: fan_in computed from weight.size(1) * prod(kernel)
        fan_in = out_channels // groups * int(np.prod(self.kernel_size))
        init = _uniform(1.0 / math.sqrt(fan_in))
        self.weight = Parameter(new_array((in_channels, out_channels // groups) + self.kernel_size, dtype, init=init))
        if bias:
            self.bias = Parameter(new_array((out_channels,), dtype, init=init))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return A.apply(self._op, x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                       self.groups, self.dilation)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class ConvTranspose1d(_ConvTransposeNd):
    _nd, _op = 1, "conv_transpose1d"


class ConvTranspose2d(_ConvTransposeNd):
    _nd, _op = 2, "conv_transpose2d"


class ConvTranspose3d(_ConvTransposeNd):
    _nd, _op = 3, "conv_transpose3d"


class DepthwiseConv2d(Module):
    """Each input channel convolved with its own ``depth_multiplier`` filters (Keras DepthwiseConv2D);
    weight (C*multiplier, 1, kh, kw) as torch's Conv2d(C, C*m, k, groups=C)."""

    def __init__(self, in_channels, kernel_size, stride=1, padding=0, dilation=1, depth_multiplier=1, bias=True,
                 dtype=np.float32):
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = self.in_channels * int(depth_multiplier)
        self.groups = self.in_channels
        self.kernel_size = _tuple(kernel_size, 2)
        self.stride, self.padding, self.dilation = _tuple(stride, 2), _tuple(padding, 2), _tuple(dilation, 2)
        init = _uniform(1.0 / math.sqrt(int(np.prod(self.kernel_size))))
        self.weight = Parameter(new_array((self.out_channels, 1) + self.kernel_size, dtype, init=init))
        if bias:
            self.bias = Parameter(new_array((self.out_channels,), dtype, init=init))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        if isinstance(self.padding, str):  # 'same' / 'valid': the generic conv handles the strings
            return A.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return A.depthwise_conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class SeparableConv2d(Module):
    """Depthwise then pointwise 1x1 convolution (Keras SeparableConv2D: one bias, on the pointwise
    part; ``depthwise_bias=True`` gives the two-layer form with a bias on each)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, depth_multiplier=1,
                 bias=True, depthwise_bias=False, dtype=np.float32):
        super().__init__()
        self.depthwise = DepthwiseConv2d(in_channels, kernel_size, stride, padding, dilation, depth_multiplier,
                                         bias=depthwise_bias, dtype=dtype)
        self.pointwise = Conv2d(in_channels * depth_multiplier, out_channels, 1, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


# ----------------------------------------------------------------------------- pooling

class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return A.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, ceil_mode={self.ceil_mode}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return A.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return A.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    def forward(self, x):
        return A.adaptive_max_pool2d(x, self.output_size)


class GlobalAvgPool2d(Module):
    """Mean over H, W: (N, C, H, W) -> (N, C) (Keras GlobalAveragePooling2D); ``keepdims`` gives (N, C, 1, 1)."""

    _op = "global_avg_pool2d"

    def __init__(self, keepdims: bool = False):
        super().__init__()
        self.keepdims = keepdims

    def forward(self, x):
        y = A.apply(self._op, x)
        return y if self.keepdims else A.reshape(y, y.shape[:2])


class GlobalMaxPool2d(GlobalAvgPool2d):
    _op = "global_max_pool2d"


# ----------------------------------------------------------------------------- normalisation

class _BatchNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(new_array((num_features,), dtype, fill=1.0))
            self.bias = Parameter(new_array((num_features,), dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", new_array((num_features,), dtype))
            self.register_buffer("running_var", new_array((num_features,), dtype, fill=1.0))
            self.register_buffer("num_batches_tracked", new_array((), np.int64))
        else:
            self.running_mean = self.running_var = None

    def forward(self, x):
        use_batch = self.training or self.running_mean is None
        if self.training and self.track_running_stats:
            self.num_batches_tracked = self.num_batches_tracked + 1
        momentum = self.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(self.num_batches_tracked) if self.training else 0.0
        rm, rv = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return A.batch_norm(x, rm, rv, self.weight, self.bias, use_batch, momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L)."""


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W)."""


class LocalResponseNorm(Module):
    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return A.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), float(eps)
        if elementwise_affine:
            self.weight = Parameter(new_array(self.normalized_shape, dtype, fill=1.0))
            if bias:
                self.bias = Parameter(new_array(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return A.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


# ----------------------------------------------------------------------------- dense and shape

class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        init = _uniform(1.0 / math.sqrt(in_features))
        self.weight = Parameter(new_array((out_features, in_features), dtype, init=init))
        if bias:
            self.bias = Parameter(new_array((out_features,), dtype, init=init))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return A.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Dropout(Module):
    """Inverted dropout in training mode, identity in eval mode. Each call draws a fresh mask seed
    from the module generator unless ``seed`` is fixed (gradient checks)."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: dropout probability must be in [0, 1], got {p}")
        self.p, self.seed = float(p), seed

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        seed = self.seed if self.seed is not None else int(get_rng().integers(0, 2**62))
        return A.dropout(x, self.p, True, seed)

    def extra_repr(self):
        return f"p={self.p}"


class ZeroPad2d(Module):
    """Pad H and W: ``padding`` an int or (left, right, top, bottom) as torch; ``value`` the fill
    (-inf in front of a max-pool gives TensorFlow's 'same' pooling)."""

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        self.value = value

    def forward(self, x):
        l, r, t, b = self.padding
        return A.pad(x, [(0, 0)] * (x.ndim - 2) + [(t, b), (l, r)], self.value)

    def extra_repr(self):
        return f"{self.padding}"


def same_padding(size, kernel, stride, dilation=1):
    """TensorFlow's 'same' padding of one dimension: (before, after), the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return A.flatten(x, self.start_dim, self.end_dim)


class Permute(Module):
    """Reorder dimensions, e.g. ``Permute(0, 2, 3, 1)``: NCHW -> NHWC."""

    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return A.permute(x, self.dims)

    def extra_repr(self):
        return ", ".join(map(str, self.dims))


# ----------------------------------------------------------------------------- activations

class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return A.relu(x)


class ReLU6(ReLU):
    def forward(self, x):
        return A.relu6(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return A.leaky_relu(x, self.negative_slope)


class PReLU(Module):
    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.weight = Parameter(new_array((num_parameters,), dtype, fill=init))

    def forward(self, x):
        return A.prelu(x, self.weight)


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return A.elu(x, self.alpha)


class Sigmoid(Module):
    def forward(self, x):
        return A.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return A.tanh(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return A.gelu(x, self.approximate)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return A.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return A.log_softmax(x, self.dim)


# ----------------------------------------------------------------------------- attention

class _OutProj(Linear):
    """torch's NonDynamicallyQuantizableLinear: a Linear (named out_proj)."""


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention (same parameters: ``in_proj_weight`` (3E, E), ``in_proj_bias``,
    ``out_proj.weight``/``bias``). ``forward(query, key, value, need_weights=True)`` returns
    (output, attention weights averaged over heads or None). ``batch_first`` as in torch."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, dtype=np.float32):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"num_heads: {num_heads} must divide embed_dim {embed_dim}")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier_uniform on (3E, E)
        self.in_proj_weight = Parameter(new_array((3 * embed_dim, embed_dim), dtype, init=_uniform(bound)))
        if bias:
            self.in_proj_bias = Parameter(new_array((3 * embed_dim,), dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = _OutProj(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if bias:
            self.out_proj.bias = Parameter(new_array((embed_dim,), dtype))

    def forward(self, query, key, value, need_weights=True, attn_mask=None, average_attn_weights=True):
        E, H, D = self.embed_dim, self.num_heads, self.head_dim
        if not self.batch_first:  # (L, N, E) -> (N, L, E)
            query, key, value = (A.transpose(t, 0, 1) for t in (query, key, value))
        W, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            qkv = A.linear(query, W, b)
            q, k, v = qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        else:
            q = A.linear(query, W[:E], None if b is None else b[:E])
            k = A.linear(key, W[E:2 * E], None if b is None else b[E:2 * E])
            v = A.linear(value, W[2 * E:], None if b is None else b[2 * E:])
        N, L, S = q.shape[0], q.shape[1], k.shape[1]
        q = A.permute(A.reshape(q, (N, L, H, D)), (0, 2, 1, 3))
        k = A.permute(A.reshape(k, (N, S, H, D)), (0, 2, 3, 1))
        v = A.permute(A.reshape(v, (N, S, H, D)), (0, 2, 1, 3))
        scores = A.mul(A.matmul(q, k), np.asarray(1.0 / math.sqrt(D), dtype=q.dtype))  # (N, H, L, S)
        if attn_mask is not None:
            m = np.asarray(attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask)
            if m.dtype == bool:
                m = np.where(m, -np.inf, 0.0)
            scores = A.add(scores, m.astype(q.dtype))
        attn = A.softmax(scores, -1)
        if self.training and self.dropout > 0:
            attn = A.dropout(attn, self.dropout, True, int(get_rng().integers(0, 2**62)))
        out = A.reshape(A.permute(A.matmul(attn, v), (0, 2, 1, 3)), (N, L, E))
        out = self.out_proj(out)
        if not self.batch_first:
            out = A.transpose(out, 0, 1)
        weights = None
        if need_weights:
            weights = attn.data.mean(axis=1) if average_attn_weights else attn.data
        return out, weights

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


# ----------------------------------------------------------------------------- merge layers

class Add(Module):
    """Sum of its inputs (Keras ``layers.add``): ``Add()(a, b, ...)``."""

    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = A.add(out, x)
        return out


class Concat(Module):
    """Concatenation along ``dim`` (channels by default)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
            xs = xs[0]
        return A.cat(xs, self.dim)


# ----------------------------------------------------------------------------- losses

class CrossEntropyLoss(Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input, target):
        t = target.data if isinstance(target, Tensor) else np.asarray(target)
        return A.cross_entropy(input, t, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class MSELoss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return A.mse_loss(input, target, self.reduction)
