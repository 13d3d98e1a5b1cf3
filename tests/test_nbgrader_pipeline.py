"""The nbgrader course end to end: release, hidden-test hygiene, autograde, feedback, export.

The slow tests run the real nbgrader CLI in a temporary copy of the course (never in the
repository): generate_assignment must reproduce the committed ``assignments/`` byte for byte,
and simulated submissions (the solutions, the blank release, buggy answers, answers that call
the reference) must autograde to the credit derived by hand in ``autograde_answers``. Every buggy
submission fails its visible check (which names the mistake) and still gets its hidden credit.
"""
from __future__ import annotations

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

from autograde_answers import (
    FUNCTION_ANSWERS,
    FUNCTION_REFERENCE_CALLERS,
    REFERENCE_CALLERS,
    TORCH_ANSWERS,
    TORCH_REFERENCE_CALLERS,
    UPDATE_RULE_ANSWERS,
)

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = {name: f"{name}.ipynb" for name in
               ("update_rules", "torch_optimizer", "second_order", "regularization", "transfer_learning")}
MAX_SCORES = {"update_rules": 13.0, "torch_optimizer": 5.0, "second_order": 7.0, "regularization": 9.0,
              "transfer_learning": 8.0}
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _cells(notebook, **flags):
    return [c for c in notebook.cells if all(_nbgrader(c).get(k, False) == v for k, v in flags.items())]


# --- Release hygiene and the grade-id contract: fast, read the committed files only ----------


@pytest.mark.parametrize("assignment", sorted(ASSIGNMENTS))
def test_release_contains_no_solution_code_and_no_hidden_tests(assignment):
    notebook = ASSIGNMENTS[assignment]
    source = _read(ROOT / "solutions" / assignment / notebook)
    release_path = ROOT / "assignments" / assignment / notebook
    release_text = release_path.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "cs231n_utils.autograde", "award("):
        assert marker not in release_text
    secret_lines = set()
    for cell in source.cells:
        for block in SOLUTION.findall(cell.source) + HIDDEN.findall(cell.source):
            secret_lines |= {line.strip() for line in block.splitlines() if len(line.strip()) > 12}
        if _nbgrader(cell).get("solution") and cell.cell_type == "markdown":
            secret_lines |= {line.strip() for line in cell.source.splitlines() if len(line.strip()) > 12}
    release = _read(release_path)
    leaked = [line for line in secret_lines for cell in release.cells if line in cell.source]
    assert not leaked, f"solution or hidden-test text in the release: {leaked[:3]}"
    for cell in _cells(release, solution=True):
        stub = r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)" if cell.cell_type == "code" else "YOUR ANSWER HERE"
        assert re.search(stub, cell.source), cell.source


@pytest.mark.parametrize("assignment", sorted(ASSIGNMENTS))
def test_grade_ids_follow_the_design_contract(assignment):
    source = _read(ROOT / "solutions" / assignment / ASSIGNMENTS[assignment])
    test_ids = {_nbgrader(c)["grade_id"] for c in _cells(source, grade=True, solution=False)}
    answers = [c for c in _cells(source, solution=True, grade=False)]
    assert answers, "no autograded answer cells"
    for cell in answers:
        grade_id = _nbgrader(cell)["grade_id"]
        defined = {node.name for node in ast.parse(cell.source).body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert defined == {grade_id}, f"answer cell {grade_id} defines {defined}"
        assert f"test_{grade_id}" in test_ids
    for cell in _cells(source, grade=True, solution=False):
        hidden = HIDDEN.findall(cell.source)
        assert len(hidden) == 1, f"{_nbgrader(cell)['grade_id']} needs one hidden-test block"
        # No expected values in tests: the only number is the points passed to award().
        numbers = [node for node in ast.walk(ast.parse(hidden[0])) if isinstance(node, ast.Constant)
                   and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)]
        assert [n.value for n in numbers] == [_nbgrader(cell)["points"]]


def test_config_reads_the_gradebook_url_from_the_environment(monkeypatch):
    def course_directory() -> CourseDirectory:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
        return CourseDirectory(config=config, root=str(ROOT))

    monkeypatch.delenv("CS231N_GRADEBOOK_URL", raising=False)
    default = course_directory()
    assert default.db_url == f"sqlite:///{ROOT / 'gradebook.db'}"
    assert (default.course_id, default.source_directory, default.release_directory) == (
        "cs231n-optim", "solutions", "assignments")
    monkeypatch.setenv("CS231N_GRADEBOOK_URL", "postgresql://grader@db.example.org/cs231n")
    assert course_directory().db_url == "postgresql://grader@db.example.org/cs231n"


# --- The real nbgrader CLI on a temporary copy of the course (slow) ---------------------------

STUDENTS = ["solution", "blank", "reference_caller", "bugs_a", "bugs_b", "bugs_c"]


def _students(assignment: str) -> list[str]:
    """Who submits ``assignment``: bugs_c skips the function assignments (fewer notebooks to run;
    its export row must then say 0 with no timestamp)."""
    return [s for s in STUDENTS if not (assignment in FUNCTION_ANSWERS and s == "bugs_c")]


def _buggy_variants(answers: dict) -> list[str]:
    """Named bugs that fail their visible check: the hidden tests must still give their credit."""
    return [name for name, a in answers.items() if name != "correct" and a.visible_phrase and a.keyword]


def _update_rule_answer(student: str, rule: str, index: int) -> tuple[str | None, float]:
    """Answer-cell source for ``student`` (None: keep the release's cell) and its expected credit."""
    if student == "blank":
        return None, 0.0
    if student == "reference_caller":
        callers = sorted(REFERENCE_CALLERS)
        return REFERENCE_CALLERS[callers[index % len(callers)]].format(rule=rule), 0.0
    if student == "solution":
        return "", 1.0  # filled from the source notebook
    variant = _buggy_variants(UPDATE_RULE_ANSWERS[rule])["abc".index(student[-1])]
    return UPDATE_RULE_ANSWERS[rule][variant].source, UPDATE_RULE_ANSWERS[rule][variant].fraction


def _torch_answer(student: str) -> tuple[str | None, float]:
    if student == "blank":
        return None, 0.0
    if student == "reference_caller":
        return TORCH_REFERENCE_CALLERS["wraps_torch_adam"], 0.0
    if student == "solution":
        return "", 1.0
    variant = ["no_bias_correction", "t_not_incremented", "reads_self_defaults"]["abc".index(student[-1])]
    return TORCH_ANSWERS[variant].source, TORCH_ANSWERS[variant].fraction


def _function_variant(assignment: str, student: str, grade_id: str) -> str:
    """The buggy variant of ``grade_id`` that student bugs_a, bugs_b or bugs_c submits (cycling)."""
    variants = _buggy_variants(FUNCTION_ANSWERS[assignment][grade_id])
    return variants["abc".index(student[-1]) % len(variants)]


def _function_answer(assignment: str, student: str, grade_id: str) -> tuple[str | None, float]:
    if student == "blank":
        return None, 0.0
    if student == "reference_caller":
        return FUNCTION_REFERENCE_CALLERS[grade_id], 0.0
    if student == "solution":
        return "", 1.0
    answer = FUNCTION_ANSWERS[assignment][grade_id][_function_variant(assignment, student, grade_id)]
    return answer.source, answer.fraction


def _keyword(assignment: str, student: str, grade_id: str) -> str | None:
    if student == "reference_caller":
        return "runs a reference implementation"
    if student.startswith("bugs_"):
        if assignment in FUNCTION_ANSWERS:
            return FUNCTION_ANSWERS[assignment][grade_id][_function_variant(assignment, student, grade_id)].keyword
        if assignment == "torch_optimizer":
            variant = ["no_bias_correction", "t_not_incremented", "reads_self_defaults"]["abc".index(student[-1])]
            return TORCH_ANSWERS[variant].keyword
        answers = UPDATE_RULE_ANSWERS[grade_id]
        return answers[_buggy_variants(answers)["abc".index(student[-1])]].keyword
    return None


def _visible_phrase(assignment: str, student: str, grade_id: str) -> str | None:
    """What the failing visible check of a buggy submission prints (None for other students)."""
    if not student.startswith("bugs_"):
        return None
    if assignment in FUNCTION_ANSWERS:
        return FUNCTION_ANSWERS[assignment][grade_id][_function_variant(assignment, student, grade_id)].visible_phrase
    if assignment == "torch_optimizer":
        return TORCH_ANSWERS[["no_bias_correction", "t_not_incremented", "reads_self_defaults"]["abc".index(student[-1])]
                             ].visible_phrase
    answers = UPDATE_RULE_ANSWERS[grade_id]
    return answers[_buggy_variants(answers)["abc".index(student[-1])]].visible_phrase


def _write_submissions(course: Path) -> dict[tuple[str, str, str], float]:
    """Write every student's notebooks into submitted/ and return the expected credit per
    (assignment, student, test cell)."""
    expected = {}
    for assignment, notebook in ASSIGNMENTS.items():
        source = _read(course / "solutions" / assignment / notebook)
        solutions = {_nbgrader(c)["grade_id"]: c.source for c in source.cells if _nbgrader(c).get("solution")}
        points = {_nbgrader(c)["grade_id"]: float(_nbgrader(c)["points"]) for c in _cells(source, grade=True)}
        for student in _students(assignment):
            submission = _read(course / "assignments" / assignment / notebook)
            for index, cell in enumerate(_cells(submission, solution=True, grade=False)):
                grade_id = _nbgrader(cell)["grade_id"]
                if assignment == "update_rules":
                    answer, fraction = _update_rule_answer(student, grade_id, index)
                elif assignment in FUNCTION_ANSWERS:
                    answer, fraction = _function_answer(assignment, student, grade_id)
                else:
                    answer, fraction = _torch_answer(student)
                if answer is not None:
                    cell.source = answer or solutions[grade_id]
                expected[assignment, student, f"test_{grade_id}"] = round(points[f"test_{grade_id}"] * fraction, 2)
            for cell in _cells(submission, solution=True, grade=True):  # hand-graded answers
                if student == "solution":
                    cell.source = solutions[_nbgrader(cell)["grade_id"]]
                expected[assignment, student, _nbgrader(cell)["grade_id"]] = None if student == "solution" else 0.0
            target = course / "submitted" / student / assignment / notebook
            target.parent.mkdir(parents=True)
            nbformat.write(submission, target)
    return expected


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """A copy of the course taken through release -> autograde -> feedback -> export."""
    course = tmp_path_factory.mktemp("course")
    for name in ("nbgrader_config.py", "solutions"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, course / name)
    gradebook = tmp_path_factory.mktemp("instructor") / "gradebook.sqlite"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["CS231N_GRADEBOOK_URL"] = f"sqlite:///{gradebook}"
    nbgrader = [sys.executable, "-m", "nbgrader"]

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*nbgrader, *args], cwd=course, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        assert "ERROR" not in done.stderr, done.stderr
        return done

    for assignment in ASSIGNMENTS:
        run("generate_assignment", assignment, "--force")
    expected = _write_submissions(course)
    for assignment in ASSIGNMENTS:
        run("autograde", assignment)
        run("generate_feedback", assignment)
    run("export", "--to", "grades.csv")
    return {"course": course, "gradebook": gradebook, "expected": expected}


@pytest.mark.slow
def test_generate_assignment_reproduces_the_committed_release_exactly(graded_course):
    for assignment, notebook in ASSIGNMENTS.items():
        fresh = (graded_course["course"] / "assignments" / assignment / notebook).read_bytes()
        assert fresh == (ROOT / "assignments" / assignment / notebook).read_bytes(), (
            f"assignments/{assignment} is out of date: run nbgrader generate_assignment {assignment} --force")
    committed = sorted(p.relative_to(ROOT / "assignments") for p in (ROOT / "assignments").rglob("*") if p.is_file())
    fresh_files = sorted(p.relative_to(graded_course["course"] / "assignments")
                         for p in (graded_course["course"] / "assignments").rglob("*") if p.is_file())
    assert committed == fresh_files


@pytest.mark.slow
def test_gradebook_lives_where_the_environment_says(graded_course):
    assert graded_course["gradebook"].exists()
    assert not (graded_course["course"] / "gradebook.db").exists()


@pytest.mark.slow
def test_autograde_gives_the_expected_credit_per_cell(graded_course):
    url = f"sqlite:///{graded_course['gradebook']}"
    with Gradebook(url) as gradebook:
        for (assignment, student, grade_id), credit in graded_course["expected"].items():
            grade = gradebook.find_grade(grade_id, ASSIGNMENTS[assignment].removesuffix(".ipynb"), assignment, student)
            if credit is None:
                assert grade.needs_manual_grade and grade.score == 0, (assignment, student, grade_id)
            else:
                assert grade.score == pytest.approx(credit, abs=1e-9), (assignment, student, grade_id, grade.score)


@pytest.mark.slow
def test_feedback_names_the_mistake_or_the_refusal(graded_course):
    course = graded_course["course"]
    for assignment, notebook in ASSIGNMENTS.items():
        for student in _students(assignment):
            html = (course / "feedback" / student / assignment / notebook.replace(".ipynb", ".html")).read_text()
            grade_ids = {key[2].removeprefix("test_") for key in graded_course["expected"]
                         if key[:2] == (assignment, student) and key[2].startswith("test_")}
            for grade_id in grade_ids:
                keyword = _keyword(assignment, student, grade_id)
                if keyword is not None:
                    assert keyword in html, (assignment, student, grade_id, keyword)
                visible = _visible_phrase(assignment, student, grade_id)
                if visible is not None:  # the visible check failed, and the hidden credit came anyway
                    assert visible in html or escape(visible) in html, (assignment, student, grade_id, visible)
            if student == "blank":
                assert "NotImplementedError" in html


@pytest.mark.slow
def test_export_writes_one_row_per_student_and_assignment_with_total_scores(graded_course):
    with open(graded_course["course"] / "grades.csv", newline="") as handle:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(handle)}
    assert set(rows) == {(a, s) for a in ASSIGNMENTS for s in STUDENTS}
    for (assignment, student), row in rows.items():
        total = sum(credit or 0.0 for key, credit in graded_course["expected"].items() if key[:2] == (assignment, student))
        assert float(row["score"]) == pytest.approx(total, abs=1e-9), (assignment, student)
    for assignment, max_score in MAX_SCORES.items():
        assert float(rows[assignment, "solution"]["max_score"]) == max_score
        for student in set(STUDENTS) - set(_students(assignment)):  # no submission: zero, no timestamp
            assert float(rows[assignment, student]["score"]) == 0.0 and rows[assignment, student]["timestamp"] == ""
    assert float(rows["torch_optimizer", "solution"]["score"]) == float(rows["torch_optimizer", "solution"]["max_score"]) == 5.0
    assert float(rows["update_rules", "blank"]["score"]) == 0.0
