"""Autograde every submission of an assignment: plan the jobs, run them, merge serially.

The parent process reads the course (``nbgrader_config.py``), makes the gradebook template,
turns each ``submitted/<student>/<assignment>/`` into a self-contained
:class:`~cs231n_utils.grading.job.JobSpec`, runs them with :func:`~.runner.run_jobs`, and for
each result, in completion order, merges it into the course gradebook, writes the executed
notebooks to ``autograded/`` and updates ``grading/<assignment>/results.json``.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from nbgrader.api import Gradebook, MissingEntry

from .course import assignment_path, open_course
from .gradebook import make_template, merge_result, save_results, write_autograded
from .job import JobResult, JobSpec, read_files
from .runner import run_jobs
from .sandbox import SandboxLimits, isolation_problem

#: results.json is rewritten after this many merged results (and at the end, even on errors).
SAVE_EVERY = 25


def submitted_students(course_dir: str | Path, assignment: str) -> list[str]:
    """Students with a ``submitted/<student>/<assignment>/`` folder, sorted."""
    coursedir, _ = open_course(course_dir)
    root = Path(coursedir.root) / coursedir.submitted_directory
    return sorted(path.parent.name for path in root.glob(f"*/{assignment}") if path.is_dir())


def _specs(coursedir, config, assignment: str, students: list[str], template: bytes,
           limits: SandboxLimits, static_scan: bool) -> Iterator[JobSpec]:
    source_files = read_files(assignment_path(coursedir, coursedir.source_directory, assignment), notebooks=False)
    base = JobSpec(assignment, "", {}, source_files, template, coursedir.course_id, dict(config), limits,
                   static_scan=static_scan)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        extensions = {}
        for student in students:
            try:
                extension = gb.find_submission(assignment, student).extension
            except MissingEntry:
                continue
            if extension is not None:
                extensions[student] = extension.total_seconds()
    for student in students:
        folder = assignment_path(coursedir, coursedir.submitted_directory, assignment, student)
        yield replace(base, student=student, submission_files=read_files(folder),
                      extension_seconds=extensions.get(student))


def autograde(course_dir: str | Path, assignment: str, *, students: list[str] | None = None,
              workers: int = 1, scheduler: str | None = None, limits: SandboxLimits | None = None,
              static_scan: bool = True, on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Autograde ``assignment`` for ``students`` (default: every submission); return the results."""
    if not isinstance(assignment, str) or not assignment:
        raise ValueError(f"assignment must be a non-empty string, got {assignment!r}")
    coursedir, config = open_course(course_dir)
    everyone = submitted_students(course_dir, assignment)
    if students is None:
        students = everyone
    missing = sorted(set(students) - set(everyone))
    if missing:
        raise ValueError(f"students have no submission of {assignment!r}: {', '.join(missing)}")
    limits = limits or SandboxLimits()
    problem = isolation_problem() if limits.isolate and scheduler is None else None
    if problem:
        raise ValueError(f"refusing to grade without OS isolation: {problem}. Install bubblewrap, or pass "
                         "--unsafe-no-isolation (SandboxLimits(isolate=False)) to run student code unsandboxed")
    results: list[JobResult] = []
    with tempfile.TemporaryDirectory(prefix="cs231n-template-") as scratch:
        template = make_template(coursedir.db_url, assignment, Path(scratch) / "template.db").read_bytes()
        specs = _specs(coursedir, config, assignment, students, template, limits, static_scan)
        unsaved: list[JobResult] = []
        gradebook = None  # opened after the workers started, so no worker inherits its connection
        try:
            for result in run_jobs(specs, workers=workers, scheduler=scheduler):
                if gradebook is None:
                    gradebook = Gradebook(coursedir.db_url, coursedir.course_id)
                merge_result(gradebook, result)
                write_autograded(assignment_path(coursedir, coursedir.autograded_directory, assignment,
                                                 result.student), result)
                results.append(result)
                unsaved.append(result)
                if len(unsaved) >= SAVE_EVERY:
                    save_results(Path(coursedir.root), assignment, unsaved)
                    unsaved.clear()
                if on_result is not None:
                    on_result(result)
        finally:
            if gradebook is not None:
                gradebook.close()
            save_results(Path(coursedir.root), assignment, unsaved)
    return results
