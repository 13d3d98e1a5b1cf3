"""The numerical-gradient helpers against functions with known derivatives."""
from __future__ import annotations

import numpy as np
import pytest

from cs231n_utils.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


def test_rel_error_known_values() -> None:
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="y"):
        rel_error(np.ones(2), np.ones(3))


def test_scalar_gradient_of_a_cubic() -> None:
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    grad = eval_numerical_gradient(lambda z: np.sum(z**3) + np.sum(z[0] * z[1]), x)
    expected = 3 * x**2 + np.stack([x[1], x[0]])
    assert rel_error(grad, expected) < 1e-8


def test_the_input_is_not_modified() -> None:
    x = np.array([1.0, 2.0, 3.0])
    eval_numerical_gradient(lambda z: float(np.sum(np.sin(z))), x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_array_gradient_is_the_vector_jacobian_product() -> None:
    rng = np.random.default_rng(0)
    W, x, df = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(4)
    grad = eval_numerical_gradient_array(lambda z: np.tanh(W @ z), x, df)
    expected = W.T @ ((1 - np.tanh(W @ x) ** 2) * df)
    assert rel_error(grad, expected) < 1e-8


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="h"):
        eval_numerical_gradient(np.sum, np.ones(2), h=0.0)
    with pytest.raises(ValueError, match="df"):
        eval_numerical_gradient_array(lambda z: z * 2, np.ones(3), np.ones(2))
