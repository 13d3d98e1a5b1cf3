"""Run one visible-check cell of a released notebook on a given answer, in this process.

The namespace holds what the notebook defines before the check runs: its setup cells, the
helper cell, and the solutions of the other answers (a check may call them, e.g. the
replace_head check calls freeze); the answer under test replaces its own solution.
"""
from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETUP_CELLS = ("setup", "pretraining", "check_helpers")


def _grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


@functools.lru_cache(maxsize=None)
def _base_namespace(assignment: str) -> dict:
    namespace: dict = {}
    solutions = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in solutions.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and (_grade_id(cell) in SETUP_CELLS or meta.get("solution")):
                exec(cell.source, namespace)  # noqa: S102 - the course's own notebook
    return namespace


@functools.lru_cache(maxsize=None)
def released_cell(assignment: str, grade_id: str) -> str:
    release = nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", as_version=4)
    return next(cell.source for cell in release.cells if _grade_id(cell) == grade_id)


def run_visible_check(assignment: str, function: str, answer_source: str | None) -> str:
    """Run the released cell ``check_<function>`` after ``answer_source`` (None: the solution);
    return what it printed. Raises what the cell raises (AssertionError for a failed check)."""
    namespace = dict(_base_namespace(assignment))
    if answer_source is not None:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(answer_source, namespace)  # noqa: S102 - trusted test data
    return _run_check(assignment, function, namespace)


def run_check_with(assignment: str, function: str, implementation: Any) -> str:
    """Run the released cell ``check_<function>`` with ``function`` bound to ``implementation``
    (a reference or a mutant); return what it printed."""
    namespace = dict(_base_namespace(assignment))
    namespace[function] = implementation
    return _run_check(assignment, function, namespace)


def _run_check(assignment: str, function: str, namespace: dict) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), np.errstate(all="ignore"):
        exec(released_cell(assignment, f"check_{function}"), namespace)  # noqa: S102
    return output.getvalue()
