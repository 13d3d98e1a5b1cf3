"""Repair nbgrader metadata that students copy into their own cells, before grading.

Copying a cell in Jupyter copies its ``nbgrader`` metadata, so an honest student who
duplicates a markdown cell to write notes submits two cells with the same ``grade_id``, and
nbgrader's autograde gives up on the whole notebook (``KeyError: 'grade_id'``, 0 points).
:func:`repair_notebook` turns every such copy back into a plain student cell:

* a cell whose ``nbgrader`` metadata has no ``grade_id`` or a ``grade_id`` the gradebook does
  not know: its ``nbgrader`` metadata is removed;
* several cells with one ``grade_id``: the first whose cell type is the gradebook's keeps the
  metadata (it is the instructor's cell), the others lose it.

Cells of the gradebook that are missing or edited are not touched here: nbgrader restores
them and :mod:`~cs231n_utils.grading.job` records that, as before.
"""
from __future__ import annotations

from typing import Any

from nbgrader.api import Gradebook


def known_cells(db_url: str, assignment: str, notebook: str) -> dict[str, str]:
    """``{grade_id: cell_type}`` of every nbgrader cell of ``notebook`` in the gradebook."""
    with Gradebook(db_url) as gb:
        found = gb.find_notebook(notebook, assignment)
        known = {cell.name: cell.cell_type for cell in found.source_cells}  # every nbgrader cell has one
        for cell in [*found.grade_cells, *found.solution_cells, *found.task_cells]:
            known.setdefault(cell.name, getattr(cell, "cell_type", None))
        return known


def repair_notebook(nb: Any, known: dict[str, str]) -> list[str]:
    """Strip copied nbgrader metadata from ``nb``'s cells in place; return what was repaired."""
    if not isinstance(known, dict):
        raise ValueError(f"known must map grade_id to cell type, got {type(known).__name__}")
    keepers: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in known and grade_id not in keepers and cell.cell_type == known[grade_id]:
            keepers[grade_id] = index
    repairs = []
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata:
            continue
        grade_id = cell.metadata["nbgrader"].get("grade_id")
        if grade_id is None:
            why = "nbgrader metadata without a grade_id"
        elif grade_id not in known:
            why = f"unknown grade_id {grade_id!r}"
        elif keepers.get(grade_id, index) != index:
            why = f"copy of cell {grade_id!r}"
        else:
            keepers.setdefault(grade_id, index)
            continue
        del cell.metadata["nbgrader"]
        repairs.append(f"cell #{index} ({cell.cell_type}) had copied nbgrader metadata ({why}); "
                       "graded as the student's own cell")
    return repairs
