"""Numerical gradients by centred differences, and the relative error used to compare them."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .validation import as_float_array, check_positive, check_same_shape

__all__ = ["rel_error", "eval_numerical_gradient", "eval_numerical_gradient_array"]


def rel_error(x: Any, y: Any) -> float:
    """Largest elementwise relative error :math:`\\max_i |x_i - y_i| / \\max(10^{-8}, |x_i| + |y_i|)`."""
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    check_same_shape(x, "x", y, "y")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: Any, h: float = 1e-5) -> np.ndarray:
    """Gradient of a scalar function by centred differences.

    .. math:: \\frac{\\partial f}{\\partial x_i} \\approx \\frac{f(x + h e_i) - f(x - h e_i)}{2h}

    ``x`` is perturbed one entry at a time and restored afterwards (a float copy is used, so the
    caller's array is never changed). Costs ``2 * x.size`` evaluations of ``f``.
    """
    return eval_numerical_gradient_array(lambda z: np.asarray(f(z), dtype=float), x, np.ones(()), h)


def eval_numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: Any, df: Any, h: float = 1e-5
) -> np.ndarray:
    """Gradient of :math:`\\sum_j df_j\\, f(x)_j` for an array-valued ``f``: the vector-Jacobian product
    :math:`J_f(x)^T df` that a layer's backward pass must return for upstream gradient ``df``.

    .. math:: (J^T df)_i \\approx \\sum_j df_j\\, \\frac{f(x + h e_i)_j - f(x - h e_i)_j}{2h}
    """
    h = check_positive(h, "h")
    x = np.array(as_float_array(x, "x"), dtype=np.float64)
    df = as_float_array(df, "df")
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        plus = np.array(f(x), dtype=np.float64)
        flat_x[i] = original - h
        minus = np.array(f(x), dtype=np.float64)
        flat_x[i] = original
        if plus.shape != df.shape:
            raise ValueError(f"df has shape {df.shape}, but f(x) has shape {plus.shape}")
        flat_grad[i] = np.sum((plus - minus) * df) / (2 * h)
    return grad
