"""Learning-rate schedules: small callables ``lr = schedule(step)``, and adapters to the optimizers.

Every schedule maps a step :math:`t = 0, 1, 2, \\dots` to a learning rate and knows its
``base_lr`` :math:`\\eta_0`. Use one

- with the NumPy rules of :mod:`cs231n_utils.optim`: :class:`ScheduledRule` wraps a rule and sets
  ``config["learning_rate"] = schedule(t)`` before step ``t`` (or call :func:`set_learning_rate`
  yourself in a hand-written loop);
- with any ``torch.optim.Optimizer`` (ours in :mod:`cs231n_utils.torch_optim` included):
  :func:`torch_scheduler` returns a ``torch.optim.lr_scheduler.LambdaLR`` that scales each
  parameter group's initial learning rate by :math:`\\text{schedule}(t) / \\eta_0`.

Schedules compose: :class:`LinearWarmup` ramps up to any other schedule.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .optim import Config, UpdateRule
from .validation import check_positive

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "CosineAnnealing",
    "LinearWarmup",
    "ScheduledRule",
    "set_learning_rate",
    "torch_scheduler",
]


def _check_step(step: Any, name: str = "step") -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {step!r}")
    return int(step)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_factor(value: Any, name: str) -> float:
    """A multiplicative decay factor in (0, 1]."""
    number = check_positive(value, name)
    if number > 1:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return number


class Schedule(ABC):
    """A learning rate as a function of the step :math:`t \\ge 0`; ``base_lr`` is :math:`\\eta_0`."""

    base_lr: float

    def __call__(self, step: int) -> float:
        return self._value(_check_step(step))

    @abstractmethod
    def _value(self, step: int) -> float:
        """The learning rate at a validated step."""

    def values(self, steps: int) -> np.ndarray:
        """The learning rates for steps ``0, ..., steps - 1``, e.g. to plot the schedule."""
        return np.array([self._value(t) for t in range(_check_step(steps, "steps"))])

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Constant(Schedule):
    """:math:`\\eta_t = \\eta_0`."""

    def __init__(self, base_lr: float) -> None:
        self.base_lr = check_positive(base_lr, "base_lr")

    def _value(self, step: int) -> float:
        return self.base_lr


class StepDecay(Schedule):
    """:math:`\\eta_t = \\eta_0\\, \\gamma^{\\lfloor t / s \\rfloor}`: multiply by :math:`\\gamma` every
    :math:`s` = ``step_size`` steps (e.g. divide by 10 at fixed epochs). Equals ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        self.base_lr = check_positive(base_lr, "base_lr")
        self.step_size = _check_positive_int(step_size, "step_size")
        self.gamma = _check_factor(gamma, "gamma")

    def _value(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)


class ExponentialDecay(Schedule):
    """:math:`\\eta_t = \\eta_0\\, \\gamma^{t}`. Equals ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, base_lr: float, gamma: float) -> None:
        self.base_lr = check_positive(base_lr, "base_lr")
        self.gamma = _check_factor(gamma, "gamma")

    def _value(self, step: int) -> float:
        return self.base_lr * self.gamma**step


class InverseTimeDecay(Schedule):
    """:math:`\\eta_t = \\eta_0 / (1 + k t)` with :math:`k` = ``decay_rate`` (the "1/t" decay)."""

    def __init__(self, base_lr: float, decay_rate: float) -> None:
        self.base_lr = check_positive(base_lr, "base_lr")
        self.decay_rate = check_positive(decay_rate, "decay_rate", allow_zero=True)

    def _value(self, step: int) -> float:
        return self.base_lr / (1.0 + self.decay_rate * step)


class CosineAnnealing(Schedule):
    """Half a cosine from :math:`\\eta_0` down to the floor :math:`\\eta_{min}` over :math:`T` steps
    (Loshchilov & Hutter, SGDR, without restarts):

    .. math::
        \\eta_t = \\eta_{min} + \\tfrac12 (\\eta_0 - \\eta_{min}) \\left(1 + \\cos\\frac{\\pi\\, t}{T}\\right)
        \\quad (t \\le T), \\qquad \\eta_t = \\eta_{min} \\quad (t > T).

    For :math:`t \\le T` equals ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T, eta_min=min_lr)``
    (which, unlike this schedule, climbs back up after :math:`T`).
    """

    def __init__(self, base_lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        self.base_lr = check_positive(base_lr, "base_lr")
        self.total_steps = _check_positive_int(total_steps, "total_steps")
        self.min_lr = check_positive(min_lr, "min_lr", allow_zero=True)
        if self.min_lr > self.base_lr:
            raise ValueError(f"min_lr must not exceed base_lr={self.base_lr!r}, got {min_lr!r}")

    def _value(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


class LinearWarmup(Schedule):
    """Ramp linearly up to another schedule over :math:`W` = ``warmup_steps``, then follow it:

    .. math::
        \\eta_t = \\eta^{after}_0 \\left(f_0 + (1 - f_0) \\frac{t}{W}\\right) \\quad (t < W), \\qquad
        \\eta_t = \\eta^{after}_{t - W} \\quad (t \\ge W)

    with :math:`f_0` = ``start_factor``. The wrapped schedule starts its own clock after the
    warm-up, as ``torch.optim.lr_scheduler.SequentialLR([LinearLR(optimizer, start_factor, 1.0, W),
    after], milestones=[W])`` does. ``base_lr`` is the wrapped schedule's.
    """

    def __init__(self, after: Schedule, warmup_steps: int, start_factor: float = 0.1) -> None:
        if not isinstance(after, Schedule):
            raise ValueError(f"after must be a Schedule, got {type(after).__name__}")
        self.after = after
        self.warmup_steps = _check_positive_int(warmup_steps, "warmup_steps")
        self.start_factor = check_positive(start_factor, "start_factor", allow_zero=True)
        if self.start_factor > 1:
            raise ValueError(f"start_factor must lie in [0, 1], got {start_factor!r}")
        self.base_lr = after.base_lr

    def _value(self, step: int) -> float:
        if step >= self.warmup_steps:
            return self.after._value(step - self.warmup_steps)
        fraction = step / self.warmup_steps
        return self.after._value(0) * (self.start_factor + (1.0 - self.start_factor) * fraction)


def set_learning_rate(config: Config | None, schedule: Schedule, step: int) -> Config:
    """Set ``config["learning_rate"] = schedule(step)`` for a NumPy rule and return the config
    (a new dict when ``config`` is None)."""
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise ValueError(f"config must be a dict or None, got {type(config).__name__}")
    config["learning_rate"] = schedule(step)
    return config


class ScheduledRule:
    """A NumPy update rule whose learning rate follows a schedule.

    Call it like the rule, ``next_w, config = scheduled(w, dw, config)``; call ``t`` (counted
    from ``start_step``) uses ``config["learning_rate"] = schedule(t)``. The step counter lives
    in this object, not in the config (the rules reject unknown config keys), so use one
    ``ScheduledRule`` per training run. Works with :func:`cs231n_utils.landscapes.run_trajectory`.
    """

    def __init__(self, rule: UpdateRule, schedule: Schedule, start_step: int = 0) -> None:
        if not callable(rule):
            raise ValueError(f"rule must be callable, got {type(rule).__name__}")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        self.rule, self.schedule = rule, schedule
        self.step = _check_step(start_step, "start_step")

    def __call__(self, w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
        config = set_learning_rate(config, self.schedule, self.step)
        result = self.rule(w, dw, config)
        self.step += 1
        return result

    def __repr__(self) -> str:
        name = getattr(self.rule, "__name__", repr(self.rule))
        return f"ScheduledRule({name}, {self.schedule!r}, step={self.step})"


def torch_scheduler(optimizer: Any, schedule: Schedule) -> Any:
    """A ``torch.optim.lr_scheduler.LambdaLR`` that drives ``optimizer`` along ``schedule``.

    Each parameter group's learning rate becomes :math:`\\eta^{group}_0 \\cdot \\text{schedule}(t) / \\eta_0`
    after ``t`` calls of ``scheduler.step()``: exactly ``schedule(t)`` for groups created with
    ``lr = schedule.base_lr``, and the same relative decay for groups with their own learning
    rate (e.g. discriminative fine-tuning). Works with any ``torch.optim.Optimizer`` subclass.
    """
    import torch

    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    base_lr = schedule.base_lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / base_lr)
