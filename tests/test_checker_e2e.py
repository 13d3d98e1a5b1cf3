"""The trusted checker end to end on every assignment of the course, through ``cs231n-grade autograde``.

A temporary copy of the course's five assignments; three students: the instructor's solutions
(full marks), the blank release (0; two assignments only, for CI time) and classic bugs whose credit ``autograde_answers`` derives
by hand from the documented property weights. Under ``cs231n-grade`` every hidden test is
scored by the checker outside the kernel, through the data-only channel: update rules and
array functions by remote calls, the ``Optimizer`` subclass and the transfer-learning functions
by scenarios run in the kernel, ``finetune`` by accuracy measured outside the kernel.
"""
from __future__ import annotations

import os

import nbformat
import pytest

from autograde_answers import FUNCTION_ANSWERS, TORCH_ANSWERS, UPDATE_RULE_ANSWERS
from checker_course import SOLUTION, build_course, cell_scores, package_digest, submit
from cs231n_utils.autograde.registry import REGISTRY
from cs231n_utils.grading.autograde_batch import autograde
from cs231n_utils.grading.sandbox import SandboxLimits

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

LIMITS = SandboxLimits(timeout_s=240, cell_timeout_s=90, memory_mb=4096, cpu_seconds=200)
ASSIGNMENTS = ["update_rules", "torch_optimizer", "second_order", "regularization", "transfer_learning"]
CHEAP = {"update_rules", "torch_optimizer"}  # a blank submission is graded for these (CI time)

# (assignment, answer cell) -> the buggy answer the student "bugs" submits
BUGS = {
    ("update_rules", "sgd_momentum"): UPDATE_RULE_ANSWERS["sgd_momentum"]["no_friction"],
    ("update_rules", "adagrad"): UPDATE_RULE_ANSWERS["adagrad"]["correct"],
    ("torch_optimizer", "Adam"): TORCH_ANSWERS["no_bias_correction"],
    ("second_order", "newton_step"): FUNCTION_ANSWERS["second_order"]["newton_step"]["diagonal_only"],
    ("regularization", "l2_penalty"): FUNCTION_ANSWERS["regularization"]["l2_penalty"]["no_half"],
    ("regularization", "horizontal_flip"): FUNCTION_ANSWERS["regularization"]["horizontal_flip"]["correct"],
    ("transfer_learning", "freeze"): FUNCTION_ANSWERS["transfer_learning"]["freeze"]["children_only"],
    ("transfer_learning", "replace_head"): FUNCTION_ANSWERS["transfer_learning"]["replace_head"]["copies_requires_grad"],
    ("transfer_learning", "finetune"): FUNCTION_ANSWERS["transfer_learning"]["finetune"]["untrained"],
}


def _answer_cells(root, assignment):
    nb = nbformat.read(root / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and not c.metadata["nbgrader"].get("grade")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    os.environ.pop("CS231N_GRADEBOOK_URL", None)
    root = build_course(tmp_path_factory.mktemp("course"), ASSIGNMENTS)
    before = package_digest()
    results = {}
    for assignment in ASSIGNMENTS:
        submit(root, assignment, "solution", {cell: SOLUTION for cell in _answer_cells(root, assignment)})
        if assignment in CHEAP:
            submit(root, assignment, "blank", {})
        submit(root, assignment, "bugs", {cell: answer.source for (a, cell), answer in BUGS.items() if a == assignment})
        # one worker process: a Dask LocalCluster forked from this (threaded) pytest process once hung
        # at start-up on a logging lock held at fork time (runner.py's business, not the checker's)
        for result in autograde(root, assignment, workers=1, limits=LIMITS, static_scan=False):
            results[assignment, result.student] = result
    return root, results, before


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_earn_every_autograded_point_and_blanks_nothing(graded, assignment):
    root, results, _ = graded
    scores = cell_scores(root, assignment)
    checked = {gid for gid, test in REGISTRY.items() if test.assignment == assignment}
    assert {cell: scores["solution"][cell] for cell in checked} == {gid: REGISTRY[gid].points for gid in checked}
    if assignment in CHEAP:
        assert all(score == 0.0 for score in scores["blank"].values())
    assert results[assignment, "solution"].status == "graded", results[assignment, "solution"].reasons


@pytest.mark.parametrize("assignment, cell", sorted(BUGS))
def test_classic_bugs_earn_the_partial_credit_their_properties_give(graded, assignment, cell):
    root, _, _ = graded
    expected = round(REGISTRY[f"test_{cell}"].points * BUGS[assignment, cell].fraction, 2)
    assert cell_scores(root, assignment)["bugs"][f"test_{cell}"] == expected


def test_the_feedback_is_the_checkers_and_names_the_mistake(graded):
    _, results, _ = graded
    nb = nbformat.reads(results["torch_optimizer", "bugs"].notebooks[0].autograded_json, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_Adam"]
    text = "".join(out.get("text", "") for out in cell.outputs)
    answer = TORCH_ANSWERS["no_bias_correction"]
    assert answer.keyword in text and f"Score: {round(5 * answer.fraction, 2):g} / 5" in text


def test_the_grader_code_is_byte_identical_afterwards(graded):
    _, _, before = graded
    assert package_digest() == before
