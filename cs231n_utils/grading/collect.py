"""Turn LMS downloads into nbgrader's ``submitted/<student>/<assignment>/<notebook>.ipynb`` layout.

Inputs are zip files or folders (searched recursively). A notebook is matched to a student and
to one of the assignment's released notebooks by its name:

* LMS (Canvas-style) names ``<lastnamefirstname>_[late_]<userid>_<submissionid>_<filename>``;
  the student id is the ``userid`` (or the name part, ``student_id="name"``);
* ``<student>/<notebook>.ipynb`` (one folder per student);
* ``<student>.ipynb`` when the assignment has a single notebook.

File names are read as Unicode NFC (zips made on macOS store NFD; zips without the UTF-8 flag
are decoded as UTF-8 when they can be). ``filename`` is matched to a released notebook in this
order of preference (the *rank*): the exact released name, also after dropping a resubmission
suffix (``ps1-2``, ``ps1 (1)``); the same name after :func:`~.roster.fold` (case, spaces,
hyphens, Unicode compatibility forms: ``Update Rules.ipynb`` is ``update_rules``); and, for an
assignment with one notebook, any other notebook (*renamed*, and said so). Each notebook's JSON
is validated with nbformat.

Several files for one student and notebook: the later LMS submission wins; within one
submission a valid notebook beats an invalid one, then the higher rank wins, so a scratch
``workings.ipynb`` or a PDF next to ``update_rules.ipynb`` is never graded in its place.
Losers are *superseded*, with the reason; files that match nothing are *unmatched*, with the
reason. An invalid winner is still copied (``autograde`` then records it as failed with the
reason), and reported.

Lateness is kept: each student's folder gets nbgrader's ``timestamp.txt``. The time is the zip
entry's (or file's) modification time, read as UTC; with a deadline (``deadline=`` or the
assignment's due date in the gradebook) the LMS ``late_`` marker decides the side of the
deadline: a late file is stamped at least one second after it, an on-time file at most at it.

With a roster (:mod:`~.roster`), each student's first and last name, email and LMS id go into
nbgrader's student table (every roster student, so ``nbgrader export`` lists non-submitters);
without one, the LMS name part becomes the last name. Everything is written to
``grading/<assignment>/collect_manifest.csv``.
"""
from __future__ import annotations

import csv
import datetime
import re
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Iterator

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from .course import assignment_path, open_course
from .roster import Roster, fold

LMS_NAME = re.compile(r"^(?P<name>[^_/]+)_(?P<late>(?i:late)_)?(?P<userid>\d+)_(?P<submission>\d+)_(?P<filename>.+)$")
RESUBMISSION = re.compile(r"(?:-\d+|\s*\(\d+\))$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"  # what nbgrader writes and parse_utc reads

RANK_EXACT, RANK_FOLDED, RANK_RENAMED = 2, 1, 0
_RANK_WHY = {RANK_EXACT: "", RANK_FOLDED: "same name as {nb!r} after case, space and Unicode folding",
             RANK_RENAMED: "renamed: the only notebook of the assignment is {nb!r}"}


@dataclass(frozen=True)
class Match:
    """Where one file goes: ``student``'s ``notebook``, from LMS ``submission`` (0: no LMS name)."""

    student: str
    notebook: str
    submission: int
    rank: int
    lms_name: str = ""
    lms_user_id: str = ""
    late: bool = False


@dataclass
class ManifestRow:
    """One input file and what :func:`collect` did with it (``action``: collected, superseded, unmatched)."""

    source: str
    action: str
    reason: str = ""
    student_id: str = ""
    notebook: str = ""
    lms_name: str = ""
    lms_user_id: str = ""
    submission_id: str = ""
    late: bool = False
    valid_notebook: bool = False
    timestamp: str = ""
    first_name: str = ""
    last_name: str = ""


MANIFEST_FIELDS = [f.name for f in fields(ManifestRow)]


@dataclass
class CollectReport:
    """Every input file's :class:`ManifestRow`, and where the manifest was written."""

    rows: list[ManifestRow] = field(default_factory=list)
    manifest: Path | None = None

    def by_action(self, action: str) -> list[ManifestRow]:
        return [row for row in self.rows if row.action == action]

    @property
    def collected(self) -> list[ManifestRow]:
        return self.by_action("collected")


@dataclass
class _Candidate:
    row: ManifestRow
    match: Match
    content: bytes
    modified: datetime.datetime
    order: int

    def preference(self) -> tuple[int, bool, int, int]:
        """Larger is better: later submission, then valid JSON, then rank, then first seen."""
        return self.match.submission, self.row.valid_notebook, self.match.rank, -self.order


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as the zip's author meant it (UTF-8 even without the zip's UTF-8 flag)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _entries(source: Path) -> Iterator[tuple[str, PurePosixPath, bytes, datetime.datetime]]:
    """(origin label, relative path in NFC, bytes, modification time) of every file in a zip or folder."""
    def nfc(name: str) -> PurePosixPath:
        return PurePosixPath(unicodedata.normalize("NFC", name))

    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                modified = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
                yield (str(path), nfc(path.relative_to(source).as_posix()), path.read_bytes(),
                       modified.replace(tzinfo=None))
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    name = _zip_name(info)
                    yield (f"{source}:{unicodedata.normalize('NFC', name)}", nfc(name), archive.read(info),
                           datetime.datetime(*info.date_time))
    else:
        raise ValueError(f"inputs must be zip files or folders, got {str(source)!r}")


def match_notebook(filename: str, notebooks: list[str]) -> tuple[str, int] | None:
    """``(released notebook, rank)`` for a file named ``filename``, or None."""
    stem = PurePosixPath(unicodedata.normalize("NFC", filename)).stem
    for candidate in (stem, RESUBMISSION.sub("", stem)):
        if candidate in notebooks:
            return candidate, RANK_EXACT
    folded = {fold(notebook): notebook for notebook in notebooks}
    for candidate in (stem, RESUBMISSION.sub("", stem)):
        if fold(candidate) in folded:
            return folded[fold(candidate)], RANK_FOLDED
    if len(notebooks) == 1:
        return notebooks[0], RANK_RENAMED
    return None


def match_entry(relative: PurePosixPath, notebooks: list[str], student_id: str = "userid") -> Match | str:
    """Where one file goes, or the reason it goes nowhere."""
    if student_id not in ("userid", "name"):
        raise ValueError(f"student_id must be 'userid' or 'name', got {student_id!r}")
    relative = PurePosixPath(unicodedata.normalize("NFC", str(relative)))
    if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
        return "hidden or system file"
    if relative.suffix.casefold() != ".ipynb":
        return "not a notebook"
    lms = LMS_NAME.match(relative.name)
    if lms:
        student = lms.group(student_id)
        filename = lms.group("filename")
        extra = {"lms_name": lms.group("name"), "lms_user_id": lms.group("userid"), "late": bool(lms.group("late"))}
        submission = int(lms.group("submission"))
    elif len(relative.parts) >= 2:
        student, filename, extra, submission = relative.parts[-2], relative.name, {}, 0
    else:
        if len(notebooks) != 1:
            return "file name names no student folder and the assignment has several notebooks"
        return Match(relative.stem, notebooks[0], 0, RANK_EXACT)
    found = match_notebook(filename, notebooks)
    if found is None:
        return f"{PurePosixPath(filename).stem!r} is not one of the released notebooks {notebooks}"
    return Match(student, found[0], submission, found[1], **extra)


def notebook_problem(content: bytes) -> str:
    """Why ``content`` is not a valid notebook (empty string when it is one)."""
    try:
        nbformat.validate(nbformat.reads(content.decode("utf-8"), as_version=4))
    except Exception as error:  # nbformat raises several unrelated types for bad files
        return f"not a valid notebook ({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''})"
    return ""


def _lose(loser: _Candidate, winner: _Candidate) -> None:
    if winner.match.submission > loser.match.submission:
        why = "a later submission"
    elif winner.row.valid_notebook and not loser.row.valid_notebook:
        why = "a valid notebook of the same submission"
    elif winner.match.rank > loser.match.rank:
        why = "a file of the same submission named like the released notebook"
    else:
        why = "a file seen first with the same submission, validity and name rank"
    loser.row.action = "superseded"
    loser.row.reason = f"superseded by {winner.row.source} ({why})"


def _timestamp(candidate: _Candidate, deadline: datetime.datetime | None) -> datetime.datetime:
    """The submission time to record (see the module docstring)."""
    when = candidate.modified
    if deadline is None or not candidate.match.lms_user_id:
        return when
    if candidate.match.late:
        return max(when, deadline + datetime.timedelta(seconds=1))
    return min(when, deadline)


def _duedate(db_url: str, assignment: str) -> datetime.datetime | None:
    with Gradebook(db_url) as gb:
        try:
            return gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def _record_students(db_url: str, report: CollectReport, roster: Roster | None, student_id: str) -> None:
    """Names, emails and LMS ids into nbgrader's student table (and into the manifest rows)."""
    with Gradebook(db_url) as gb:
        if roster is not None and student_id == "userid":
            for entry in roster.students.values():
                gb.update_or_create_student(entry.lms_id, first_name=entry.first_name, last_name=entry.last_name,
                                            email=entry.email, lms_user_id=entry.lms_id)
        for row in report.collected:
            entry = roster.students.get(row.lms_user_id) if roster is not None else None
            if entry is not None:
                details = {"first_name": entry.first_name, "last_name": entry.last_name, "email": entry.email,
                           "lms_user_id": entry.lms_id}
            else:
                details = {"last_name": row.lms_name or None, "lms_user_id": row.lms_user_id or None}
            student = gb.update_or_create_student(row.student_id, **{k: v for k, v in details.items() if v})
            row.first_name, row.last_name = student.first_name or "", student.last_name or ""


def write_manifest(path: Path, rows: list[ManifestRow]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return path


def collect(course_dir: str | Path, assignment: str, inputs: list[str | Path], *, student_id: str = "userid",
            roster: Roster | None = None, deadline: datetime.datetime | None = None) -> CollectReport:
    """Copy the notebooks in ``inputs`` into the course's ``submitted/`` folder; report every file.

    ``deadline`` is naive UTC (default: the assignment's due date in the gradebook, if any).
    """
    coursedir, _ = open_course(course_dir)
    release = assignment_path(coursedir, coursedir.release_directory, assignment)
    notebooks = sorted(p.stem for p in release.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"assignment {assignment!r} has no released notebooks in {release}")
    if not inputs:
        raise ValueError("inputs must name at least one zip file or folder")
    if deadline is not None and deadline.tzinfo is not None:
        raise ValueError(f"deadline must be a naive UTC datetime, got {deadline!r}")
    deadline = deadline or _duedate(coursedir.db_url, assignment)

    report = CollectReport()
    candidates: dict[tuple[str, str], list[_Candidate]] = {}
    order = 0
    for source in inputs:
        for origin, relative, content, modified in _entries(Path(source)):
            match = match_entry(relative, notebooks, student_id)
            if isinstance(match, str):
                report.rows.append(ManifestRow(origin, "unmatched", match))
                continue
            problem = notebook_problem(content)
            row = ManifestRow(origin, "collected", problem or _RANK_WHY[match.rank].format(nb=match.notebook),
                              student_id=match.student, notebook=match.notebook, lms_name=match.lms_name,
                              lms_user_id=match.lms_user_id, submission_id=str(match.submission or ""),
                              late=match.late, valid_notebook=not problem)
            report.rows.append(row)
            candidates.setdefault((match.student, match.notebook), []).append(
                _Candidate(row, match, content, modified, order))
            order += 1

    by_student: dict[str, list[_Candidate]] = {}
    for (student, _), group in sorted(candidates.items()):
        winner = max(group, key=_Candidate.preference)
        for loser in group:
            if loser is not winner:
                _lose(loser, winner)
        by_student.setdefault(student, []).append(winner)
    for student, winners in by_student.items():
        folder = assignment_path(coursedir, coursedir.submitted_directory, assignment, student)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = max(_timestamp(c, deadline) for c in winners)
        for candidate in winners:
            (folder / f"{candidate.match.notebook}.ipynb").write_bytes(candidate.content)
            candidate.row.timestamp = stamp.strftime(TIMESTAMP_FORMAT)
        (folder / "timestamp.txt").write_text(stamp.strftime(TIMESTAMP_FORMAT))

    _record_students(coursedir.db_url, report, roster, student_id)
    report.manifest = write_manifest(Path(coursedir.root) / "grading" / assignment / "collect_manifest.csv",
                                     report.rows)
    return report


def summary(report: CollectReport) -> list[str]:
    """The lines ``cs231n-grade collect`` prints: counts, then every file not simply collected."""
    collected = report.collected
    invalid = [r for r in collected if not r.valid_notebook]
    renamed = [r for r in collected if r.valid_notebook and r.reason]
    lines = [f"collected {len(collected)} notebooks for {len({r.student_id for r in collected})} students "
             f"into submitted/ ({sum(r.late for r in collected)} late, {len(renamed)} renamed, "
             f"{len(invalid)} not valid notebooks)"]
    for title, rows in (("renamed", renamed), ("not valid notebooks (autograde will score them 0 "
                                               "with this reason)", invalid)):
        if rows:
            lines.append(f"{len(rows)} {title}:")
            lines.extend(f"  {r.student_id}/{r.notebook}.ipynb <- {r.source}: {r.reason}" for r in rows)
    for action in ("superseded", "unmatched"):
        rows = report.by_action(action)
        if rows:
            lines.append(f"{len(rows)} {action} files:")
            lines.extend(f"  {r.source}: {r.reason}" for r in rows)
    if report.manifest is not None:
        lines.append(f"manifest: {report.manifest}")
    return lines
