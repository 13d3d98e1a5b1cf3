"""Newton, BFGS and L-BFGS against closed forms, scipy.optimize and each other (NumPy vs torch)."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import scipy.optimize
import torch

from cs231n_utils import landscapes
from cs231n_utils.second_order import (
    NotPositiveDefiniteError,
    backtracking_line_search,
    bfgs,
    lbfgs,
    newton,
    strong_wolfe_line_search,
    torch_lbfgs,
    two_loop_recursion,
)

ROSENBROCK_START = np.array([-1.2, 1.0])

# (landscape, start) pairs where scipy's BFGS and L-BFGS-B both reach the global minimum.
BENCHMARKS = {
    "rosenbrock": (landscapes.Rosenbrock(), ROSENBROCK_START),
    "beale": (landscapes.Beale(), np.array([1.0, 1.0])),
    "quadratic-100d": (landscapes.ill_conditioned_quadratic(1000.0, dim=100), np.ones(100)),
}


def _scipy(landscape, x0, method):
    options = {"gtol": 1e-8, "maxiter": 5000}
    if method == "L-BFGS-B":
        options["ftol"] = 0.0  # stop on the gradient only, like our solvers
    return scipy.optimize.minimize(landscape, x0, jac=True, method=method, options=options)


# ---------------------------------------------------------------------------- Newton


def test_newton_solves_a_quadratic_in_one_step():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((6, 6))
    A = B @ B.T + 0.5 * np.eye(6)
    center = rng.standard_normal(6)
    quadratic = landscapes.Quadratic(A, center)
    result = newton(quadratic, quadratic.hessian, np.zeros(6))
    assert result.iterations == 1 and result.converged
    np.testing.assert_allclose(result.x, np.linalg.solve(A, A @ center), atol=1e-10)
    np.testing.assert_allclose(result.path[1], center, atol=1e-10)
    assert result.n_evals.tolist() == [1, 2]


def test_newton_converges_quadratically_on_rosenbrock():
    rosenbrock = landscapes.Rosenbrock()
    result = newton(rosenbrock, rosenbrock.hessian, ROSENBROCK_START, gtol=1e-10)
    assert result.converged
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-10)
    distances = np.linalg.norm(result.path - 1.0, axis=1)
    # Quadratic convergence near the minimum: e_{k+1} <= C e_k^2 for the last steps.
    assert distances[-2] <= 10 * distances[-3] ** 2


def test_newton_refuses_an_indefinite_hessian_unless_damped():
    saddle = landscapes.Saddle()
    start = np.array([0.5, 0.1])  # Hessian eigenvalues 1 and 3 * 0.01 - 1 = -0.97
    with pytest.raises(NotPositiveDefiniteError, match="damping > 0.97"):
        newton(saddle, saddle.hessian, start)
    with pytest.raises(ValueError, match="not positive definite"):
        newton(saddle, saddle.hessian, start, damping=0.5)
    damped = newton(saddle, saddle.hessian, start, damping=2.5, gtol=1e-9, max_iter=200)
    assert damped.converged
    np.testing.assert_allclose(damped.x, saddle.minimum, atol=1e-8)


def test_newton_damping_step_matches_closed_form():
    quadratic = landscapes.Quadratic(np.array([1.0, 4.0]))
    result = newton(quadratic, quadratic.hessian, [1.0, 1.0], damping=1.0, max_iter=1)
    # x1 = x0 - (A + I)^{-1} A x0 = x0 / (1 + a) elementwise
    np.testing.assert_allclose(result.x, [1.0 / 2.0, 1.0 / 5.0])


# ---------------------------------------------------------------------------- BFGS / L-BFGS


@pytest.mark.parametrize("solver", [bfgs, lbfgs], ids=["bfgs", "lbfgs"])
def test_quasi_newton_reaches_rosenbrock_minimum(solver):
    result = solver(landscapes.Rosenbrock(), ROSENBROCK_START, gtol=1e-8)
    assert result.converged, result.message
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-6)
    assert result.path.shape == (result.iterations + 1, 2)
    assert len(result.losses) == len(result.grad_norms) == len(result.n_evals) == result.iterations + 1
    assert np.all(np.diff(result.losses) < 0), "a line-search method must decrease the loss every step"
    assert np.all(np.diff(result.n_evals) >= 1)


def test_lbfgs_with_armijo_backtracking_reaches_rosenbrock_minimum():
    result = lbfgs(landscapes.Rosenbrock(), ROSENBROCK_START, gtol=1e-8, line_search="armijo")
    assert result.converged, result.message
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("name", list(BENCHMARKS))
@pytest.mark.parametrize("solver, method", [(bfgs, "BFGS"), (lbfgs, "L-BFGS-B")], ids=["bfgs", "lbfgs"])
def test_iteration_count_within_1_5x_of_scipy(name, solver, method):
    landscape, x0 = BENCHMARKS[name]
    reference = _scipy(landscape, x0, method)
    assert reference.success and np.allclose(reference.x, landscape.minimum, atol=1e-6)
    ours = solver(landscape, x0, gtol=1e-8, max_iter=5000)
    assert ours.converged, ours.message
    np.testing.assert_allclose(ours.x, landscape.minimum, atol=1e-6)
    assert ours.iterations <= 1.5 * reference.nit, (ours.iterations, reference.nit)
    assert ours.n_evals[-1] <= 1.5 * reference.nfev, (ours.n_evals[-1], reference.nfev)


def test_bfgs_inverse_hessian_matches_true_inverse_on_a_quadratic():
    # On a quadratic with (near-)exact line searches BFGS recovers A^{-1} after d steps; its last
    # directions are then Newton directions, so one more step lands on the minimum.
    quadratic = landscapes.Quadratic(np.diag([1.0, 3.0, 10.0]), center=np.array([1.0, -1.0, 2.0]))
    result = bfgs(quadratic, np.zeros(3), gtol=1e-10, c2=0.1)
    assert result.converged and result.iterations <= 6
    np.testing.assert_allclose(result.x, quadratic.minimum, atol=1e-9)


def test_two_loop_recursion_equals_dense_bfgs_update():
    # With m at least the number of pairs and H0 = gamma I, the two-loop product equals the
    # dense BFGS inverse-Hessian update applied to the same pairs.
    rng = np.random.default_rng(1)
    d, k, gamma = 5, 3, 0.7
    A = np.diag(rng.uniform(1.0, 5.0, d))
    pairs = []
    H = gamma * np.eye(d)
    for _ in range(k):
        s = rng.standard_normal(d)
        y = A @ s
        rho = 1.0 / (s @ y)
        pairs.append((s, y, rho))
        V = np.eye(d) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    g = rng.standard_normal(d)
    np.testing.assert_allclose(two_loop_recursion(g, pairs, gamma), H @ g, rtol=1e-12)
    np.testing.assert_allclose(two_loop_recursion(g, [], gamma), gamma * g)


def test_lbfgs_memory_grows_with_m_not_dimension_squared():
    d = 10**6  # a dense Hessian would need 8 * 10^12 bytes
    quadratic = landscapes.Quadratic(np.geomspace(1.0, 10.0, d))
    x0 = np.ones(d)
    vector_bytes = 8 * d
    peaks = {}
    for m in (2, 6):
        tracemalloc.start()
        started = time.perf_counter()
        result = lbfgs(quadratic, x0, m=m, max_iter=8, record_path=False)
        elapsed = time.perf_counter() - started
        peaks[m] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.path is None and result.iterations == 8
        assert result.losses[-1] < 1e-3 * result.losses[0]
        assert elapsed < 30.0  # generous for a loaded machine; O(d^2) work would never finish
        # The history is 2 m vectors; the rest is a bounded number of working vectors.
        assert peaks[m] <= (2 * m + 12) * vector_bytes
    extra_vectors = (peaks[6] - peaks[2]) / vector_bytes
    assert 2 * (6 - 2) - 1 <= extra_vectors <= 2 * (6 - 2) + 1


def test_lbfgs_converges_on_a_million_dimensional_quadratic():
    d = 10**6
    quadratic = landscapes.Quadratic(np.geomspace(1.0, 10.0, d))
    result = lbfgs(quadratic, np.ones(d), m=3, gtol=1e-4 * np.sqrt(d), record_path=False)
    assert result.converged and result.iterations < 30
    assert np.abs(result.x).max() < 1e-3  # the minimum is the origin


# ---------------------------------------------------------------------------- line searches


def _line(f, x, p):
    def phi(alpha):
        loss, grad = f(x + alpha * p)
        return loss, float(grad @ p), alpha
    return phi


def test_strong_wolfe_line_search_satisfies_both_conditions():
    rosenbrock = landscapes.Rosenbrock()
    x = ROSENBROCK_START
    loss, grad = rosenbrock(x)
    for p in (-grad, -grad / np.linalg.norm(grad), np.array([1.0, -0.5])):
        slope0 = float(grad @ p)
        if slope0 >= 0:
            continue
        for trial in (1e-4, 1.0, 100.0):
            found = strong_wolfe_line_search(_line(rosenbrock, x, p), loss, slope0, trial, c1=1e-4, c2=0.9)
            assert found.success
            value, slope = rosenbrock(x + found.step * p)[0], float(rosenbrock(x + found.step * p)[1] @ p)
            assert value <= loss + 1e-4 * found.step * slope0
            assert abs(slope) <= 0.9 * abs(slope0)


def test_strong_wolfe_with_small_c2_finds_the_exact_minimiser_of_a_parabola():
    # phi(a) = (a - 3)^2: exact line minimum at a = 3.
    phi = lambda a: ((a - 3.0) ** 2, 2.0 * (a - 3.0), None)  # noqa: E731
    found = strong_wolfe_line_search(phi, 9.0, -6.0, 1.0, c1=1e-4, c2=1e-3)
    assert found.success and abs(found.step - 3.0) < 1e-2


def test_backtracking_halves_until_armijo_holds():
    phi = lambda a: ((a - 0.1) ** 2, 2.0 * (a - 0.1), None)  # noqa: E731
    found = backtracking_line_search(phi, 0.01, -0.2, 1.0, c1=0.5, shrink=0.5)
    # Armijo with c1 = 0.5: (a - 0.1)^2 <= 0.01 - 0.1 a  <=>  a <= 0.1; halving 1.0 gives 0.0625
    assert found.success and found.step == 0.0625 and found.n_evals == 5


# ---------------------------------------------------------------------------- torch


def _torch_rosenbrock(x: torch.Tensor):
    x = x.detach().requires_grad_(True)
    loss = 100.0 * (x[1:] - x[:-1] ** 2).pow(2).sum() + (1.0 - x[:-1]).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return loss.detach(), grad


def _check_torch_matches_numpy(device: str):
    start = torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=torch.float64, device=device)
    ours = torch_lbfgs(_torch_rosenbrock, start, m=5, gtol=1e-8)
    reference = lbfgs(landscapes.Rosenbrock(dim=4), start.cpu().numpy(), m=5, gtol=1e-8)
    assert ours.converged and reference.converged
    assert ours.x.device.type == torch.device(device).type and ours.path.device == ours.x.device
    # Autograd and the analytic gradient round differently, and Rosenbrock's curved valley
    # amplifies rounding a little; the paths agree far beyond what a different algorithm could.
    assert abs(ours.iterations - reference.iterations) <= 1
    steps = min(ours.iterations, reference.iterations) + 1
    np.testing.assert_allclose(ours.path.cpu().numpy()[:steps], reference.path[:steps], atol=1e-4)
    np.testing.assert_allclose(ours.path.cpu().numpy()[:10], reference.path[:10], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(ours.n_evals[:steps], reference.n_evals[:steps])
    np.testing.assert_allclose(ours.x.cpu().numpy(), np.ones(4), atol=1e-6)


def test_torch_lbfgs_follows_the_numpy_path_on_cpu():
    _check_torch_matches_numpy("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_lbfgs_follows_the_numpy_path_on_cuda():
    _check_torch_matches_numpy("cuda")


def test_torch_lbfgs_float32_reaches_the_minimum():
    start = torch.tensor([-1.2, 1.0], dtype=torch.float32)
    result = torch_lbfgs(_torch_rosenbrock, start, gtol=1e-4)
    assert result.x.dtype == torch.float32
    np.testing.assert_allclose(result.x.numpy(), [1.0, 1.0], atol=1e-3)


# ---------------------------------------------------------------------------- bad input


QUADRATIC = landscapes.Quadratic(np.array([1.0, 2.0]))


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: bfgs(QUADRATIC, [np.nan, 0.0]), "x0"),
        (lambda: bfgs(QUADRATIC, np.zeros((2, 1))), "x0"),
        (lambda: bfgs(QUADRATIC, ["a", "b"]), "x0"),
        (lambda: bfgs("not callable", [1.0, 1.0]), "f"),
        (lambda: bfgs(QUADRATIC, [1.0, 1.0], gtol=-1.0), "gtol"),
        (lambda: bfgs(QUADRATIC, [1.0, 1.0], max_iter=-1), "max_iter"),
        (lambda: bfgs(QUADRATIC, [1.0, 1.0], max_iter=2.5), "max_iter"),
        (lambda: bfgs(QUADRATIC, [1.0, 1.0], c1=0.9, c2=0.1), "c1 and c2"),
        (lambda: lbfgs(QUADRATIC, [1.0, 1.0], m=0), "m"),
        (lambda: lbfgs(QUADRATIC, [1.0, 1.0], line_search="exact"), "line_search"),
        (lambda: lbfgs(QUADRATIC, [1.0, 1.0], record_path="yes"), "record_path"),
        (lambda: lbfgs(lambda x: (0.0, np.zeros(3)), [1.0, 1.0]), "gradient of shape"),
        (lambda: lbfgs(lambda x: (np.inf, np.zeros(2)), [1.0, 1.0]), "f\\(x0\\)"),
        (lambda: newton(QUADRATIC, QUADRATIC.hessian, [1.0, 1.0], damping=-1.0), "damping"),
        (lambda: newton(QUADRATIC, lambda x: np.eye(3), [1.0, 1.0]), "hessian"),
        (lambda: newton(QUADRATIC, lambda x: np.array([[1.0, 2.0], [0.0, 1.0]]), [1.0, 1.0]), "symmetric"),
        (lambda: newton(QUADRATIC, None, [1.0, 1.0]), "hessian"),
        (lambda: torch_lbfgs(_torch_rosenbrock, np.array([1.0, 1.0])), "x0"),
        (lambda: torch_lbfgs(_torch_rosenbrock, torch.ones(2, 2)), "x0"),
        (lambda: torch_lbfgs(_torch_rosenbrock, torch.ones(2, dtype=torch.int64)), "x0"),
        (lambda: strong_wolfe_line_search(lambda a: (0.0, 0.0, None), 0.0, 1.0), "slope0"),
        (lambda: backtracking_line_search(lambda a: (0.0, 0.0, None), 0.0, -1.0, shrink=1.5), "shrink"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_max_iter_stops_without_convergence():
    result = lbfgs(landscapes.Rosenbrock(), ROSENBROCK_START, max_iter=3)
    assert not result.converged and result.iterations == 3 and result.message == "reached max_iter"

