"""An instructor's day end to end in a temporary course, through ``cs231n-grade`` and nbgrader's API.

LMS zip -> ``collect`` (roster names, lateness, the right file out of several, a wrong name, a
non-JSON file, a decomposed-Unicode name with spaces) -> ``autograde`` -> ``feedback`` refused
while a written answer is ungraded -> manual grades set through nbgrader's gradebook API ->
``feedback`` -> ``autograde`` again (manual grades and their "graded" state kept) -> ``export``
(grades CSV, Canvas import CSV, failure table) checked column by column.

The course is the demo course (``cs231n_utils.grading.demo_course``: ``double(x)``, a visible
test worth 1 and a hidden test worth 2) with its notebook named ``update_rules`` and a written
answer ``discussion`` worth 2 points graded by hand, due 2026-03-01 23:59 UTC with nbgrader's
"zero" late policy. Every expected value below is written from what the submission does.
"""
from __future__ import annotations

import csv
import datetime
import unicodedata
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.cli import main
from cs231n_utils.grading.course import load_course_config, open_course
from tests.test_book import browser, chromium  # noqa: F401 - the book tests' headless Chromium fixtures

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

NOTEBOOK = "update_rules"
DUE = datetime.datetime(2026, 3, 1, 23, 59)
WRONG = "def double(x):\n    return 4 if np.isscalar(x) else x"  # passes the visible test only
LIMIT_ARGS = ["--timeout", "40", "--cell-timeout", "15", "--memory-mb", "1536", "--cpu-seconds", "20"]
ROSTER = (
    "Student,ID,SIS User ID,SIS Login ID,Section,PS1 (4321)\n"
    "    Points Possible,,,,,5\n"
    "\"Lee, Ann\",1001,S-1001,alee@uni.example,Sec A,\n"
    "\"Müller, José\",1002,S-1002,jmuller@uni.example,Sec A,\n"
    "\"Doe, Jane\",1003,S-1003,jdoe@uni.example,Sec B,\n"
    "\"Smith, Bo\",1004,S-1004,bsmith@uni.example,Sec B,\n"
    "\"Ng, Kim\",1005,S-1005,kng@uni.example,Sec B,\n"
)
COURSE_CONFIG = (
    "c.LateSubmissionPlugin.penalty_method = 'zero'\n"
    "import os\n"
    "c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'exchange')\n"
    "os.makedirs(c.Exchange.root, exist_ok=True)\n"
    "c.FormgradeExtension.debug = False\n"
    "c.NbGraderAPI.Autograde.exporter_class = 'cs231n_utils.grading.formgrader.RefuseUnsandboxedAutograde'\n"
)


def _source_notebook() -> nbformat.NotebookNode:
    nb = dc.source_notebook()
    discussion = new_markdown_cell("Which answer did your curves support?\n\n=== BEGIN MARK SCHEME ===\nany\n"
                                   "=== END MARK SCHEME ===")
    discussion.metadata["nbgrader"] = {"grade": True, "solution": True, "locked": False, "points": 2,
                                       "grade_id": "discussion", "schema_version": 3}
    nb.cells.append(discussion)
    return nb


def _build_course(root):
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    (root / "solutions" / dc.ASSIGNMENT).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(dc.CONFIG + COURSE_CONFIG)
    nbformat.write(_source_notebook(), str(root / "solutions" / dc.ASSIGNMENT / f"{NOTEBOOK}.ipynb"))
    config = load_course_config(root)
    coursedir = CourseDirectory(config=config)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        gb.update_or_create_assignment(dc.ASSIGNMENT, duedate=DUE)
    result = NbGraderAPI(coursedir=coursedir, config=config).generate_assignment(dc.ASSIGNMENT, force=True)
    assert result["success"], result["log"]


def _answer(root, code: str, discussion: str = "My curves show it.") -> str:
    nb = nbformat.read(str(root / "assignments" / dc.ASSIGNMENT / f"{NOTEBOOK}.ipynb"), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "double":
            cell.source = code
        elif grade_id == "discussion":
            cell.source = discussion
    return nbformat.writes(nb)


def _lms_zip(root, path):
    """The LMS download: (entry name, content, zip entry time)."""
    after_due, before_due = (2026, 3, 2, 10, 0, 0), (2026, 3, 1, 12, 0, 0)
    entries = [
        # Ann: an earlier blank attempt, then the answer next to a scratch notebook and a PDF
        ("leeann_1001_9_update_rules.ipynb", _answer(root, "def double(x):\n    return None"), before_due),
        ("leeann_1001_11_workings.ipynb", _answer(root, WRONG, "scratch"), before_due),
        ("leeann_1001_11_update_rules.ipynb", _answer(root, dc.ANSWER), before_due),
        ("leeann_1001_11_update_rules.pdf", "%PDF-1.4", before_due),
        # José: late, a decomposed-Unicode name and spaces; the entry time is before the due date
        (unicodedata.normalize("NFD", "müllerjosé_late_1002_12_Update Rules.ipynb"), _answer(root, dc.ANSWER),
         before_due),
        # Jane: a wrongly named notebook, on time by the LMS although the entry time is later
        ("doejane_1003_13_homework.ipynb", _answer(root, WRONG), after_due),
        # Bo: not a notebook at all
        ("smithbo_1004_14_update_rules.ipynb", "this is not json", before_due),
    ]
    with zipfile.ZipFile(path, "w") as archive:
        for name, content, when in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=when), content)
    return path


def _rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    _build_course(root)
    (root / "roster.csv").write_text(ROSTER, encoding="utf-8")
    _lms_zip(root, root / "download.zip")
    return root


def _cli(root, *args):
    return main(["--course", str(root), "--quiet", *args])


def _grades(root):
    from nbgrader.api import Gradebook

    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        return {(s.student.id, g.name): (g.auto_score, g.manual_score, bool(g.needs_manual_grade))
                for s in gb.find_assignment(dc.ASSIGNMENT).submissions for nb in s.notebooks for g in nb.grades}


def test_collect_picks_the_right_file_and_reports_every_other(day, capfd):
    code = _cli(day, "collect", dc.ASSIGNMENT, str(day / "download.zip"), "--roster", str(day / "roster.csv"))
    out, err = capfd.readouterr()
    assert code == 0
    assert "collected 4 notebooks for 4 students into submitted/ (1 late, 2 renamed, 1 not valid notebooks)" in out
    assert "Unwritable directory" not in out + err
    submitted = day / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["1001", "1002", "1003", "1004"]
    chosen = nbformat.read(str(submitted / "1001" / dc.ASSIGNMENT / f"{NOTEBOOK}.ipynb"), as_version=4)
    assert any(cell.source == dc.ANSWER for cell in chosen.cells)  # not the scratch, not the blank attempt
    manifest = {row["source"].rsplit(":", 1)[-1]: row for row in
                _rows(day / "grading" / dc.ASSIGNMENT / "collect_manifest.csv")}
    assert len(manifest) == 7
    assert manifest["leeann_1001_9_update_rules.ipynb"]["action"] == "superseded"
    assert "a later submission" in manifest["leeann_1001_9_update_rules.ipynb"]["reason"]
    assert manifest["leeann_1001_11_workings.ipynb"]["action"] == "superseded"
    assert "named like the released notebook" in manifest["leeann_1001_11_workings.ipynb"]["reason"]
    assert (manifest["leeann_1001_11_update_rules.pdf"]["action"],
            manifest["leeann_1001_11_update_rules.pdf"]["reason"]) == ("unmatched", "not a notebook")
    jose = manifest["müllerjosé_late_1002_12_Update Rules.ipynb"]
    assert (jose["action"], jose["student_id"], jose["notebook"], jose["late"], jose["lms_name"]) == \
        ("collected", "1002", NOTEBOOK, "True", "müllerjosé")
    assert (jose["first_name"], jose["last_name"]) == ("José", "Müller")
    jane = manifest["doejane_1003_13_homework.ipynb"]
    assert (jane["action"], jane["student_id"], jane["valid_notebook"]) == ("collected", "1003", "True")
    assert jane["reason"].startswith("renamed")
    bo = manifest["smithbo_1004_14_update_rules.ipynb"]
    assert (bo["action"], bo["valid_notebook"]) == ("collected", "False")
    assert "not a valid notebook" in bo["reason"]
    # lateness: the late marker puts José after the due date, Jane's on-time file at most at it
    stamps = {s: (submitted / s / dc.ASSIGNMENT / "timestamp.txt").read_text() for s in ("1001", "1002", "1003")}
    assert stamps == {"1001": "2026-03-01 12:00:00.000000 UTC", "1002": "2026-03-01 23:59:01.000000 UTC",
                      "1003": "2026-03-01 23:59:00.000000 UTC"}


@pytest.fixture(scope="module")
def graded(day):
    """collect (again: this fixture must stand alone under -k), then autograde every submission once."""
    assert _cli(day, "collect", dc.ASSIGNMENT, str(day / "download.zip"), "--roster", str(day / "roster.csv")) == 0
    assert _cli(day, "autograde", dc.ASSIGNMENT, "--workers", "2", *LIMIT_ARGS) == 1  # Bo's file failed
    return day


def test_autograde_status_is_what_the_formgrader_shows(graded):
    from nbgrader.apps import NbGraderAPI

    coursedir, config = open_course(graded)
    api = NbGraderAPI(coursedir=coursedir, config=config)
    submissions = {s["student"]: s for s in api.get_submissions(dc.ASSIGNMENT)}
    assert sorted(submissions) == ["1001", "1002", "1003", "1004"]
    for student, submission in submissions.items():
        assert submission["autograded"], f"{student} shown as needing autograding"
        assert submission["timestamp"] is not None and submission["display_timestamp"] is not None
    assert (submissions["1002"]["first_name"], submissions["1002"]["last_name"]) == ("José", "Müller")
    bo = nbformat.read(str(graded / "autograded" / "1004" / dc.ASSIGNMENT / f"{NOTEBOOK}.ipynb"), as_version=4)
    assert "could not read this notebook" in bo.cells[0].source and "corrupt notebook" in bo.cells[0].source
    grades = _grades(graded)
    assert grades[("1004", "discussion")] == (0.0, None, False)  # nothing to grade by hand
    assert grades[("1001", "discussion")] == (None, None, True)


def test_formgrader_autograde_button_refuses_and_leaves_the_sandboxed_results(graded):
    from nbgrader.apps import NbGraderAPI

    coursedir, config = open_course(graded)
    before = _grades(graded)
    autograded = graded / "autograded" / "1001" / dc.ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    notebook = autograded.read_bytes()
    result = NbGraderAPI(coursedir=coursedir, config=config).autograde(dc.ASSIGNMENT, "1001", force=True)
    assert not result["success"]
    assert "cs231n-grade autograde ps1 --student 1001" in result["error"]
    assert _grades(graded) == before and autograded.read_bytes() == notebook


@pytest.fixture(scope="module")
def hand_graded(graded):
    """The written answers graded through nbgrader's gradebook API, as the formgrader saves them."""
    from nbgrader.api import Gradebook

    coursedir, _ = open_course(graded)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for student, points in (("1001", 2.0), ("1002", 0.0), ("1003", 0.5)):
            grade = gb.find_grade("discussion", NOTEBOOK, dc.ASSIGNMENT, student)
            grade.manual_score = points
            grade.needs_manual_grade = False  # what the formgrader's "save" does with a score
        gb.db.commit()
    return graded


def test_feedback_refuses_until_hand_grading_is_done_then_writes_every_file(graded, request, capfd):
    feedback = graded / "feedback"
    assert _cli(graded, "feedback", dc.ASSIGNMENT) == 1
    out = capfd.readouterr().out
    assert "3 submissions still need manual grades" in out and "1001: update_rules/discussion" in out
    assert "--allow-ungraded" in out and not feedback.exists()

    request.getfixturevalue("hand_graded")
    assert _cli(graded, "feedback", dc.ASSIGNMENT) == 0
    out, err = capfd.readouterr()
    assert "feedback for 4 of 4 students" in out and "Unwritable directory" not in out + err
    ann = (feedback / "1001" / dc.ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
    assert "2.0 / 2.0" in ann or "2 / 2" in ann
    bo = (feedback / "1004" / dc.ASSIGNMENT / "grading_status.html").read_text()
    assert "ps1: failed" in bo and "corrupt notebook" in bo


def test_rerunning_autograde_keeps_manual_grades_and_their_graded_state(hand_graded):
    graded = hand_graded
    before = _grades(graded)
    assert before[("1001", "discussion")] == (None, 2.0, False)
    assert _cli(graded, "autograde", dc.ASSIGNMENT, "--student", "1001,1003", *LIMIT_ARGS) == 0
    assert _grades(graded) == before
    assert _cli(graded, "feedback", dc.ASSIGNMENT, "--student", "1001") == 0


def test_export_files_column_by_column(hand_graded, tmp_path, capfd):
    graded = hand_graded
    assert _cli(graded, "export", dc.ASSIGNMENT, "--out", str(tmp_path), "--roster", str(graded / "roster.csv")) == 0
    assert "still need manual grades" not in capfd.readouterr().out  # all graded by hand above
    rows = {row["student_id"]: row for row in _rows(tmp_path / f"{dc.ASSIGNMENT}_grades.csv")}
    assert list(rows) == ["1001", "1002", "1003", "1004"]
    expected = {  # raw = double's tests (1 + 2) + discussion by hand; José is late: "zero" policy
        "1001": ("Ann", "Lee", "alee@uni.example", "1001", 5.0, 0.0, 5.0, "graded"),
        "1002": ("José", "Müller", "jmuller@uni.example", "1002", 3.0, 3.0, 0.0, "graded"),
        "1003": ("Jane", "Doe", "jdoe@uni.example", "1003", 1.5, 0.0, 1.5, "graded"),
        "1004": ("Bo", "Smith", "bsmith@uni.example", "1004", 0.0, 0.0, 0.0, "failed"),
    }
    for student, (first, last, email, lms, raw, penalty, score, status) in expected.items():
        row = rows[student]
        assert (row["first_name"], row["last_name"], row["email"], row["lms_user_id"]) == (first, last, email, lms)
        assert (float(row["raw_score"]), float(row["late_penalty"]), float(row["score"])) == (raw, penalty, score)
        assert (float(row["max_score"]), row["needs_manual_grade"], row["status"]) == (5.0, "False", status)
    assert "corrupt notebook" in rows["1004"]["reasons"]

    with (tmp_path / f"{dc.ASSIGNMENT}_lms_import.csv").open(newline="", encoding="utf-8") as handle:
        lms = list(csv.reader(handle))
    assert lms[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "PS1 (4321)"]
    assert lms[1] == ["Points Possible", "", "", "", "", "5"]
    assert lms[2:] == [
        ["Lee, Ann", "1001", "S-1001", "alee@uni.example", "Sec A", "5"],
        ["Müller, José", "1002", "S-1002", "jmuller@uni.example", "Sec A", "0"],
        ["Doe, Jane", "1003", "S-1003", "jdoe@uni.example", "Sec B", "1.5"],
        ["Smith, Bo", "1004", "S-1004", "bsmith@uni.example", "Sec B", "0"],
        ["Ng, Kim", "1005", "S-1005", "kng@uni.example", "Sec B", ""],
    ]

    failures = {row["test"]: row for row in _rows(tmp_path / f"{dc.ASSIGNMENT}_test_failures.csv")}
    assert set(failures) == {"test_double", "test_double_hidden", "(submission failed)"}
    # three submissions ran; Jane's WRONG answer fails only the hidden test, with an assertion
    assert (failures["test_double"]["submissions"], failures["test_double"]["lost_points"]) == ("3", "0")
    hidden = failures["test_double_hidden"]
    assert (hidden["submissions"], hidden["lost_points"], hidden["mean_score"]) == ("3", "1", "1.3333")
    assert hidden["mistakes"] == "error: AssertionError x1"
    assert (failures["(submission failed)"]["lost_points"], failures["(submission failed)"]["submissions"]) == ("1", "4")
    assert (tmp_path / f"{dc.ASSIGNMENT}_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def formgrader(graded):
    """The course's formgrader: a Jupyter server started in the course with the repository's
    ``jupyter_server_config.py``, as the README says; yields (base URL, token, log file)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token, log = "instructor-day-token", graded / "jupyter-server.log"
    config = Path(__file__).resolve().parents[1] / "jupyter_server_config.py"
    command = [str(Path(sys.executable).parent / "jupyter"), "server", f"--config={config}", "--no-browser",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={graded}",
               "--ServerApp.ip=127.0.0.1"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with log.open("w") as handle:
        server = subprocess.Popen(command, cwd=graded, stdout=handle, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
        yield base, token, log
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_formgrader_sub_page_opened_by_link_with_a_token_loads_names_and_statuses(formgrader, browser):
    base, token, log = formgrader
    page = browser.new_page()
    try:
        page.goto(f"{base}/formgrader/manage_submissions/{dc.ASSIGNMENT}?token={token}")
        page.wait_for_selector("text=1004", timeout=60_000)  # the table arrived, not "Loading"
        table = page.inner_text("table")
        for name in ("Lee, Ann", "Müller, José", "Doe, Jane", "Smith, Bo"):
            assert name in table
        assert "needs autograding" not in table and "None, None" not in table and "Loading" not in table
        page.goto(f"{base}/formgrader/manage_assignments")
        page.wait_for_selector("text=ps1", timeout=60_000)
        assert "Current configuration" not in page.inner_text("body")
    finally:
        page.close()
    text = log.read_text()
    assert "not serializable" not in text and "Unwritable directory" not in text


def test_repository_config_keeps_formgrader_quiet_and_sandboxed():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    config = load_course_config(repo)
    assert config.Exchange.root == str(repo / "exchange")
    assert config.FormgradeExtension.debug is False
    assert config.NbGraderAPI.Autograde.exporter_class == "cs231n_utils.grading.formgrader.RefuseUnsandboxedAutograde"
