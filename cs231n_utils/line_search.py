r"""Line searches along a search direction: strong Wolfe (with zoom) and Armijo backtracking.

``phi(step) -> (value, slope, payload)`` is the objective restricted to the search line
:math:`\phi(\alpha) = f(x + \alpha p)` with its slope :math:`\phi'(\alpha) = \nabla f(x + \alpha p)^T p`
and anything the caller wants back for the accepted step. The quasi-Newton solvers of
:mod:`cs231n_utils.second_order` use them; they implement nothing students write, so notebooks
may import them while grading.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .validation import check_positive

__all__ = ["LineSearchResult", "LineFunction", "strong_wolfe_line_search", "backtracking_line_search"]

# phi(step) -> (value, slope, payload): the objective restricted to the search line.
LineFunction = Callable[[float], tuple[float, float, Any]]


@dataclass
class LineSearchResult:
    """The accepted step along the search line and what the last useful evaluation returned."""

    step: float
    value: float
    slope: float
    payload: Any
    n_evals: int
    success: bool


# --------------------------------------------------------------------------- line searches


def strong_wolfe_line_search(
    phi: LineFunction,
    value0: float,
    slope0: float,
    step: float = 1.0,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 25,
) -> LineSearchResult:
    """Find a step :math:`\\alpha` satisfying the strong Wolfe conditions for :math:`\\phi(\\alpha) = f(x + \\alpha p)`:

    .. math::
        \\phi(\\alpha) \\le \\phi(0) + c_1 \\alpha\\, \\phi'(0) \\quad\\text{(sufficient decrease)}, \\qquad
        |\\phi'(\\alpha)| \\le c_2\\, |\\phi'(0)| \\quad\\text{(curvature)}.

    Bracketing then zooming (Nocedal & Wright, *Numerical Optimization*, Algorithms 3.5 and 3.6)
    with safeguarded cubic interpolation. The curvature condition guarantees
    :math:`s^T y = \\alpha\\,(\\phi'(\\alpha) - \\phi'(0)) > 0`, which keeps the BFGS update positive
    definite. ``phi(alpha)`` returns ``(value, slope, payload)``; ``payload`` (e.g. the new point
    and gradient) is handed back for the accepted step. ``success=False`` means no step met both
    conditions within ``max_evals``; the best step with sufficient decrease is returned if any
    (``step=0`` otherwise).
    """
    _check_wolfe_constants(c1, c2)
    step = check_positive(step, "step")
    max_evals = _check_count(max_evals, "max_evals", 1)
    if not slope0 < 0:
        raise ValueError(f"slope0 must be negative (a descent direction), got {slope0!r}")

    def sufficient(alpha: float, value: float) -> bool:
        return value <= value0 + c1 * alpha * slope0

    def curvature(slope: float) -> bool:
        return abs(slope) <= -c2 * slope0

    previous = (0.0, value0, slope0, None)
    n_evals = 0
    while n_evals < max_evals:
        value, slope, payload = phi(step)
        n_evals += 1
        current = (step, value, slope, payload)
        if not sufficient(step, value) or (n_evals > 1 and value >= previous[1]):
            return _zoom(phi, previous, current, value0, slope0, sufficient, curvature, n_evals, max_evals)
        if curvature(slope):
            return LineSearchResult(step, value, slope, payload, n_evals, True)
        if slope >= 0:
            return _zoom(phi, current, previous, value0, slope0, sufficient, curvature, n_evals, max_evals)
        previous, step = current, 4.0 * step  # still going down steeply: extrapolate
    return _best_effort(previous, value0, n_evals)


def _zoom(phi, lo, hi, value0, slope0, sufficient, curvature, n_evals, max_evals) -> LineSearchResult:
    """Shrink the bracket ``[lo, hi]`` (``lo`` has the lowest value with sufficient decrease)."""
    while n_evals < max_evals:
        step = _interpolate(lo, hi)
        value, slope, payload = phi(step)
        n_evals += 1
        if not sufficient(step, value) or value >= lo[1]:
            hi = (step, value, slope, payload)
            continue
        if curvature(slope):
            return LineSearchResult(step, value, slope, payload, n_evals, True)
        if slope * (hi[0] - lo[0]) >= 0:
            hi = lo
        lo = (step, value, slope, payload)
    return _best_effort(lo, value0, n_evals)


def _interpolate(lo: tuple, hi: tuple) -> float:
    """Minimiser of the cubic through both ends' values and slopes, kept away from the ends;
    bisection when the cubic has no usable minimiser (or a value is not finite)."""
    (a, fa, da, _), (b, fb, db, _) = lo, hi
    midpoint = 0.5 * (a + b)
    if not all(math.isfinite(v) for v in (fa, da, fb, db)):
        return midpoint
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    radicand = d1 * d1 - da * db
    if radicand < 0:
        return midpoint
    d2 = math.copysign(math.sqrt(radicand), b - a)
    denominator = db - da + 2.0 * d2
    if denominator == 0:
        return midpoint
    step = b - (b - a) * (db + d2 - d1) / denominator
    low, high = min(a, b), max(a, b)
    margin = 0.1 * (high - low)
    return step if low + margin <= step <= high - margin else midpoint


def _best_effort(point: tuple, value0: float, n_evals: int) -> LineSearchResult:
    step, value, slope, payload = point
    if step > 0 and value < value0:
        return LineSearchResult(step, value, slope, payload, n_evals, False)
    return LineSearchResult(0.0, value0, slope, None, n_evals, False)


def backtracking_line_search(
    phi: LineFunction,
    value0: float,
    slope0: float,
    step: float = 1.0,
    *,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_evals: int = 40,
) -> LineSearchResult:
    """Backtracking until the Armijo (sufficient-decrease) condition holds:
    :math:`\\phi(\\alpha) \\le \\phi(0) + c_1 \\alpha\\, \\phi'(0)`, trying
    :math:`\\alpha, \\tau\\alpha, \\tau^2\\alpha, \\dots` with :math:`\\tau =` ``shrink``.

    Cheaper than :func:`strong_wolfe_line_search` but it does not ensure :math:`s^T y > 0`, so
    quasi-Newton callers must skip updates that would break positive definiteness.
    """
    step = check_positive(step, "step")
    max_evals = _check_count(max_evals, "max_evals", 1)
    if not 0 < c1 < 1:
        raise ValueError(f"c1 must lie in (0, 1), got {c1!r}")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must lie in (0, 1), got {shrink!r}")
    if not slope0 < 0:
        raise ValueError(f"slope0 must be negative (a descent direction), got {slope0!r}")
    for n_evals in range(1, max_evals + 1):
        value, slope, payload = phi(step)
        if value <= value0 + c1 * step * slope0:
            return LineSearchResult(step, value, slope, payload, n_evals, True)
        step *= shrink
    return LineSearchResult(0.0, value0, slope0, None, max_evals, False)


# --------------------------------------------------------------------------- Newton


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_wolfe_constants(c1: Any, c2: Any) -> None:
    c1 = check_positive(c1, "c1")
    c2 = check_positive(c2, "c2")
    if not c1 < c2 < 1:
        raise ValueError(f"c1 and c2 must satisfy 0 < c1 < c2 < 1, got c1={c1!r}, c2={c2!r}")
