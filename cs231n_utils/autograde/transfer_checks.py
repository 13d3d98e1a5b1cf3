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

import torch
from torch import nn

from .. import transfer
from ..assignment_data import TARGET_CLASSES, digits_finetuning_task
from .function import Case, CaseGroup, FunctionMutant, check_function
from .guard import ReferenceWatch
from .report import GradeReport, PropertyResult
from ..kernel.codec import Opaque
from ..models import DigitsCNN
from .remote import RemoteAnswer, scenario_runner
from .update_rule import quiet

__all__ = ["check_freeze", "check_replace_head", "check_finetuning", "FINETUNE_ACCURACY_THRESHOLD"]

FINETUNE_ACCURACY_THRESHOLD = 0.85
"""Test accuracy on digits 5-9 that earns the finetuning points (180 test images). Measured on one
CPU thread, the reference finetuning of the pretrained model of
:func:`~cs231n_utils.assignment_data.digits_finetuning_task` (every
layer, Adam, 100 steps, 10 examples per class:
``run_transfer_experiment(examples_per_class=(10,), seeds=range(10), pretrained=...)``) reaches
0.911 to 0.944 (mean 0.925) over 10 seeds of the training subset and initialisation, and
re-initialised top layers on frozen features 0.878 to 0.939. The threshold sits 0.06 below the
worst reference run, so any reasonable finetuning passes whatever its random seed."""


def _watch() -> ReferenceWatch:
    return ReferenceWatch(("transfer",), torch_optimizers=False)


# The test models: architectures of cs231n_utils.kernel.runners.TEST_MODELS, built where the
# function runs (the student's kernel or here) from a seed, so nothing but data crosses the channel.
_MODELS = {
    "DigitsCNN": {"architecture": "DigitsCNN", "seed": 0, "frozen": False},
    "a model with nested submodules": {"architecture": "nested", "seed": 1, "frozen": False},
    "a frozen DigitsCNN": {"architecture": "DigitsCNN", "seed": 0, "frozen": True},
}


def _outcome(function: Callable, guard: Any = None) -> Callable[[dict], Any]:
    """``payload -> outcome`` of :func:`cs231n_utils.kernel.runners.module_outcome` for ``function``
    (a student's answer, local or served, or a trusted reference or mutant)."""
    run = scenario_runner(function, guard)
    return lambda payload: run("module_outcome", payload)


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
                          mutants=FREEZE_MUTANTS, watch=_watch(), check_inputs=False)


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
                          mutants=REPLACE_HEAD_MUTANTS, watch=_watch(), check_inputs=False)


# -------------------------------------------------------------------------------- finetuning
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


def check_finetuning(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Run ``finetune(model, X, y)`` on the pretrained model and the target training set of
    :func:`cs231n_utils.assignment_data.digits_finetuning_task` (torch seeded with ``seed``), then measure the returned model's accuracy
    on the test digits 5-9 in eval mode. Properties (weight): returns a module giving ``(N, 5)``
    logits (1); test accuracy at least :data:`FINETUNE_ACCURACY_THRESHOLD` (3)."""
    task = digits_finetuning_task()
    X_test, y_test = task.X_test, task.y_test
    watch = _watch()
    subject = "finetune"
    try:
        if isinstance(student, RemoteAnswer):
            model = _served_finetuning(student, task, seed)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                with quiet(), watch:
                    model = student(task.pretrained, task.X_train, task.y_train)
    except NotImplementedError:
        return GradeReport(subject, zero_reason="finetune raises NotImplementedError: not implemented yet.")
    except Exception as error:  # noqa: BLE001 - a failing student function
        model, failure = None, f"finetune raised {type(error).__name__}: {error}"
    else:
        failure = None
    if watch.triggered:
        return GradeReport(subject, zero_reason=watch.refusal())
    accuracy, problem = None, failure
    if problem is None and not isinstance(model, nn.Module):
        returned = model.type_name if isinstance(model, Opaque) else type(model).__name__
        problem = f"finetune returned {returned}, not the finetuned nn.Module"
    if problem is None:
        try:
            with torch.no_grad(), quiet():
                model.eval()
                logits = model(torch.as_tensor(X_test))
            if tuple(logits.shape) != (len(y_test), len(TARGET_CLASSES)):
                problem = f"the model gives logits of shape {tuple(logits.shape)}, expected {(len(y_test), len(TARGET_CLASSES))}"
            else:
                accuracy = float((logits.argmax(dim=1).numpy() == y_test).mean())
        except Exception as error:  # noqa: BLE001
            problem = f"evaluating the returned model raised {type(error).__name__}: {error}"
    reached = accuracy is not None and accuracy >= FINETUNE_ACCURACY_THRESHOLD
    properties = (
        PropertyResult("returns a model that maps (N, 1, 8, 8) images to (N, 5) logits", 1, accuracy is not None, problem or ""),
        PropertyResult(f"test accuracy on digits 5-9 at least {FINETUNE_ACCURACY_THRESHOLD:.0%}"
                       + ("" if accuracy is None else f" (yours: {accuracy:.1%})"), 3, reached,
                       "" if reached or accuracy is None else "train longer, tune the learning rate, or train more layers"),
    )
    mistakes = ()
    if accuracy is not None and accuracy < 0.3:
        mistakes = ("accuracy near chance (20%): is the model trained at all (parameters given to the optimizer, "
                    "optimizer.step() called, labels 0-4 for digits 5-9)?",)
    return GradeReport(subject, properties, mistakes)
