"""Second-order and quasi-Newton minimisers: Newton's method, BFGS and L-BFGS.

Every solver minimises a function given as ``loss, grad = f(x)`` (the protocol every
:class:`~cs231n_utils.landscapes.Landscape` follows) from a starting point ``x0`` and returns a
:class:`SolverResult` with the iterate path and, per iteration, the loss, the gradient norm and
the cumulative number of evaluations of ``f``. A run stops when
:math:`\\|\\nabla f(x_k)\\|_2 \\le` ``gtol`` (``converged=True``), after ``max_iter`` iterations,
or when the line search can make no more progress.

Notation: :math:`g_k = \\nabla f(x_k)`, :math:`H_k` the Hessian (Newton) or an approximation of
its *inverse* (BFGS), :math:`s_k = x_{k+1} - x_k`, :math:`y_k = g_{k+1} - g_k`.

BFGS and L-BFGS share one driver and one strong-Wolfe line search. The driver touches the
iterates only through ``+``, ``*``, ``@`` and ``float``, so :func:`torch_lbfgs` runs the very same
code on torch tensors on any device.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import scipy.linalg

from .line_search import (LineSearchResult, _check_count, _check_wolfe_constants, backtracking_line_search,
                          strong_wolfe_line_search)
from .validation import as_float_array, check_finite, check_positive

__all__ = [
    "SolverResult",
    "LineSearchResult",
    "NotPositiveDefiniteError",
    "strong_wolfe_line_search",
    "backtracking_line_search",
    "two_loop_recursion",
    "newton",
    "bfgs",
    "lbfgs",
    "torch_lbfgs",
]

LossAndGrad = Callable[[Any], tuple[Any, Any]]


class NotPositiveDefiniteError(ValueError):
    """Newton's method met a Hessian (plus damping) that is not positive definite."""


@dataclass
class SolverResult:
    """What a solver did. Per-iteration arrays have one entry per iterate, the start included.

    ``path[k]`` is :math:`x_k` (``None`` when run with ``record_path=False``), ``losses[k]`` is
    :math:`f(x_k)`, ``grad_norms[k]`` is :math:`\\|g_k\\|_2` and ``n_evals[k]`` is the number of
    calls of ``f`` made up to and including the one that produced :math:`x_k` (the last entry
    also counts the calls of a final line search that found no decrease).
    """

    x: Any
    path: Any | None
    losses: np.ndarray
    grad_norms: np.ndarray
    n_evals: np.ndarray
    converged: bool
    message: str

    @property
    def iterations(self) -> int:
        """Number of iterations (steps) taken."""
        return len(self.losses) - 1


def newton(
    f: LossAndGrad,
    hessian: Callable[[np.ndarray], Any],
    x0: Any,
    *,
    damping: float = 0.0,
    gtol: float = 1e-8,
    max_iter: int = 100,
    record_path: bool = True,
) -> SolverResult:
    """Newton's method: minimise the local quadratic model exactly, with no learning rate.

    .. math::
        f(x_k + p) \\approx f(x_k) + g_k^T p + \\tfrac12 p^T (H_k + \\lambda I)\\, p
        \\quad\\Rightarrow\\quad x_{k+1} = x_k - (H_k + \\lambda I)^{-1} g_k

    with :math:`H_k =` ``hessian(x_k)`` and :math:`\\lambda =` ``damping``. The system is solved
    by a Cholesky factorisation, which exists only if :math:`H_k + \\lambda I` is positive
    definite; otherwise the step would not be a descent direction and
    :class:`NotPositiveDefiniteError` is raised with the smallest eigenvalue, so the caller can
    pick ``damping`` above its magnitude. On a quadratic with positive definite Hessian and no
    damping, one step lands on the minimum.
    """
    damping = check_positive(damping, "damping", allow_zero=True)
    gtol = check_positive(gtol, "gtol", allow_zero=True)
    max_iter = _check_count(max_iter, "max_iter", 0)
    if not callable(hessian):
        raise ValueError(f"hessian must be callable, got {type(hessian).__name__}")
    evaluate, x = _numpy_objective(f, x0)
    loss, grad = evaluate(x)
    _check_start(loss, grad)
    history = _History(x, loss, grad, record_path)
    dim = x.size
    while True:
        if history.grad_norms[-1] <= gtol:
            return history.result(x, True, "gradient norm below gtol")
        if history.iterations >= max_iter:
            return history.result(x, False, "reached max_iter")
        H = as_float_array(hessian(x), "hessian(x)")
        if H.shape != (dim, dim):
            raise ValueError(f"hessian(x) must have shape ({dim}, {dim}), got {H.shape}")
        check_finite(H, "hessian(x)")
        if not np.allclose(H, H.T):
            raise ValueError("hessian(x) must be symmetric")
        damped = H + damping * np.eye(dim)
        try:
            factor = scipy.linalg.cho_factor(damped, lower=True)
        except np.linalg.LinAlgError:
            smallest = float(np.linalg.eigvalsh(H)[0])
            raise NotPositiveDefiniteError(
                f"hessian at iteration {history.iterations} (x = {np.array2string(x, precision=4)}) plus "
                f"damping={damping:g} is not positive definite: the smallest Hessian eigenvalue is "
                f"{smallest:.4g}; use damping > {max(-smallest, 0.0):.4g}"
            ) from None
        x = x + scipy.linalg.cho_solve(factor, -grad)
        loss, grad = evaluate(x)
        history.append(x, loss, grad, 1)
        if not (math.isfinite(loss) and math.isfinite(history.grad_norms[-1])):
            return history.result(x, False, "loss or gradient stopped being finite")


# --------------------------------------------------------------------------- quasi-Newton


def bfgs(
    f: LossAndGrad,
    x0: Any,
    *,
    gtol: float = 1e-5,
    max_iter: int = 1000,
    c1: float = 1e-4,
    c2: float = 0.9,
    record_path: bool = True,
) -> SolverResult:
    """BFGS with a dense approximation :math:`H_k` of the *inverse* Hessian.

    .. math::
        p_k = -H_k g_k, \\qquad x_{k+1} = x_k + \\alpha_k p_k, \\qquad
        H_{k+1} = (I - \\rho_k s_k y_k^T)\\, H_k\\, (I - \\rho_k y_k s_k^T) + \\rho_k s_k s_k^T,
        \\quad \\rho_k = \\frac{1}{y_k^T s_k}

    :math:`\\alpha_k` satisfies the strong Wolfe conditions
    (:func:`strong_wolfe_line_search`, constants ``c1``, ``c2``), so :math:`y_k^T s_k > 0` and
    :math:`H_{k+1}` stays positive definite; a pair with :math:`y_k^T s_k \\le 0` (possible only
    when the search gives up) is skipped. :math:`H_0 = I`; the first trial step is
    :math:`\\min(1, 1/\\|g_0\\|)`, later ones
    :math:`\\min(1, 1.01 \\cdot 2 (f_k - f_{k-1}) / g_k^T p_k)` (the step that repeats the last
    decrease; Nocedal & Wright eq. 3.60), which makes up for the unscaled :math:`H_0`.
    Memory and work per step are :math:`O(d^2)`.
    """
    _check_wolfe_constants(c1, c2)
    evaluate, x = _numpy_objective(f, x0)
    inverse_hessian = np.eye(x.size)

    def direction(grad: np.ndarray) -> np.ndarray:
        return -(inverse_hessian @ grad)

    def update(s: np.ndarray, y: np.ndarray, sy: float) -> None:
        nonlocal inverse_hessian
        rho = 1.0 / sy
        Hy = inverse_hessian @ y
        # Expanded form of (I - rho s y^T) H (I - rho y s^T) + rho s s^T, using H symmetric.
        inverse_hessian = (
            inverse_hessian
            - rho * (np.outer(s, Hy) + np.outer(Hy, s))
            + (rho * rho * (y @ Hy) + rho) * np.outer(s, s)
        )

    return _quasi_newton(
        evaluate, x, direction, update, interpolate_first_step=True, gtol=gtol, max_iter=max_iter, search="strong_wolfe",
        c1=c1, c2=c2, record_path=record_path, stack=np.stack,
    )


def two_loop_recursion(grad: Any, pairs: "deque[tuple[Any, Any, float]]", gamma: float) -> Any:
    """The L-BFGS product :math:`r = H_k\\, g` without ever forming :math:`H_k` (Nocedal & Wright, Alg. 7.4).

    ``pairs`` holds the last :math:`m` triples :math:`(s_i, y_i, \\rho_i = 1/y_i^T s_i)`, oldest
    first, and :math:`H_k^0 = \\gamma I`::

        q = g
        for i = k-1, ..., k-m:  a_i = rho_i s_i^T q;  q = q - a_i y_i
        r = gamma q
        for i = k-m, ..., k-1:  b = rho_i y_i^T r;    r = r + (a_i - b) s_i

    :math:`O(m d)` work and memory. Works for NumPy arrays and torch tensors alike.
    """
    q = grad * 1.0  # a fresh copy (NumPy or torch) that the loop may update in place
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * float(s @ q)
        q -= a * y
        alphas.append(a)
    r = q
    r *= gamma
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        b = rho * float(y @ r)
        r += (a - b) * s
    return r


def lbfgs(
    f: LossAndGrad,
    x0: Any,
    *,
    m: int = 10,
    gtol: float = 1e-5,
    max_iter: int = 1000,
    line_search: Literal["strong_wolfe", "armijo"] = "strong_wolfe",
    c1: float = 1e-4,
    c2: float = 0.9,
    record_path: bool = True,
) -> SolverResult:
    """Limited-memory BFGS {Liu & Nocedal 1989}: BFGS that keeps only the last ``m`` pairs.

    .. math::
        p_k = -H_k g_k \\ \\text{(by } :func:`two_loop_recursion` \\text{)}, \\qquad
        H_k^0 = \\gamma_k I, \\quad \\gamma_k = \\frac{s_{k-1}^T y_{k-1}}{y_{k-1}^T y_{k-1}}, \\qquad
        x_{k+1} = x_k + \\alpha_k p_k

    Memory is :math:`2 m d` numbers for the history plus a few vectors — never :math:`d^2`.
    ``line_search`` is ``"strong_wolfe"`` (:func:`strong_wolfe_line_search`) or ``"armijo"``
    (:func:`backtracking_line_search`); pairs with :math:`s^T y \\le 0` are skipped. Before the
    first pair exists the step is plain gradient descent with initial trial step
    :math:`\\min(1, 1/\\|g_0\\|)`.
    """
    evaluate, x = _numpy_objective(f, x0)
    return _run_lbfgs(evaluate, x, m, gtol, max_iter, line_search, c1, c2, record_path, np.stack)


def torch_lbfgs(
    f: Callable[[Any], tuple[Any, Any]],
    x0: Any,
    *,
    m: int = 10,
    gtol: float = 1e-5,
    max_iter: int = 1000,
    line_search: Literal["strong_wolfe", "armijo"] = "strong_wolfe",
    c1: float = 1e-4,
    c2: float = 0.9,
    record_path: bool = True,
) -> SolverResult:
    """:func:`lbfgs` on a flat torch tensor ``x0`` on any device, in ``x0``'s floating dtype.

    ``f(x)`` returns ``(loss, grad)``: ``loss`` a 0-d tensor or a float, ``grad`` a tensor
    shaped like ``x``. With autograd, for instance::

        def f(x):
            x = x.detach().requires_grad_(True)
            loss = model_loss(x)
            (grad,) = torch.autograd.grad(loss, x)
            return loss.detach(), grad

    The algorithm is the same code as :func:`lbfgs` (two-loop recursion, same line search), so on
    float64 CPU tensors it follows the NumPy path to rounding error. ``x`` and ``path`` in the
    result are tensors on ``x0``'s device; losses, gradient norms and counts are NumPy arrays.
    Each iteration reads a few scalars back from the device (the line search is sequential).
    """
    import torch

    if not isinstance(x0, torch.Tensor):
        raise ValueError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
    if x0.ndim != 1 or x0.numel() == 0:
        raise ValueError(f"x0 must be a non-empty 1-D (flat) tensor, got shape {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must have a floating dtype, got {x0.dtype}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains NaN or infinity")
    if not callable(f):
        raise ValueError(f"f must be callable, got {type(f).__name__}")
    x = x0.detach().clone()

    def evaluate(point):
        loss, grad = f(point)
        grad = torch.as_tensor(grad)
        if grad.shape != point.shape:
            raise ValueError(f"f(x) returned a gradient of shape {tuple(grad.shape)}, expected {tuple(point.shape)}")
        return float(loss), grad.detach().to(device=point.device, dtype=point.dtype)

    return _run_lbfgs(evaluate, x, m, gtol, max_iter, line_search, c1, c2, record_path, torch.stack)


def _run_lbfgs(evaluate, x, m, gtol, max_iter, line_search, c1, c2, record_path, stack) -> SolverResult:
    m = _check_count(m, "m", 1)
    _check_wolfe_constants(c1, c2)
    if line_search not in ("strong_wolfe", "armijo"):
        raise ValueError(f"line_search must be 'strong_wolfe' or 'armijo', got {line_search!r}")
    pairs: deque = deque(maxlen=m)
    gamma = 1.0

    def direction(grad):
        return -two_loop_recursion(grad, pairs, gamma)

    def update(s, y, sy: float) -> None:
        nonlocal gamma
        pairs.append((s, y, 1.0 / sy))
        gamma = sy / float(y @ y)

    return _quasi_newton(
        evaluate, x, direction, update, interpolate_first_step=False, gtol=gtol, max_iter=max_iter, search=line_search,
        c1=c1, c2=c2, record_path=record_path, stack=stack,
    )


def _quasi_newton(evaluate, x, direction, update, *, interpolate_first_step, gtol, max_iter, search, c1, c2, record_path, stack) -> SolverResult:
    """The loop BFGS and L-BFGS share: direction, line search, then the curvature-pair update."""
    gtol = check_positive(gtol, "gtol", allow_zero=True)
    max_iter = _check_count(max_iter, "max_iter", 0)
    loss, grad = evaluate(x)
    _check_start(loss, grad)
    history = _History(x, loss, grad, record_path, stack)
    has_curvature = False
    while True:
        if history.grad_norms[-1] <= gtol:
            return history.result(x, True, "gradient norm below gtol")
        if history.iterations >= max_iter:
            return history.result(x, False, "reached max_iter")
        p = direction(grad)
        slope = float(grad @ p)
        if not slope < 0:  # numerically lost descent: restart from steepest descent
            p, slope = -grad, -history.grad_norms[-1] ** 2
        if not has_curvature:  # no curvature information yet: a step of length about 1 in x
            first_step = min(1.0, 1.0 / math.sqrt(-slope))
        elif interpolate_first_step:  # expect the same decrease as last time (N&W eq. 3.60)
            first_step = min(1.0, 1.01 * 2.0 * (loss - previous_loss) / slope)
            first_step = first_step if first_step > 0 else 1.0  # guards against an underflow to 0
        else:
            first_step = 1.0

        def phi(alpha: float, x=x, p=p):
            x_new = x + alpha * p
            value, grad_new = evaluate(x_new)
            slope_new = float(grad_new @ p)
            if not (math.isfinite(value) and math.isfinite(slope_new)):
                return math.inf, math.nan, None  # overshot into overflow: the search backs off
            return value, slope_new, (x_new, grad_new)

        if search == "strong_wolfe":
            found = strong_wolfe_line_search(phi, loss, slope, first_step, c1=c1, c2=c2)
        else:
            found = backtracking_line_search(phi, loss, slope, first_step, c1=c1)
        if found.payload is None:
            history.add_evals(found.n_evals)
            return history.result(x, False, "line search found no step that decreases the loss")
        x_new, grad_new = found.payload
        s, y = x_new - x, grad_new - grad
        sy = float(s @ y)
        if sy > 0:
            update(s, y, sy)
            has_curvature = True
        previous_loss = loss
        x, loss, grad = x_new, found.value, grad_new
        history.append(x, loss, grad, found.n_evals)


# --------------------------------------------------------------------------- bookkeeping


class _History:
    """Collects the per-iteration records of a run and builds its :class:`SolverResult`."""

    def __init__(self, x, loss: float, grad, record_path: bool, stack=np.stack) -> None:
        if not isinstance(record_path, bool):
            raise ValueError(f"record_path must be a bool, got {record_path!r}")
        self.path = [x] if record_path else None
        self.losses, self.grad_norms, self.n_evals = [loss], [_norm(grad)], [1]
        self.stack = stack

    @property
    def iterations(self) -> int:
        return len(self.losses) - 1

    def append(self, x, loss: float, grad, evals: int) -> None:
        if self.path is not None:
            self.path.append(x)
        self.losses.append(loss)
        self.grad_norms.append(_norm(grad))
        self.n_evals.append(self.n_evals[-1] + evals)

    def add_evals(self, evals: int) -> None:
        self.n_evals[-1] += evals

    def result(self, x, converged: bool, message: str) -> SolverResult:
        return SolverResult(
            x=x,
            path=None if self.path is None else self.stack(self.path),
            losses=np.array(self.losses, dtype=float),
            grad_norms=np.array(self.grad_norms, dtype=float),
            n_evals=np.array(self.n_evals, dtype=int),
            converged=converged,
            message=message,
        )


def _norm(vector) -> float:
    return math.sqrt(float(vector @ vector))


def _numpy_objective(f: LossAndGrad, x0: Any) -> tuple[Callable, np.ndarray]:
    """Validate ``f`` and ``x0``; return an evaluator giving ``(float loss, float64 grad)``."""
    if not callable(f):
        raise ValueError(f"f must be callable, got {type(f).__name__}")
    x = as_float_array(x0, "x0").astype(np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x.shape}")
    check_finite(x, "x0")

    def evaluate(point: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = f(point)
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != point.shape:
            raise ValueError(f"f(x) returned a gradient of shape {grad.shape}, expected {point.shape}")
        return float(loss), grad

    return evaluate, x


def _check_start(loss: float, grad) -> None:
    if not (math.isfinite(loss) and math.isfinite(_norm(grad))):
        raise ValueError("f(x0) must return a finite loss and gradient")
