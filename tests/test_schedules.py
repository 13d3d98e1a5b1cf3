"""Learning-rate schedules against closed forms and against torch.optim.lr_scheduler."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cs231n_utils import landscapes, optim
from cs231n_utils.schedules import (
    Constant,
    CosineAnnealing,
    ExponentialDecay,
    InverseTimeDecay,
    LinearWarmup,
    ScheduledRule,
    StepDecay,
    set_learning_rate,
    torch_scheduler,
)

STEPS = 40


def _torch_lrs(make_scheduler, base_lr: float, steps: int = STEPS) -> np.ndarray:
    """Learning rates torch.optim.SGD actually uses at steps 0..steps-1 under a torch scheduler."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=base_lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


# ---------------------------------------------------------------------------- closed forms


def test_step_decay_closed_form():
    schedule = StepDecay(0.1, step_size=10, gamma=0.5)
    assert schedule(0) == schedule(9) == 0.1
    assert schedule(10) == pytest.approx(0.05) and schedule(19) == pytest.approx(0.05)
    assert schedule(35) == pytest.approx(0.1 * 0.5**3)


def test_exponential_decay_closed_form():
    schedule = ExponentialDecay(0.2, gamma=0.9)
    np.testing.assert_allclose(schedule.values(STEPS), 0.2 * 0.9 ** np.arange(STEPS), rtol=1e-14)


def test_inverse_time_decay_closed_form():
    schedule = InverseTimeDecay(1.0, decay_rate=0.5)
    assert [schedule(t) for t in (0, 1, 2, 6)] == [1.0, 1.0 / 1.5, 0.5, 0.25]


def test_cosine_closed_form_and_floor():
    schedule = CosineAnnealing(1.0, total_steps=100, min_lr=0.1)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.55)  # halfway: the mean of base and floor
    assert schedule(25) == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(0.5)))
    assert schedule(100) == pytest.approx(0.1) and schedule(1000) == pytest.approx(0.1)
    values = schedule.values(101)
    assert np.all(np.diff(values) < 0)


def test_linear_warmup_ramps_then_hands_over_with_a_shifted_clock():
    after = ExponentialDecay(0.4, gamma=0.5)
    schedule = LinearWarmup(after, warmup_steps=4, start_factor=0.0)
    np.testing.assert_allclose(schedule.values(7), [0.0, 0.1, 0.2, 0.3, 0.4, 0.2, 0.1])
    assert schedule.base_lr == 0.4


def test_constant():
    assert Constant(0.3).values(3).tolist() == [0.3, 0.3, 0.3]


# ---------------------------------------------------------------------------- torch schedulers


@pytest.mark.parametrize(
    "ours, make_reference",
    [
        (StepDecay(0.1, step_size=7, gamma=0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.3)),
        (ExponentialDecay(0.1, gamma=0.93), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.93)),
        (
            CosineAnnealing(0.1, total_steps=STEPS - 1, min_lr=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS - 1, eta_min=0.01),
        ),
        (
            LinearWarmup(CosineAnnealing(0.1, total_steps=STEPS - 6), warmup_steps=5, start_factor=0.2),
            lambda o: torch.optim.lr_scheduler.SequentialLR(
                o,
                [
                    torch.optim.lr_scheduler.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=5),
                    torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS - 6),
                ],
                milestones=[5],
            ),
        ),
    ],
    ids=["step", "exponential", "cosine", "warmup+cosine"],
)
def test_matches_torch_scheduler(ours, make_reference):
    reference = _torch_lrs(make_reference, ours.base_lr, STEPS)
    np.testing.assert_allclose(ours.values(STEPS), reference, rtol=1e-10, atol=1e-15)
    # ...and through our LambdaLR adapter the optimizer sees the same learning rates.
    adapted = _torch_lrs(lambda o: torch_scheduler(o, ours), ours.base_lr, STEPS)
    np.testing.assert_allclose(adapted, reference, rtol=1e-10, atol=1e-15)


def test_torch_scheduler_keeps_each_param_group_relative_learning_rate():
    schedule = ExponentialDecay(0.1, gamma=0.5)
    backbone, head = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [backbone], "lr": 0.01}, {"params": [head]}], lr=0.1)
    scheduler = torch_scheduler(optimizer, schedule)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.01 / 8, 0.1 / 8])


def test_torch_sgd_with_adapter_matches_numpy_scheduled_rule():
    quadratic = landscapes.Quadratic(np.array([1.0, 5.0]))
    schedule = LinearWarmup(StepDecay(0.15, step_size=10, gamma=0.5), warmup_steps=5)
    numpy_run = landscapes.run_trajectory(ScheduledRule(optim.sgd, schedule), quadratic, [2.0, -1.0], 30)

    weight = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=schedule.base_lr)
    scheduler = torch_scheduler(optimizer, schedule)
    for _ in range(30):
        optimizer.zero_grad()
        weight.grad = torch.from_numpy(quadratic.grad(weight.detach().numpy()))
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(weight.detach().numpy(), numpy_run.path[-1], rtol=1e-12)


# ---------------------------------------------------------------------------- NumPy rules


def test_scheduled_rule_sets_learning_rate_each_step():
    schedule = InverseTimeDecay(0.5, decay_rate=1.0)
    rule = ScheduledRule(optim.sgd, schedule)
    w, config = np.array([1.0]), None
    for t in range(4):
        w, config = rule(w, np.array([1.0]), config)
        assert config["learning_rate"] == 0.5 / (1 + t)
    # w = 1 - sum_t 0.5 / (1 + t)
    np.testing.assert_allclose(w, [1.0 - 0.5 * (1 + 1 / 2 + 1 / 3 + 1 / 4)])
    assert rule.step == 4


def test_set_learning_rate_in_a_hand_written_loop():
    schedule = StepDecay(1.0, step_size=2, gamma=0.5)
    config = {"momentum": 0.0}
    w = np.array([0.0])
    for t in range(4):
        config = set_learning_rate(config, schedule, t)
        w, config = optim.sgd_momentum(w, np.array([-1.0]), config)
    np.testing.assert_allclose(w, [1.0 + 1.0 + 0.5 + 0.5])


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: StepDecay(-0.1, step_size=10), "base_lr"),
        (lambda: StepDecay(0.1, step_size=0), "step_size"),
        (lambda: StepDecay(0.1, step_size=10, gamma=1.5), "gamma"),
        (lambda: ExponentialDecay(0.1, gamma=0.0), "gamma"),
        (lambda: ExponentialDecay(float("nan"), gamma=0.5), "base_lr"),
        (lambda: InverseTimeDecay(0.1, decay_rate=-1.0), "decay_rate"),
        (lambda: CosineAnnealing(0.1, total_steps=2.5), "total_steps"),
        (lambda: CosineAnnealing(0.1, total_steps=10, min_lr=0.2), "min_lr"),
        (lambda: LinearWarmup(lambda t: 0.1, warmup_steps=5), "after"),
        (lambda: LinearWarmup(Constant(0.1), warmup_steps=0), "warmup_steps"),
        (lambda: LinearWarmup(Constant(0.1), warmup_steps=5, start_factor=2.0), "start_factor"),
        (lambda: Constant(0.1)(-1), "step"),
        (lambda: Constant(0.1)(1.5), "step"),
        (lambda: Constant(0.1).values(-2), "steps"),
        (lambda: ScheduledRule("sgd", Constant(0.1)), "rule"),
        (lambda: ScheduledRule(optim.sgd, 0.1), "schedule"),
        (lambda: set_learning_rate([], Constant(0.1), 0), "config"),
        (lambda: torch_scheduler("sgd", Constant(0.1)), "optimizer"),
        (lambda: torch_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), None), "schedule"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
