"""End to end: a tiny nbgrader course, every kind of bad submission, graded in one batch.

The course (``cs231n_utils.grading.demo_course``) has one answer cell ``double`` worth 3 points:
a visible test (1 point) and a hidden test (2 points). Expected scores below come from what
each submission does, not from the tool: an honest solution earns 3, the release's stub 0.
"""
from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import zipfile

import nbformat
import pytest
from nbgrader.api import Gradebook

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.autograde_batch import autograde
from cs231n_utils.grading.cli import main
from cs231n_utils.grading.course import open_course
from cs231n_utils.grading.gradebook import load_results, make_template
from cs231n_utils.grading.job import JobSpec, grade_submission, read_files
from cs231n_utils.grading.sandbox import SandboxLimits, isolation_problem

# nbgrader's own update_or_create_submission triggers SQLAlchemy autoflush warnings
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

# The OS sandbox (bubblewrap) where this machine has it, as in CI; unisolated elsewhere so that the
# grading pipeline is still tested (tests/test_adversarial_sandbox.py is skipped there).
ISOLATED = isolation_problem() is None
LIMITS = SandboxLimits(timeout_s=25, cell_timeout_s=8, memory_mb=1536, cpu_seconds=5, isolate=ISOLATED)
UNSAFE = [] if ISOLATED else ["--unsafe-no-isolation"]
WRONG = "def double(x):\n    return 4 if np.isscalar(x) else x"  # passes the visible test only

SUBMISSIONS = {
    "honest": dc.ANSWER,
    "blank": None,
    "partial": WRONG,
    "loop": "while True:\n    pass",
    "sleeper": "import time\nwhile True:\n    try:\n        time.sleep(100)\n    except BaseException:\n        pass",
    "membomb": "blob = bytearray(8 * 1024 ** 3)\n" + dc.ANSWER,
    "sysexit": "import sys\nsys.exit(1)\n" + dc.ANSWER,
    "crash": "import os\nos._exit(3)",
    "segfault": "import faulthandler\nfaulthandler._sigsegv()",
    "allclose": "np.allclose = lambda *a, **k: True\n" + WRONG,
    "helper": "def check_close(actual, expected):\n    pass\n\n" + WRONG,
    "transformer": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])\n" + WRONG,
}
# graded a second time without the static scan: the runtime guard alone must catch them
GUARD_ONLY = {"g_allclose": SUBMISSIONS["allclose"], "g_helper": SUBMISSIONS["helper"],
              "g_transformer": SUBMISSIONS["transformer"]}


def _release_without_tests(root):
    nb = dc.released_notebook(root)
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")]
    return nb


def _release_with_edited_tests(root):
    nb = dc.released_notebook(root)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_"):
            cell.source = "pass"
            cell.metadata["nbgrader"]["locked"] = False
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = dc.build_course(tmp_path_factory.mktemp("course"))
    for student, answer in {**SUBMISSIONS, **GUARD_ONLY}.items():
        dc.write_submission(root, student, answer)
    dc.write_submission(root, "corrupt", None, raw='{"cells": [ this is not json')
    dc.write_submission(root, "deleted", dc.ANSWER, notebook=_release_without_tests(root))
    dc.write_submission(root, "edited", WRONG, notebook=_release_with_edited_tests(root))
    students = sorted([*SUBMISSIONS, "corrupt", "deleted", "edited"])
    results = {r.student: r for r in autograde(root, dc.ASSIGNMENT, students=students, workers=2, limits=LIMITS)}
    guard_only = autograde(root, dc.ASSIGNMENT, students=sorted(GUARD_ONLY), workers=1, limits=LIMITS,
                           static_scan=False)
    results.update({r.student: r for r in guard_only})
    return root, results


def _gradebook_scores(root):
    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(dc.ASSIGNMENT).submissions}


def test_honest_blank_and_partial_scores(course):
    root, results = course
    scores = _gradebook_scores(root)
    assert (scores["honest"], scores["blank"], scores["partial"]) == (3.0, 0.0, 1.0)
    assert results["honest"].status == "graded" and results["honest"].reasons == []


def test_every_submission_has_exactly_one_gradebook_row(course):
    root, results = course
    assert sorted(_gradebook_scores(root)) == sorted(results)
    assert not any("locked" in reason for r in results.values() for reason in r.reasons)


@pytest.mark.parametrize("student, words", [
    ("corrupt", "corrupt notebook"),
    ("loop", ""),  # CPU limit kills the kernel, or the cell timeout interrupts it
    ("sleeper", "time"),  # nbclient gives up waiting for output, or the watchdog kills it
    ("membomb", "MemoryError"),
    ("sysexit", "SystemExit"),
    ("crash", "status 3"),
    ("segfault", "SIGSEGV"),
])
def test_each_failure_is_recorded_with_zero_and_a_reason(course, student, words):
    root, results = course
    assert _gradebook_scores(root)[student] == 0.0
    reasons = " ".join(results[student].reasons)
    assert reasons and words in reasons
    assert load_results(root, dc.ASSIGNMENT)[student]["reasons"] == results[student].reasons


def test_deleted_and_edited_test_cells_are_restored_and_scored_honestly(course):
    root, results = course
    scores = _gradebook_scores(root)
    assert scores["deleted"] == 3.0 and "test_double was deleted" in " ".join(results["deleted"].reasons)
    assert scores["edited"] == 1.0 and "test_double_hidden was edited" in " ".join(results["edited"].reasons)


@pytest.mark.parametrize("student", ["allclose", "helper", "transformer", *GUARD_ONLY])
def test_tampering_scores_no_more_than_the_blank_submission(course, student):
    root, results = course
    scores = _gradebook_scores(root)
    assert scores[student] <= scores["blank"]
    assert results[student].status == "tampered"
    assert any("tampering" in reason for reason in results[student].reasons)


def test_guard_restores_numpy_before_the_hidden_test(course):
    _, results = course
    assert "restored numpy.allclose" in " ".join(results["g_allclose"].reasons)
    assert "instructor name 'check_close'" in " ".join(results["g_helper"].reasons)
    assert "did not run normally" in " ".join(results["g_transformer"].reasons)
    # the hidden test really ran against the pristine numpy: WRONG fails it
    nb = nbformat.reads(results["g_allclose"].notebooks[0].autograded_json, as_version=4)
    assert results["g_allclose"].notebooks[0].failed_tests == {"test_double_hidden": "AssertionError"}
    assert not any(c.metadata.get("cs231n_guard") for c in nb.cells)


def test_failed_and_tampered_notebooks_are_flagged_for_the_grader(course):
    root, _ = course
    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url) as gb:
        flagged = {s.student.id: s.notebooks[0].flagged for s in gb.find_assignment(dc.ASSIGNMENT).submissions}
    assert flagged["crash"] and flagged["allclose"] and not flagged["honest"] and not flagged["blank"]


def test_kernel_sees_no_notebook_gradebook_or_hidden_test_in_its_directory(course):
    root, _ = course
    probe = (
        "import os\n"
        "listing = sorted(os.listdir(os.getcwd()))\n"
        "text = ''.join(open(n, errors='ignore').read() for n in listing if os.path.isfile(n))\n"
        "print('LISTING', listing, 'LEAK' if " + repr(dc.HIDDEN_MARKER[:20]) + " in text else 'CLEAN')\n"
        + dc.ANSWER
    )
    folder = root / "probe"
    dc.write_submission(root, "probe", probe)
    coursedir, config = open_course(root)
    template = make_template(coursedir.db_url, dc.ASSIGNMENT, root / "probe-template.db").read_bytes()
    spec = JobSpec(dc.ASSIGNMENT, "probe", read_files(root / "submitted" / "probe" / dc.ASSIGNMENT),
                   {"data.txt": b"supporting file"}, template, coursedir.course_id, dict(config), LIMITS,
                   static_scan=False)
    result = grade_submission(spec)
    shutil.rmtree(root / "submitted" / "probe")
    assert result.score == 3.0
    nb = nbformat.reads(result.notebooks[0].autograded_json, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    # IPython's profile dir, the assignment's data file and the submission's timestamp; nothing else
    assert "LISTING ['.ipython', 'data.txt', 'timestamp.txt'] CLEAN" in printed
    assert not folder.exists()


def test_rerun_is_idempotent_and_touches_only_the_chosen_students(course):
    root, _ = course
    coursedir, _ = open_course(root)

    def snapshot():
        with sqlite3.connect(coursedir.db_url[len("sqlite:///"):]) as db:
            return {table: db.execute(f"select count(*) from {table}").fetchone()[0]
                    for table in ("student", "submitted_assignment", "submitted_notebook", "grade")}

    before_rows, before_scores = snapshot(), _gradebook_scores(root)
    again = autograde(root, dc.ASSIGNMENT, students=["honest", "partial"], workers=1, limits=LIMITS)
    assert {r.student: r.score for r in again} == {"honest": 3.0, "partial": 1.0}
    assert snapshot() == before_rows
    assert _gradebook_scores(root) == before_scores


def test_cli_autograde_reports_failures_and_exits_1(course, capsys):
    root, _ = course
    code = main(["--course", str(root), "--quiet", "autograde", dc.ASSIGNMENT, "--student", "honest,crash",
                 "--timeout", "25", "--cell-timeout", "8", "--memory-mb", "1536", "--cpu-seconds", "5", *UNSAFE])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 failed, 1 graded" in out and "crash: failed, 0/3" in out
    assert _gradebook_scores(root)["honest"] == 3.0


def test_dask_scheduler_address_runs_the_same_jobs(course):
    from distributed import LocalCluster

    root, _ = course
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        results = autograde(root, dc.ASSIGNMENT, students=["blank", "honest"], scheduler=cluster.scheduler_address,
                            limits=LIMITS)
    assert sorted((r.student, r.score) for r in results) == [("blank", 0.0), ("honest", 3.0)]


def test_feedback_and_export_commands(course, tmp_path, capsys):
    root, _ = course
    assert main(["--course", str(root), "--quiet", "feedback", dc.ASSIGNMENT, "--student", "honest,crash"]) == 0
    assert (root / "feedback" / "honest" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.html").exists()
    assert main(["--course", str(root), "export", dc.ASSIGNMENT, "--out", str(tmp_path)]) == 0
    with (tmp_path / f"{dc.ASSIGNMENT}_grades.csv").open() as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert float(rows["honest"]["score"]) == 3.0 and rows["crash"]["status"] == "failed"
    assert "status 3" in rows["crash"]["reasons"]
    with (tmp_path / f"{dc.ASSIGNMENT}_test_failures.csv").open() as handle:
        failures = {row["test"]: row for row in csv.DictReader(handle)}
    ran = [r for r in rows.values() if r["status"] not in ("failed", "tampered")]  # the others: one row each
    hidden_passes = sum(float(r["score"]) == 3.0 for r in ran)
    assert int(failures["test_double_hidden"]["lost_points"]) == len(ran) - hidden_passes
    assert int(failures["(submission failed)"]["lost_points"]) == sum(r["status"] == "failed" for r in rows.values())
    assert (tmp_path / f"{dc.ASSIGNMENT}_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_from_an_lms_zip_reports_unmatched_files(course, tmp_path, capsys):
    root, _ = course
    notebook = json.dumps(nbformat.v4.new_notebook())
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("smithjo_1001_5_ps1.ipynb", notebook)
        zipped.writestr("smithjo_1001_7_ps1-1.ipynb", notebook + " ")
        zipped.writestr("leeann_late_1002_6_ps1.ipynb", notebook)
        zipped.writestr("leeann_1002_6_notes.pdf", b"%PDF")
    assert main(["--course", str(root), "collect", dc.ASSIGNMENT, str(archive)]) == 0
    out = capsys.readouterr().out
    assert "collected 2 notebooks for 2 students" in out
    assert "notes.pdf: not a notebook" in out and "smithjo_1001_5_ps1.ipynb: superseded" in out
    assert (root / "submitted" / "1001" / dc.ASSIGNMENT / "ps1.ipynb").read_text() == notebook + " "
    shutil.rmtree(root / "submitted" / "1001")
    shutil.rmtree(root / "submitted" / "1002")


def test_wall_clock_watchdog_kills_a_kernel_that_outlives_its_budget(course):
    root, _ = course
    coursedir, config = open_course(root)
    template = make_template(coursedir.db_url, dc.ASSIGNMENT, root / "watchdog-template.db").read_bytes()
    files = {"ps1.ipynb": nbformat.writes(dc.released_notebook(root)).encode()}
    files["ps1.ipynb"] = files["ps1.ipynb"].replace(b"raise NotImplementedError()", b"import time; time.sleep(120)")
    limits = SandboxLimits(timeout_s=6, cell_timeout_s=100, memory_mb=1536, cpu_seconds=5, isolate=ISOLATED)
    spec = JobSpec(dc.ASSIGNMENT, "watchdog", files, {}, template, coursedir.course_id, dict(config), limits)
    result = grade_submission(spec)
    assert result.status == "failed" and result.score == 0.0
    assert "wall-clock timeout" in " ".join(result.reasons)
    assert result.seconds < 30
