"""Every hidden test of the course, by nbgrader ``grade_id``: the check, the answer's name, the points.

A hidden test cell only says ``grade("test_adam", adam)`` (:func:`cs231n_utils.kernel.grade`);
what that means lives here, on the trusted side, in one place: the trusted checker of
``cs231n-grade`` looks the served test up here, and so does the in-kernel path of plain
nbgrader (:func:`award_in_kernel`). The points equal the test cells' nbgrader points (a test
checks this against the notebooks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import check_update_rule
from .report import GradeReport

__all__ = ["HiddenTest", "REGISTRY", "hidden_test", "award_in_kernel"]


@dataclass(frozen=True)
class HiddenTest:
    """One graded test cell: ``check(answer)`` grades the student's ``answer_name`` for ``points``."""

    grade_id: str
    assignment: str
    answer_name: str
    points: float
    check: Callable[[Any], GradeReport]
    uses_torch: bool = False


def _lazy(name: str, *args: Any) -> Callable[[Any], GradeReport]:
    """``answer -> cs231n_utils.autograde.<name>(answer, *args)``, imported on first use (torch)."""
    def check(answer: Any) -> GradeReport:
        from .. import autograde

        return getattr(autograde, name)(answer, *args)
    return check


def _update_rule(name: str) -> Callable[[Any], GradeReport]:
    return lambda answer: check_update_rule(answer, name)


_TESTS = (
    HiddenTest("test_sgd_momentum", "update_rules", "sgd_momentum", 2, _update_rule("sgd_momentum")),
    HiddenTest("test_nesterov_momentum", "update_rules", "nesterov_momentum", 2, _update_rule("nesterov_momentum")),
    HiddenTest("test_adagrad", "update_rules", "adagrad", 2, _update_rule("adagrad")),
    HiddenTest("test_rmsprop", "update_rules", "rmsprop", 2, _update_rule("rmsprop")),
    HiddenTest("test_adam", "update_rules", "adam", 3, _update_rule("adam")),
    HiddenTest("test_Adam", "torch_optimizer", "Adam", 5, _lazy("check_torch_optimizer", "adam"), uses_torch=True),
    HiddenTest("test_newton_step", "second_order", "newton_step", 2, _lazy("check_newton_step")),
    HiddenTest("test_two_loop_recursion", "second_order", "two_loop_recursion", 3, _lazy("check_two_loop_recursion")),
    HiddenTest("test_dropout_forward", "regularization", "dropout_forward", 3, _lazy("check_dropout_forward")),
    HiddenTest("test_dropout_backward", "regularization", "dropout_backward", 2, _lazy("check_dropout_backward")),
    HiddenTest("test_l2_penalty", "regularization", "l2_penalty", 2, _lazy("check_l2_penalty")),
    HiddenTest("test_horizontal_flip", "regularization", "horizontal_flip", 2, _lazy("check_horizontal_flip")),
    HiddenTest("test_freeze", "transfer_learning", "freeze", 2, _lazy("check_freeze"), uses_torch=True),
    HiddenTest("test_replace_head", "transfer_learning", "replace_head", 2, _lazy("check_replace_head"), uses_torch=True),
    HiddenTest("test_finetune", "transfer_learning", "finetune", 4, _lazy("check_finetuning"), uses_torch=True),
)
REGISTRY: dict[str, HiddenTest] = {test.grade_id: test for test in _TESTS}


def hidden_test(grade_id: str) -> HiddenTest:
    """The registered test ``grade_id``; ``ValueError`` naming the known ids otherwise."""
    if grade_id not in REGISTRY:
        raise ValueError(f"grade_id must be one of {sorted(REGISTRY)}, got {grade_id!r}")
    return REGISTRY[grade_id]


def award_in_kernel(grade_id: str, answer: Any, points: float) -> float:
    """Plain nbgrader: grade ``answer`` in this interpreter, print the feedback and return the
    credit (the test cell's last expression). ``points`` (the cell's, as written in the hidden
    test) must equal the registry's."""
    test = hidden_test(grade_id)
    if points != test.points:
        raise ValueError(f"points must be {test.points:g} for {grade_id}, got {points!r}")
    return test.check(answer).award(points=test.points)
