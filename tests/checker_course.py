"""A temporary copy of the course's real assignments, released, for the checker's end-to-end tests.

:func:`build_course` copies ``nbgrader_config.py`` and ``solutions/<assignment>`` and releases
them with nbgrader; :func:`submit` writes a student's submission: the release with some answer
cells replaced (by their source, or by the instructor's solution with ``SOLUTION``).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = object()
"""Answer placeholder: the instructor's solution of that cell."""


def build_course(root: Path, assignments: list[str]) -> Path:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from cs231n_utils.grading.course import load_course_config

    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(ROOT / "solutions" / assignment, root / "solutions" / assignment)
    config = load_course_config(root)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    for assignment in assignments:
        result = api.generate_assignment(assignment, force=True, create=True)
        assert result["success"], result["log"]
    return root


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def submit(root: Path, assignment: str, student: str, answers: dict[str, object], *,
           extra_cells: dict[str, str] | None = None) -> Path:
    """Write ``submitted/<student>/<assignment>/<assignment>.ipynb``.

    ``answers`` maps answer-cell grade ids to new sources (or :data:`SOLUTION`); ``extra_cells``
    maps a grade id to code run in a new unmarked cell inserted right after that cell.
    """
    release = nbformat.read(root / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    solutions = {_grade_id(c): c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for cell in release.cells:
        grade_id = _grade_id(cell)
        if grade_id in answers:
            cell.source = solutions[grade_id] if answers[grade_id] is SOLUTION else answers[grade_id]
        cells.append(cell)
        if extra_cells and grade_id in extra_cells:
            cells.append(nbformat.v4.new_code_cell(extra_cells[grade_id]))
    release.cells = cells
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    path = folder / f"{assignment}.ipynb"
    nbformat.write(release, path)
    return path


def package_digest() -> str:
    """SHA-256 over every file of ``cs231n_utils`` (the grader's code), in path order."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "cs231n_utils").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cell_scores(root: Path, assignment: str) -> dict[str, dict[str, float]]:
    """``{student: {test cell: auto_score}}`` from the course gradebook."""
    from nbgrader.api import Gradebook

    from cs231n_utils.grading.course import open_course

    coursedir, _ = open_course(root)
    scores: dict[str, dict[str, float]] = {}
    with Gradebook(coursedir.db_url) as gb:
        for submission in gb.find_assignment(assignment).submissions:
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    if grade.cell_type == "code":
                        scores.setdefault(submission.student.id, {})[grade.name] = float(grade.auto_score or 0.0)
    return scores
