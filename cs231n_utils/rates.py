"""Convergence rates of gradient descent and heavy-ball momentum on a quadratic: the predictions
of the eigen-decomposition, and a measurement from runs of the NumPy update rules.

On :math:`f(w) = \\tfrac12 (w - w^*)^T A (w - w^*)` with eigenvalues :math:`\\lambda_i` of ``A``,
gradient descent multiplies the error's :math:`i`-th eigen-coordinate by :math:`1 - \\eta\\lambda_i`
per step, so its rate is

.. math:: r_{GD}(\\eta) = \\max_i |1 - \\eta \\lambda_i| .

Heavy-ball momentum (CS231n's ``sgd_momentum``: :math:`v \\leftarrow \\rho v - \\eta \\nabla f`,
:math:`w \\leftarrow w + v`) follows :math:`x_{t+1} = (1 + \\rho - \\eta\\lambda) x_t - \\rho x_{t-1}`
in each eigen-coordinate; its rate is the largest modulus of a root of

.. math:: z^2 - (1 + \\rho - \\eta\\lambda_i)\\, z + \\rho = 0

over all :math:`i`. The best choices and their rates, with :math:`\\mu = \\lambda_{min}`,
:math:`L = \\lambda_{max}` and :math:`\\kappa = L/\\mu`, are

.. math::
    \\eta^* = \\frac{2}{\\mu + L},\\ r = \\frac{\\kappa - 1}{\\kappa + 1}
    \\quad\\text{and}\\quad
    \\eta^* = \\frac{4}{(\\sqrt L + \\sqrt\\mu)^2},\\ \\rho^* = \\Bigl(\\frac{\\sqrt\\kappa - 1}{\\sqrt\\kappa + 1}\\Bigr)^2,
    \\ r = \\frac{\\sqrt\\kappa - 1}{\\sqrt\\kappa + 1}

(Polyak, 1964).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import optim
from .landscapes import Quadratic
from .validation import check_positive

__all__ = [
    "gradient_descent_rate",
    "heavy_ball_rate",
    "optimal_gradient_descent",
    "optimal_heavy_ball",
    "measured_rate",
]

_LINEAR_RULES = {optim.sgd: (), optim.sgd_momentum: ("velocity",), optim.nesterov_momentum: ("velocity",)}
_RESCALE_BELOW = 1e-150  # errors this small are scaled back up: the dynamics are linear


def _eigenvalues(eigenvalues: Any) -> np.ndarray:
    values = np.atleast_1d(np.asarray(eigenvalues, dtype=float))
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"eigenvalues must be a non-empty 1-D array of positive numbers, got {eigenvalues!r}")
    return values


def _momentum(rho: Any) -> float:
    rho = float(rho)
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho!r}")
    return rho


def gradient_descent_rate(eta: float, eigenvalues: Any) -> float:
    """:math:`\\max_i |1 - \\eta\\lambda_i|`: the factor by which gradient descent shrinks the
    slowest eigen-component of the error each step (> 1: it diverges)."""
    eta = check_positive(eta, "eta")
    return float(np.max(np.abs(1.0 - eta * _eigenvalues(eigenvalues))))


def heavy_ball_rate(eta: float, rho: float, eigenvalues: Any) -> float:
    """The largest root modulus of :math:`z^2 - (1 + \\rho - \\eta\\lambda_i) z + \\rho` over the
    eigenvalues: heavy-ball momentum's asymptotic rate (> 1: it diverges)."""
    eta = check_positive(eta, "eta")
    rho = _momentum(rho)
    trace = 1.0 + rho - eta * _eigenvalues(eigenvalues)
    discriminant = (trace**2 - 4.0 * rho).astype(complex)
    roots = np.stack([(trace + np.sqrt(discriminant)) / 2, (trace - np.sqrt(discriminant)) / 2])
    return float(np.max(np.abs(roots)))


def optimal_gradient_descent(mu: float, L: float) -> tuple[float, float]:
    """``(eta, rate)`` of gradient descent at its best step size :math:`2/(\\mu + L)`, where
    :math:`1 - \\eta\\mu = -(1 - \\eta L)`; the rate is :math:`(\\kappa - 1)/(\\kappa + 1)`."""
    mu, L = _extremes(mu, L)
    kappa = L / mu
    return 2.0 / (mu + L), (kappa - 1.0) / (kappa + 1.0)


def optimal_heavy_ball(mu: float, L: float) -> tuple[float, float, float]:
    """``(eta, rho, rate)`` of heavy-ball momentum at Polyak's best step size and momentum:
    :math:`\\eta\\mu = (1 - \\sqrt\\rho)^2` and :math:`\\eta L = (1 + \\sqrt\\rho)^2`, so that every
    eigen-component is critically or under-damped with modulus :math:`\\sqrt\\rho`."""
    mu, L = _extremes(mu, L)
    root_kappa = np.sqrt(L / mu)
    rate = (root_kappa - 1.0) / (root_kappa + 1.0)
    return 4.0 / (np.sqrt(L) + np.sqrt(mu)) ** 2, rate**2, rate


def measured_rate(rule: Any, config: dict[str, Any], landscape: Quadratic, start: Any, steps: int) -> float:
    """The rate a run of ``rule`` (``optim.sgd``, ``sgd_momentum`` or ``nesterov_momentum``)
    achieves on ``landscape``: :math:`(\\|e_T\\| / \\|e_{T/2}\\|)^{2/T}` for the error
    :math:`e_t = w_t - w^*` after ``steps`` :math:`= T` steps from ``start``.

    The second half of the run is used so that the slowest eigen-component dominates. These
    rules are linear in the error and the velocity, so whenever the error falls below 1e-150
    both are scaled up by the same factor (and the factor is remembered): long runs do not
    underflow.
    """
    if rule not in _LINEAR_RULES:
        raise ValueError("rule must be optim.sgd, optim.sgd_momentum or optim.nesterov_momentum")
    if not isinstance(landscape, Quadratic):
        raise ValueError(f"landscape must be a Quadratic, got {type(landscape).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    error = np.array(start, dtype=float) - landscape.minimum
    if error.shape != (landscape.dim,) or not np.linalg.norm(error) > 0:
        raise ValueError(f"start must be a point of shape ({landscape.dim},) other than the minimum")
    config = dict(config)
    log_scale, log_norms = 0.0, {}
    for t in range(1, steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is a result
            error, config = rule(error, landscape.grad(error + landscape.minimum), config)
            norm = np.linalg.norm(error)
        if not np.isfinite(norm):
            return float("inf")
        if 0 < norm < _RESCALE_BELOW:
            error = error / _RESCALE_BELOW
            for key in _LINEAR_RULES[rule]:
                config[key] = config[key] / _RESCALE_BELOW
            log_scale += np.log(_RESCALE_BELOW)
            norm /= _RESCALE_BELOW
        if t in (steps // 2, steps):
            log_norms[t] = np.log(norm) + log_scale
    return float(np.exp((log_norms[steps] - log_norms[steps // 2]) / (steps - steps // 2)))


def _extremes(mu: float, L: float) -> tuple[float, float]:
    mu, L = check_positive(mu, "mu"), check_positive(L, "L")
    if L < mu:
        raise ValueError(f"L must be >= mu, got L={L!r} < mu={mu!r}")
    return mu, L
