"""The notebooks' visible checks (issue 12): CS231n-style literals computed from the references,
named mistakes before submission, and graded cells that hold only the hidden tests.

Every check runs the *released* cell ``check_<f>`` in this process (``visible_harness``); the
expected outcomes are the phrases written by hand in ``autograde_answers``.
"""
from __future__ import annotations

import re
import sys

import nbformat
import pytest
import torch

from autograde_answers import FUNCTION_ANSWERS, TORCH_ANSWERS, UPDATE_RULE_ANSWERS
from cs231n_utils import layers, optim, regularization, torch_optim
from cs231n_utils.autograde import second_order_checks
from cs231n_utils.autograde.mutants import IN_PLACE
from visible_harness import ROOT, released_cell, run_check_with, run_visible_check

sys.path.insert(0, str(ROOT / "solutions"))
import make_visible_checks as generator  # noqa: E402

ASSIGNMENTS = generator.ASSIGNMENTS
ANSWERS = ([("update_rules", rule, variant, answer) for rule, answers in UPDATE_RULE_ANSWERS.items()
            for variant, answer in answers.items()]
           + [("torch_optimizer", "Adam", variant, answer) for variant, answer in TORCH_ANSWERS.items()]
           + [(assignment, function, variant, answer) for assignment, functions in FUNCTION_ANSWERS.items()
              for function, variants in functions.items() for variant, answer in variants.items()])

# The bugs that issue 12 lists: each must fail its visible check with the mistake named.
ISSUE_BUGS = [
    ("update_rules", "nesterov_momentum", "plain_momentum"),
    ("update_rules", "adagrad", "cache_not_accumulated"),
    ("update_rules", "rmsprop", "decay_on_wrong_term"),
    ("update_rules", "rmsprop", "eps_inside_sqrt"),
    ("update_rules", "adam", "no_bias_correction"),
    ("update_rules", "adam", "t_not_incremented"),
    ("update_rules", "adam", "state_not_stored"),
    ("update_rules", "sgd_momentum", "state_not_stored"),
    ("update_rules", "sgd_momentum", "mutates_w"),
    ("update_rules", "adagrad", "in_place"),
    ("regularization", "dropout_forward", "vanilla_dropout"),
    ("regularization", "dropout_backward", "divides_again"),
    ("regularization", "l2_penalty", "no_half"),
    ("regularization", "l2_penalty", "penalty_no_half"),
    ("regularization", "horizontal_flip", "in_place"),
    ("torch_optimizer", "Adam", "reads_self_defaults"),
    ("torch_optimizer", "Adam", "ignores_closure"),
    ("torch_optimizer", "Adam", "global_step_counter"),
    ("second_order", "two_loop_recursion", "first_loop_order"),
    ("transfer_learning", "freeze", "freeze_and_eval"),
    ("transfer_learning", "replace_head", "hard_coded_in_features"),
]
REFERENCES = {
    **{name: getattr(optim, name) for name in generator._RULE_CONFIGS},
    "Adam": torch_optim.Adam,
    "newton_step": second_order_checks.reference_newton_step,
    "two_loop_recursion": second_order_checks.reference_two_loop,
    "dropout_forward": layers.dropout_forward,
    "dropout_backward": layers.dropout_backward,
    "l2_penalty": regularization.l2_penalty,
    "horizontal_flip": regularization.horizontal_flip,
}
NUMERIC = {check().function: (assignment, check) for assignment, checks in generator.NUMERIC_CHECKS.items()
           for check in checks}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _answer(assignment: str, function: str, variant: str):
    return next(a for (s, f, v, a) in ANSWERS if (s, f, v) == (assignment, function, variant))


def _failure(assignment: str, function: str, source: str | None) -> str | None:
    """The visible check's AssertionError message, or None when it passes."""
    try:
        run_visible_check(assignment, function, source)
    except AssertionError as error:
        return str(error)
    return None


@pytest.mark.parametrize("assignment, function, variant", ISSUE_BUGS)
def test_every_bug_the_issue_lists_fails_its_visible_check_with_the_mistake_named(assignment, function, variant):
    answer = _answer(assignment, function, variant)
    assert answer.visible_phrase, "a listed bug must be caught before submission"
    message = _failure(assignment, function, answer.source)
    assert message is not None and answer.visible_phrase in message, message


@pytest.mark.parametrize("assignment, function, variant, answer", ANSWERS,
                         ids=[f"{f}-{v}" for _, f, v, _ in ANSWERS])
def test_simulated_answer_passes_or_fails_the_visible_check_as_written_by_hand(assignment, function, variant, answer):
    message = _failure(assignment, function, answer.source)
    if answer.visible_phrase is None:
        assert message is None, message
    else:
        assert message is not None and answer.visible_phrase in message, message


@pytest.mark.parametrize("function", sorted(NUMERIC))
def test_the_reference_implementation_passes_the_released_literals(function):
    """The literals in the release equal the reference's outputs (to the checks' 1e-6)."""
    assignment, _ = NUMERIC[function]
    printed = run_check_with(assignment, function, REFERENCES[function])
    assert printed.count("relative error") >= 2 and "All visible checks passed." in printed
    errors = [float(e) for e in re.findall(r"relative error ([0-9.e+-]+)", printed)]
    assert max(errors) < 1e-8, printed


@pytest.mark.parametrize("function", sorted(NUMERIC))
def test_every_mutant_fails_the_released_check_with_its_own_mistake(function):
    assignment, make = NUMERIC[function]
    for mistake, mutant in make().mutants:
        with pytest.raises(AssertionError) as failure:
            run_check_with(assignment, function, mutant)
        assert mistake in str(failure.value), (mistake, str(failure.value))


def test_an_in_place_update_rule_is_named_by_the_visible_check():
    with pytest.raises(AssertionError, match="updated in place"):
        run_check_with("update_rules", "sgd_momentum", IN_PLACE.rule)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebooks_equal_what_the_generator_writes(assignment):
    assert generator.rendered_text(assignment) == generator.notebook_path(assignment).read_text(), (
        f"run .venv/bin/python solutions/make_visible_checks.py {assignment}, then "
        f"nbgrader generate_assignment {assignment} --force")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_answer_is_followed_by_an_ungraded_check_and_a_graded_cell_with_only_hidden_tests(assignment):
    cells = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4).cells
    meta = [c.metadata.get("nbgrader", {}) for c in cells]
    answers = [i for i, m in enumerate(meta) if m.get("solution") and not m.get("grade")]
    assert answers
    for i in answers:
        function = meta[i]["grade_id"]
        check, graded = meta[i + 1], meta[i + 2]
        assert check["grade_id"] == f"check_{function}" and check["locked"] and not check["grade"]
        assert graded["grade_id"] == f"test_{function}" and graded["grade"] and graded["locked"]
        before_hidden = cells[i + 2].source.split("### BEGIN HIDDEN TESTS")[0]
        assert all(line.startswith("#") or not line.strip() for line in before_hidden.splitlines())
    assert meta[1]["grade_id"] == "how_graded" and "How you are graded" in cells[1].source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grading_block_lists_points_that_add_up_to_each_cells_points(assignment):
    cells = nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", as_version=4).cells
    block = next(c.source for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "how_graded")
    points = {c.metadata["nbgrader"]["grade_id"].removeprefix("test_"): c.metadata["nbgrader"]["points"]
              for c in cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    for function, total in points.items():
        line = next(line for line in block.splitlines() if line.startswith(f"- `{function}` ({total:g} points)"))
        shares = [float(x) for x in re.findall(r"\((\d+\.\d\d)\)", line)]
        assert sum(shares) == pytest.approx(total, abs=0.02 * len(shares)), line
    assert "other, random inputs" in block


def test_the_notebook_cannot_reach_the_test_split():
    source = "".join(c.source for c in nbformat.read(
        ROOT / "assignments" / "transfer_learning" / "transfer_learning.ipynb", as_version=4).cells)
    assert "held_out_target_digits" not in source and "X_test" not in source
    assert "85%" in released_cell("transfer_learning", "check_finetune")
