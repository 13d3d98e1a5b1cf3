"""Export an assignment's grades: grades CSV, LMS import CSV, score histogram, per-test failure table.

Scores come from the course gradebook through nbgrader's API (so manual grades and late
penalties count as in ``nbgrader export``: the final score is
:math:`\\max(0, \\text{raw score} - \\text{late penalty})`); status and reasons come from
``grading/<assignment>/results.json`` written by ``autograde``; the named mistakes come from the
feedback the checks printed in the autograded notebooks
(:meth:`cs231n_utils.autograde.report.GradeReport.feedback`: ``[FAIL] <check>``,
``Likely mistake: <mistake>``, ``<subject>: no credit. <reason>``).

The LMS file follows Canvas's gradebook export: ``Student, ID, SIS User ID, SIS Login ID,
Section`` then one assignment column ``"<name> (<canvas id>)"``, with a ``Points Possible``
row; its students and identity columns are the roster's (:mod:`~.roster`). Students without a
submission get an empty cell (Canvas leaves those grades unchanged).
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .course import assignment_path, open_course
from .gradebook import load_results
from .job import STATUS_FAILED, STATUS_TAMPERED
from .roster import CANVAS_ID_COLUMNS, Roster

GRADE_FIELDS = ["student_id", "first_name", "last_name", "email", "lms_user_id", "raw_score", "late_penalty",
                "score", "max_score", "needs_manual_grade", "status", "reasons"]
FAILURE_FIELDS = ["notebook", "test", "max_score", "submissions", "lost_points", "fail_rate", "mean_score",
                  "mistakes"]
_LIKELY = re.compile(r"^\s*Likely mistake:\s*(?P<text>.+?)\s*$")
_FAIL = re.compile(r"^\s*\[FAIL\]\s*(?P<text>.+?)\s*$")
_NO_CREDIT = re.compile(r":\s*no credit\.\s*(?P<text>.+?)\s*$")


@dataclass(frozen=True)
class ExportPaths:
    grades_csv: Path
    histogram_png: Path
    failures_csv: Path
    lms_csv: Path | None = None
    needs_manual_grade: tuple[str, ...] = ()  # students whose scores still miss a grade by hand


def named_mistakes(output: str) -> list[str]:
    """What a check's printed feedback names: likely mistakes, else failed checks, else why no credit."""
    lines = output.splitlines()
    for pattern, label in ((_LIKELY, "likely mistake"), (_FAIL, "failed check"), (_NO_CREDIT, "no credit")):
        found = [f"{label}: {m.group('text')}" for m in map(pattern.search, lines) if m]
        if found:
            return found
    return []


def _test_outputs(path: Path) -> dict[str, str]:
    """``{grade_id: printed text and error names}`` of the code cells of an autograded notebook."""
    if not path.exists():
        return {}
    nb = nbformat.read(str(path), as_version=4)
    outputs = {}
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id:
            outputs[grade_id] = "".join(o.get("text", "") for o in cell.get("outputs", []))
    return outputs


def grade_rows(course_dir: str | Path, assignment: str) -> tuple[list[dict], list[dict]]:
    """(one row per submission, one row per (student, autograded test cell)) from the gradebook."""
    coursedir, _ = open_course(course_dir)
    results = load_results(Path(coursedir.root), assignment)
    submissions, tests = [], []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        try:
            assignment_row = gb.find_assignment(assignment)
        except MissingEntry:
            raise ValueError(f"assignment {assignment!r} is not in the gradebook") from None
        for submission in assignment_row.submissions:
            student = submission.student
            record = results.get(student.id, {})
            status = record.get("status", "not autograded by cs231n-grade")
            raw, penalty = float(submission.score), float(submission.late_submission_penalty or 0.0)
            submissions.append({
                "student_id": student.id, "first_name": student.first_name or "",
                "last_name": student.last_name or "", "email": student.email or "",
                "lms_user_id": student.lms_user_id or "",
                "raw_score": round(raw, 6), "late_penalty": round(penalty, 6),
                "score": round(max(0.0, raw - penalty), 6), "max_score": round(float(submission.max_score), 6),
                "needs_manual_grade": bool(submission.needs_manual_grade),
                "status": status, "reasons": "; ".join(record.get("reasons", [])),
            })
            errors = {name: error for nb in record.get("notebooks", [])
                      for name, error in nb.get("failed_tests", {}).items()}
            for notebook in submission.notebooks:
                folder = assignment_path(coursedir, coursedir.autograded_directory, assignment, student.id)
                printed = _test_outputs(folder / f"{notebook.name}.ipynb")
                for grade in notebook.grades:
                    if grade.cell_type != "code":
                        continue
                    mistakes = named_mistakes(printed.get(grade.name, ""))
                    if grade.name in errors:
                        mistakes.append(f"error: {errors[grade.name]}")
                    tests.append({"student_id": student.id, "status": status, "notebook": notebook.name,
                                  "test": grade.name, "score": float(grade.score),
                                  "max_score": float(grade.max_score), "mistakes": mistakes})
    submissions.sort(key=lambda row: row["student_id"])
    return submissions, tests


def failure_table(tests: list[dict]) -> list[dict]:
    """Per test cell, over the submissions that ran: how many lost points and the mistakes named.

    A failed or tampered submission is not a failure of each test: it is left out of the test
    rows and counted once in a row per status (``test`` = ``"(submission failed)"``...).
    """
    by_test: dict[tuple[str, str], list[dict]] = {}
    not_run: dict[str, set[str]] = {}
    for row in tests:
        if row["status"] in (STATUS_FAILED, STATUS_TAMPERED):
            not_run.setdefault(row["status"], set()).add(row["student_id"])
            continue
        by_test.setdefault((row["notebook"], row["test"]), []).append(row)
    everyone = len({row["student_id"] for row in tests})
    table = []
    for (notebook, test), rows in sorted(by_test.items()):
        lost = [r for r in rows if r["score"] < r["max_score"]]
        mistakes = Counter(m for r in lost for m in (r["mistakes"] or ["no mistake named"]))
        table.append({"notebook": notebook, "test": test, "max_score": rows[0]["max_score"],
                      "submissions": len(rows), "lost_points": len(lost),
                      "fail_rate": round(len(lost) / len(rows), 4),
                      "mean_score": round(sum(r["score"] for r in rows) / len(rows), 4),
                      "mistakes": "; ".join(f"{name} x{count}" for name, count in mistakes.most_common())})
    for status, students in sorted(not_run.items()):
        table.append({"notebook": "", "test": f"(submission {status})", "max_score": "",
                      "submissions": everyone, "lost_points": len(students),
                      "fail_rate": round(len(students) / everyone, 4), "mean_score": "",
                      "mistakes": "see the grades CSV's reasons"})
    return table


def lms_rows(submissions: list[dict], roster: Roster, column: str, max_score: float) -> list[dict]:
    """Canvas gradebook import rows: a ``Points Possible`` row, then one row per roster student."""
    by_lms_id = {row["lms_user_id"] or row["student_id"]: row for row in submissions}
    rows = [{**dict.fromkeys(CANVAS_ID_COLUMNS, ""), "Student": "Points Possible", column: f"{max_score:g}"}]
    for entry in roster.students.values():
        graded = by_lms_id.get(entry.lms_id)
        rows.append({"Student": entry.display_name, "ID": entry.lms_id, "SIS User ID": entry.sis_user_id,
                     "SIS Login ID": entry.sis_login_id, "Section": entry.section,
                     column: "" if graded is None else f"{graded['score']:g}"})
    return rows


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def histogram_figure(scores: list[float], max_score: float, title: str):
    """Histogram of total scores, one bar per point value up to ``max_score``; integer count ticks."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    top = max(max_score, max(scores, default=0.0), 1.0)
    bins = min(40, max(10, int(round(top)) + 1))
    axes.hist(scores, bins=bins, range=(0, top), color="tab:blue", edgecolor="white")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("score")
    axes.set_ylabel("submissions")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def plot_histogram(scores: list[float], max_score: float, path: Path, title: str) -> None:
    """Write :func:`histogram_figure` to ``path`` as a PNG."""
    histogram_figure(scores, max_score, title).savefig(path, dpi=120)


def export(course_dir: str | Path, assignment: str, out_dir: str | Path, *, roster: Roster | None = None,
           lms_column: str | None = None) -> ExportPaths:
    """Write ``<assignment>_grades.csv``, ``_histogram.png``, ``_test_failures.csv`` (and
    ``_lms_import.csv`` when a ``roster`` is given) to ``out_dir``.

    ``lms_column`` is the LMS assignment column, e.g. ``"Update rules (4321)"`` (default: the
    roster's column whose name folds to ``assignment``, else ``assignment``, which Canvas
    imports as a new assignment).
    """
    submissions, tests = grade_rows(course_dir, assignment)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExportPaths(out / f"{assignment}_grades.csv", out / f"{assignment}_histogram.png",
                        out / f"{assignment}_test_failures.csv",
                        out / f"{assignment}_lms_import.csv" if roster is not None else None,
                        tuple(row["student_id"] for row in submissions if row["needs_manual_grade"]))
    _write_csv(paths.grades_csv, submissions, GRADE_FIELDS)
    _write_csv(paths.failures_csv, failure_table(tests), FAILURE_FIELDS)
    max_score = max((row["max_score"] for row in submissions), default=0.0)
    if paths.lms_csv is not None:
        column = lms_column or roster.assignment_column(assignment) or assignment
        _write_csv(paths.lms_csv, lms_rows(submissions, roster, column, max_score), [*CANVAS_ID_COLUMNS, column])
    plot_histogram([row["score"] for row in submissions], max_score, paths.histogram_png,
                   f"{assignment}: {len(submissions)} submissions")
    return paths
