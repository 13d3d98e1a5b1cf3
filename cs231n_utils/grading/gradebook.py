"""The only code that writes the course gradebook: serial merges through nbgrader's API.

Workers never open the course gradebook. Each job grades against a private copy of a
*template* (:func:`make_template`: the gradebook with every student removed, so a job neither
sees other students' grades nor can damage them), and the parent process calls
:func:`merge_result` for each finished job, one at a time, in one thread: SQLite never has two
writers, so it cannot report "database is locked". A merge replaces the student's autograded
scores for the assignment (``update_or_create``), so re-running autograde is idempotent. Manual
scores are kept, and so is their "graded" state while the submission's timestamp is unchanged
(nbgrader's ``SaveAutoGrades`` flags them for review on every run; a resubmission still does).

The reason a submission got its score is kept beside the gradebook in
``<course>/grading/<assignment>/results.json`` (nbgrader's schema has no field for it), and
failed or tampered notebooks are ``flagged`` in the gradebook so formgrader shows them.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_markdown_cell
from nbgrader.api import Comment, Grade, Gradebook, MissingEntry, Student, SubmittedAssignment, SubmittedNotebook

from .job import STATUS_GRADED, STATUS_TAMPERED, JobResult


def sqlite_path(db_url: str) -> Path:
    """The file behind a ``sqlite:///`` URL (the only kind of gradebook this tool copies)."""
    prefix = "sqlite:///"
    if not db_url.startswith(prefix):
        raise ValueError(f"db_url must be a sqlite:/// URL, got {db_url!r}")
    return Path(db_url[len(prefix):])


def make_template(db_url: str, assignment: str, target: Path) -> Path:
    """Copy the gradebook to ``target`` and delete every student and submission from the copy."""
    source = sqlite_path(db_url)
    if not source.exists():
        raise ValueError(f"db_url points to a missing gradebook: {source}")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    with Gradebook(f"sqlite:///{target}") as gb:
        gb.find_assignment(assignment)  # raises MissingEntry for an unknown assignment
        for model in (Grade, Comment, SubmittedNotebook, SubmittedAssignment, Student):
            gb.db.query(model).delete()
        gb.db.commit()
    return target


def merge_result(gb: Gradebook, result: JobResult) -> None:
    """Write one job's scores into the course gradebook (replacing earlier ones)."""
    gb.update_or_create_student(result.student)
    try:
        before = gb.find_submission(result.assignment, result.student).timestamp
    except MissingEntry:
        before = None
    kwargs: dict[str, Any] = {"timestamp": result.timestamp} if result.timestamp else {}
    submission = gb.update_or_create_submission(result.assignment, result.student, **kwargs)
    resubmitted = before is None or submission.timestamp != before
    for notebook in result.notebooks:
        try:
            sub_nb = gb.find_submission_notebook(notebook.name, result.assignment, result.student)
        except MissingEntry:
            continue
        sub_nb.flagged = result.status != STATUS_GRADED
        if notebook.late_penalty is not None:
            sub_nb.late_submission_penalty = notebook.late_penalty
        for grade in sub_nb.grades:
            values = notebook.grades.get(grade.name)
            if values is None:
                continue
            grade.auto_score = values["auto_score"]
            if grade.manual_score is not None:
                grade.needs_manual_grade = resubmitted
            else:
                grade.needs_manual_grade = bool(values["needs_manual_grade"]) or values["auto_score"] is None
    gb.db.commit()


def _with_tampering_note(autograded_json: str, reasons: list[str]) -> str:
    """The executed notebook headed by a cell that says it was flagged for tampering, why, and
    what that did to the scores (the last reason, see :func:`~.job._tampering_consequence`)."""
    nb = nbformat.reads(autograded_json, as_version=4)
    listed = "\n".join(f"- {reason}" for reason in reasons)
    nb.cells.insert(0, new_markdown_cell(f"**cs231n-grade: tampered, flagged for review.**\n\n{listed}"))
    return nbformat.writes(nb)


def write_autograded(autograded_dir: Path, result: JobResult) -> None:
    """Put the executed notebooks where the formgrader and ``nbgrader generate_feedback`` look.

    A tampered notebook is headed by the reasons, so the formgrader shows what ``results.json``
    records (a failed one already is: see :func:`~.job._ungraded_copy`).
    """
    for notebook in result.notebooks:
        if notebook.autograded_json is None:
            continue
        autograded_dir.mkdir(parents=True, exist_ok=True)
        path = autograded_dir / f"{notebook.name}.ipynb"
        if path.exists():
            os.chmod(path, 0o644)
        text = notebook.autograded_json
        if result.status == STATUS_TAMPERED:
            prefix = f"{notebook.name}: "
            text = _with_tampering_note(text, [r[len(prefix):] for r in result.reasons if r.startswith(prefix)])
        path.write_text(text)


def results_path(course_root: Path, assignment: str) -> Path:
    return Path(course_root) / "grading" / assignment / "results.json"


def load_results(course_root: Path, assignment: str) -> dict[str, dict[str, Any]]:
    """Per student: status, reasons, score, failed tests of the latest autograde run."""
    path = results_path(course_root, assignment)
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(course_root: Path, assignment: str, results: list[JobResult]) -> Path:
    """Update ``results.json`` with these students' entries (others are kept)."""
    path = results_path(course_root, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = load_results(course_root, assignment)
    for result in results:
        entry = asdict(result)
        for notebook in entry["notebooks"]:
            notebook.pop("autograded_json")
        entry.update(score=result.score, max_score=result.max_score)
        table[result.student] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
    tmp.replace(path)
    return path
