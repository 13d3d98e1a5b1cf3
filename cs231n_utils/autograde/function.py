"""Grade a student's pure function against a reference on generated inputs: :func:`check_function`.

The exercise-specific checks (:mod:`.second_order_checks`, :mod:`.layer_checks`,
:mod:`.transfer_checks`) describe *what* to compare — groups of input cases, each group one
weighted property, and the mutants that name common mistakes; this module does the running:

- the student and the reference each get private deep copies of every input, and the student
  runs silenced (:func:`~.update_rule.quiet`) under a :class:`~.guard.ReferenceWatch`;
- a group's property passes when, on every case of the group, the selected part of the
  student's output equals the reference's (:func:`compare_outputs`, relative tolerance);
- "leaves its inputs unchanged" is one more property (weight 1) unless the function's job is
  to modify its input;
- a mutant (a buggy variant written out without calling the reference) names the mistake when
  it reproduces the student's outputs on every case and differs from the reference somewhere.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .guard import ReferenceWatch
from .report import DEFAULT_FALLBACK, GradeReport, PropertyResult
from .update_rule import quiet

__all__ = ["Case", "CaseGroup", "FunctionMutant", "check_function", "compare_outputs", "FUNCTION_TOLERANCE",
           "IN_PLACE_MISTAKE"]

FUNCTION_TOLERANCE = 1e-6
"""Largest accepted deviation of an array from the reference, relative to the reference's largest entry."""

IN_PLACE_MISTAKE = ("an input array is modified in place (x *= ..., x[...] = ..., or an in-place "
                    "NumPy call): the caller's data changes. Work on a copy or build a new array.")


@dataclass(frozen=True)
class Case:
    """One call ``f(*args, **kwargs)`` and how feedback describes it."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class CaseGroup:
    """Cases that together make one graded property; ``select`` picks the compared part of the
    output (e.g. ``lambda out: out[1]`` for the cache of ``out, cache``)."""

    description: str
    weight: float
    cases: tuple[Case, ...]
    select: Callable[[Any], Any] = lambda output: output


@dataclass(frozen=True)
class FunctionMutant:
    """A buggy variant of the reference and the feedback sentence that explains its mistake."""

    name: str
    mistake: str
    function: Callable[..., Any]


def _tensor_type() -> type | tuple[()]:
    """``torch.Tensor`` if torch is already imported (a tensor can only exist then), else ``()``:
    NumPy-only checks must not pay for importing torch."""
    torch = sys.modules.get("torch")
    return torch.Tensor if torch is not None else ()


def compare_outputs(student: Any, reference: Any, tolerance: float = FUNCTION_TOLERANCE) -> str | None:
    """None when ``student`` equals ``reference`` (arrays and tensors to ``tolerance`` relative to
    the reference's largest magnitude, recursively through tuples, lists and dicts), else why not."""
    tensor = _tensor_type()
    if isinstance(reference, tensor):
        reference = reference.detach().cpu().numpy()
    if isinstance(student, tensor):
        student = student.detach().cpu().numpy()
    if isinstance(reference, (tuple, list)):
        if not isinstance(student, (tuple, list)) or len(student) != len(reference):
            return f"expected a {type(reference).__name__} of length {len(reference)}, got {_kind(student)}"
        for index, (s, r) in enumerate(zip(student, reference)):
            problem = compare_outputs(s, r, tolerance)
            if problem:
                return f"item {index}: {problem}"
        return None
    if isinstance(reference, dict):
        if not isinstance(student, dict) or set(student) != set(reference):
            keys = sorted(student) if isinstance(student, dict) else None
            return f"expected a dict with keys {sorted(reference)}, got {_kind(student) if keys is None else keys}"
        for key in reference:
            problem = compare_outputs(student[key], reference[key], tolerance)
            if problem:
                return f"{key}: {problem}" if isinstance(key, str) else f"[{key!r}]: {problem}"
        return None
    if reference is None or isinstance(reference, (str, bool, np.bool_)):
        same = (student is None if reference is None
                else isinstance(student, str) and student == reference if isinstance(reference, str)
                else isinstance(student, (bool, np.bool_)) and bool(student) == bool(reference))
        return None if same else f"expected {reference!r}, got {_show(student)}"
    expected = np.asarray(reference, dtype=np.float64)
    try:
        actual = np.asarray(student, dtype=np.float64)
    except (TypeError, ValueError):
        return f"expected a number or array of shape {expected.shape}, got {_kind(student)}"
    if actual.shape != expected.shape:
        return f"expected shape {expected.shape}, got shape {actual.shape}"
    if not np.all(np.isfinite(actual) == np.isfinite(expected)):
        return "NaN or infinity where the reference is finite"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-12)
    deviation = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    if deviation > tolerance:
        if expected.shape == ():
            return f"expected {float(expected):.6g}, got {float(actual):.6g}"
        return f"differs from the reference by {deviation:.2g} relative to its largest entry"
    return None


def _show(value: Any) -> str:
    """A scalar's value (``True``, ``None``, ``'train'``, ``0.5``), else its type and shape."""
    if value is None or isinstance(value, (bool, np.bool_, str, int, float, np.number)):
        text = repr(value.item() if isinstance(value, (np.bool_, np.number)) else value)
        return text if len(text) <= 60 else text[:57] + "..."
    return _kind(value)


def _kind(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


@dataclass
class _Outcome:
    output: Any = None
    error: str | None = None
    mutated: bool = False


def _unchanged(before: Any, after: Any) -> bool:
    """True when the arrays, tensors and numbers inside ``after`` equal those in ``before``
    (other objects, e.g. a random generator the function is meant to draw from, are ignored)."""
    if isinstance(before, (tuple, list)):
        return len(before) == len(after) and all(_unchanged(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        return set(before) == set(after) and all(_unchanged(before[k], after[k]) for k in before)
    if isinstance(before, _tensor_type()):
        return isinstance(after, type(before)) and before.shape == after.shape and bool((before == after).all())
    if isinstance(before, (np.ndarray, float, int, np.number)):
        return np.array_equal(np.asarray(before), np.asarray(after), equal_nan=True)
    return True


def _run(function: Callable, case: Case, watch: ReferenceWatch | None, check_inputs: bool) -> _Outcome:
    args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
    try:
        if watch is None:
            with quiet():
                output = function(*args, **kwargs)
        else:
            with quiet(), watch:
                output = function(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of student code is reported, not raised
        return _Outcome(error=f"raised {type(error).__name__}: {error}")
    mutated = check_inputs and not (_unchanged(case.args, args) and _unchanged(case.kwargs, kwargs))
    return _Outcome(output=output, mutated=mutated)


def _mismatch(group: CaseGroup, outcome: _Outcome, expected: Any, tolerance: float) -> str | None:
    if outcome.error is not None:
        return outcome.error
    try:
        selected = group.select(outcome.output)
    except Exception as error:  # noqa: BLE001 - a malformed student output
        return f"the output has the wrong structure ({type(error).__name__}: {error}), got {_kind(outcome.output)}"
    return compare_outputs(selected, group.select(expected), tolerance)


def check_function(
    student: Callable[..., Any],
    reference: Callable[..., Any],
    groups: Sequence[CaseGroup],
    *,
    subject: str,
    mutants: Sequence[FunctionMutant] = (),
    watch: ReferenceWatch | None = None,
    check_inputs: bool = True,
    tolerance: float = FUNCTION_TOLERANCE,
    fallback: str = DEFAULT_FALLBACK,
) -> GradeReport:
    """Compare ``student`` with ``reference`` on every case of ``groups``; a :class:`GradeReport`
    with one property per group (its weight) plus, with ``check_inputs``, "leaves its inputs
    unchanged" (weight 1; a change names :data:`IN_PLACE_MISTAKE`). ``fallback`` ends the
    feedback line printed when nothing known explains a failure. Zero credit if the student raises ``NotImplementedError`` or runs a
    reference module that ``watch`` watches. Each distinct case runs once per function.
    """
    if not callable(student):
        raise ValueError(f"student must be callable, got {type(student).__name__}")
    if not groups:
        raise ValueError("groups must not be empty")
    watch = watch if watch is not None else ReferenceWatch()
    cases = list({id(case): case for group in groups for case in group.cases}.values())
    try:
        outcomes = {id(case): _run(student, case, watch, check_inputs) for case in cases}
    except NotImplementedError:
        return GradeReport(subject, zero_reason=f"{subject} raises NotImplementedError: not implemented yet.")
    if watch.triggered:
        return GradeReport(subject, zero_reason=watch.refusal())
    expected = {id(case): _run(reference, case, None, False).output for case in cases}

    properties = []
    for group in groups:
        detail = None
        for case in group.cases:
            problem = _mismatch(group, outcomes[id(case)], expected[id(case)], tolerance)
            if problem:
                detail = f"{case.description}: {problem}" if case.description else problem
                break
        properties.append(PropertyResult.from_problem(group.description, group.weight, detail))
    if check_inputs:
        changed = next((case for case in cases if outcomes[id(case)].mutated), None)
        properties.append(PropertyResult(
            "leaves its inputs unchanged", 1, changed is None,
            f"{changed.description}: an input was modified in place" if changed is not None else "",
            explains=True))
    else:
        changed = None
    passed = all(p.passed for p in properties)
    mistakes = () if passed else _likely_mistakes(mutants, groups, cases, outcomes, expected, tolerance)
    if changed is not None:
        mistakes = (IN_PLACE_MISTAKE, *mistakes)
    return GradeReport(subject, tuple(properties), mistakes, fallback=fallback)


def _likely_mistakes(mutants: Sequence[FunctionMutant], groups: Sequence[CaseGroup], cases: list[Case],
                     outcomes: dict[int, _Outcome], expected: dict[int, Any], tolerance: float) -> tuple[str, ...]:
    """Mistakes of the mutants whose outputs equal the student's on every compared part of every case."""
    found = []
    for mutant in mutants:
        mutant_outputs = {id(case): _run(mutant.function, case, None, False) for case in cases}
        differs, reproduces = False, True
        for group in groups:
            for case in group.cases:
                mutant_outcome = mutant_outputs[id(case)]
                if _mismatch(group, mutant_outcome, expected[id(case)], tolerance) is not None:
                    differs = True
                student = outcomes[id(case)]
                if student.error is not None and mutant_outcome.error is not None:
                    continue  # both fail on this case
                if mutant_outcome.error is not None or _mismatch(group, student, mutant_outcome.output, tolerance):
                    reproduces = False
        if differs and reproduces:
            found.append(mutant.mistake)
    return tuple(found)
