"""A tiny, self-contained nbgrader course for the grading tests and the benchmark.

One assignment ``ps1`` with one notebook ``ps1``: a locked setup cell (``import numpy as np``
and an assert helper ``check_close``), an autograded answer cell ``double`` (the student
writes ``def double(x)``), a visible test cell ``test_double`` (1 point) and a hidden test cell
``test_double_hidden`` (2 points). :func:`write_submission` turns the released notebook into a
student's submission by replacing the answer cell's code.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ASSIGNMENT = "ps1"
NOTEBOOK = "ps1"
COURSE_ID = "demo-course"
SETUP = (
    "import numpy as np\n\n"
    "def check_close(actual, expected):\n"
    "    assert np.allclose(actual, expected), f'{actual} != {expected}'"
)
ANSWER = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
VISIBLE_TEST = "assert double(2) == 4"
HIDDEN_TEST = (
    "### BEGIN HIDDEN TESTS\n"
    "check_close(double(np.arange(3.0)), [0.0, 2.0, 4.0])\n"
    "### END HIDDEN TESTS"
)
HIDDEN_MARKER = "check_close(double(np.arange(3.0))"
CONFIG = (
    "c = get_config()  # noqa: F821\n"
    f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
    "c.CourseDirectory.source_directory = 'solutions'\n"
    "c.CourseDirectory.release_directory = 'assignments'\n"
)


def _cell(source: str, grade_id: str, *, grade: bool = False, solution: bool = False,
          locked: bool = False, points: float = 0) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if grade:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def source_notebook() -> nbformat.NotebookNode:
    """The instructor's notebook with solution and hidden tests."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        new_markdown_cell("# Problem set 1: write `double(x)`"),
        _cell(SETUP, "setup", locked=True),
        _cell(ANSWER, "double", solution=True),
        _cell(VISIBLE_TEST, "test_double", grade=True, locked=True, points=1),
        _cell(HIDDEN_TEST, "test_double_hidden", grade=True, locked=True, points=2),
    ]
    return nb


def build_course(root: str | Path) -> Path:
    """Write the config and source notebook under ``root`` and release it with nbgrader."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from .course import load_course_config

    root = Path(root)
    (root / "solutions" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    nbformat.write(source_notebook(), str(root / "solutions" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"))
    config = load_course_config(root)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment(ASSIGNMENT, force=True, create=True)
    if not result["success"]:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{result['log']}\n{result.get('error')}")
    return root


def released_notebook(root: str | Path) -> nbformat.NotebookNode:
    return nbformat.read(str(Path(root) / "assignments" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"), as_version=4)


def write_submission(root: str | Path, student: str, answer: str | None, *,
                     notebook: nbformat.NotebookNode | None = None, raw: str | None = None,
                     timestamp: str = "2026-01-01 12:00:00.000000 UTC") -> Path:
    """Write ``submitted/<student>/ps1/ps1.ipynb``: the release with the answer cell replaced.

    ``answer=None`` keeps the release's stub (the honest blank submission); ``notebook``
    submits that notebook instead; ``raw`` writes those bytes (a corrupt file).
    """
    folder = Path(root) / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NOTEBOOK}.ipynb"
    (folder / "timestamp.txt").write_text(timestamp)
    if raw is not None:
        path.write_text(raw)
        return path
    nb = notebook if notebook is not None else released_notebook(root)
    if answer is not None:
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
                cell.source = answer
    nbformat.write(nb, str(path))
    return path
