"""Generate feedback HTML for autograded submissions with nbgrader, one student at a time.

This runs nbgrader's own ``generate_feedback`` (through :class:`nbgrader.apps.NbGraderAPI`)
per student, so one broken notebook is reported and skipped instead of stopping the rest, and
the caller can show progress. It executes no student code (it renders the autograded
notebooks and reads scores from the gradebook).

Two additions to nbgrader:

* :func:`pending_manual_grades` lists the cells that still need a grade by hand; the CLI
  refuses to write feedback while there are any (students would read "Score: 0.0 / 2.0" for
  an answer nobody has graded yet) unless told ``--allow-ungraded``;
* a submission that ``cs231n-grade autograde`` recorded as failed or tampered also gets
  ``feedback/<student>/<assignment>/grading_status.html``: its status, score and the reasons,
  even when nbgrader has nothing to render.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI

from .course import assignment_path, open_course
from .gradebook import load_results
from .job import STATUS_GRADED

STATUS_FILE = "grading_status.html"


def autograded_students(course_dir: str | Path, assignment: str) -> list[str]:
    """Students with an ``autograded/<student>/<assignment>/`` folder or a ``results.json`` entry, sorted."""
    coursedir, _ = open_course(course_dir)
    root = Path(coursedir.root) / coursedir.autograded_directory
    folders = {path.parent.name for path in root.glob(f"*/{assignment}") if path.is_dir()}
    return sorted(folders | set(load_results(Path(coursedir.root), assignment)))


def pending_manual_grades(course_dir: str | Path, assignment: str,
                          students: list[str] | None = None) -> dict[str, list[str]]:
    """``{student: ["notebook/grade_id", ...]}`` for the cells that still need a manual grade."""
    coursedir, _ = open_course(course_dir)
    pending: dict[str, list[str]] = {}
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            raise ValueError(f"assignment {assignment!r} is not in the gradebook") from None
        for submission in submissions:
            student = submission.student.id
            if students is not None and student not in students:
                continue
            cells = [f"{nb.name}/{grade.name}" for nb in submission.notebooks for grade in nb.grades
                     if grade.needs_manual_grade]
            if cells:
                pending[student] = sorted(cells)
    return pending


def status_page(student: str, assignment: str, record: dict[str, Any]) -> str:
    """A small HTML page: the submission's status, score and the reasons for it."""
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in record.get("reasons", []))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(assignment)}: grading status</title></head><body>\n"
        f"<h1>{html.escape(assignment)}: {html.escape(record.get('status', 'unknown'))}</h1>\n"
        f"<p>Student {html.escape(student)}: autograded score "
        f"{record.get('score', 0.0):g} / {record.get('max_score', 0.0):g}.</p>\n"
        f"<p>Why:</p><ul>{reasons}</ul>\n</body></html>\n"
    )


def generate_feedback(course_dir: str | Path, assignment: str, students: list[str] | None = None,
                      on_student: Callable[[str, bool], None] | None = None) -> dict[str, str | None]:
    """Feedback for each student: ``{student: None}`` on success, else ``{student: error text}``.

    A student whose autograde status is not "graded" succeeds when the status page was written,
    whatever nbgrader could render.
    """
    coursedir, config = open_course(course_dir)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    results = load_results(Path(coursedir.root), assignment)
    outcome: dict[str, str | None] = {}
    for student in students if students is not None else autograded_students(course_dir, assignment):
        result = api.generate_feedback(assignment, student_id=student, force=True)
        error = None if result["success"] else (result.get("error") or result.get("log") or "failed")
        record = results.get(student)
        if record is not None and record.get("status") != STATUS_GRADED:
            folder = assignment_path(coursedir, coursedir.feedback_directory, assignment, student)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STATUS_FILE).write_text(status_page(student, assignment, record), encoding="utf-8")
            error = None
        outcome[student] = error
        if on_student is not None:
            on_student(student, error is None)
    return outcome
