"""Write the trusted checker's verdicts into a job's private gradebook and autograded notebook.

After nbgrader's autograde ran, every autograded test cell that the course registry knows
(:data:`cs231n_utils.autograde.registry.REGISTRY`) gets its ``auto_score`` from the checker's
record, and zero when the kernel never served it (an error earlier in the cell, a dead kernel,
or a notebook that removed the call). Whatever the kernel printed or displayed in those cells
is replaced by the checker's feedback (error outputs stay: they explain a failed sanity check),
so formgrader and the feedback HTML show the trusted text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import nbformat
from nbformat.v4 import new_output
from nbgrader.api import Gradebook, MissingEntry

from ..autograde.registry import REGISTRY
from .checker import CheckRecord

__all__ = ["checked_cells", "apply_records", "NOT_SERVED"]

NOT_SERVED = ("The hidden test never ran, so the grader got nothing to check (an error earlier in this "
              "cell or notebook, a kernel that died, or the call to grade() was removed). Score: 0")


def checked_cells(code_grade_cells: Iterable[str]) -> set[str]:
    """The test cells of a notebook that the trusted checker scores."""
    return {name for name in code_grade_cells if name in REGISTRY}


def _verdict(records: dict[str, CheckRecord], grade_id: str, max_score: float) -> tuple[float, str]:
    record = records.get(grade_id)
    if record is None:
        return 0.0, NOT_SERVED
    return min(record.score, max_score), record.feedback


def apply_records(db_url: str, assignment: str, student: str, notebook: str, cells: set[str],
                  records: dict[str, CheckRecord], autograded: Path | None) -> None:
    """Set the gradebook scores of ``cells`` from ``records`` and their outputs in ``autograded``."""
    with Gradebook(db_url) as gb:
        for grade_id in sorted(cells):
            try:
                grade = gb.find_grade(grade_id, notebook, assignment, student)
            except MissingEntry:
                continue  # the notebook was never graded: the job scores it 0 itself
            grade.auto_score, _ = _verdict(records, grade_id, float(grade.max_score))
            grade.needs_manual_grade = False
        gb.db.commit()
    if autograded is None or not autograded.exists():
        return
    nb = nbformat.read(str(autograded), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or grade_id not in cells:
            continue
        _, text = _verdict(records, grade_id, float(REGISTRY[grade_id].points))
        errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        cell.outputs = [new_output("stream", name="stdout", text=text + "\n"), *errors]
    nbformat.write(nb, str(autograded))
