"""Export an assignment's grades: a CSV, a score histogram (PNG) and a per-test failure table.

Scores come from the course gradebook through nbgrader's API (so manual grades and late
penalties count as in ``nbgrader export``); status and reasons come from
``grading/<assignment>/results.json`` written by ``autograde``.
"""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook

from .course import open_course
from .gradebook import load_results


@dataclass(frozen=True)
class ExportPaths:
    grades_csv: Path
    histogram_png: Path
    failures_csv: Path


def grade_rows(course_dir: str | Path, assignment: str) -> tuple[list[dict], list[dict]]:
    """(one row per submission, one row per (student, test cell)) from the gradebook."""
    coursedir, _ = open_course(course_dir)
    results = load_results(Path(coursedir.root), assignment)
    submissions, tests = [], []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for submission in gb.find_assignment(assignment).submissions:
            student = submission.student.id
            record = results.get(student, {})
            failed_tests = {name: error for nb in record.get("notebooks", [])
                            for name, error in nb.get("failed_tests", {}).items()}
            submissions.append({
                "student_id": student,
                "score": round(float(submission.score), 6),
                "max_score": round(float(submission.max_score), 6),
                "late_penalty": round(float(submission.late_submission_penalty or 0.0), 6),
                "needs_manual_grade": bool(submission.needs_manual_grade),
                "status": record.get("status", "not autograded by cs231n-grade"),
                "reasons": "; ".join(record.get("reasons", [])),
            })
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.cell_type != "code":
                        continue
                    tests.append({"student_id": student, "notebook": notebook.name, "test": grade.name,
                                  "score": float(grade.score), "max_score": float(grade.max_score),
                                  "error": failed_tests.get(grade.name, "")})
    submissions.sort(key=lambda row: row["student_id"])
    return submissions, tests


def failure_table(tests: list[dict]) -> list[dict]:
    """Per test cell: submissions, how many lost points, the fail rate and the errors seen."""
    by_test: dict[tuple[str, str], list[dict]] = {}
    for row in tests:
        by_test.setdefault((row["notebook"], row["test"]), []).append(row)
    table = []
    for (notebook, test), rows in sorted(by_test.items()):
        failed = [r for r in rows if r["score"] < r["max_score"]]
        errors = Counter(r["error"] or "no error output" for r in failed)
        table.append({"notebook": notebook, "test": test, "max_score": rows[0]["max_score"],
                      "submissions": len(rows), "failed": len(failed),
                      "fail_rate": round(len(failed) / len(rows), 4),
                      "errors": "; ".join(f"{name} x{count}" for name, count in errors.most_common())})
    return table


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot_histogram(scores: list[float], max_score: float, path: Path, title: str) -> None:
    """Histogram of total scores, one bar per possible point value up to ``max_score``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    top = max(max_score, max(scores, default=0.0), 1.0)
    bins = min(40, max(10, int(round(top)) + 1))
    axes.hist(scores, bins=bins, range=(0, top), color="tab:blue", edgecolor="white")
    axes.set_xlabel("score")
    axes.set_ylabel("submissions")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def export(course_dir: str | Path, assignment: str, out_dir: str | Path) -> ExportPaths:
    """Write ``<assignment>_grades.csv``, ``_histogram.png`` and ``_test_failures.csv`` to ``out_dir``."""
    submissions, tests = grade_rows(course_dir, assignment)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ExportPaths(out / f"{assignment}_grades.csv", out / f"{assignment}_histogram.png",
                        out / f"{assignment}_test_failures.csv")
    _write_csv(paths.grades_csv, submissions, ["student_id", "score", "max_score", "late_penalty",
                                               "needs_manual_grade", "status", "reasons"])
    table = failure_table(tests)
    _write_csv(paths.failures_csv, table, ["notebook", "test", "max_score", "submissions", "failed",
                                           "fail_rate", "errors"])
    max_score = max((row["max_score"] for row in submissions), default=0.0)
    plot_histogram([row["score"] for row in submissions], max_score, paths.histogram_png,
                   f"{assignment}: {len(submissions)} submissions")
    return paths
