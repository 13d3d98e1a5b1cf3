"""The only grading code that runs inside a student's kernel: :func:`grade`.

A hidden test cell ends with ::

    from cs231n_utils.kernel import grade
    grade("test_adam", adam, points=3)

Under ``cs231n-grade`` the environment variable :data:`SOCKET_VARIABLE` names a Unix socket of
the trusted checker, which runs outside the sandbox: ``grade`` connects, *serves* the object
(the checker calls it with data it chooses, :mod:`.serve`), prints one neutral line and returns
``None``. Nothing the kernel prints or returns is a score there; the checker records it.

Without the variable (plain ``nbgrader autograde``, small courses) ``grade`` runs the in-kernel
checks of :mod:`cs231n_utils.autograde` and returns the credit for nbgrader to record, with no
protection against a student who tampers with the kernel.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["grade", "SOCKET_VARIABLE"]

SOCKET_VARIABLE = "CS231N_CHECKER_SOCKET"


def grade(grade_id: str, answer: Any, points: float) -> float | None:
    """Have ``answer`` graded as the test cell ``grade_id`` worth ``points``: served to the
    trusted checker when :data:`SOCKET_VARIABLE` is set (returns ``None``; the checker uses its
    own registry's points), otherwise checked in this kernel (returns the credit, as nbgrader
    expects from a test cell's last expression; ``points`` must equal the registry's)."""
    if not isinstance(grade_id, str) or not grade_id:
        raise ValueError(f"grade_id must be a non-empty string, got {grade_id!r}")
    path = os.environ.get(SOCKET_VARIABLE)
    if path:
        from .serve import serve

        serve(path, grade_id, answer)
        print(f"{grade_id}: your answer was checked by the grader; the score and feedback are in your feedback report.")
        return None
    from ..autograde.registry import award_in_kernel

    return award_in_kernel(grade_id, answer, points)
