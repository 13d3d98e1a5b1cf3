"""Convergence rates on quadratics (cs231n_utils.rates): hand-computed values, the stability
boundaries, and measured rates of the NumPy rules against the predictions."""
from __future__ import annotations

import numpy as np
import pytest

from cs231n_utils import optim, rates
from cs231n_utils.landscapes import Quadratic


def test_gradient_descent_rate_is_the_slowest_factor() -> None:
    # eigenvalues 1 and 9, eta 0.1: factors 0.9 and 0.1
    assert rates.gradient_descent_rate(0.1, [1.0, 9.0]) == pytest.approx(0.9)
    # eta 0.3: factors 0.7 and |1 - 2.7| = 1.7 (diverges)
    assert rates.gradient_descent_rate(0.3, [1.0, 9.0]) == pytest.approx(1.7)


def test_optimal_gradient_descent_for_kappa_9() -> None:
    eta, rate = rates.optimal_gradient_descent(1.0, 9.0)
    assert eta == pytest.approx(0.2) and rate == pytest.approx(0.8)  # 2/10 and 8/10


def test_optimal_heavy_ball_for_kappa_9() -> None:
    eta, rho, rate = rates.optimal_heavy_ball(1.0, 9.0)
    # sqrt(kappa) = 3: rate (3 - 1)/(3 + 1) = 0.5, rho = 0.25, eta = 4 / (3 + 1)^2 = 0.25
    assert (eta, rho, rate) == pytest.approx((0.25, 0.25, 0.5))
    assert rates.heavy_ball_rate(eta, rho, [1.0, 4.0, 9.0]) == pytest.approx(0.5)


def test_heavy_ball_without_momentum_is_gradient_descent() -> None:
    eigenvalues = np.geomspace(1, 50, 6)
    for eta in (0.001, 0.02, 0.039, 0.05):
        assert rates.heavy_ball_rate(eta, 0.0, eigenvalues) == pytest.approx(
            rates.gradient_descent_rate(eta, eigenvalues))


def test_heavy_ball_stability_boundary() -> None:
    # rho 0.5, eta lambda = 2 (1 + rho) = 3: z^2 + 1.5 z + 0.5 = (z + 1)(z + 0.5)
    assert rates.heavy_ball_rate(3.0, 0.5, [1.0]) == pytest.approx(1.0)
    assert rates.heavy_ball_rate(3.1, 0.5, [1.0]) > 1.0
    # complex roots have modulus sqrt(rho) wherever they occur
    assert rates.heavy_ball_rate(1.0, 0.81, [1.0]) == pytest.approx(0.9)


def test_measured_rate_of_gradient_descent_survives_underflow() -> None:
    # both components shrink by exactly 0.8 in size; 0.8^5000 underflows without the rescaling
    rate = rates.measured_rate(optim.sgd, {"learning_rate": 0.2}, Quadratic([1.0, 9.0]), [1.0, -2.0], 5000)
    assert rate == pytest.approx(0.8, rel=1e-9)


def test_measured_rate_of_polyak_momentum_has_the_critical_damping_excess() -> None:
    eta, rho, predicted = rates.optimal_heavy_ball(1.0, 9.0)
    steps = 4000
    rate = rates.measured_rate(optim.sgd_momentum, {"learning_rate": eta, "momentum": rho},
                               Quadratic([1.0, 9.0]), [1.0, 1.0], steps)
    # error (a + b t) r^t: over the second half the factor t adds at most 2^(2/T)
    assert predicted < rate <= predicted * 2 ** (2 / steps) * (1 + 1e-9)


def test_measured_rate_reports_divergence() -> None:
    assert rates.measured_rate(optim.sgd, {"learning_rate": 0.3}, Quadratic([1.0, 9.0]), [1.0, 1.0], 3000) == np.inf


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rates.gradient_descent_rate(0.1, [1.0, -1.0]), "eigenvalues"),
        (lambda: rates.gradient_descent_rate(-0.1, [1.0]), "eta"),
        (lambda: rates.heavy_ball_rate(0.1, 1.0, [1.0]), "rho"),
        (lambda: rates.optimal_heavy_ball(2.0, 1.0), "L must be >= mu"),
        (lambda: rates.measured_rate(optim.adam, {}, Quadratic([1.0]), [1.0], 10), "rule"),
        (lambda: rates.measured_rate(optim.sgd, {"learning_rate": 0.1}, Quadratic([1.0]), [1.0], 1), "steps"),
        (lambda: rates.measured_rate(optim.sgd, {"learning_rate": 0.1}, Quadratic([1.0]), [0.0], 10), "start"),
    ],
)
def test_bad_arguments_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
