"""Grade ``freeze``, ``replace_head`` and a finetuning function against :mod:`cs231n_utils.transfer`.

Student APIs (the assignment ``transfer_learning``):

- ``freeze(module)`` sets ``requires_grad = False`` on every parameter of ``module`` (nested
  ones included) and returns ``module``;
- ``replace_head(model, num_classes, attribute="head")`` installs a new trainable
  ``nn.Linear(in_features, num_classes)`` as ``model.<attribute>`` and returns it;
- ``finetune(model, X, y)`` trains the pretrained :class:`~cs231n_utils.transfer.DigitsCNN`
  ``model`` (pretrained on digits 0-4) on a small set of digits 5-9 (labels 0-4) and returns a
  model whose logits classify them; it is graded by its accuracy on the held-out test split.

Modules are compared through a *signature*: which parameters exist with which shapes, which
require gradients, the training flag, and whether the right object is returned.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import data, transfer
from ..assignment_data import TARGET_CLASSES, digits_finetuning_task
from .function import Case, CaseGroup, FunctionMutant, check_function
from .guard import ReferenceWatch
from .report import GradeReport, PropertyResult
from ..kernel.codec import Opaque
from ..models import DigitsCNN
from .remote import ChannelFailure, RemoteAnswer, scenario_runner
from .update_rule import check_count, quiet

__all__ = ["check_freeze", "check_replace_head", "check_finetuning", "finetuning_credit", "held_out_target_digits",
           "FINETUNE_ACCURACY_THRESHOLD", "FINETUNE_NO_CREDIT_ACCURACY", "FINETUNE_RUNS"]

FINETUNE_ACCURACY_THRESHOLD = 0.85
"""Test accuracy on digits 5-9 that earns the finetuning points (180 test images). Measured on one
CPU thread, the reference finetuning of the pretrained model of
:func:`~cs231n_utils.assignment_data.digits_finetuning_task` (every
layer, Adam, 100 steps, 10 examples per class:
``run_transfer_experiment(examples_per_class=(10,), seeds=range(10), pretrained=...)``) reaches
0.911 to 0.944 (mean 0.925) over 10 seeds of the training subset and initialisation, and
re-initialised top layers on frozen features 0.878 to 0.939. The threshold sits 0.06 below the
worst reference run, so any reasonable finetuning passes whatever its random seed."""

FINETUNE_NO_CREDIT_ACCURACY = 0.75
"""Mean test accuracy at or below which the accuracy points are lost; credit rises linearly from
here to :data:`FINETUNE_ACCURACY_THRESHOLD`, so one unlucky point less costs a little, not all."""

FINETUNE_RUNS = 3
"""Runs of the student's finetune (torch seeds ``seed .. seed + 2``) whose mean accuracy is graded."""


def _watch() -> ReferenceWatch:
    return ReferenceWatch(("transfer",), torch_optimizers=False)


# The test models: architectures of cs231n_utils.kernel.runners.TEST_MODELS, built where the
# function runs (the student's kernel or here) from a seed, so nothing but data crosses the channel.
_MODELS = {
    "DigitsCNN": {"architecture": "DigitsCNN", "seed": 0, "frozen": False},
    "a model with nested submodules": {"architecture": "nested", "seed": 1, "frozen": False},
    "a frozen DigitsCNN": {"architecture": "DigitsCNN", "seed": 0, "frozen": True},
}


_FREEZE_FALLBACK = ("reread the task: set requires_grad = False on every parameter (submodules "
                    "included), change nothing else, and return the module.")
_HEAD_FALLBACK = ("reread the task: install nn.Linear(old.in_features, num_classes) under the given "
                  "attribute, leave the rest of the model alone, and return the new layer.")


def _returned(text: Any, prefix: str) -> str:
    """``"returns the module"`` -> ``"the module"``, ``"returns NoneType"`` -> ``"a NoneType"``."""
    text = str(text).removeprefix("returns ")
    return text if text == prefix else f"a {text}"


def _named_freeze_outcome(outcome: Any) -> dict[str, Any]:
    """:func:`cs231n_utils.kernel.runners.freeze_outcome` by name: what freeze returned, per
    parameter its shape, requires_grad and (a checksum of) its values, and the training flag."""
    returned, signature = outcome
    *parameters, training = signature
    named: dict[str, Any] = {"return value": _returned(returned, "the module")}
    for name, shape, requires_grad, total in parameters:
        named[f"{name}.requires_grad"] = bool(requires_grad)
        named[f"shape of {name}"] = tuple(int(n) for n in shape)
        named[f"sum of the values of {name}"] = float(total)
    named["training flag (module.training)"] = bool(training)
    return named


def _named_head_outcome(outcome: Any, attribute: str) -> dict[str, Any]:
    """:func:`cs231n_utils.kernel.runners.head_outcome` by name."""
    returned, head, trainable, body_unchanged = outcome
    in_features, out_features, bias = (None, None, None) if head is None else head
    return {
        "return value": _returned(returned, "the installed layer"),
        f"model.{attribute} is an nn.Linear": head is not None,
        "in_features of the new head": in_features,
        "out_features of the new head": out_features,
        "the new head has a bias": bias,
        "the new head is trainable": trainable,
        "the rest of the model is unchanged": bool(body_unchanged),
    }


def _outcome(function: Callable, guard: Any = None) -> Callable[[dict], dict[str, Any]]:
    """``payload -> outcome`` of :func:`cs231n_utils.kernel.runners.module_outcome` for ``function``
    (a student's answer, local or served, or a trusted reference or mutant), with every field named.
    An outcome that does not have the runner's form (a lying kernel) is a :class:`ChannelFailure`."""
    run = scenario_runner(function, guard)

    def outcome(payload: dict) -> dict[str, Any]:
        result = run("module_outcome", payload)
        try:
            if payload["function"] == "freeze":
                return _named_freeze_outcome(result)
            return _named_head_outcome(result, payload["attribute"])
        except (TypeError, ValueError) as error:
            raise ChannelFailure(f"the kernel sent a malformed outcome ({error})") from None
    return outcome


# ------------------------------------------------------------------------------------ freeze
def _freeze_top_level(module):
    for p in module.parameters(recurse=False):
        p.requires_grad = False
    return module


def _freeze_no_return(module):
    for p in module.parameters():
        p.requires_grad = False


def _freeze_eval(module):
    return module.eval()


def _freeze_and_eval(module):
    for p in module.parameters():
        p.requires_grad = False
    return module.eval()


def _freeze_children_only(module):
    for child in module.children():
        for p in child.parameters():
            p.requires_grad = False
    return module


def _freeze_first_child(module):
    for p in next(module.children()).parameters():
        p.requires_grad = False
    return module


FREEZE_MUTANTS = (
    FunctionMutant("top_level_only", "only the module's own parameters are frozen: module.parameters() "
                   "(recurse=True, the default) also yields those of its submodules.", _outcome(_freeze_top_level)),
    FunctionMutant("no_return", "freeze must return the module (so calls can be chained).", _outcome(_freeze_no_return)),
    FunctionMutant("eval_instead", ".eval() does not freeze anything: it switches dropout and batch norm to test "
                   "behaviour. Set requires_grad = False on the parameters.", _outcome(_freeze_eval)),
    FunctionMutant("freeze_and_eval", "freeze also switched the module to eval mode (.eval()): freezing only "
                   "sets requires_grad = False; train/eval mode is a separate switch (it changes dropout and "
                   "batch norm), leave it as it was.", _outcome(_freeze_and_eval)),
    FunctionMutant("first_child_only", "only the first submodule is frozen: loop over all parameters.",
                   _outcome(_freeze_first_child)),
    FunctionMutant("children_only", "parameters registered directly on the module (not in a submodule) are "
                   "missed: module.parameters() yields them together with all submodules' parameters.",
                   _outcome(_freeze_children_only)),
)


def check_freeze(student: Callable[[nn.Module], Any]) -> GradeReport:
    """Compare ``freeze(module)`` with :func:`cs231n_utils.transfer.freeze` on three models.
    Properties (weight): every parameter frozen, values and training flag unchanged, module
    returned, on a DigitsCNN (2) and on a model with nested submodules and a buffer (2)."""
    if not callable(student):
        raise ValueError(f"student must be callable, got {type(student).__name__}")
    groups = tuple(
        CaseGroup(f"freezes {name} (every parameter, nothing else changed) and returns it", 2,
                  (Case(({**model, "function": "freeze"},), description=name),))
        for name, model in _MODELS.items() if name != "a frozen DigitsCNN"
    )
    return check_function(_outcome(student), _outcome(transfer.freeze), groups, subject="freeze",
                          mutants=FREEZE_MUTANTS, watch=_watch(), check_inputs=False, fallback=_FREEZE_FALLBACK)


# ------------------------------------------------------------------------------ replace_head
def _head_keeps_classes(model, num_classes, attribute="head"):
    old = getattr(model, attribute)
    new = nn.Linear(old.in_features, old.out_features)
    setattr(model, attribute, new)
    return new


def _head_copies_requires_grad(model, num_classes, attribute="head"):
    old = getattr(model, attribute)
    new = nn.Linear(old.in_features, num_classes)
    new.requires_grad_(old.weight.requires_grad)
    setattr(model, attribute, new)
    return new


def _head_returns_model(model, num_classes, attribute="head"):
    old = getattr(model, attribute)
    setattr(model, attribute, nn.Linear(old.in_features, num_classes))
    return model


def _head_not_installed(model, num_classes, attribute="head"):
    return nn.Linear(getattr(model, attribute).in_features, num_classes)


def _head_hard_coded_inputs(model, num_classes, attribute="head"):
    new = nn.Linear(64, num_classes)  # the pretrained DigitsCNN's head has 64 inputs
    setattr(model, attribute, new)
    return new


def _head_ignores_attribute(model, num_classes, attribute="head"):
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model.head


REPLACE_HEAD_MUTANTS = (
    FunctionMutant("keeps_classes", "the new layer keeps the old number of outputs: use "
                   "nn.Linear(old.in_features, num_classes).", _outcome(_head_keeps_classes)),
    FunctionMutant("frozen_head", "the new head copies the old head's requires_grad: a new nn.Linear is "
                   "trainable, keep it so even when the body is frozen.", _outcome(_head_copies_requires_grad)),
    FunctionMutant("returns_model", "return the new layer, not the model.", _outcome(_head_returns_model)),
    FunctionMutant("not_installed", "the new layer is never installed in the model: setattr(model, attribute, new).",
                   _outcome(_head_not_installed)),
    FunctionMutant("hard_coded_in_features", "the new layer's number of inputs is hard-coded (64, the notebook's "
                   "model): read it from the old layer, nn.Linear(old.in_features, num_classes).",
                   _outcome(_head_hard_coded_inputs)),
    FunctionMutant("ignores_attribute", "the attribute argument is ignored (always model.head): use "
                   "getattr(model, attribute) and setattr(model, attribute, new).", _outcome(_head_ignores_attribute)),
)


def check_replace_head(student: Callable[..., Any]) -> GradeReport:
    """Compare ``replace_head(model, num_classes, attribute)`` with
    :func:`cs231n_utils.transfer.replace_head`. Properties (weight): a DigitsCNN's head (2);
    a frozen model gets a trainable head (1); another attribute name (1)."""
    if not callable(student):
        raise ValueError(f"student must be callable, got {type(student).__name__}")

    def case(model: str, num_classes: int, attribute: str, description: str) -> Case:
        payload = {**_MODELS[model], "function": "replace_head", "num_classes": num_classes, "attribute": attribute}
        return Case((payload,), description=description)

    groups = (
        CaseGroup("installs and returns nn.Linear(in_features, num_classes) as model.head, body untouched", 2,
                  (case("DigitsCNN", 7, "head", "DigitsCNN, 7 classes"),
                   case("DigitsCNN", 2, "head", "DigitsCNN, 2 classes"))),
        CaseGroup("the new head of a frozen model is trainable", 1,
                  (case("a frozen DigitsCNN", 4, "head", "frozen DigitsCNN, 4 classes"),)),
        CaseGroup("uses the attribute argument", 1,
                  (case("a model with nested submodules", 6, "classifier",
                        "a model whose head is model.classifier, 6 classes"),)),
    )
    return check_function(_outcome(student), _outcome(transfer.replace_head), groups, subject="replace_head",
                          mutants=REPLACE_HEAD_MUTANTS, watch=_watch(), check_inputs=False, fallback=_HEAD_FALLBACK)


# -------------------------------------------------------------------------------- finetuning
def held_out_target_digits() -> tuple[np.ndarray, np.ndarray]:
    """The test images ``(N, 1, 8, 8)`` of the digits 5-9 and their labels ``digit - 5``: the data
    that grades a finetuning. It lives with the grader: the student view of the package
    (:mod:`cs231n_utils.grading.boundary`) holds no copy, and the notebook never calls it."""
    splits = data.load_digits(as_images=True)
    return transfer.select_classes(splits.X_test, splits.y_test, TARGET_CLASSES)


def _served_finetuning(student: RemoteAnswer, task: Any, seed: int) -> Any:
    """Run a served ``finetune`` in its kernel on the pretrained weights and the training set
    (the test split stays here) and rebuild the returned weights in a DigitsCNN; the returned
    type's name when it returned something else."""
    architecture = task.pretrained.architecture()
    payload = {"architecture": architecture, "seed": seed, "X": task.X_train, "y": task.y_train,
               "pretrained": {k: v.numpy() for k, v in task.pretrained.state_dict().items()}}
    result = student.run("finetune", payload)
    if result["state"] is None:
        return Opaque(str(result["returned"]))
    model = DigitsCNN(**architecture)
    try:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in result["state"].items()})
    except (RuntimeError, TypeError, ValueError, AttributeError) as error:
        raise ValueError("the returned model is not the DigitsCNN it was given (a different architecture "
                         f"cannot be graded outside your notebook): {str(error)[:200]}") from None
    return model


def _finetuned_accuracy(student: Callable, seed: int, X_test: np.ndarray, y_test: np.ndarray,
                        watch: ReferenceWatch) -> tuple[float | None, str | None]:
    """Run ``finetune`` once on a fresh copy of the task (torch seeded with ``seed``; in the
    student's kernel for a served answer, only the trained weights come back) and return the
    returned model's accuracy on ``(X_test, y_test)`` in eval mode, or the problem.
    ``NotImplementedError`` propagates."""
    task = digits_finetuning_task()
    try:
        if isinstance(student, RemoteAnswer):
            model = _served_finetuning(student, task, seed)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                with quiet(), watch:
                    model = student(task.pretrained, task.X_train, task.y_train)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - a failing student function
        return None, f"finetune raised {type(error).__name__}: {error}"
    if watch.triggered:
        return None, None
    if not isinstance(model, nn.Module):
        returned = model.type_name if isinstance(model, Opaque) else type(model).__name__
        return None, f"finetune returned {returned}, not the finetuned nn.Module"
    expected = (len(y_test), len(TARGET_CLASSES))
    try:
        with torch.no_grad(), quiet():
            model.eval()
            logits = model(torch.as_tensor(X_test))
    except Exception as error:  # noqa: BLE001
        return None, f"evaluating the returned model raised {type(error).__name__}: {error}"
    if tuple(logits.shape) != expected:
        return None, f"the model gives logits of shape {tuple(logits.shape)}, expected {expected}"
    return float((logits.argmax(dim=1).numpy() == y_test).mean()), None


def finetuning_credit(accuracy: float) -> float:
    """Share of the accuracy points: 0 at :data:`FINETUNE_NO_CREDIT_ACCURACY` or below, rising
    linearly to 1 at :data:`FINETUNE_ACCURACY_THRESHOLD`."""
    span = FINETUNE_ACCURACY_THRESHOLD - FINETUNE_NO_CREDIT_ACCURACY
    return min(max((accuracy - FINETUNE_NO_CREDIT_ACCURACY) / span, 0.0), 1.0)


def check_finetuning(student: Callable[..., Any], *, seed: int = 0, runs: int = FINETUNE_RUNS) -> GradeReport:
    """Run ``finetune(model, X, y)`` ``runs`` times on fresh copies of the pretrained model and the
    target training set of :func:`cs231n_utils.assignment_data.digits_finetuning_task` (torch seeded
    with ``seed``, ``seed + 1``, ...), and measure each returned model's accuracy in eval mode on the
    held-out test digits 5-9 (:func:`held_out_target_digits`, which never enters the student's
    kernel). Properties (weight): every run returns a module giving ``(N, 5)`` logits (1); the mean
    test accuracy, credited on a slope (:func:`finetuning_credit`: nothing at 75 %, full at 85 %) (3)."""
    runs = check_count(runs, "runs", 1)
    seed = check_count(seed, "seed", 0)
    X_test, y_test = held_out_target_digits()
    watch = _watch()
    subject = "finetune"
    accuracies, problem = [], None
    try:
        for run_seed in range(seed, seed + runs):
            accuracy, problem = _finetuned_accuracy(student, run_seed, X_test, y_test, watch)
            if watch.triggered:
                return GradeReport(subject, zero_reason=watch.refusal())
            if accuracy is None:
                break
            accuracies.append(accuracy)
    except NotImplementedError:
        return GradeReport(subject, zero_reason="finetune raises NotImplementedError: not implemented yet.")
    mean = sum(accuracies) / len(accuracies) if problem is None else None
    credit = 0.0 if mean is None else finetuning_credit(mean)
    target = (f"mean test accuracy on digits 5-9 over {runs} seeds at least {FINETUNE_ACCURACY_THRESHOLD:.0%} "
              f"(credit from {FINETUNE_NO_CREDIT_ACCURACY:.0%})")
    if mean is not None:
        target += f"; yours: {mean:.1%} (" + ", ".join(f"{a:.1%}" for a in accuracies) + ")"
    advice = "" if credit == 1 or mean is None else "train longer, tune the learning rate, or train more layers"
    properties = (
        PropertyResult("returns a model that maps (N, 1, 8, 8) images to (N, 5) logits", 1, problem is None,
                       problem or "", explains=True),
        PropertyResult(target, 3, credit == 1, advice, credit=credit, explains=True),
    )
    mistakes = ()
    if mean is not None and mean < 0.3:
        mistakes = ("accuracy near chance (20%): is the model trained at all (parameters given to the optimizer, "
                    "optimizer.step() called, labels 0-4 for digits 5-9)?",)
    return GradeReport(subject, properties, mistakes)
