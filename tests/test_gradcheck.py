import numpy as np
import pytest

from convkern.gradcheck import GradcheckError, gradcheck


def test_gradcheck_accepts_correct_backward():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert gradcheck(lambda a: np.sin(a) * a, lambda g, a: [g * (np.cos(a) * a + np.sin(a))], [x])


def test_gradcheck_rejects_wrong_backward():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a: a ** 3, lambda g, a: [g * 2 * a ** 2], [x])
    assert not gradcheck(lambda a: a ** 3, lambda g, a: [g * 2 * a ** 2], [x], raise_exception=False)


def test_gradcheck_two_inputs_and_passthrough():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    assert gradcheck(lambda a, b, s: s * (a @ b), lambda g, a, b, s: [s * g @ b.T, s * a.T @ g], [a, b, 2.0])
