"""What the checks know about each reference update rule, and the random trials they run.

Hyperparameter names, their defaults and the state keys are read from the reference itself
(one call on a dummy input fills a fresh config), so they cannot drift from ``cs231n_utils.optim``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from ..optim import UPDATE_RULES, Config, UpdateRule

__all__ = ["RuleSpec", "rule_spec", "Trial", "make_trials", "describe_config", "run_rule", "step_scale", "max_deviation", "TOLERANCE"]

TOLERANCE = 1e-5
"""Largest accepted deviation from the reference, relative to the reference's largest step."""

# How each hyperparameter is drawn in random trials. Ranges are chosen so that every common
# mistake changes the result visibly: epsilon is large enough to matter for small gradients.
_SAMPLERS: dict[str, Callable[[np.random.Generator], float]] = {
    "learning_rate": lambda rng: float(10 ** rng.uniform(-3, -1)),
    "momentum": lambda rng: float(rng.uniform(0.5, 0.95)),
    "decay_rate": lambda rng: float(rng.uniform(0.8, 0.999)),
    "beta1": lambda rng: float(rng.uniform(0.5, 0.95)),
    "beta2": lambda rng: float(rng.uniform(0.9, 0.9999)),
    "epsilon": lambda rng: float(10 ** rng.uniform(-6, -2)),
}


@dataclass(frozen=True)
class RuleSpec:
    """A reference rule, its default hyperparameters and the names of its state entries."""

    name: str
    reference: UpdateRule
    defaults: dict[str, float]
    state: tuple[str, ...]

    def sample_config(self, rng: np.random.Generator) -> Config:
        return {key: _SAMPLERS[key](rng) for key in self.defaults}


@lru_cache(maxsize=None)
def rule_spec(name: str) -> RuleSpec:
    """The :class:`RuleSpec` of ``cs231n_utils.optim.<name>``; raises ``ValueError`` for unknown names."""
    if name not in UPDATE_RULES:
        raise ValueError(f"reference_name must be one of {sorted(UPDATE_RULES)}, got {name!r}")
    reference = UPDATE_RULES[name]
    filled: Config = {}
    reference(np.zeros(1), np.zeros(1), filled)
    defaults = {k: v for k, v in filled.items() if isinstance(v, float)}
    state = tuple(k for k in filled if k not in defaults)
    return RuleSpec(name, reference, defaults, state)


@dataclass(frozen=True)
class Trial:
    """Start weights, a gradient sequence and the config of the first call (``None``: defaults)."""

    w: np.ndarray
    grads: tuple[np.ndarray, ...]
    config: Config | None

    def describe(self) -> str:
        return f"w of shape {self.w.shape}, {describe_config(self.config)}"


def describe_config(config: Config | None) -> str:
    """``config=None`` or ``config learning_rate=0.01, ...`` (3 significant digits) for feedback."""
    if config is None:
        return "config=None"
    return "config " + ", ".join(f"{k}={v:.3g}" for k, v in config.items())


def make_trials(spec: RuleSpec, rng: np.random.Generator, count: int, steps: int, *, defaults: bool) -> list[Trial]:
    """``count`` trials of ``steps`` gradients each, with random shapes (1 to 3 axes of 1 to 5).

    Gradient entries have magnitudes spread log-uniformly over 1e-4 .. 10 (fixed per coordinate),
    and the first coordinate always has magnitude 1e-4, so every trial shows adaptive rules a
    gradient whose square is comparable to epsilon. ``defaults=True`` gives ``config=None``.
    """
    trials = []
    for _ in range(count):
        shape = tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 4)))
        magnitude = 10 ** rng.uniform(-4, 1, size=shape)
        magnitude.flat[0] = 1e-4
        grads = tuple(magnitude * rng.standard_normal(shape) for _ in range(steps))
        config = None if defaults else spec.sample_config(rng)
        trials.append(Trial(rng.standard_normal(shape), grads, config))
    return trials


def run_rule(rule: UpdateRule, trial: Trial) -> list[np.ndarray]:
    """Positions ``w_1 .. w_K`` of a trusted rule (reference or mutant) on private copies of the trial."""
    w, config = trial.w.copy(), copy.deepcopy(trial.config)
    positions = []
    with np.errstate(all="ignore"):
        for dw in trial.grads:
            w, config = rule(w, dw.copy(), config)
            w = np.array(w, dtype=np.float64)
            positions.append(w)
    return positions


def step_scale(start: np.ndarray, positions: list[np.ndarray]) -> float:
    """Largest absolute change of any coordinate in one step of a trajectory."""
    previous, scale = start, 0.0
    for position in positions:
        scale = max(scale, float(np.max(np.abs(position - previous), initial=0.0)))
        previous = position
    return scale if scale > 0 else 1.0


def max_deviation(a: list[np.ndarray], b: list[np.ndarray], scale: float) -> tuple[float, int]:
    """Largest deviation between two trajectories relative to ``scale``, and the first bad step.

    Entries that are NaN in both, or the same infinity, count as equal; a shape mismatch or a
    NaN on one side only is an infinite deviation. Returns ``(deviation, step)`` with ``step``
    the 1-based first step whose deviation exceeds :data:`TOLERANCE` (0 if none).
    """
    worst, first_bad = 0.0, 0
    for step, (x, y) in enumerate(zip(a, b), start=1):
        if x.shape != y.shape:
            deviation = float("inf")
        else:
            same = (np.isnan(x) & np.isnan(y)) | (np.isinf(x) & (x == y))
            with np.errstate(all="ignore"):
                gaps = np.where(same, 0.0, np.abs(x - y))
            deviation = float("inf") if np.isnan(gaps).any() else float(np.max(gaps, initial=0.0)) / scale
        worst = max(worst, deviation)
        if deviation > TOLERANCE and not first_bad:
            first_bad = step
    if len(a) != len(b):
        return float("inf"), first_bad or min(len(a), len(b)) + 1
    return worst, first_bad
