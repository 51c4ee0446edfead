"""convkern.autograd: the tape, glue ops, DAGs, grad modes and backend switching."""
import numpy as np
import pytest

import convkern.autograd as A
import convkern.functional as F
import convkern.reference as R
from convkern.gradcheck import gradcheck


def _check(fn, *arrays):
    """Gradcheck a function of tensors via the tape (float64)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]

    def f(*xs):
        with A.no_grad():
            return fn(*[A.Tensor(x) for x in xs]).data

    def b(g, *xs):
        ts = [A.Tensor(x, requires_grad=True) for x in xs]
        fn(*ts).backward(g)
        return [t.grad for t in ts]

    assert gradcheck(f, b, arrays)


def test_glue_ops_gradcheck(rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 1))
    _check(lambda x, y: x + y, a, b)
    _check(lambda x, y: x - y * 2.0, a, b)
    _check(lambda x, y: x * y, a, b)
    _check(lambda x, y: x / (y * y + 1.0), a, b)
    _check(lambda x: A.permute(x, (2, 0, 1)).reshape(4, 6), a)
    _check(lambda x: x[:, 1:, ::2], a)
    _check(lambda x: x[..., 0], a)
    _check(lambda x: A.sum(x, 1) + A.mean(x, (0, 1), keepdims=True).reshape(4), a)
    _check(lambda x, y: A.matmul(x, y), rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)))
    _check(lambda x, y: A.cat([x, y, x], 1), rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 1, 2)))
    _check(lambda x, y: A.stack([x, y], 0), rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
    _check(lambda x: A.relu6(x * 4.0), rng.uniform(-3, 3, (3, 5)))
    _check(lambda x: A.pad(x, [(0, 0), (1, 2)], 0.0), a[0])
    _check(lambda x: A.flatten(x, 1), a)


def test_backend_ops_gradcheck(rng):
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    _check(lambda x, w, b: A.conv2d(x, w, b, 2, 1), x, w, b)
    _check(lambda x: A.max_pool2d(A.relu(x), 2), x)
    _check(lambda x, w: A.linear(A.tanh(x), w), rng.standard_normal((5, 3)), rng.standard_normal((2, 3)))
    _check(lambda x: A.log_softmax(x, 1), rng.standard_normal((3, 4)))


def test_dag_shared_and_skip(rng):
    """x used three times (skip connection, concat, reuse): gradients accumulate over all paths."""
    w = rng.standard_normal((3, 3, 3, 3))

    def net(x, w):
        h = A.relu(A.conv2d(x, w, None, 1, 1))
        r = h + x                      # identity shortcut
        c = A.cat([r, x], 1)           # concatenation with the input again
        return A.sum(c * c) + A.sum(A.conv2d(r, w, None, 1, 1))  # shared weight

    _check(net, rng.standard_normal((1, 3, 5, 5)), w)


def test_deep_chain_no_recursion_limit():
    x = A.Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    A.sum(y).backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_no_grad_and_leaves():
    x = A.Tensor(np.ones((2, 2)), requires_grad=True)
    with A.no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf
    z = x * 3.0
    assert z.requires_grad and not z.is_leaf
    A.sum(z).backward()
    A.sum(x * 1.0).backward()  # accumulates
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 4.0))
    with pytest.raises(RuntimeError):
        A.Tensor(np.ones(2)).backward(np.ones(2))
    with pytest.raises(ValueError, match="grad"):
        (x * 1.0).backward()  # non-scalar needs a gradient


def test_dtype_kept_with_python_scalars():
    x = A.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = 2.0 * x + 1.0 - x / 2.0
    assert y.dtype == np.float32
    A.sum(y).backward()
    assert x.grad.dtype == np.float32


def test_backend_switch(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    calls = []

    class Spy:
        DIFFERENTIABLE = R.DIFFERENTIABLE

        def __getattr__(self, name):
            calls.append(name)
            return getattr(R, name)

    xt = A.Tensor(x, requires_grad=True)
    with A.use_backend(Spy()):
        y = A.conv2d(xt, w, None, 1, 1)
    assert A.get_backend() is F
    A.sum(y).backward()  # the backward runs on the forward's backend
    assert set(calls) == {"conv2d", "conv2d_backward"} and calls[-1] == "conv2d_backward"
    np.testing.assert_allclose(xt.grad, F.conv2d_backward(np.ones_like(y.data), x, w, None, 1, 1)[0], rtol=1e-12)


def test_return_indices_tuple(rng):
    x = A.Tensor(rng.standard_normal((1, 1, 4, 4)), requires_grad=True)
    y, idx = A.max_pool2d(x, 2, return_indices=True)
    A.sum(y).backward()
    assert x.grad.sum() == 4 and idx.shape == (1, 1, 2, 2)
