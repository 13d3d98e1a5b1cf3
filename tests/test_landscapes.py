"""Landscapes' analytic derivatives against numerical ones, and the trajectory recorder."""
from __future__ import annotations

import numpy as np
import pytest

from cs231n_utils import landscapes, optim
from cs231n_utils.gradcheck import eval_numerical_gradient, rel_error

LANDSCAPES = {
    "quadratic-diag": landscapes.ill_conditioned_quadratic(50.0, dim=5),
    "quadratic-rotated": landscapes.ill_conditioned_quadratic(10.0, angle=0.4),
    "quadratic-centered": landscapes.Quadratic(np.array([[2.0, 0.5], [0.5, 1.0]]), center=[1.0, -2.0]),
    "rosenbrock-2d": landscapes.Rosenbrock(),
    "rosenbrock-shifted": landscapes.Rosenbrock(a=0.5, b=10.0),
    "rosenbrock-5d": landscapes.Rosenbrock(b=10.0, dim=5),
    "beale": landscapes.Beale(),
    "saddle": landscapes.Saddle(),
}


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
@pytest.mark.parametrize("seed", range(3))
def test_gradient_and_hessian_pass_gradient_checks(name: str, seed: int) -> None:
    f = LANDSCAPES[name]
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, size=f.dim)
    numerical_grad = eval_numerical_gradient(f.value, x)
    assert rel_error(f.grad(x), numerical_grad) < 1e-6
    numerical_hessian = np.stack([eval_numerical_gradient(lambda z, i=i: f.grad(z)[i], x) for i in range(f.dim)])
    assert rel_error(f.hessian(x), numerical_hessian) < 1e-5
    np.testing.assert_allclose(f.hessian(x), f.hessian(x).T)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_the_stated_minimum_is_a_stationary_point_with_the_lowest_value_nearby(name: str) -> None:
    f = LANDSCAPES[name]
    np.testing.assert_allclose(f.grad(f.minimum), 0.0, atol=1e-12)
    nearby = f.minimum + np.random.default_rng(0).normal(scale=1e-2, size=(100, f.dim))
    assert np.all(f.value(nearby) >= f.value(f.minimum))
    assert np.all(np.linalg.eigvalsh(f.hessian(f.minimum)) > 0)


def test_value_is_vectorised_over_leading_axes() -> None:
    for f in LANDSCAPES.values():
        points = np.random.default_rng(1).normal(size=(4, 3, f.dim))
        batched = f.value(points)
        assert batched.shape == (4, 3)
        np.testing.assert_allclose(batched[2, 1], f.value(points[2, 1]))
        np.testing.assert_allclose(f.grad(points)[2, 1], f.grad(points[2, 1]))


def test_known_values() -> None:
    # Closed forms from the definitions, computed by hand.
    assert landscapes.Rosenbrock()(np.array([-1.2, 1.0]))[0] == pytest.approx(24.2)
    assert landscapes.Beale()(np.array([0.0, 0.0]))[0] == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)
    assert landscapes.Saddle()(np.array([0.0, 1.0]))[0] == pytest.approx(-0.25)
    quadratic = landscapes.ill_conditioned_quadratic(100.0, dim=3)
    np.testing.assert_allclose(quadratic.eigenvalues, [1.0, 10.0, 100.0])
    assert quadratic.condition_number == pytest.approx(100.0)
    rotated = landscapes.ill_conditioned_quadratic(9.0, angle=0.7)
    np.testing.assert_allclose(rotated.eigenvalues, [1.0, 9.0])
    assert abs(rotated.A[0, 1]) > 0.1, "a rotated valley has off-diagonal curvature"


def test_diagonal_quadratic_scales_to_a_million_dimensions() -> None:
    f = landscapes.Quadratic(np.linspace(1.0, 10.0, 1_000_000))
    loss, grad = f(np.ones(1_000_000))
    assert loss == pytest.approx(0.5 * 5.5 * 1_000_000)
    assert grad.shape == (1_000_000,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: landscapes.ill_conditioned_quadratic(0.5), "condition_number"),
        (lambda: landscapes.ill_conditioned_quadratic(10.0, dim=0), "dim"),
        (lambda: landscapes.ill_conditioned_quadratic(10.0, dim=3, angle=0.1), "angle"),
        (lambda: landscapes.Quadratic(np.array([[1.0, 2.0], [0.0, 1.0]])), "symmetric"),
        (lambda: landscapes.Quadratic(np.ones(2), center=np.ones(3)), "center"),
        (lambda: landscapes.Rosenbrock(dim=1), "dim"),
        (lambda: landscapes.Rosenbrock(a=2.0, dim=3), "a must be 1"),
        (lambda: landscapes.Beale()(np.ones(3)), "x"),
    ],
)
def test_bad_arguments_raise(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_run_trajectory_records_every_step_and_matches_manual_loop() -> None:
    f = landscapes.Rosenbrock()
    trajectory = landscapes.run_trajectory(optim.adam, f, [-1.2, 1.0], 25, {"learning_rate": 0.05})
    assert trajectory.path.shape == (26, 2) and trajectory.losses.shape == (26,) and trajectory.steps == 25
    w, config = np.array([-1.2, 1.0]), {"learning_rate": 0.05}
    for _ in range(25):
        w, config = optim.adam(w, f.grad(w), config)
    np.testing.assert_allclose(trajectory.path[-1], w)
    np.testing.assert_allclose(trajectory.losses, f.value(trajectory.path))
    assert trajectory.config["t"] == 25


def test_run_trajectory_converges_on_a_quadratic_and_detects_divergence() -> None:
    f = landscapes.ill_conditioned_quadratic(10.0)
    good = landscapes.run_trajectory(optim.sgd, f, [1.0, 1.0], 300, {"learning_rate": 0.15})
    assert good.losses[-1] < 1e-10 and not good.diverged
    bad = landscapes.run_trajectory(optim.sgd, f, [1.0, 1.0], 5000, {"learning_rate": 0.25})
    assert bad.diverged and bad.steps < 5000
    assert np.isfinite(bad.path).all()


def test_gradient_noise_is_seeded() -> None:
    f = landscapes.Saddle()
    run = lambda seed: landscapes.run_trajectory(optim.sgd, f, [1.0, 0.0], 50, grad_noise=0.1, seed=seed)
    np.testing.assert_array_equal(run(3).path, run(3).path)
    assert not np.array_equal(run(3).path, run(4).path)
    # Without noise, the ridge w2 = 0 is never left; with it, it is.
    assert np.all(landscapes.run_trajectory(optim.sgd, f, [1.0, 0.0], 50).path[:, 1] == 0.0)
    assert np.any(run(3).path[:, 1] != 0.0)
