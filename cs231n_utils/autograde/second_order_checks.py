"""Grade a Newton step and the L-BFGS two-loop recursion against :mod:`cs231n_utils.second_order`.

Student API (the assignment ``second_order``):

- ``newton_step(grad, hessian, damping=0.0)`` returns the step :math:`p = -(H + \\lambda I)^{-1} g`;
- ``two_loop_recursion(grad, s_history, y_history)`` returns :math:`r = H_k g` (the L-BFGS
  inverse-Hessian approximation times ``grad``) for curvature pairs listed oldest first, with
  :math:`H_k^0 = \\gamma I`, :math:`\\gamma = s^T y / y^T y` of the newest pair (1 without pairs).

The references are one iteration of :func:`cs231n_utils.second_order.newton` on the quadratic
model :math:`g^T x + \\frac12 x^T H x` started at 0, and
:func:`cs231n_utils.second_order.two_loop_recursion`. Inputs are well posed: symmetric positive
definite Hessians (eigenvalues log-uniform in [1e-2, 1e2]) and pairs with :math:`s^T y > 0`.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable
from unittest import mock

import numpy as np

from .. import second_order
from ..landscapes import Rosenbrock
from .function import Case, CaseGroup, FunctionMutant, check_function
from .guard import ReferenceWatch
from .report import GradeReport, PropertyResult
from .update_rule import check_count, quiet

__all__ = ["check_newton_step", "check_two_loop_recursion"]


def _spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * 10 ** rng.uniform(-2, 2, size=dim)) @ q.T


# ------------------------------------------------------------------------------- Newton step
def reference_newton_step(grad: np.ndarray, hessian: np.ndarray, damping: float = 0.0) -> np.ndarray:
    """One iteration of :func:`~cs231n_utils.second_order.newton` on :math:`g^T x + \\frac12 x^T H x` from 0."""
    grad, hessian = np.asarray(grad, dtype=np.float64), np.asarray(hessian, dtype=np.float64)
    hessian = (hessian + hessian.T) / 2  # exactly symmetric, as newton() requires

    def quadratic(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(grad @ x + 0.5 * x @ hessian @ x), grad + hessian @ x

    return second_order.newton(quadratic, lambda x: hessian, np.zeros_like(grad), damping=damping,
                               max_iter=1, gtol=0.0, record_path=False).x


def _newton_cases(rng: np.random.Generator, count: int, damped: bool) -> tuple[Case, ...]:
    cases = []
    for _ in range(count):
        dim = int(rng.integers(1, 9))
        grad, hessian = rng.standard_normal(dim), _spd(rng, dim)
        if damped:
            damping = float(10 ** rng.uniform(-2, 1))
            cases.append(Case((grad, hessian, damping), description=f"d={dim}, damping={damping:.3g}"))
        else:
            cases.append(Case((grad, hessian), description=f"d={dim}, damping left at its default"))
    return tuple(cases)


def _newton_wrong_sign(grad, hessian, damping=0.0):
    return np.linalg.solve(hessian + damping * np.eye(len(grad)), grad)


def _newton_damping_ignored(grad, hessian, damping=0.0):
    return -np.linalg.solve(hessian, grad)


def _newton_damping_everywhere(grad, hessian, damping=0.0):
    return -np.linalg.solve(hessian + damping, grad)


def _newton_diagonal(grad, hessian, damping=0.0):
    return -grad / (np.diag(hessian) + damping)


def _newton_hessian_times_grad(grad, hessian, damping=0.0):
    return -(hessian + damping * np.eye(len(grad))) @ grad


NEWTON_MUTANTS = (
    FunctionMutant("wrong_sign", "sign: the Newton step is -(H + damping*I)^-1 grad (yours goes uphill).", _newton_wrong_sign),
    FunctionMutant("damping_ignored", "damping is ignored: solve with H + damping * I.", _newton_damping_ignored),
    FunctionMutant("damping_everywhere", "damping is added to every entry of H (H + damping); add it to the "
                   "diagonal only: H + damping * np.eye(d).", _newton_damping_everywhere),
    FunctionMutant("diagonal_only", "only the diagonal of H is used: solve the full linear system.", _newton_diagonal),
    FunctionMutant("hessian_times_grad", "the step multiplies by H instead of solving with H: use "
                   "np.linalg.solve (or a Cholesky solve), not H @ grad.", _newton_hessian_times_grad),
)


def check_newton_step(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``newton_step(grad, hessian, damping=0.0)`` with :func:`reference_newton_step` on
    random SPD Hessians of size 1 to 8. Properties (weight): default damping 0 (1), random damping
    (2), inputs unchanged (1). Mutants name a wrong sign, ignored or misplaced damping, a
    diagonal-only solve and a product with H instead of a solve."""
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    groups = (
        CaseGroup("undamped step -H^-1 g with damping left at its default 0", 1, _newton_cases(rng, 6, damped=False)),
        CaseGroup("damped step -(H + damping I)^-1 g", 2, _newton_cases(rng, 6, damped=True)),
    )
    return check_function(student, reference_newton_step, groups, subject="newton_step", mutants=NEWTON_MUTANTS,
                          watch=ReferenceWatch(("second_order",), torch_optimizers=False))


# ----------------------------------------------------------------------- two-loop recursion
def reference_two_loop(grad: np.ndarray, s_history: list[np.ndarray], y_history: list[np.ndarray]) -> np.ndarray:
    """:func:`~cs231n_utils.second_order.two_loop_recursion` with the pairs and :math:`\\gamma` that
    :func:`~cs231n_utils.second_order.lbfgs` would hold after storing these pairs."""
    pairs = deque((np.asarray(s, float), np.asarray(y, float), 1.0 / float(s @ y)) for s, y in zip(s_history, y_history))
    gamma = float(s_history[-1] @ y_history[-1]) / float(y_history[-1] @ y_history[-1]) if s_history else 1.0
    return second_order.two_loop_recursion(np.asarray(grad, dtype=np.float64), pairs, gamma)


def _two_loop_cases(rng: np.random.Generator, memories: list[int]) -> tuple[Case, ...]:
    cases = []
    for m in memories:
        dim = int(rng.integers(2, 11))
        hessian = _spd(rng, dim)  # y = H s gives s^T y > 0
        s_history = [rng.standard_normal(dim) for _ in range(m)]
        y_history = [hessian @ s + 0.1 * rng.standard_normal(dim) * np.linalg.norm(hessian @ s) for s in s_history]
        keep = [(s, y) for s, y in zip(s_history, y_history) if s @ y > 0]
        cases.append(Case((rng.standard_normal(dim), [s for s, _ in keep], [y for _, y in keep]),
                          description=f"d={dim}, {len(keep)} pairs"))
    return tuple(cases)


def _two_loop(grad, s_history, y_history, *, gamma=None, rho=None, first_reversed=True, alphas_reversed=True):
    """The two-loop recursion written out, with switches that reproduce common mistakes."""
    rho = rho or (lambda s, y: 1.0 / (s @ y))
    q = np.array(grad, dtype=np.float64)
    order = list(range(len(s_history)))
    alphas = {}
    for i in (reversed(order) if first_reversed else order):
        alphas[i] = rho(s_history[i], y_history[i]) * (s_history[i] @ q)
        q = q - alphas[i] * y_history[i]
    if gamma is None:
        gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
    r = gamma * q
    second = [alphas[i] for i in order]
    if not alphas_reversed:
        second = second[::-1]
    for i, a in zip(order, second):
        b = rho(s_history[i], y_history[i]) * (y_history[i] @ r)
        r = r + (a - b) * s_history[i]
    return r


TWO_LOOP_MUTANTS = (
    FunctionMutant("no_scaling", "the initial matrix is the identity: scale q by gamma = s^T y / y^T y "
                   "of the newest pair between the two loops.", lambda g, s, y: _two_loop(g, s, y, gamma=1.0)),
    FunctionMutant("oldest_pair_gamma", "gamma uses the oldest pair; use the newest (the last in the lists).",
                   lambda g, s, y: _two_loop(g, s, y, gamma=(s[0] @ y[0]) / (y[0] @ y[0]) if s else 1.0)),
    FunctionMutant("first_loop_order", "the first loop must run from the newest pair to the oldest "
                   "(and the second from the oldest to the newest).", lambda g, s, y: _two_loop(g, s, y, first_reversed=False)),
    FunctionMutant("alphas_order", "the second loop pairs each s_i, y_i with the wrong alpha: alpha_i is the one "
                   "computed for the same pair in the first loop.", lambda g, s, y: _two_loop(g, s, y, alphas_reversed=False)),
    FunctionMutant("rho_y_y", "rho_i is 1 / (y_i^T s_i), not 1 / (y_i^T y_i).", lambda g, s, y: _two_loop(g, s, y, rho=lambda a, b: 1.0 / (b @ b))),
    FunctionMutant("returns_direction", "sign: return H_k grad itself; the search direction -H_k grad is "
                   "formed by the caller.", lambda g, s, y: -_two_loop(g, s, y)),
)


def _rosenbrock_property(student: Callable, watch: ReferenceWatch) -> PropertyResult:
    """The reference L-BFGS loop on 2-D Rosenbrock from (-1.2, 1) with the student's two-loop."""
    description = "L-BFGS with your two-loop recursion converges on Rosenbrock from (-1.2, 1) in 100 iterations"
    landscape = Rosenbrock()

    def student_two_loop(grad, pairs, gamma):
        s_history, y_history = [s.copy() for s, _, _ in pairs], [y.copy() for _, y, _ in pairs]
        with quiet(), watch:
            result = student(grad.copy(), s_history, y_history)
        return np.asarray(result, dtype=np.float64).reshape(grad.shape)

    try:
        with mock.patch.object(second_order, "two_loop_recursion", student_two_loop), quiet():
            result = second_order.lbfgs(lambda x: (landscape.value(x), landscape.grad(x)), np.array([-1.2, 1.0]),
                                        m=5, gtol=1e-6, max_iter=100, record_path=False)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - a failing student function
        return PropertyResult(description, 1, False, f"the run stopped: {type(error).__name__}: {error}")
    distance = float(np.linalg.norm(result.x - landscape.minimum))
    detail = f"ended at distance {distance:.2g} from the minimum (1, 1) after {result.iterations} iterations"
    return PropertyResult(description, 1, result.converged, "" if result.converged else detail)


def check_two_loop_recursion(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``two_loop_recursion(grad, s_history, y_history)`` with :func:`reference_two_loop`.

    Properties (weight): no pairs gives ``grad`` (1); one pair (1); 2 to 10 pairs (2); inputs
    unchanged (1); L-BFGS with the student's recursion converges on Rosenbrock (1).
    """
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    groups = (
        CaseGroup("with no pairs, returns grad (H_0 = I)", 1, _two_loop_cases(rng, [0, 0])),
        CaseGroup("one curvature pair", 1, _two_loop_cases(rng, [1, 1, 1])),
        CaseGroup("2 to 10 curvature pairs", 2, _two_loop_cases(rng, list(range(2, 11)))),
    )
    watch = ReferenceWatch(("second_order",), torch_optimizers=False)
    report = check_function(student, reference_two_loop, groups, subject="two_loop_recursion",
                            mutants=TWO_LOOP_MUTANTS, watch=watch)
    if report.zero_reason is not None:
        return report
    try:
        rosenbrock = _rosenbrock_property(student, watch)
    except NotImplementedError:
        return GradeReport("two_loop_recursion", zero_reason="two_loop_recursion raises NotImplementedError: not implemented yet.")
    if watch.triggered:
        return GradeReport("two_loop_recursion", zero_reason=watch.refusal())
    return GradeReport(report.subject, (*report.properties, rosenbrock), report.likely_mistakes)
