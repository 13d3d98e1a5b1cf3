"""Read an LMS roster CSV (a Canvas gradebook export, or a plain id/name/email table).

Canvas exports its gradebook as CSV with the columns ``Student`` ("Last, First"), ``ID`` (the
Canvas user id, the same number as in submission file names), ``SIS User ID``,
``SIS Login ID``, ``Section``, then one column per assignment named ``"<name> (<id>)"``, and a
second row whose ``Student`` cell is ``Points Possible``. A plain table with columns ``id``,
``first_name``, ``last_name`` and ``email`` (any case, spaces or underscores) works too.
Headers are matched after Unicode NFKC normalisation and case folding.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

#: Canvas's identity columns, in the order its import expects them.
CANVAS_ID_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
_ASSIGNMENT_COLUMN = re.compile(r"^(?P<name>.*\S)\s*\((?P<id>\d+)\)$")


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster; ``lms_id`` is the id the LMS puts in submission file names."""

    lms_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""

    @property
    def display_name(self) -> str:
        """Canvas's ``Student`` cell: ``"Last, First"`` (or whichever part is known)."""
        return ", ".join(part for part in (self.last_name, self.first_name) if part)


@dataclass(frozen=True)
class Roster:
    """Students by LMS id, and the roster's assignment columns (``"name (id)"`` headers)."""

    students: dict[str, RosterEntry]
    assignment_columns: tuple[str, ...]

    def assignment_column(self, assignment: str) -> str | None:
        """The roster's column for ``assignment`` (name compared with :func:`fold`), if any."""
        for column in self.assignment_columns:
            match = _ASSIGNMENT_COLUMN.match(column)
            if match and fold(match.group("name")) == fold(assignment):
                return column
        return None


def fold(text: str) -> str:
    """NFKC-normalised, case-folded ``text`` with each run of non-alphanumerics as one ``_``.

    ``"Update Rules"``, ``"update-rules"`` and ``"ｕｐｄａｔｅ_rules"`` all fold to ``"update_rules"``.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", "_", folded).strip("_")


def _cell(row: dict[str, str], columns: dict[str, str], *names: str) -> str:
    for name in names:
        header = columns.get(fold(name))
        if header is not None and (row.get(header) or "").strip():
            return row[header].strip()
    return ""


def read_roster(path: str | Path) -> Roster:
    """Parse the roster CSV at ``path`` (UTF-8, with or without a byte-order mark)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"roster must be an existing CSV file, got {str(path)!r}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        headers = [h for h in (reader.fieldnames or []) if h is not None]
        columns = {fold(h): h for h in headers}
        if "id" not in columns:
            raise ValueError(f"roster {str(path)!r} has no ID column (headers: {headers})")
        students: dict[str, RosterEntry] = {}
        for row in reader:
            student_cell = _cell(row, columns, "Student")
            if "points possible" in student_cell.casefold():
                continue
            lms_id = _cell(row, columns, "ID")
            if not lms_id:
                continue
            last, first = _cell(row, columns, "last_name"), _cell(row, columns, "first_name")
            if not (last or first) and student_cell:
                last, _, first = (part.strip() for part in student_cell.partition(","))
            login = _cell(row, columns, "SIS Login ID")
            email = _cell(row, columns, "email") or (login if "@" in login else "")
            students[unicodedata.normalize("NFC", lms_id)] = RosterEntry(
                lms_id=lms_id, first_name=unicodedata.normalize("NFC", first) or None,
                last_name=unicodedata.normalize("NFC", last) or None, email=email or None,
                sis_user_id=_cell(row, columns, "SIS User ID"), sis_login_id=login,
                section=_cell(row, columns, "Section"))
    assignment_columns = tuple(h for h in headers if _ASSIGNMENT_COLUMN.match(h))
    return Roster(students, assignment_columns)
