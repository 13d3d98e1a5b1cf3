"""Test functions for optimizers, with analytic gradients and Hessians, and a trajectory recorder.

Every landscape is callable as ``loss, grad = f(x)`` (the protocol :func:`run_trajectory` and the
second-order solvers use) and also offers ``value(x)`` vectorised over leading axes, so that
``f.value(grid)`` with ``grid`` of shape ``(..., dim)`` draws contour plots in one call.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .validation import as_float_array, check_finite, check_positive

if TYPE_CHECKING:  # annotations only: landscapes must import inside the grading sandbox, without the reference
    from .optim import Config, UpdateRule

__all__ = [
    "Landscape",
    "Quadratic",
    "Rosenbrock",
    "Beale",
    "Saddle",
    "ill_conditioned_quadratic",
    "Trajectory",
    "run_trajectory",
]

LossAndGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]


class Landscape(ABC):
    """A smooth function :math:`f: \\mathbb{R}^d \\to \\mathbb{R}` with known derivatives."""

    name: str = "landscape"
    dim: int
    minimum: np.ndarray  # a global minimiser
    plot_bounds: tuple[tuple[float, float], tuple[float, float]] = ((-2.0, 2.0), (-2.0, 2.0))

    @abstractmethod
    def value(self, x: np.ndarray) -> np.ndarray | float:
        """:math:`f(x)` for ``x`` of shape ``(..., dim)``."""

    @abstractmethod
    def grad(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\nabla f(x)`, same shape as ``x``."""

    @abstractmethod
    def hessian(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\nabla^2 f(x)` as a dense ``(dim, dim)`` matrix, for a single point ``x``."""

    def __call__(self, x: Any) -> tuple[float, np.ndarray]:
        x = self._point(x)
        return float(self.value(x)), self.grad(x)

    def _point(self, x: Any, *, batched: bool = False) -> np.ndarray:
        x = as_float_array(x, "x")
        if x.shape[-1:] != (self.dim,) or (not batched and x.ndim != 1):
            expected = f"(..., {self.dim})" if batched else f"({self.dim},)"
            raise ValueError(f"x must have shape {expected} for {self.name}, got {x.shape}")
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class Quadratic(Landscape):
    """:math:`f(x) = \\tfrac12 (x - c)^T A (x - c)` with symmetric positive semi-definite ``A``.

    Give ``A`` as a dense matrix, or as a vector of its diagonal: the diagonal form never builds a
    ``dim x dim`` matrix for values and gradients, so it scales to millions of dimensions.
    """

    name = "quadratic"

    def __init__(self, A: Any, center: Any | None = None) -> None:
        A = as_float_array(A, "A")
        check_finite(A, "A")
        if A.ndim == 2 and (A.shape[0] != A.shape[1] or not np.allclose(A, A.T)):
            raise ValueError(f"A must be a symmetric square matrix, got shape {A.shape}")
        if A.ndim not in (1, 2):
            raise ValueError(f"A must be a matrix or the vector of a diagonal, got shape {A.shape}")
        self.A = A
        self.dim = A.shape[0]
        self.center = np.zeros(self.dim) if center is None else as_float_array(center, "center")
        if self.center.shape != (self.dim,):
            raise ValueError(f"center must have shape ({self.dim},), got {self.center.shape}")
        self.minimum = self.center.copy()
        self.plot_bounds = tuple((c - 2.0, c + 2.0) for c in self.center[:2])  # type: ignore[assignment]

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``A`` in ascending order."""
        return np.sort(self.A) if self.A.ndim == 1 else np.linalg.eigvalsh(self.A)

    @property
    def condition_number(self) -> float:
        """:math:`\\kappa = \\lambda_{max} / \\lambda_{min}` (infinite when ``A`` is singular)."""
        eig = self.eigenvalues
        return float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")

    def _apply(self, d: np.ndarray) -> np.ndarray:
        return d * self.A if self.A.ndim == 1 else d @ self.A  # A symmetric: (A d^T)^T = d A

    def value(self, x: np.ndarray) -> np.ndarray | float:
        d = self._point(x, batched=True) - self.center
        return 0.5 * np.sum(d * self._apply(d), axis=-1)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self._point(x, batched=True) - self.center)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        self._point(x)
        return np.diag(self.A) if self.A.ndim == 1 else self.A.copy()


def ill_conditioned_quadratic(condition_number: float = 20.0, dim: int = 2, angle: float = 0.0) -> Quadratic:
    """The lecture's "taco shell": a quadratic whose curvatures span ``condition_number``.

    Eigenvalues are spaced geometrically from 1 to :math:`\\kappa`. With ``dim == 2`` and a
    non-zero ``angle`` (radians) the valley is rotated, so no coordinate axis is an eigenvector.
    """
    kappa = check_positive(condition_number, "condition_number")
    if kappa < 1:
        raise ValueError(f"condition_number must be >= 1, got {condition_number!r}")
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    eigenvalues = np.geomspace(1.0, kappa, dim)
    if angle == 0.0:
        return Quadratic(eigenvalues)
    if dim != 2:
        raise ValueError(f"angle is supported for dim == 2 only, got dim={dim}")
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return Quadratic(rotation @ np.diag(eigenvalues) @ rotation.T)


class Rosenbrock(Landscape):
    """:math:`f(x) = \\sum_{i=1}^{d-1} b\\,(x_{i+1} - x_i^2)^2 + (a - x_i)^2`: a curved,
    flat-bottomed valley. Minimum :math:`(a, a^2)` in 2-D, all ones for ``a = 1`` in any dimension
    (other ``a`` in more than two dimensions has no closed-form minimum and is refused)."""

    name = "Rosenbrock"
    plot_bounds = ((-2.0, 2.0), (-1.0, 3.0))

    def __init__(self, a: float = 1.0, b: float = 100.0, dim: int = 2) -> None:
        if not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
        self.a, self.b, self.dim = float(a), check_positive(b, "b"), int(dim)
        if self.dim > 2 and self.a != 1.0:
            raise ValueError(f"a must be 1 when dim > 2 (no closed-form minimum otherwise), got a={a!r}")
        self.minimum = np.ones(self.dim) if self.dim > 2 else np.array([self.a, self.a**2])

    def value(self, x: np.ndarray) -> np.ndarray | float:
        x = self._point(x, batched=True)
        head, tail = x[..., :-1], x[..., 1:]
        return np.sum(self.b * (tail - head**2) ** 2 + (self.a - head) ** 2, axis=-1)

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = self._point(x, batched=True)
        head, tail = x[..., :-1], x[..., 1:]
        inner = tail - head**2
        g = np.zeros_like(x)
        g[..., :-1] = -4 * self.b * head * inner - 2 * (self.a - head)
        g[..., 1:] += 2 * self.b * inner
        return g

    def hessian(self, x: np.ndarray) -> np.ndarray:
        x = self._point(x)
        head, tail = x[:-1], x[1:]
        diagonal = np.zeros(self.dim)
        diagonal[:-1] = 12 * self.b * head**2 - 4 * self.b * tail + 2
        diagonal[1:] += 2 * self.b
        off = -4 * self.b * head
        return np.diag(diagonal) + np.diag(off, 1) + np.diag(off, -1)


class Beale(Landscape):
    """:math:`f(x, y) = \\sum_{k=1}^{3} (c_k - x + x y^k)^2` with :math:`c = (1.5, 2.25, 2.625)`;
    minimum 0 at (3, 0.5), with flat plateaus and steep walls."""

    name = "Beale"
    dim = 2
    minimum = np.array([3.0, 0.5])
    plot_bounds = ((-4.5, 4.5), (-4.5, 4.5))
    _C = (1.5, 2.25, 2.625)

    def _residuals(self, x: np.ndarray):
        u, v = x[..., 0], x[..., 1]
        for k, c in enumerate(self._C, start=1):
            r = c + u * (v**k - 1)
            dr = (v**k - 1, k * u * v ** (k - 1))
            d2r_uv = k * v ** (k - 1)
            d2r_vv = k * (k - 1) * u * v ** max(k - 2, 0)
            yield r, dr, d2r_uv, d2r_vv

    def value(self, x: np.ndarray) -> np.ndarray | float:
        return sum(r**2 for r, *_ in self._residuals(self._point(x, batched=True)))

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = self._point(x, batched=True)
        g = np.zeros_like(x)
        for r, (dr_u, dr_v), *_ in self._residuals(x):
            g[..., 0] += 2 * r * dr_u
            g[..., 1] += 2 * r * dr_v
        return g

    def hessian(self, x: np.ndarray) -> np.ndarray:
        H = np.zeros((2, 2))
        for r, dr, d2r_uv, d2r_vv in self._residuals(self._point(x)):
            J = np.array(dr)
            H += 2 * np.outer(J, J) + 2 * r * np.array([[0.0, d2r_uv], [d2r_uv, d2r_vv]])
        return H


class Saddle(Landscape):
    """:math:`f(x, y) = \\tfrac12 (x^2 - y^2) + \\tfrac14 y^4`: a saddle point at the origin (zero
    gradient, Hessian eigenvalues +1 and -1) between two minima at :math:`(0, \\pm 1)`, value -1/4."""

    name = "saddle"
    dim = 2
    minimum = np.array([0.0, 1.0])
    plot_bounds = ((-1.5, 1.5), (-1.5, 1.5))

    def value(self, x: np.ndarray) -> np.ndarray | float:
        x = self._point(x, batched=True)
        u, v = x[..., 0], x[..., 1]
        return 0.5 * (u**2 - v**2) + 0.25 * v**4

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = self._point(x, batched=True)
        return np.stack([x[..., 0], x[..., 1] ** 3 - x[..., 1]], axis=-1)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        v = self._point(x)[1]
        return np.array([[1.0, 0.0], [0.0, 3 * v**2 - 1]])


@dataclass
class Trajectory:
    """The path an update rule took: ``path[k]`` is the iterate after ``k`` steps."""

    path: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    config: Config = field(repr=False)
    diverged: bool = False

    @property
    def steps(self) -> int:
        return len(self.path) - 1


def run_trajectory(
    rule: UpdateRule,
    f: LossAndGrad,
    x0: Any,
    steps: int,
    config: Config | None = None,
    *,
    grad_noise: float = 0.0,
    seed: int | None = None,
) -> Trajectory:
    """Run ``steps`` iterations of ``next_x, config = rule(x, grad, config)`` on ``f`` from ``x0``.

    ``f(x)`` returns ``(loss, grad)`` (every :class:`Landscape` does). ``grad_noise > 0`` adds
    Gaussian noise of that standard deviation to each gradient, a stand-in for minibatch noise.
    The run stops early, with ``diverged=True``, if the loss or the iterate stops being finite.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    grad_noise = check_positive(grad_noise, "grad_noise", allow_zero=True)
    rng = np.random.default_rng(seed)
    x = as_float_array(x0, "x0").astype(np.float64, copy=True)
    check_finite(x, "x0")
    config = {} if config is None else config
    loss, grad = f(x)
    path, losses, grad_norms = [x.copy()], [loss], [float(np.linalg.norm(grad))]
    diverged = False
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is a result here, not an error
        for _ in range(steps):
            if not (np.isfinite(loss) and np.isfinite(grad).all()):
                diverged = True
                break
            if grad_noise:
                grad = grad + grad_noise * rng.standard_normal(grad.shape)
            x, config = rule(x, grad, config)
            if not np.isfinite(x).all():
                diverged = True
                break
            loss, grad = f(x)
            path.append(x.copy())
            losses.append(loss)
            grad_norms.append(float(np.linalg.norm(grad)))
    return Trajectory(np.array(path), np.array(losses, dtype=float), np.array(grad_norms), config, diverged)
