"""Grade a student's NumPy update rule against ``cs231n_utils.optim``: :func:`check_update_rule`."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..kernel.serve import quiet
from .guard import ReferenceWatch
from .mutants import IN_PLACE, mutants_for
from .report import GradeReport, PropertyResult
from .rules import TOLERANCE, RuleSpec, Trial, make_trials, max_deviation, rule_spec, run_rule, step_scale

__all__ = ["check_update_rule", "quiet", "check_count", "ALL_STEPS_WEIGHT"]

ALL_STEPS_WEIGHT = 6
"""Weight of "all steps match" against 5 for the other properties: a rule that is right on the
first step only (a bug in carrying state) keeps 5/11 < 1/2 of the points."""


def check_count(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass
class _StudentRun:
    """What happened when the student's rule ran through one trial."""

    positions: list[np.ndarray] = field(default_factory=list)
    error: str | None = None  # exception or malformed return value; the run stopped there
    api_error: str | None = None
    mutated: str | None = None
    final_config: Any = None

    @property
    def complete(self) -> bool:
        return self.error is None


def _call(rule: Callable, w: np.ndarray, dw: np.ndarray, config: Any, watch: ReferenceWatch) -> Any:
    with quiet(), watch:
        return rule(w, dw, config)


def _one_step(rule: Callable, w: np.ndarray, dw: np.ndarray, config: Any, watch: ReferenceWatch,
              run: _StudentRun, step: int) -> tuple[np.ndarray, Any] | None:
    """One call on private copies; records problems in ``run`` and returns (next_w, config) or None."""
    w_in, dw_in, config_in = w.copy(), dw.copy(), copy.deepcopy(config)
    try:
        result = _call(rule, w_in, dw_in, config_in, watch)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of student code is reported, not raised
        run.error = f"step {step} raised {type(error).__name__}: {error}"
        return None
    if not (isinstance(result, tuple) and len(result) == 2):
        run.api_error = run.error = f"step {step} returned {type(result).__name__}, not a tuple (next_w, config)"
        return None
    next_w, new_config = result
    try:
        next_w = np.array(next_w, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        next_w = None
    if next_w is None or next_w.shape != w.shape or not isinstance(new_config, dict):
        run.api_error = run.error = (
            f"step {step} returned ({type(result[0]).__name__} of shape {np.shape(result[0])}, "
            f"{type(new_config).__name__}); expected (array of shape {w.shape}, dict)"
        )
        return None
    if not (np.array_equal(w_in, w, equal_nan=True) and np.array_equal(dw_in, dw, equal_nan=True)):
        run.mutated = run.mutated or f"step {step} changed its input {'w' if not np.array_equal(w_in, w) else 'dw'} in place"
    return next_w, new_config


def _run_student(rule: Callable, trials: list[Trial], watch: ReferenceWatch, *, interleaved: bool = False) -> list[_StudentRun]:
    """Run each trial on the student's own trajectory; with ``interleaved`` the trials advance in
    lock step (trial 1 step 1, trial 2 step 1, ...), which exposes state kept outside ``config``."""
    runs = [_StudentRun() for _ in trials]
    states = [(trial.w, copy.deepcopy(trial.config)) for trial in trials]
    order = (
        [(i, k) for k in range(len(trials[0].grads)) for i in range(len(trials))]
        if interleaved
        else [(i, k) for i in range(len(trials)) for k in range(len(trials[i].grads))]
    )
    for i, k in order:
        run = runs[i]
        if not run.complete:
            continue
        w, config = states[i]
        outcome = _one_step(rule, w, trials[i].grads[k], config, watch, run, k + 1)
        if outcome is None:
            continue
        run.positions.append(outcome[0])
        states[i] = outcome
        run.final_config = outcome[1]
    return runs


def _compare(trials: list[Trial], runs: list[_StudentRun], references: list[list[np.ndarray]], steps: int | None) -> str | None:
    """None if every run matches its reference over the first ``steps`` steps (all if None),
    else a sentence describing the first mismatch."""
    for index, (trial, run, reference) in enumerate(zip(trials, runs, references), start=1):
        if not run.complete:
            return f"trial {index} ({trial.describe()}): {run.error}"
        scale = step_scale(trial.w, reference)
        deviation, step = max_deviation(run.positions[:steps], reference[:steps], scale)
        if deviation > TOLERANCE:
            return (f"trial {index} ({trial.describe()}): step {step} differs from the reference by "
                    f"{deviation:.2g} times the step size")
    return None


def _state_detail(spec: RuleSpec, trials: list[Trial], runs: list[_StudentRun],
                  interleaved_runs: list[_StudentRun]) -> str | None:
    """None if the state lives in config under the reference's keys, else why not."""
    for run in runs:
        if run.complete and spec.state:
            missing = [k for k in spec.state if k not in run.final_config]
            if missing:
                return f"the returned config has no {', '.join(repr(k) for k in missing)}"
    for index, (trial, alone, together) in enumerate(zip(trials, runs, interleaved_runs), start=1):
        if not (alone.complete and together.complete):
            return f"trial {index}: {together.error or alone.error}"
        scale = step_scale(trial.w, alone.positions)
        if max_deviation(together.positions, alone.positions, scale)[0] > TOLERANCE:
            return ("two optimizations run side by side interfere: keep all state in config "
                    "(no global variables or function attributes)")
    return None


def _likely_mistakes(spec: RuleSpec, trials: list[Trial], runs: list[_StudentRun],
                     references: list[list[np.ndarray]]) -> tuple[str, ...]:
    """Mistakes of the mutants that reproduce the student's results on every trial."""
    if not all(run.complete for run in runs):
        return ()
    found = []
    for mutant in mutants_for(spec.name):
        outputs = [run_rule(mutant.rule, trial) for trial in trials]
        scales = [step_scale(t.w, r) for t, r in zip(trials, references)]
        if all(max_deviation(o, r, s)[0] <= TOLERANCE for o, r, s in zip(outputs, references, scales)):
            continue  # indistinguishable from the reference on these trials
        if all(max_deviation(run.positions, o, s)[0] <= TOLERANCE for run, o, s in zip(runs, outputs, scales)):
            found.append(mutant.mistake)
    return tuple(found)


def check_update_rule(
    student_rule: Callable, reference_name: str, *, trials: int = 12, steps: int = 6, seed: int = 0
) -> GradeReport:
    """Compare a student's update rule ``next_w, config = rule(w, dw, config)`` with
    ``cs231n_utils.optim.<reference_name>`` and return a :class:`GradeReport`.

    Runs ``trials`` random trials (random shapes, hyperparameters and gradient sequences of
    ``steps`` steps, the returned config passed back in each time) plus two with ``config=None``.
    Student and reference always get private deep copies of every input. Properties (weight):
    returns ``(next_w, config)`` (1); leaves ``w`` and ``dw`` unchanged (1); keeps its state in
    ``config`` under the reference's keys, not in globals (1); first step with ``config=None``
    matches the defaults (1); first step matches for random hyperparameters (1); all steps match
    (:data:`ALL_STEPS_WEIGHT` = 6). A rule wrong from the second step on keeps 5/11 of the points,
    one wrong from the first step 3/11.
    A rule that executes a reference implementation, or raises ``NotImplementedError``, gets zero.
    Mutants of the reference (:mod:`.mutants`) that reproduce the student's results name the mistake.
    """
    if not callable(student_rule):
        raise ValueError(f"student_rule must be callable, got {type(student_rule).__name__}")
    spec = rule_spec(reference_name)
    trials = check_count(trials, "trials", 2)
    steps = check_count(steps, "steps", 2)
    seed = check_count(seed, "seed", 0)

    rng = np.random.default_rng(seed)
    default_trials = make_trials(spec, rng, 2, steps, defaults=True)
    random_trials = make_trials(spec, rng, trials, steps, defaults=False)
    everything = default_trials + random_trials
    watch = ReferenceWatch()
    try:
        runs = _run_student(student_rule, everything, watch)
        interleaved = _run_student(student_rule, random_trials[:2], watch, interleaved=True)
    except NotImplementedError:
        return GradeReport(reference_name, zero_reason=f"{reference_name} raises NotImplementedError: not implemented yet.")
    if watch.triggered:
        return GradeReport(reference_name, zero_reason=watch.refusal())

    references = [run_rule(spec.reference, trial) for trial in everything]
    default_runs, random_runs = runs[:2], runs[2:]
    api = next((run.api_error for run in runs if run.api_error), None)
    mutated = next((run.mutated for run in runs if run.mutated), None)
    state = _state_detail(spec, random_trials[:2], random_runs[:2], interleaved)
    defaults = _compare(default_trials, default_runs, references[:2], steps=1)
    first = _compare(random_trials, random_runs, references[2:], steps=1)
    every = _compare(everything, runs, references, steps=None)
    state_keys = "/".join(spec.state) or "none"
    properties = (
        PropertyResult.from_problem("returns (next_w, config) with next_w shaped like w", 1, api, explains=True),
        PropertyResult.from_problem("leaves its inputs w and dw unchanged", 1, mutated, explains=True),
        PropertyResult.from_problem(f"keeps its state in the returned config (keys: {state_keys})", 1, state,
                                    explains=True),
        PropertyResult.from_problem("first step with config=None uses the default hyperparameters", 1, defaults),
        PropertyResult.from_problem("first step matches the reference for random shapes and hyperparameters", 1, first),
        PropertyResult.from_problem(f"all {steps} consecutive steps match (state carried through config)",
                                    ALL_STEPS_WEIGHT, every),
    )
    mistakes = () if every is None else _likely_mistakes(spec, everything, runs, references)
    if mutated is not None:
        mistakes = (IN_PLACE.mistake, *mistakes)
    return GradeReport(reference_name, properties, mistakes)
