"""Generate feedback HTML for autograded submissions with nbgrader, one student at a time.

This runs nbgrader's own ``generate_feedback`` (through :class:`nbgrader.apps.NbGraderAPI`)
per student, so one broken notebook is reported and skipped instead of stopping the rest, and
the caller can show progress. It executes no student code (it renders the autograded
notebooks and reads scores from the gradebook).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from nbgrader.apps import NbGraderAPI

from .course import open_course


def autograded_students(course_dir: str | Path, assignment: str) -> list[str]:
    """Students with an ``autograded/<student>/<assignment>/`` folder, sorted."""
    coursedir, _ = open_course(course_dir)
    root = Path(coursedir.root) / coursedir.autograded_directory
    return sorted(path.parent.name for path in root.glob(f"*/{assignment}") if path.is_dir())


def generate_feedback(course_dir: str | Path, assignment: str, students: list[str] | None = None,
                      on_student: Callable[[str, bool], None] | None = None) -> dict[str, str | None]:
    """Feedback for each student: ``{student: None}`` on success, else ``{student: error text}``."""
    coursedir, config = open_course(course_dir)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    outcome: dict[str, str | None] = {}
    for student in students if students is not None else autograded_students(course_dir, assignment):
        result = api.generate_feedback(assignment, student_id=student, force=True)
        outcome[student] = None if result["success"] else (result.get("error") or result.get("log") or "failed")
        if on_student is not None:
            on_student(student, result["success"])
    return outcome
