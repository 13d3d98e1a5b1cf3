"""Unit tests of cs231n_utils.autograde: credit per property, named mistakes, refusals."""
from __future__ import annotations

import functools
import sys

import numpy as np
import pytest
import torch

from autograde_answers import REFERENCE_CALLERS, TORCH_ANSWERS, TORCH_REFERENCE_CALLERS, UPDATE_RULE_ANSWERS
from cs231n_utils import optim
from cs231n_utils.autograde import GradeReport, PropertyResult, check_torch_optimizer, check_update_rule
from cs231n_utils.autograde.guard import ReferenceWatch
from cs231n_utils.autograde.mutants import mutants_for
from cs231n_utils.autograde.rules import make_trials, max_deviation, rule_spec, run_rule, step_scale

NUMPY_RULES = ["sgd_momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam"]


def _define(source: str, name: str):
    namespace = {"np": np, "torch": torch}
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
    assert report.fraction == pytest.approx(1 / 8)  # only "inputs unchanged" holds
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
