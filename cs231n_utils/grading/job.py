"""Autograde one student's submission in an isolated, throw-away nbgrader course.

:func:`grade_submission` is what every worker runs (a process pool or a Dask worker). It builds
a private course in a new temporary directory: the student's ``submitted/`` files, the
assignment's non-notebook source files (no source notebooks) and a private copy of the
gradebook *template* (the assignment's structure, no students). It then runs nbgrader's own
:class:`~nbgrader.converters.Autograde` converter on it, with three additions to nbgrader's
autograde preprocessors: :class:`~.guard.InjectGuards`, :class:`~.sandbox.SandboxedExecute`
(in place of ``Execute``) and :class:`~.guard.CollectGuards`; and ``OverwriteCells`` re-adds
deleted test cells from the gradebook. Copied nbgrader metadata in the student's own cells is
repaired first (:mod:`~.repair`), and the kernel runs in the job's OS sandbox
(:class:`~.sandbox.JobSandbox`), whose processes all die when the job ends. The real gradebook is never opened here: the job
returns a picklable :class:`JobResult` and the parent process merges it
(:mod:`cs231n_utils.grading.gradebook`), one at a time.

Every failure becomes data, never an exception: a corrupt notebook is scored 0 without running,
a dead kernel (``os._exit``, segfault, CPU-time limit, wall-clock watchdog) makes nbgrader drop
the notebook and it is scored 0, and tampering (:mod:`~.tamper`, :mod:`~.guard`) flags the
notebook for review: under isolation the trusted checker's scores stand (the scan and the guard
only report), while tests that ran inside the kernel, and every test without isolation, score 0. Each gets its reasons.
"""
from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException
from nbgrader.coursedir import CourseDirectory
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.preprocessors import (AssignLatePenalties, ClearHiddenTests, CheckCellMetadata, IgnorePattern, LimitOutput,
                                    SaveAutoGrades)
from traitlets.config import Config

from ..kernel import SOCKET_VARIABLE

from .boundary import grader_cache_dir
from .checker import TrustedChecker
from .checker_scores import apply_records, checked_cells
from .guard import GUARD_NAMES, CollectGuards, InjectGuards, read_guard_findings
from .repair import known_cells, repair_notebook
from .sandbox import (SANDBOX_CHANNEL_DIR, JobSandbox, SandboxedExecute, SandboxLimits, read_kernel_death,
                      read_kernel_times)
from .tamper import scan_cells

STATUS_GRADED = "graded"
STATUS_FAILED = "failed"
STATUS_TAMPERED = "tampered"


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to grade one submission, as data (no shared filesystem needed).

    ``submission_files`` and ``source_files`` map relative paths to file contents (the source
    files exclude notebooks); ``template_db`` is the gradebook template's bytes.
    """

    assignment: str
    student: str
    submission_files: dict[str, bytes]
    source_files: dict[str, bytes]
    template_db: bytes
    course_id: str = ""
    config: dict = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    extension_seconds: float | None = None
    static_scan: bool = True


@dataclass
class NotebookResult:
    """Scores of one notebook: ``grades[grade_id] = {"auto_score", "max_score", "needs_manual_grade"}``."""

    name: str
    grades: dict[str, dict[str, Any]]
    failed_tests: dict[str, str] = field(default_factory=dict)
    late_penalty: float | None = None
    autograded_json: str | None = None


@dataclass
class JobResult:
    """What the parent merges into the gradebook for one (assignment, student)."""

    assignment: str
    student: str
    status: str
    reasons: list[str]
    notebooks: list[NotebookResult]
    timestamp: str | None = None
    seconds: float = 0.0
    #: wall seconds per phase of the job (see :func:`_phase_timings`), for the benchmark
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(g["auto_score"] or 0.0 for nb in self.notebooks for g in nb.grades.values())

    @property
    def max_score(self) -> float:
        return sum(g["max_score"] for nb in self.notebooks for g in nb.grades.values())


class _ListHandler(logging.Handler):
    """Keep nbgrader's log messages of one job as ``(level, text)``, formatted at once."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # an argument whose repr needs a closed database session
            text = str(record.msg)
        self.records.append((record.levelno, text))


def _job_config(spec: JobSpec, root: Path, db_url: str, report_dir: Path) -> Config:
    config = Config(copy.deepcopy(spec.config))
    config.merge(Config({
        "CourseDirectory": {
            "root": str(root), "db_url": db_url, "course_id": spec.course_id,
            "assignment_id": spec.assignment, "student_id": spec.student,
            "source_directory": "source", "submitted_directory": "submitted",
            "autograded_directory": "autograded", "feedback_directory": "feedback",
        },
        "Autograde": {
            "autograde_preprocessors": [InjectGuards, SandboxedExecute, CollectGuards, IgnorePattern,
                                        ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
                                        AssignLatePenalties, CheckCellMetadata],
            "permissions": 644,
        },
        "OverwriteCells": {"add_missing_cells": True},
        "Execute": {"timeout": int(spec.limits.cell_timeout_s), "startup_timeout": 60},
        "SandboxedKernelManager": {
            "limits_json": json.dumps(spec.limits.rlimits()),
            "kernel_prefix_json": json.dumps(list(spec.limits.kernel_prefix)),
            "deadline": time.time() + spec.limits.timeout_s,
            "report_dir": str(report_dir),
            "assignment": spec.assignment,
        },
        "CollectGuards": {"report_dir": str(report_dir)},
    }))
    return config


def _channel_config(checker: TrustedChecker) -> Config:
    """The kernel gets the checker's folder at :data:`SANDBOX_CHANNEL_DIR` and its socket's path."""
    return Config({"SandboxedKernelManager": {
        "extra_binds_json": json.dumps([[str(checker.channel_dir), SANDBOX_CHANNEL_DIR]]),
        "extra_env_json": json.dumps({SOCKET_VARIABLE: f"{SANDBOX_CHANNEL_DIR}/{checker.socket_path.name}"}),
    }})


def read_files(folder: Path, *, notebooks: bool = True) -> dict[str, bytes]:
    """``{relative path: bytes}`` of the files under ``folder`` (without notebooks if asked)."""
    files = {}
    if Path(folder).is_dir():
        for path in sorted(Path(folder).rglob("*")):
            relative = path.relative_to(folder)
            if not path.is_file() or ".ipynb_checkpoints" in relative.parts:
                continue
            if notebooks or path.suffix != ".ipynb":
                files[relative.as_posix()] = path.read_bytes()
    return files


def _write_files(files: dict[str, bytes], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = (target / relative).resolve()
        if target.resolve() not in path.parents:
            raise ValueError(f"submission_files holds a path outside the submission: {relative!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _read_notebook(path: Path) -> tuple[Any | None, str | None]:
    """The parsed notebook, or None and why it cannot be graded."""
    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # nbformat raises several unrelated types for bad files
        return None, f"{path.name}: corrupt notebook ({type(error).__name__}: {str(error)[:120]})"
    return nb, None


def _structure(db_url: str, assignment: str) -> dict[str, dict[str, Any]]:
    """Per notebook: grade cell max scores, locked (instructor) code cells' sources, cell types."""
    result = {}
    with Gradebook(db_url) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:
            result[notebook.name] = {
                "max_scores": {cell.name: float(cell.max_score) for cell in notebook.grade_cells},
                "code_grade_cells": {cell.name for cell in notebook.grade_cells if cell.cell_type == "code"},
                "locked": {cell.name: cell.source for cell in notebook.source_cells
                           if cell.locked and cell.cell_type == "code"},
            }
    return result


def _student_cells(nb: Any, locked: dict[str, str]) -> dict[str, str]:
    """Code cells that nbgrader will not overwrite with the instructor's version."""
    cells = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in locked:
            continue
        cells[grade_id or f"#{index}"] = cell.source
    return cells


def _cell_errors(nb: Any, code_grade_cells: set[str]) -> tuple[dict[str, str], list[str]]:
    """(failed test cells -> error name, reasons for errors raised in the student's cells)."""
    failed, reasons = {}, []
    for index, cell in enumerate(nb.cells):
        errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
        if not errors:
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        ename = errors[0].get("ename", "Error")
        if grade_id in code_grade_cells:
            failed[grade_id] = ename
        else:
            reasons.append(f"cell {grade_id or '#' + str(index)} raised {ename}")
    return failed, reasons


def _released_source(source: str) -> str:
    """An instructor cell's source as released: hidden tests removed (nbgrader's own code)."""
    cell = new_code_cell(source)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


def _changed_instructor_cells(nb: Any, locked: dict[str, str]) -> list[str]:
    """Reasons for instructor cells the student deleted or edited (nbgrader restores them)."""
    submitted = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in nb.cells}
    reasons = []
    for grade_id, source in locked.items():
        if grade_id not in submitted:
            reasons.append(f"instructor cell {grade_id} was deleted; restored from the gradebook")
        elif submitted[grade_id].strip() != _released_source(source).strip():
            reasons.append(f"instructor cell {grade_id} was edited; restored from the gradebook")
    return reasons


def _ungraded_copy(path: Path, why: str) -> str:
    """The submitted notebook, outputs cleared, headed by why it could not be graded (for feedback)."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.insert(0, new_markdown_cell(f"**The autograder could not run this notebook:** {why}"))
    return nbformat.writes(nb)


def _reason_notebook(why: str) -> str:
    """A one-cell notebook that says why the submission could not be read (for formgrader and feedback)."""
    nb = new_notebook(cells=[new_markdown_cell(f"**The autograder could not read this notebook:** {why}")])
    return nbformat.writes(nb)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*")


def _failure_reason(records: list[tuple[int, str]]) -> str:
    """The exception that made nbgrader give up on the notebook, from its logged traceback."""
    for level, message in reversed(records):
        if level >= logging.ERROR and "Traceback" in message:
            lines = message.strip().splitlines()
            found = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
            if found:
                detail = " ".join(lines[found[-1]:found[-1] + 2]) if len(lines) > found[-1] + 1 and \
                    lines[found[-1] + 1].startswith("The message was") else lines[found[-1]]
                return f"nbgrader could not grade the notebook ({detail[:300]})"
    return "nbgrader could not grade the notebook"


def ignore_session_warnings() -> None:
    """Silence the SQLAlchemy "not in session" warnings that nbgrader 0.9.6's gradebook API raises
    on every submission it updates: harmless, and they would bury the progress output. Called by
    the CLI and by every worker (spawned workers do not inherit the parent's warning filters)."""
    warnings.filterwarnings("ignore", message=".*not in session.*", module="nbgrader")


def grade_submission(spec: JobSpec) -> JobResult:
    """Autograde ``spec.student``'s ``spec.assignment`` in a private course; never raises."""
    ignore_session_warnings()
    started = time.perf_counter()
    # torch keeps its compile cache in the grader's cache, not in the temporary folder of the jobs
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(grader_cache_dir() / "torchinductor"))
    workdir = Path(tempfile.mkdtemp(prefix="cs231n-job-"))
    try:
        return _grade(spec, workdir, started)
    except Exception as error:  # a bug or an unreadable file must not stop the batch
        return JobResult(spec.assignment, spec.student, STATUS_FAILED,
                         [f"grading error: {type(error).__name__}: {error}"], [],
                         seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _grade(spec: JobSpec, workdir: Path, started: float) -> JobResult:
    root, report_dir, db_dir = workdir / "course", workdir / "report", workdir / "db"
    for folder in (root, report_dir, db_dir):
        folder.mkdir()
    db_path = db_dir / "gradebook.db"
    db_path.write_bytes(spec.template_db)
    db_url = f"sqlite:///{db_path}"
    submitted = root / "submitted" / spec.student / spec.assignment
    _write_files(spec.submission_files, submitted)
    _write_files({k: v for k, v in spec.source_files.items() if not k.endswith(".ipynb")},
                 root / "source" / spec.assignment)

    structure = _structure(db_url, spec.assignment)
    reasons: list[str] = []
    tampered: dict[str, list[str]] = {}
    unreadable: dict[str, str] = {}
    for name, info in structure.items():
        path = submitted / f"{name}.ipynb"
        if not path.exists():
            reasons.append(f"{name}.ipynb: not submitted")
            continue
        nb, problem = _read_notebook(path)
        if nb is None:
            reasons.append(problem)
            unreadable[name] = problem
            path.unlink()  # nbgrader then records the notebook as missing: every grade 0
            continue
        repairs = repair_notebook(nb, known_cells(db_url, spec.assignment, name))
        if repairs:
            nbformat.write(nb, str(path))
            reasons.extend(f"{name}: {r}" for r in repairs)
        reasons.extend(f"{name}: {r}" for r in _changed_instructor_cells(nb, info["locked"]))
        if spec.static_scan:
            findings = scan_cells(_student_cells(nb, info["locked"]),
                                  [*info["locked"].values(), *(f"{n} = None" for n in GUARD_NAMES)])
            if findings:
                tampered[name] = [f"tampering: {finding}" for finding in findings]

    if spec.extension_seconds:
        with Gradebook(db_url) as gb:
            gb.update_or_create_student(spec.student)
            submission = gb.update_or_create_submission(spec.assignment, spec.student)
            submission.extension = datetime.timedelta(seconds=spec.extension_seconds)
            gb.db.commit()

    handler = _ListHandler()
    log = logging.getLogger("cs231n_utils.grading.job.nbgrader")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    config = _job_config(spec, root, db_url, report_dir)
    scored = {name: checked_cells(info["code_grade_cells"]) for name, info in structure.items()}
    clock = {"prepared": time.time()}
    with JobSandbox(spec.limits, workdir, assignment=spec.assignment) as sandbox:
        checker = TrustedChecker(sandbox.channel_dir, grade_ids=set().union(*scored.values()))
        config.merge(_channel_config(checker))
        config.merge(Config(sandbox.kernel_config()))
        coursedir = CourseDirectory(config=config, log=log)
        converter = Autograde(coursedir=coursedir, config=config, log=log)
        with checker:
            try:
                converter.start()
            except NbGraderException:
                pass  # recorded below from the log, the kernel-death file and the missing output
            finally:
                clock["graded"] = time.time()
                sandbox.end_processes()  # every process of the job dies before the checker stops listening
        isolated = sandbox.plan is not None
    clock["cleaned"] = time.time()
    autograded = root / "autograded" / spec.student / spec.assignment
    for name, cells in scored.items():
        if cells:
            apply_records(db_url, spec.assignment, spec.student, name, cells, checker.snapshot(),
                          autograded / f"{name}.ipynb")

    death = read_kernel_death(report_dir)
    notebooks, status = [], STATUS_GRADED
    with Gradebook(db_url) as gb:
        timestamp = None
        try:
            submission = gb.find_submission(spec.assignment, spec.student)
            timestamp = submission.timestamp.isoformat() if submission.timestamp else None
        except MissingEntry:
            submission = None
            found = coursedir.get_existing_timestamp(str(submitted))
            timestamp = found.isoformat() if found else None
        for name, info in structure.items():
            grades = {gid: {"auto_score": None, "max_score": m, "needs_manual_grade": False}
                      for gid, m in info["max_scores"].items()}
            result = NotebookResult(name, grades)
            if submission is not None:
                sub_nb = gb.find_submission_notebook(name, spec.assignment, spec.student)
                result.late_penalty = sub_nb.late_submission_penalty
                for grade in sub_nb.grades:
                    grades[grade.name].update(auto_score=grade.auto_score, needs_manual_grade=bool(grade.needs_manual_grade))
            output = autograded / f"{name}.ipynb"
            if output.exists():
                result.autograded_json = output.read_text()
                executed = nbformat.reads(result.autograded_json, as_version=4)
                result.failed_tests, cell_reasons = _cell_errors(executed, info["code_grade_cells"])
                reasons.extend(f"{name}: {r}" for r in cell_reasons)
            else:
                status = STATUS_FAILED
                if (submitted / f"{name}.ipynb").exists():
                    why = f"{death or _failure_reason(handler.records)}; scored 0"
                    reasons.append(f"{name}: {why}")
                    result.autograded_json = _ungraded_copy(submitted / f"{name}.ipynb", why)
                elif name in unreadable:
                    result.autograded_json = _reason_notebook(f"{unreadable[name]}; scored 0")
            findings = tampered.get(name, [])
            guard_findings = read_guard_findings(report_dir, name)
            if output.exists() and guard_findings:
                findings = findings + [f"tampering: {f}" for f in guard_findings]
            if findings:
                status = STATUS_TAMPERED
                reasons.extend(f"{name}: {f}" for f in findings)
                reasons.append(f"{name}: {_tampering_consequence(isolated, scored[name], info['code_grade_cells'])}")
            if findings or not output.exists():
                # an unreadable notebook has no answer to grade by hand either
                zeroed = info["max_scores"] if name in unreadable else info["code_grade_cells"]
                if findings and output.exists() and isolated:
                    zeroed = set(zeroed) - set(scored[name])  # the checker's scores were computed outside
                for grade_id in zeroed:
                    grades[grade_id].update(auto_score=0.0, needs_manual_grade=False)
            notebooks.append(result)
    if death and status == STATUS_GRADED:
        reasons.append(death)
    reasons.extend(sandbox.faults)
    seconds = time.perf_counter() - started
    return JobResult(spec.assignment, spec.student, status, reasons, notebooks, timestamp, seconds=seconds,
                     timings=_phase_timings(clock, read_kernel_times(report_dir), time.time() - seconds))


def _tampering_consequence(isolated: bool, checked: set[str], autograded: set[str]) -> str:
    """What tampering findings do to the scores: under isolation the static scan and the guard only
    report, and the trusted checker's scores (computed outside the sandbox) stand; tests that ran
    inside the kernel, or every test without isolation, score 0."""
    in_kernel = sorted(set(autograded) - set(checked))
    if not isolated:
        return "flagged for review; every autograded test scores 0 (graded without isolation)"
    if in_kernel:
        return (f"flagged for review; the trusted checker's scores stand, the tests run inside the "
                f"notebook ({', '.join(in_kernel)}) score 0")
    return "flagged for review; the scores stand (computed by the trusted checker outside the sandbox)"


def _phase_timings(clock: dict[str, float], kernel: dict[str, float], began: float) -> dict[str, float]:
    """Seconds per phase: ``prepare`` (private course, checks, repair), ``nbgrader_to_kernel``
    (sandbox set-up and nbgrader's preprocessors before the kernel), ``kernel`` (kernel start and
    every cell), ``nbgrader_after`` (saving grades), ``cleanup`` (killing the job's processes),
    ``collect`` (reading the private gradebook back)."""
    end = time.time()
    launch = kernel.get("kernel_launch", clock["graded"])
    shutdown = kernel.get("kernel_shutdown", launch)
    return {"prepare": clock["prepared"] - began, "nbgrader_to_kernel": launch - clock["prepared"],
            "kernel": shutdown - launch, "nbgrader_after": clock["graded"] - shutdown,
            "cleanup": clock["cleaned"] - clock["graded"], "collect": end - clock["cleaned"]}
