"""Unit tests of cs231n_utils.autograde: credit per property, named mistakes, refusals."""
from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import torch

from autograde_answers import (
    FUNCTION_ANSWERS,
    FUNCTION_REFERENCE_CALLERS,
    REFERENCE_CALLERS,
    TORCH_ANSWERS,
    TORCH_REFERENCE_CALLERS,
    UPDATE_RULE_ANSWERS,
)
from cs231n_utils import layers, optim, regularization, second_order, transfer
from cs231n_utils import autograde
from cs231n_utils.autograde import GradeReport, PropertyResult, check_torch_optimizer, check_update_rule
from cs231n_utils.autograde import layer_checks, second_order_checks, transfer_checks
from cs231n_utils.autograde.function import Case, CaseGroup, check_function, compare_outputs
from cs231n_utils.autograde.guard import ReferenceWatch
from cs231n_utils.autograde.mutants import mutants_for
from cs231n_utils.autograde.rules import make_trials, max_deviation, rule_spec, run_rule, step_scale

NUMPY_RULES = ["sgd_momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam"]


def _define(source: str, name: str):
    namespace = {"np": np, "torch": torch, "nn": torch.nn}
    exec(compile(source, f"<answer {name}>", "exec"), namespace)  # noqa: S102 - trusted test data
    return namespace[name]


def _names_mistake(report: GradeReport, keyword: str | None) -> bool:
    if keyword is None:
        return not report.likely_mistakes
    return any(keyword in mistake for mistake in report.likely_mistakes) and keyword in report.feedback()


@pytest.mark.parametrize(
    "rule, variant", [(rule, variant) for rule, answers in UPDATE_RULE_ANSWERS.items() for variant in answers]
)
def test_update_rule_answer_gets_expected_credit_and_named_mistake(rule, variant):
    answer = UPDATE_RULE_ANSWERS[rule][variant]
    report = check_update_rule(_define(answer.source, rule), rule)
    assert report.zero_reason is None
    assert report.fraction == pytest.approx(answer.fraction, abs=1e-12), report.feedback()
    assert _names_mistake(report, answer.keyword), report.feedback()


@pytest.mark.parametrize("rule", NUMPY_RULES)
def test_written_out_mutants_are_distinguishable_and_named(rule):
    spec = rule_spec(rule)
    trials = make_trials(spec, np.random.default_rng(1), 4, 5, defaults=False)
    for mutant in mutants_for(rule):
        deviations = []
        for trial in trials:
            reference = run_rule(spec.reference, trial)
            deviations.append(max_deviation(run_rule(mutant.rule, trial), reference, step_scale(trial.w, reference))[0])
        assert max(deviations) > 1e-3, f"{rule}/{mutant.name} is indistinguishable from the reference"
        if mutant.rule.__module__ == "cs231n_utils.autograde.mutants" and "." not in mutant.rule.__qualname__:
            report = check_update_rule(mutant.rule, rule)  # standalone mutant: runs no reference code
            assert report.fraction < 1 and mutant.mistake in report.likely_mistakes, report.feedback()


@pytest.mark.parametrize("caller", sorted(REFERENCE_CALLERS))
@pytest.mark.parametrize("rule", NUMPY_RULES)
def test_answer_that_runs_the_reference_gets_no_credit(rule, caller):
    report = check_update_rule(_define(REFERENCE_CALLERS[caller].format(rule=rule), rule), rule)
    assert report.fraction == 0.0
    assert "reference implementation" in report.zero_reason and f"optim.py:{rule}" in report.zero_reason


def test_reference_hidden_in_partial_or_torch_is_refused():
    assert check_update_rule(functools.partial(optim.adam), "adam").zero_reason is not None

    def through_torch(w, dw, config=None):
        p = torch.nn.Parameter(torch.tensor(w))
        p.grad = torch.tensor(dw)
        torch.optim.SGD([p], lr=1e-2).step()
        return p.detach().numpy(), {} if config is None else config

    report = check_update_rule(through_torch, "sgd")
    assert report.fraction == 0 and "sgd.py" in report.zero_reason


def test_switching_the_watch_off_or_using_a_thread_is_refused():
    def switches_off(w, dw, config=None):
        sys.setprofile(None)
        return optim.sgd(w, dw, config)

    assert "switched off" in check_update_rule(switches_off, "sgd").zero_reason

    def in_a_thread(w, dw, config=None):
        import threading

        result = []
        worker = threading.Thread(target=lambda: result.append(optim.sgd(w, dw, config)))
        worker.start()
        worker.join()
        return result[0]

    assert "optim.py:sgd" in check_update_rule(in_a_thread, "sgd").zero_reason


def test_not_implemented_gets_zero_with_message():
    def adam(w, dw, config=None):
        raise NotImplementedError()

    report = check_update_rule(adam, "adam")
    assert report.fraction == 0 and "not implemented" in report.zero_reason


def test_crashing_and_malformed_answers_keep_partial_credit_for_what_works():
    def returns_only_w(w, dw, config=None):
        return w - 1e-2 * dw

    report = check_update_rule(returns_only_w, "sgd")
    assert report.fraction == pytest.approx(1 / 11)  # only "inputs unchanged" holds
    assert "not a tuple" in report.feedback()

    def crashes_on_3d(w, dw, config=None):
        if w.ndim == 3:
            raise IndexError("too many indices")
        config = {} if config is None else config
        return w - config.get("learning_rate", 1e-2) * dw, config

    report = check_update_rule(crashes_on_3d, "sgd")
    assert 0 < report.fraction < 1 and "IndexError: too many indices" in report.feedback()


def test_state_kept_in_a_global_loses_the_state_property():
    velocities = {}

    def sgd_momentum(w, dw, config=None):
        config = {} if config is None else config
        config.setdefault("velocity", np.zeros_like(w))
        v = velocities.get(w.shape, np.zeros_like(w))
        velocities[w.shape] = 0.9 * v - config.get("learning_rate", 1e-2) * dw
        return w + velocities[w.shape], config

    report = check_update_rule(sgd_momentum, "sgd_momentum")
    state = next(p for p in report.properties if "state" in p.description)
    assert not state.passed and report.fraction < 1


def test_student_output_to_stderr_is_silenced(capfd):
    def noisy(w, dw, config=None):
        print("debug", file=sys.stderr)
        np.log(-1.0)  # RuntimeWarning
        config = {} if config is None else config
        return w - config.get("learning_rate", 1e-2) * dw, config

    report = check_update_rule(noisy, "sgd")
    captured = capfd.readouterr()
    assert report.fraction == 1.0
    assert captured.err == "" and "debug" not in captured.out


def test_award_prints_feedback_and_returns_plain_float_within_points(capsys):
    report = GradeReport("rule", (PropertyResult("a", 1, True), PropertyResult("b", 2, False, "why")))
    credit = report.award(points=3)
    assert type(credit) is float and credit == 1.0
    out = capsys.readouterr().out
    assert "[FAIL] b" in out and "why" in out and "Score: 1 / 3" in out
    assert GradeReport("rule", (PropertyResult("a", 1, True),)).award(2.5) == 2.5
    assert GradeReport("rule", (PropertyResult("a", 1, True),), zero_reason="copied").award(2) == 0.0
    assert GradeReport("rule", (PropertyResult("a", 1, True), PropertyResult("b", 2, False))).award(1) == 0.33
    with pytest.raises(ValueError, match="points"):
        report.award(0)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"student_rule": 3, "reference_name": "adam"}, "student_rule"),
     ({"student_rule": optim.adam, "reference_name": "adamw"}, "reference_name"),
     ({"student_rule": optim.adam, "reference_name": "adam", "trials": 0}, "trials"),
     ({"student_rule": optim.adam, "reference_name": "adam", "steps": 1.5}, "steps")],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        check_update_rule(**kwargs)


def test_reference_watch_restores_the_previous_profiler_and_ignores_other_code():
    def outer_profiler(frame, event, arg):
        return None

    sys.setprofile(outer_profiler)
    try:
        watch = ReferenceWatch()
        with watch:
            np.linalg.norm(np.ones(3))
        assert not watch.triggered
        assert sys.getprofile() is outer_profiler
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("variant", sorted(TORCH_ANSWERS))
def test_torch_answer_gets_expected_credit_and_named_mistake(variant):
    answer = TORCH_ANSWERS[variant]
    report = check_torch_optimizer(_define(answer.source, "Adam"), "adam")
    assert report.zero_reason is None
    assert report.fraction == pytest.approx(answer.fraction, abs=1e-12), report.feedback()
    assert _names_mistake(report, answer.keyword), report.feedback()


@pytest.mark.parametrize("caller", sorted(TORCH_REFERENCE_CALLERS))
def test_torch_answer_built_on_a_library_adam_gets_no_credit(caller):
    report = check_torch_optimizer(_define(TORCH_REFERENCE_CALLERS[caller], "Adam"), "adam")
    assert report.fraction == 0.0 and report.zero_reason


def test_torch_check_rejects_non_optimizers_and_bad_arguments():
    assert "subclasses torch.optim.Optimizer" in check_torch_optimizer(dict, "adam").zero_reason
    assert check_torch_optimizer(optim.adam, "adam").zero_reason is not None
    with pytest.raises(ValueError, match="reference_name"):
        check_torch_optimizer(torch.optim.Optimizer, "sgd_momentum")


# --- Second round: check_function and the checks built on it ---------------------------------

FUNCTION_CHECKS = {name: getattr(autograde, f"check_{name}") for name in
                   ("newton_step", "two_loop_recursion", "dropout_forward", "dropout_backward", "l2_penalty",
                    "horizontal_flip", "freeze", "replace_head")}
FUNCTION_CHECKS["finetune"] = autograde.check_finetuning
FUNCTION_VARIANTS = [(function, variant) for answers in FUNCTION_ANSWERS.values()
                     for function, variants in answers.items() for variant in variants]


@pytest.mark.parametrize("function, variant", FUNCTION_VARIANTS)
def test_function_answer_gets_expected_credit_and_named_mistake(function, variant):
    torch.set_num_threads(1)  # as in the notebooks: the finetuning score is reproducible
    answer = next(a[function][variant] for a in FUNCTION_ANSWERS.values() if function in a)
    report = FUNCTION_CHECKS[function](_define(answer.source, function))
    assert report.zero_reason is None, report.feedback()
    assert report.fraction == pytest.approx(answer.fraction, abs=1e-12), report.feedback()
    assert _names_mistake(report, answer.keyword), report.feedback()


MUTANT_LISTS = {
    "newton_step": second_order_checks.NEWTON_MUTANTS,
    "two_loop_recursion": second_order_checks.TWO_LOOP_MUTANTS,
    "dropout_forward": layer_checks.DROPOUT_FORWARD_MUTANTS,
    "dropout_backward": layer_checks.DROPOUT_BACKWARD_MUTANTS,
    "l2_penalty": layer_checks.L2_MUTANTS,
    "horizontal_flip": layer_checks.FLIP_MUTANTS,
}


@pytest.mark.parametrize("function", sorted(MUTANT_LISTS))
def test_every_written_out_mutant_loses_credit_and_is_named(function):
    for mutant in MUTANT_LISTS[function]:
        report = FUNCTION_CHECKS[function](mutant.function)
        assert report.zero_reason is None and report.fraction < 1, (mutant.name, report.feedback())
        assert mutant.mistake in report.likely_mistakes, (mutant.name, report.feedback())


@pytest.mark.parametrize("function, mutants, student", [
    ("freeze", transfer_checks.FREEZE_MUTANTS, [transfer_checks._freeze_top_level, transfer_checks._freeze_no_return,
                                                transfer_checks._freeze_eval, transfer_checks._freeze_and_eval,
                                                transfer_checks._freeze_first_child,
                                                transfer_checks._freeze_children_only]),
    ("replace_head", transfer_checks.REPLACE_HEAD_MUTANTS, [
        transfer_checks._head_keeps_classes, transfer_checks._head_copies_requires_grad,
        transfer_checks._head_returns_model, transfer_checks._head_not_installed,
        transfer_checks._head_hard_coded_inputs, transfer_checks._head_ignores_attribute]),
])
def test_module_mutants_lose_credit_and_are_named(function, mutants, student):
    for mutant, buggy in zip(mutants, student, strict=True):
        report = FUNCTION_CHECKS[function](buggy)
        assert report.fraction < 1 and mutant.mistake in report.likely_mistakes, (mutant.name, report.feedback())


@pytest.mark.parametrize("function", sorted(FUNCTION_REFERENCE_CALLERS))
def test_function_answer_that_runs_the_reference_gets_no_credit(function):
    torch.set_num_threads(1)
    report = FUNCTION_CHECKS[function](_define(FUNCTION_REFERENCE_CALLERS[function], function))
    assert report.fraction == 0.0 and "reference implementation" in report.zero_reason, report.feedback()


@pytest.mark.parametrize("reference", [second_order_checks.reference_newton_step, layers.dropout_forward,
                                       regularization.l2_penalty, transfer.freeze])
def test_references_themselves_are_refused(reference):
    check = {second_order_checks.reference_newton_step: autograde.check_newton_step,
             layers.dropout_forward: autograde.check_dropout_forward,
             regularization.l2_penalty: autograde.check_l2_penalty, transfer.freeze: autograde.check_freeze}[reference]
    assert check(reference).zero_reason is not None


def test_finetuning_may_use_the_provided_network_and_torch_optim_but_not_the_transfer_helpers():
    torch.set_num_threads(1)

    def rebuilds_the_network(model, X, y):  # DigitsCNN is provided; building one is allowed
        fresh = transfer.DigitsCNN(num_classes=5)
        fresh.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head.")}, strict=False)
        torch.optim.SGD(fresh.parameters(), lr=0.0).step()
        return fresh

    report = autograde.check_finetuning(rebuilds_the_network)
    assert report.zero_reason is None and report.properties[0].passed

    def unfreezes_with_the_library(model, X, y):
        return transfer.unfreeze(model)

    assert "transfer.py:unfreeze" in autograde.check_finetuning(unfreezes_with_the_library).zero_reason


def test_not_implemented_function_gets_zero_with_message():
    def dropout_forward(x, dropout_param):
        raise NotImplementedError()

    report = autograde.check_dropout_forward(dropout_forward)
    assert report.fraction == 0 and "not implemented" in report.zero_reason


def test_check_function_credits_per_group_and_reports_crashes():
    cases = (Case((np.arange(3.0),), description="a"), Case((np.arange(4.0),), description="b"))
    groups = (CaseGroup("doubles", 3, cases[:1]), CaseGroup("doubles longer", 1, cases[1:]))

    def crashes_on_long_input(x):
        if len(x) > 3:
            raise IndexError("too long")
        return 2 * x

    report = check_function(crashes_on_long_input, lambda x: 2 * x, groups, subject="double")
    assert report.fraction == pytest.approx(4 / 5)  # "doubles" 3 + inputs unchanged 1, of 5
    assert "b: raised IndexError: too long" in report.feedback()
    with pytest.raises(ValueError, match="student"):
        check_function(3, lambda x: x, groups, subject="double")
    with pytest.raises(ValueError, match="groups"):
        check_function(lambda x: x, lambda x: x, (), subject="double")


def test_compare_outputs_recurses_and_uses_a_relative_tolerance():
    reference = (np.array([1.0, 1e3]), {"a": 2.0, "b": None}, "mode")
    assert compare_outputs((np.array([1.0, 1e3 + 1e-5]), {"a": 2.0, "b": None}, "mode"), reference) is None
    assert "item 0" in compare_outputs((np.array([1.1, 1e3]), {"a": 2.0, "b": None}, "mode"), reference)
    assert "keys" in compare_outputs((reference[0], {"a": 2.0}, "mode"), reference)
    assert "shape" in compare_outputs(np.zeros(3), np.zeros(2))
    assert compare_outputs(torch.ones(2), np.ones(2)) is None
    assert compare_outputs(np.ones(2), None) is not None


def test_reference_watch_rejects_unknown_modules_and_names_what_it_watches():
    with pytest.raises(ValueError, match="course_modules"):
        ReferenceWatch(("numpy",))
    watch = ReferenceWatch(("layers",), torch_optimizers=False)
    with watch:
        optim.sgd(np.ones(2), np.ones(2))  # not watched here
        layers.relu_forward(np.ones(2))
    assert watch.calls[0] == "layers.py:relu_forward" and all(call.startswith("layers.py:") for call in watch.calls)
    assert "cs231n_utils.layers earns no credit" in watch.refusal()
    assert "cs231n_utils.optim, cs231n_utils.torch_optim or torch.optim" in ReferenceWatch().refusal()


# --- Feedback that names the bug and never contradicts itself (issue 12) ----------------------


def test_in_place_update_is_named_without_a_no_common_mistake_line():
    answer = UPDATE_RULE_ANSWERS["adagrad"]["in_place"]
    feedback = check_update_rule(_define(answer.source, "adagrad"), "adagrad").feedback()
    assert "changed its input w in place" in feedback and "updated in place" in feedback
    assert "No common mistake" not in feedback


def test_failures_of_measured_or_self_explaining_properties_get_no_fallback_line():
    explained = GradeReport("f", (PropertyResult("a", 1, False, "why", explains=True),))
    assert "No common mistake" not in explained.feedback()
    unexplained = GradeReport("f", (PropertyResult("a", 1, False, "differs"),), fallback="reread the task.")
    assert unexplained.feedback().endswith("No common mistake matches your results exactly; reread the task.")


def test_freeze_feedback_prints_values_and_field_names_and_no_formulas():
    def freezes_nothing(module):
        return module

    feedback = autograde.check_freeze(freezes_nothing).feedback()
    assert "block1.0.weight.requires_grad: expected False, got True" in feedback
    assert "item " not in feedback and "got bool" not in feedback and "formulas" not in feedback


def test_compare_outputs_prints_scalar_values_and_names_dict_fields():
    assert compare_outputs({"flag": True}, {"flag": False}) == "flag: expected False, got True"
    assert compare_outputs(0.25, 0.5) == "expected 0.5, got 0.25"
    assert compare_outputs(None, "train") == "expected 'train', got None"


def test_dropout_backward_label_does_not_invite_a_second_division():
    def backward(dout, cache):
        return dout if cache[0]["mode"] == "test" else dout * cache[1]

    train = autograde.check_dropout_backward(backward).properties[0].description
    assert "/ p" not in train.split("(")[0] and "already holds" in train


@pytest.mark.parametrize("accuracy, credit", [(0.60, 0.0), (0.75, 0.0), (0.80, 0.5), (0.839, 0.89), (0.85, 1.0),
                                              (0.95, 1.0)])
def test_finetuning_credit_is_a_slope_from_75_to_85_percent(accuracy, credit):
    assert transfer_checks.finetuning_credit(accuracy) == pytest.approx(credit, abs=1e-9)


def test_update_rule_wrong_from_the_second_step_keeps_less_than_half():
    for rule, variant in [("sgd_momentum", "no_friction"), ("adagrad", "cache_not_accumulated"),
                          ("adam", "t_not_incremented"), ("adam", "state_not_stored")]:
        report = check_update_rule(_define(UPDATE_RULE_ANSWERS[rule][variant].source, rule), rule)
        assert report.fraction < 0.5, (rule, variant, report.feedback())
    report = check_torch_optimizer(_define(TORCH_ANSWERS["t_not_incremented"].source, "Adam"), "adam")
    assert report.fraction < 0.5, report.feedback()
