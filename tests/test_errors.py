"""Bad input never crashes: every operator, fed wrong types, dtypes, ranks, shapes, sizes or
parameters, raises TypeError/ValueError naming the argument at fault.

One valid call per op (VALID) is mutated one argument at a time."""
import numpy as np
import pytest

import convkern.functional as F

f32 = np.float32


def x4(n=2, c=4, h=8, w=8):
    return np.ones((n, c, h, w), f32)


VALID = {
    "conv1d": ((np.ones((2, 4, 9), f32), np.ones((3, 4, 3), f32), np.ones(3, f32)), {}),
    "conv2d": ((x4(), np.ones((6, 4, 3, 3), f32), np.ones(6, f32)), {}),
    "conv3d": ((np.ones((1, 2, 5, 5, 5), f32), np.ones((3, 2, 3, 3, 3), f32), None), {}),
    "conv_transpose2d": ((x4(), np.ones((4, 3, 3, 3), f32), np.ones(3, f32)), {}),
    "depthwise_conv2d": ((x4(), np.ones((8, 1, 3, 3), f32), np.ones(8, f32)), {}),
    "max_pool2d": ((x4(), 2), {}),
    "avg_pool2d": ((x4(), 2), {}),
    "adaptive_avg_pool2d": ((x4(), 3), {}),
    "global_avg_pool2d": ((x4(),), {}),
    "global_max_pool2d": ((x4(),), {}),
    "batch_norm": ((x4(), np.zeros(4, f32), np.ones(4, f32), np.ones(4, f32), np.zeros(4, f32)), {}),
    "local_response_norm": ((x4(), 3), {}),
    "layer_norm": ((x4(), (8,)), {}),
    "linear": ((np.ones((2, 5), f32), np.ones((3, 5), f32), np.ones(3, f32)), {}),
    "relu": ((x4(),), {}),
    "leaky_relu": ((x4(),), {}),
    "relu6": ((x4(),), {}),
    "prelu": ((x4(), np.ones(4, f32)), {}),
    "elu": ((x4(),), {}),
    "sigmoid": ((x4(),), {}),
    "tanh": ((x4(),), {}),
    "gelu": ((x4(),), {}),
    "softmax": ((x4(), 1), {}),
    "log_softmax": ((x4(), 1), {}),
    "dropout": ((x4(),), {"p": 0.5, "seed": 1}),
    "cross_entropy": ((np.ones((3, 5), f32), np.array([0, 4, 2])), {}),
    "mse_loss": ((np.ones((3, 5), f32), np.zeros((3, 5), f32)), {}),
}

# (op, argument index or keyword, bad value, exception, name expected in the message)
MUTATIONS = []
for op in VALID:
    MUTATIONS += [
        (op, 0, [[1.0, 2.0]], TypeError, "input"),
        (op, 0, np.ones((2, 4, 8, 8), np.int64)[..., : VALID[op][0][0].shape[-1]], TypeError, "input"),
        (op, 0, np.ones((2, 4, 8, 8), np.float16)[..., : VALID[op][0][0].shape[-1]], TypeError, "input"),
    ]
MUTATIONS += [
    ("conv2d", 0, np.ones((8,), f32), ValueError, "input"),
    ("conv2d", 1, np.ones((6, 4, 3), f32), ValueError, "weight"),
    ("conv2d", 1, np.ones((6, 5, 3, 3), f32), ValueError, "weight"),
    ("conv2d", 1, np.ones((6, 4, 3, 3), np.float64), TypeError, "weight"),
    ("conv2d", 1, np.ones((6, 4, 30, 3), f32), ValueError, "output"),
    ("conv2d", 2, np.ones(5, f32), ValueError, "bias"),
    ("conv2d", "stride", 0, ValueError, "stride"),
    ("conv2d", "stride", -1, ValueError, "stride"),
    ("conv2d", "stride", 1.5, TypeError, "stride"),
    ("conv2d", "padding", -1, ValueError, "padding"),
    ("conv2d", "padding", "full", ValueError, "padding"),
    ("conv2d", "dilation", 0, ValueError, "dilation"),
    ("conv2d", "groups", 3, ValueError, "groups"),
    ("conv2d", "groups", 0, ValueError, "groups"),
    ("conv2d", "padding", 2**40, ValueError, "output"),
    ("conv2d", "algo", "fft", ValueError, "algo"),
    ("conv1d", 1, np.ones((3, 4, 30), f32), ValueError, "output"),
    ("conv3d", 0, np.ones((1, 2, 5, 5), f32), ValueError, "input"),
    ("conv_transpose2d", "output_padding", 3, ValueError, "output_padding"),
    ("conv_transpose2d", 1, np.ones((5, 3, 3, 3), f32), ValueError, "weight"),
    ("depthwise_conv2d", 1, np.ones((6, 1, 3, 3), f32), ValueError, "weight"),
    ("depthwise_conv2d", 1, np.ones((8, 2, 3, 3), f32), ValueError, "weight"),
    ("max_pool2d", 1, 0, ValueError, "kernel_size"),
    ("max_pool2d", 1, 9, ValueError, "output"),
    ("max_pool2d", "padding", 2, ValueError, "padding"),
    ("max_pool2d", "stride", 0, ValueError, "stride"),
    ("max_pool2d", 0, np.ones((4, 8), f32), ValueError, "input"),
    ("avg_pool2d", 1, -2, ValueError, "kernel_size"),
    ("adaptive_avg_pool2d", 1, 0, ValueError, "output_size"),
    ("batch_norm", 1, np.zeros(3, f32), ValueError, "running_mean"),
    ("batch_norm", 2, np.zeros(5, f32), ValueError, "running_var"),
    ("batch_norm", 3, np.zeros(5, f32), ValueError, "weight"),
    ("batch_norm", 1, np.zeros(4, np.float64), TypeError, "running_mean"),
    ("local_response_norm", 1, 0, ValueError, "size"),
    ("layer_norm", 1, (7,), ValueError, "normalized_shape"),
    ("linear", 1, np.ones((3, 4), f32), ValueError, "weight"),
    ("linear", 2, np.ones(4, f32), ValueError, "bias"),
    ("prelu", 1, np.ones(3, f32), ValueError, "weight"),
    ("softmax", 1, 4, ValueError, "dim"),
    ("log_softmax", 1, -5, ValueError, "dim"),
    ("dropout", "p", 1.5, ValueError, "p"),
    ("dropout", "p", -0.1, ValueError, "p"),
    ("cross_entropy", 1, np.array([0, 5, 2]), ValueError, "target"),
    ("cross_entropy", 1, np.array([0, -3, 2]), ValueError, "target"),
    ("cross_entropy", 1, np.array([0.0, 1.0, 2.0]), TypeError, "target"),
    ("cross_entropy", 1, np.array([0, 1]), ValueError, "target"),
    ("cross_entropy", "reduction", "avg", ValueError, "reduction"),
    ("mse_loss", 1, np.zeros((3, 4), f32), ValueError, "target"),
]


def _call(op, key, value):
    args, kwargs = VALID[op]
    args, kwargs = list(args), dict(kwargs)
    if isinstance(key, int):
        args[key] = value
    else:
        kwargs[key] = value
    return getattr(F, op)(*args, **kwargs)


@pytest.mark.parametrize("op", sorted(VALID))
def test_valid_call_works(op):
    args, kwargs = VALID[op]
    getattr(F, op)(*args, **kwargs)


@pytest.mark.parametrize("op,key,value,exc,name", MUTATIONS,
                         ids=[f"{m[0]}-{m[1]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_bad_input_raises_naming_argument(op, key, value, exc, name):
    with pytest.raises(exc, match=name):
        _call(op, key, value)


@pytest.mark.parametrize("op", sorted(VALID))
def test_backward_rejects_wrong_grad_output_shape(op):
    assert op in F.DIFFERENTIABLE, f"{op} has no backward"
    args, kwargs = VALID[op]
    y = getattr(F, op)(*args, **kwargs)
    y = y[0] if isinstance(y, tuple) else y
    bad = np.ones(np.shape(y) + (2,), f32)
    with pytest.raises(ValueError, match="grad_output"):
        getattr(F, op + "_backward")(bad, *args, **kwargs)
