"""Turn LMS downloads into nbgrader's ``submitted/<student>/<assignment>/<notebook>.ipynb`` layout.

Inputs are zip files or folders (searched recursively). A notebook is matched to a student and
to one of the assignment's released notebooks by its name:

* LMS (Canvas-style) names ``<lastnamefirstname>_[late_]<userid>_<submissionid>_<filename>``;
  the student id is the ``userid`` (or the name part, ``student_id="name"``), and a
  resubmission suffix (``ps1-2.ipynb``) is dropped from ``filename``;
* ``<student>/<notebook>.ipynb`` (one folder per student);
* ``<student>.ipynb`` when the assignment has a single notebook.

The filename must name a released notebook (or the assignment must have only one). Everything
else, and a second file for the same student and notebook (the one with the larger
submission id wins), is reported as unmatched, never silently dropped.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from .course import assignment_path, open_course

LMS_NAME = re.compile(r"^(?P<name>[A-Za-z0-9-]+)_(?:LATE_|late_)?(?P<userid>\d+)_(?P<submission>\d+)_(?P<filename>.+)$")
RESUBMISSION = re.compile(r"-\d+$")


@dataclass
class CollectReport:
    """What :func:`collect` did: ``collected`` (student, notebook, origin) and ``unmatched`` (origin, why)."""

    collected: list[tuple[str, str, str]] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Candidate:
    origin: str
    student: str
    notebook: str
    order: int
    content: bytes


def _entries(source: Path) -> Iterator[tuple[str, PurePosixPath, bytes]]:
    """(origin label, relative path, bytes) of every file in a zip or folder."""
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                yield str(path), PurePosixPath(path.relative_to(source).as_posix()), path.read_bytes()
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield f"{source}:{info.filename}", PurePosixPath(info.filename), archive.read(info)
    else:
        raise ValueError(f"inputs must be zip files or folders, got {str(source)!r}")


def match_entry(relative: PurePosixPath, notebooks: list[str], student_id: str = "userid") -> tuple[str, str, int] | str:
    """``(student, notebook, order)`` for one file, or the reason it does not match."""
    if student_id not in ("userid", "name"):
        raise ValueError(f"student_id must be 'userid' or 'name', got {student_id!r}")
    if relative.suffix != ".ipynb":
        return "not a notebook"
    if any(part.startswith(".") or part == "__MACOSX" for part in relative.parts):
        return "hidden or system file"
    lms = LMS_NAME.match(relative.name)
    if lms:
        student, order = lms.group(student_id), int(lms.group("submission"))
        stem = RESUBMISSION.sub("", PurePosixPath(lms.group("filename")).stem)
    elif len(relative.parts) >= 2:
        student, order, stem = relative.parts[-2], 0, RESUBMISSION.sub("", relative.stem)
    else:
        if len(notebooks) != 1:
            return "file name names no student folder and the assignment has several notebooks"
        return relative.stem, notebooks[0], 0
    if stem in notebooks:
        return student, stem, order
    if len(notebooks) == 1:
        return student, notebooks[0], order
    return f"{stem!r} is not one of the released notebooks {notebooks}"


def collect(course_dir: str | Path, assignment: str, inputs: list[str | Path], *,
            student_id: str = "userid") -> CollectReport:
    """Copy the notebooks in ``inputs`` into the course's ``submitted/`` folder; report the rest."""
    coursedir, _ = open_course(course_dir)
    release = assignment_path(coursedir, coursedir.release_directory, assignment)
    notebooks = sorted(p.stem for p in release.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"assignment {assignment!r} has no released notebooks in {release}")
    if not inputs:
        raise ValueError("inputs must name at least one zip file or folder")
    report = CollectReport()
    chosen: dict[tuple[str, str], _Candidate] = {}
    for source in inputs:
        for origin, relative, content in _entries(Path(source)):
            match = match_entry(relative, notebooks, student_id)
            if isinstance(match, str):
                report.unmatched.append((origin, match))
                continue
            candidate = _Candidate(origin, *match, content=content)
            key = (candidate.student, candidate.notebook)
            previous = chosen.get(key)
            if previous is not None:
                loser, candidate = sorted([previous, candidate], key=lambda c: c.order)
                report.unmatched.append((loser.origin, f"superseded by {candidate.origin}"))
            chosen[key] = candidate
    for (student, notebook), candidate in sorted(chosen.items()):
        folder = assignment_path(coursedir, coursedir.submitted_directory, assignment, student)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{notebook}.ipynb").write_bytes(candidate.content)
        report.collected.append((student, notebook, candidate.origin))
    return report
