"""Grade a student's ``torch.optim.Optimizer`` subclass against the NumPy reference rule:
:func:`check_torch_optimizer`.

Parameters are float64 tensors built from the same random starts and gradient sequences as the
NumPy checks; each parameter's trajectory must equal ``cs231n_utils.optim.<rule>`` run on that
parameter alone with the hyperparameters of its group.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .guard import ReferenceWatch
from .mutants import mutants_for
from .report import GradeReport, PropertyResult
from .rules import TOLERANCE, RuleSpec, Trial, describe_config, make_trials, max_deviation, rule_spec, run_rule, step_scale
from ..kernel.runners import CLOSURE_LOSS
from .remote import scenario_runner
from .update_rule import check_count

__all__ = ["check_torch_optimizer", "TORCH_ALL_STEPS_WEIGHT"]

TORCH_ALL_STEPS_WEIGHT = 8
"""Weight of "all steps match" against 7 for the other properties (three of which compare the
optimizer with itself and pass even for a wrong formula): an optimizer that is right on the
first step only keeps 7/15 < 1/2 of the points."""

# NumPy config -> keyword arguments of the torch optimizer (torch.optim's names and defaults).
_TORCH_ARGUMENTS: dict[str, Callable[[dict[str, float]], dict[str, Any]]] = {
    "adam": lambda c: {"lr": c["learning_rate"], "betas": (c["beta1"], c["beta2"]), "eps": c["epsilon"]},
}


@dataclass(frozen=True)
class _Group:
    """Parameters optimised together with one NumPy config (``None``: the class's defaults)."""

    params: tuple[Trial, ...]
    config: dict[str, float] | None

    def describe(self) -> str:
        shapes = ", ".join(str(p.w.shape) for p in self.params)
        return f"{describe_config(self.config)}, parameters of shapes {shapes}"

    def reference(self, spec: RuleSpec) -> list[list[np.ndarray]]:
        return [run_rule(spec.reference, Trial(p.w, p.grads, copy.deepcopy(self.config))) for p in self.params]


@dataclass
class _Run:
    """Per-parameter positions after each step, and what went wrong."""

    positions: list[list[np.ndarray]] = field(default_factory=list)
    error: str | None = None
    grad_changed: str | None = None
    untouched_moved: bool = False
    closure: str | None = None


class _WarmUp(torch.optim.Optimizer):
    """A trivial optimizer: using one once triggers torch's lazy imports outside the profiler."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.0})

    def step(self, closure=None):
        return None


def _warm_up() -> None:
    optimizer = _WarmUp([torch.nn.Parameter(torch.zeros(1))])
    optimizer.step()
    optimizer.load_state_dict(optimizer.state_dict())


def _torch_kwargs(spec: RuleSpec, config: dict[str, float] | None) -> dict[str, Any]:
    return {} if config is None else _TORCH_ARGUMENTS[spec.name](config)


def _parameters(group: _Group) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.tensor(p.w, dtype=torch.float64)) for p in group.params]


def _closure_problem(calls: Any, returned: Any) -> str | None:
    if calls != 1:
        return f"step(closure) called the closure {calls} times instead of once"
    if not isinstance(returned, float) or returned != CLOSURE_LOSS:
        return f"step(closure) returned {returned!r} instead of the closure's loss"
    return None


def _positions(value: Any, count: int) -> list[list[np.ndarray]]:
    """The recorded positions, checked to be ``count`` float arrays per step (a lying kernel
    could send anything)."""
    if not isinstance(value, list):
        raise ValueError("positions must be a list")
    steps = []
    for step in value:
        if not (isinstance(step, list) and len(step) == count and all(isinstance(a, np.ndarray) for a in step)):
            raise ValueError("each step must hold one array per parameter")
        steps.append([np.asarray(a, dtype=np.float64) for a in step])
    return steps


def _run(runner: Callable[[str, dict], Any], spec: RuleSpec, groups: list[_Group], steps: int, *,
         constructor_config: dict[str, float] | None = None, untouched: bool = False, closure: bool = False,
         reload_at: int | None = None) -> _Run:
    """Optimise ``groups`` for ``steps`` steps with the student's class and record every
    parameter's trajectory (the scenario runs where the class lives: :mod:`cs231n_utils.kernel.runners`).

    ``constructor_config`` gives the constructor's keyword arguments when there are several
    groups (each group then carries its own hyperparameters); ``untouched`` adds a parameter
    that never gets a gradient; ``closure`` checks ``step(closure)`` on the first step;
    ``reload_at`` rebuilds the optimizer from its ``state_dict()`` before that step.
    """
    payload = {
        "groups": [{"params": [p.w for p in g.params], "kwargs": _torch_kwargs(spec, g.config)} for g in groups],
        "constructor_kwargs": _torch_kwargs(spec, constructor_config),
        "grads": [[[p.grads[k] for p in g.params] for g in groups] for k in range(steps)],
        "untouched": untouched, "closure": closure, "reload_at": reload_at,
    }
    result = runner("optimizer_scenario", payload)
    if result["not_implemented"]:
        raise NotImplementedError
    run = _Run(error=result["error"], grad_changed=result["grad_changed"], untouched_moved=bool(result["untouched_moved"]))
    run.positions = _positions(result["positions"], sum(len(g.params) for g in groups))
    if closure and run.error is None:
        run.closure = _closure_problem(result["closure_calls"], result["closure_result"])
    return run


def _mismatch(spec: RuleSpec, groups: list[_Group], run: _Run, steps: int | None,
              configs: list[dict[str, float] | None] | None = None) -> str | None:
    """None if every parameter follows the reference for the first ``steps`` steps, else why not.

    ``configs`` overrides the groups' configs (to test a hypothesis about a mistake)."""
    if run.error is not None:
        return run.error
    index = 0
    for g, group in enumerate(groups):
        config = group.config if configs is None else configs[g]
        for p, reference in zip(group.params, _Group(group.params, config).reference(spec)):
            student = [positions[index] for positions in run.positions]
            deviation, step = max_deviation(student[:steps], reference[:steps], step_scale(p.w, reference))
            if deviation > TOLERANCE:
                return (f"{group.describe()}: parameter {index + 1}, step {step} differs from the "
                        f"reference by {deviation:.2g} times the step size")
            index += 1
    return None


def _inconsistency(groups: list[_Group], run: _Run, alone: list[_Run], what: str) -> str | None:
    """None if ``run`` moved every parameter exactly as the student's own runs ``alone`` did (one
    per group, without the variation being tested), else why not."""
    if run.error is not None or any(r.error for r in alone):
        return run.error or next(r.error for r in alone if r.error)
    index = 0
    for group, own in zip(groups, alone):
        for p_index, p in enumerate(group.params):
            expected = [positions[p_index] for positions in own.positions]
            student = [positions[index] for positions in run.positions]
            deviation, step = max_deviation(student, expected, step_scale(p.w, expected))
            if deviation > TOLERANCE:
                return (f"{what}: parameter {index + 1} differs at step {step} from the same optimization "
                        f"run {'per group' if len(groups) > 1 else 'without it'}")
            index += 1
    return None


def _likely_mistakes(spec: RuleSpec, groups: list[_Group], runs: list[_Run]) -> tuple[str, ...]:
    """Mistakes of NumPy mutants that reproduce every parameter trajectory of the student."""
    if any(run.error for run in runs):
        return ()
    found = []
    for mutant in mutants_for(spec.name):
        ok, distinguishable = True, False
        for group, run in zip(groups, runs):
            for index, p in enumerate(group.params):
                trial = Trial(p.w, p.grads, copy.deepcopy(group.config))
                reference, output = run_rule(spec.reference, trial), run_rule(mutant.rule, trial)
                scale = step_scale(p.w, reference)
                distinguishable |= max_deviation(output, reference, scale)[0] > TOLERANCE
                student = [positions[index] for positions in run.positions]
                ok &= max_deviation(student, output, scale)[0] <= TOLERANCE
        if ok and distinguishable:
            found.append(mutant.mistake)
    return tuple(found)


def _run_with_step_counts(spec: RuleSpec, trial: Trial, counts: list[int]) -> list[np.ndarray]:
    """The NumPy reference on ``trial`` with the step count forced to ``counts[k]`` at step k
    (moments carried as usual): the trajectory of a rule whose ``t`` is miscounted."""
    w, config = trial.w.copy(), copy.deepcopy(trial.config) or {}
    positions = []
    with np.errstate(all="ignore"):
        for dw, count in zip(trial.grads, counts):
            config["t"] = count - 1  # the reference increments t before the bias correction
            w, config = spec.reference(w, dw.copy(), config)
            positions.append(np.array(w, dtype=np.float64))
    return positions


def _global_step_counter(spec: RuleSpec, groups: list[_Group], runs: list[_Run]) -> bool:
    """True when every trajectory matches Adam whose one step counter, shared by the optimizer's
    ``n`` parameters, advances once per parameter update (parameter ``j`` at step ``k`` uses
    ``t = (k - 1) n + j + 1``), and some parameter tells this apart from the reference."""
    if "t" not in spec.state or any(run.error for run in runs):
        return False
    distinguishable = False
    for group, run in zip(groups, runs):
        n = len(group.params)
        for j, p in enumerate(group.params):
            trial = Trial(p.w, p.grads, copy.deepcopy(group.config))
            counts = [k * n + j + 1 for k in range(len(p.grads))]
            reference, output = run_rule(spec.reference, trial), _run_with_step_counts(spec, trial, counts)
            scale = step_scale(p.w, reference)
            distinguishable |= max_deviation(output, reference, scale)[0] > TOLERANCE
            student = [positions[j] for positions in run.positions]
            if max_deviation(student, output, scale)[0] > TOLERANCE:
                return False
    return distinguishable


READS_DEFAULTS = ("step() reads the hyperparameters from self.defaults; read each param group's "
                  "own values, group['lr'], group['betas'] and group['eps'], for every group of "
                  "self.param_groups.")

GLOBAL_STEP_COUNTER = ("one step counter is shared by all parameters and advances once per parameter "
                       "update, so each parameter's bias correction uses the wrong t: keep t per "
                       "parameter in self.state[p] and increment it once per step.")


def _builds_on_reference(bases: list[str]) -> str | None:
    """Why a class whose MRO holds these ``module.qualname`` entries builds on a reference, or None."""
    for base in bases:
        if base == "torch.optim.optimizer.Optimizer" or not base.startswith(("torch.optim", "cs231n_utils")):
            continue
        return (f"Your class builds on {base}. Subclass torch.optim.Optimizer "
                "and write step() yourself.")
    return None


def check_torch_optimizer(
    student_class: type, reference_name: str = "adam", *, trials: int = 4, steps: int = 6, seed: int = 0
) -> GradeReport:
    """Compare a student's ``torch.optim.Optimizer`` subclass with ``cs231n_utils.optim.<reference_name>``.

    The class is built like torch's optimizer of the same name (for ``"adam"``:
    ``cls(params, lr=..., betas=(beta1, beta2), eps=...)``). Each of ``trials`` random trials
    optimises one to three float64 parameters of random shapes for ``steps`` steps on random
    gradients. Properties (weight): defaults equal torch's (1); first step (1) and all steps
    (:data:`TORCH_ALL_STEPS_WEIGHT` = 8) match the NumPy rule for random hyperparameters; ``p.grad`` is left unchanged (1);
    ``step(closure)`` calls the closure once and returns its loss (1). Three more compare the
    student's optimizer with itself, so they reward correct bookkeeping even when the formula is
    wrong: two param groups move exactly as two single-group runs with those hyperparameters (1);
    an extra parameter whose grad is None changes nothing (1); training resumes exactly after
    ``load_state_dict(state_dict())`` (1).
    Zero credit for a class that is not an Optimizer subclass, builds on torch's or the course's
    optimizers, executes a reference implementation, or raises ``NotImplementedError``.
    """
    spec = rule_spec(reference_name)
    if reference_name not in _TORCH_ARGUMENTS:
        raise ValueError(f"reference_name must be one of {sorted(_TORCH_ARGUMENTS)}, got {reference_name!r}")
    trials = check_count(trials, "trials", 1)
    steps = check_count(steps, "steps", 2)
    seed = check_count(seed, "seed", 0)
    watch = ReferenceWatch()
    runner = scenario_runner(student_class, watch)
    described = runner("describe_optimizer_class", {})
    subject = str(described["name"])
    if not described["is_optimizer"]:
        return GradeReport(subject, zero_reason="It must be a class that subclasses torch.optim.Optimizer.")
    reason = _builds_on_reference([str(b) for b in described["bases"]])
    if reason is not None:
        return GradeReport(subject, zero_reason=reason)

    rng = np.random.default_rng(seed)

    def group(config: dict[str, float] | None) -> _Group:
        return _Group(tuple(make_trials(spec, rng, int(rng.integers(1, 4)), steps, defaults=True)), config)

    default_group = group(None)
    random_groups = [group(spec.sample_config(rng)) for _ in range(trials)]
    split_groups = [group(spec.sample_config(rng)), group(spec.sample_config(rng))]
    constructor_config = spec.sample_config(rng)

    _warm_up()
    try:
        default_run = _run(runner, spec, [default_group], steps)
        random_runs = [_run(runner, spec, [g], steps) for g in random_groups]
        split_alone = [_run(runner, spec, [g], steps) for g in split_groups]
        split_run = _run(runner, spec, split_groups, steps, constructor_config=constructor_config)
        untouched_run = _run(runner, spec, [random_groups[0]], steps, untouched=True)
        closure_run = _run(runner, spec, [random_groups[0]], steps, closure=True)
        reload_run = _run(runner, spec, [random_groups[0]], steps, reload_at=steps // 2)
    except NotImplementedError:
        return GradeReport(subject, zero_reason=f"{subject} raises NotImplementedError: not implemented yet.")
    if watch.triggered:
        return GradeReport(subject, zero_reason=watch.refusal())

    runs = [default_run, *random_runs]
    defaults = _mismatch(spec, [default_group], default_run, steps=1)
    first = next(filter(None, (_mismatch(spec, [g], r, 1) for g, r in zip(random_groups, random_runs))), None)
    every = next(filter(None, (_mismatch(spec, [g], r, None) for g, r in zip([default_group, *random_groups], runs))), None)
    split = _inconsistency(split_groups, split_run, split_alone, "with two param groups")
    skipped = _inconsistency([random_groups[0]], untouched_run, random_runs[:1], "with an extra parameter") or (
        "the parameter without gradient changed" if untouched_run.untouched_moved else None)
    closure = closure_run.error or closure_run.closure
    changed = next((r.grad_changed or r.error for r in runs if r.grad_changed or r.error), None)
    reload = _inconsistency([random_groups[0]], reload_run, random_runs[:1], "after load_state_dict")
    properties = (
        PropertyResult.from_problem("default hyperparameters equal torch.optim's", 1, defaults),
        PropertyResult.from_problem("first step matches the reference for random hyperparameters", 1, first),
        PropertyResult.from_problem(f"all {steps} steps match (state kept per parameter)", TORCH_ALL_STEPS_WEIGHT,
                                    every),
        PropertyResult.from_problem("uses each param group's own hyperparameters", 1, split),
        PropertyResult.from_problem("skips parameters whose grad is None", 1, skipped, explains=True),
        PropertyResult.from_problem("leaves p.grad unchanged", 1, changed, explains=True),
        PropertyResult.from_problem("step(closure) calls the closure once and returns its loss", 1, closure,
                                    explains=True),
        PropertyResult.from_problem("resumes exactly after load_state_dict(state_dict())", 1, reload),
    )
    mistakes = ()
    if every is not None:
        all_groups, all_runs = [default_group, *random_groups], [default_run, *random_runs]
        mistakes = _likely_mistakes(spec, all_groups, all_runs)
        if _global_step_counter(spec, all_groups, all_runs):
            mistakes += (GLOBAL_STEP_COUNTER,)
    if split is not None and split_run.error is None and _mismatch(
        spec, split_groups, split_run, None, configs=[constructor_config, constructor_config]
    ) is None:
        mistakes += (READS_DEFAULTS,)
    return GradeReport(subject, properties, mistakes)
