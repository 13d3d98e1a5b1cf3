"""Scenarios the checker runs with a student's answer when a plain call is not enough (kernel side).

Each runner takes the answer, a payload of plain data chosen by the checker and, for the
in-kernel path of plain nbgrader, a ``guard`` context manager entered around every call into
student code; it returns plain data (arrays, numbers, strings, flags):

- :func:`describe_optimizer_class` and :func:`optimizer_scenario`: a ``torch.optim.Optimizer``
  subclass built on float64 parameters, stepped on given gradients, with param groups, a
  parameter without gradient, ``step(closure)`` or a ``state_dict`` reload;
- :func:`module_outcome`: ``freeze(module)`` or ``replace_head(model, num_classes, attribute)``
  applied to a model built here from the checker's seed, described as data;
- :func:`finetune_scenario`: ``finetune(model, X, y)`` on the checker's pretrained weights and
  training data; the trained weights go back (the checker measures accuracy on data the kernel
  never sees).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, ContextManager

import numpy as np

from .serve import quiet

__all__ = ["RUNNERS", "describe_optimizer_class", "optimizer_scenario", "module_outcome", "finetune_scenario",
           "build_test_model", "TEST_MODELS"]

CLOSURE_LOSS = 0.25
"""The loss the closure of the closure scenario returns."""


def _guarded(guard: ContextManager | None) -> ContextManager:
    return guard if guard is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- torch optimizers
def describe_optimizer_class(answer: Any, payload: dict, guard: ContextManager | None = None) -> dict:
    """``{"is_optimizer": subclasses torch.optim.Optimizer, "name": ..., "bases": [module.qualname of the MRO]}``."""
    import torch

    is_class = isinstance(answer, type)
    return {
        "is_optimizer": bool(is_class and issubclass(answer, torch.optim.Optimizer)),
        "name": str(getattr(answer, "__name__", type(answer).__name__)),
        "bases": [f"{getattr(b, '__module__', '')}.{b.__qualname__}" for b in answer.__mro__] if is_class else [],
    }


def optimizer_scenario(answer: Any, payload: dict, guard: ContextManager | None = None) -> dict:
    """Optimise float64 parameters with ``answer`` (an Optimizer subclass) and record them.

    Payload: ``groups`` (list of ``{"params": [arrays], "kwargs": {...}}``), ``constructor_kwargs``
    (used with several groups; one group passes its kwargs to the constructor), ``grads``
    (per step, per group, per parameter), ``untouched`` (add a parameter that never gets a
    gradient), ``closure`` (call ``step(closure)`` on the first step), ``reload_at`` (rebuild the
    optimizer from its ``state_dict()`` before that step, or None).
    Result: ``positions`` (per step, every parameter's value), ``error`` (the exception that
    stopped the run), ``not_implemented``, ``grad_changed`` (first step that changed a
    ``p.grad``), ``untouched_moved``, ``closure_calls`` and ``closure_result`` (a float, or the
    returned type's name).
    """
    import torch

    guard = _guarded(guard)
    groups, grads = payload["groups"], payload["grads"]
    result: dict[str, Any] = {"positions": [], "error": None, "not_implemented": False, "grad_changed": None,
                              "untouched_moved": False, "closure_calls": None, "closure_result": None}
    params = [[torch.nn.Parameter(torch.tensor(np.asarray(w, dtype=np.float64))) for w in g["params"]] for g in groups]
    spare = torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) if payload.get("untouched") else None

    def arguments() -> Any:
        if len(groups) == 1:
            return params[0] + ([spare] if spare is not None else [])
        return [{"params": p, **g["kwargs"]} for p, g in zip(params, groups)]

    kwargs = groups[0]["kwargs"] if len(groups) == 1 else payload.get("constructor_kwargs") or {}

    def build() -> Any:
        with quiet(), guard:
            return answer(arguments(), **kwargs)

    try:
        optimizer = build()
        for k, step_grads in enumerate(grads):
            if k == payload.get("reload_at"):
                with quiet(), guard:
                    state = copy.deepcopy(optimizer.state_dict())
                with torch.no_grad():
                    params = [[torch.nn.Parameter(p.detach().clone()) for p in ps] for ps in params]
                optimizer = build()
                with quiet(), guard:
                    optimizer.load_state_dict(state)
            tensors = [[torch.tensor(np.asarray(g, dtype=np.float64)) for g in gs] for gs in step_grads]
            for ps, gs in zip(params, tensors):
                for p, gradient in zip(ps, gs):
                    p.grad = gradient.clone()
            if payload.get("closure") and k == 0:
                calls = []
                loss = torch.tensor(CLOSURE_LOSS, dtype=torch.float64)

                def closure():
                    calls.append(1)
                    return loss

                with quiet(), guard:
                    returned = optimizer.step(closure)
                result["closure_calls"] = len(calls)
                result["closure_result"] = (float(returned) if isinstance(returned, (torch.Tensor, float))
                                            and getattr(returned, "numel", lambda: 1)() == 1 else type(returned).__name__)
            else:
                with quiet(), guard:
                    optimizer.step()
            for ps, gs in zip(params, tensors):
                if result["grad_changed"] is None and any(p.grad is None or not torch.equal(p.grad, g)
                                                          for p, g in zip(ps, gs)):
                    result["grad_changed"] = f"step {k + 1} changed p.grad"
            result["positions"].append([p.detach().numpy().copy() for ps in params for p in ps])
    except NotImplementedError:
        result["not_implemented"] = True
    except Exception as error:  # noqa: BLE001 - any failure of student code is reported, not raised
        result["error"] = f"{type(error).__name__}: {error}"[:500]
    if spare is not None:
        result["untouched_moved"] = not torch.equal(spare.detach(), torch.ones(3, dtype=torch.float64))
    return result


# --------------------------------------------------------------------- transfer-learning functions
def _nested_model() -> Any:
    import torch
    from torch import nn

    class Nested(nn.Module):
        """Parameters at several depths, a buffer (BatchNorm) and a head called ``classifier``."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))
            self.features = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6),
                                          nn.Sequential(nn.ReLU(), nn.Linear(6, 5)))
            self.classifier = nn.Linear(5, 3)

    return Nested()


def _digits_model() -> Any:
    from ..models import DigitsCNN

    return DigitsCNN(num_classes=5, width=4, hidden=8)


TEST_MODELS: dict[str, Callable[[], Any]] = {"DigitsCNN": _digits_model, "nested": _nested_model}
"""Architectures of the models the transfer checks hand to students' functions."""


def build_test_model(architecture: str, seed: int, frozen: bool = False) -> Any:
    """A fresh :data:`TEST_MODELS` model initialised with torch seeded ``seed`` (the global random
    state is left alone), every parameter frozen if asked."""
    import torch

    if architecture not in TEST_MODELS:
        raise ValueError(f"architecture must be one of {sorted(TEST_MODELS)}, got {architecture!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = TEST_MODELS[architecture]()
    for p in model.parameters():
        p.requires_grad_(not frozen)
    return model


def module_signature(model: Any) -> list:
    """Per parameter ``[name, shape, requires_grad, sum of its values]``, then the training flag."""
    return [[name, list(p.shape), bool(p.requires_grad), float(p.detach().double().sum().item())]
            for name, p in model.named_parameters()] + [bool(model.training)]


def freeze_outcome(function: Callable, model: Any, guard: ContextManager | None = None) -> list:
    """What ``function(model)`` did to the model, as data: what it returned and the model's signature."""
    with quiet(), _guarded(guard):
        returned = function(model)
    return ["returns the module" if returned is model else f"returns {type(returned).__name__}",
            module_signature(model)]


def head_outcome(function: Callable, model: Any, num_classes: int, attribute: str,
                 guard: ContextManager | None = None) -> list:
    """What ``function(model, num_classes, attribute)`` did: what it returned, the installed
    head's ``(in_features, out_features, has bias)``, whether the head trains, body unchanged."""
    import torch
    from torch import nn

    body = {name: p.detach().clone() for name, p in model.named_parameters() if not name.startswith(f"{attribute}.")}
    with quiet(), _guarded(guard):
        returned = function(model, num_classes, attribute)
    installed = getattr(model, attribute, None)
    head = installed if isinstance(installed, nn.Linear) else None
    return [
        "returns the installed layer" if returned is installed and head is not None else f"returns {type(returned).__name__}",
        None if head is None else [head.in_features, head.out_features, head.bias is not None],
        None if head is None else all(p.requires_grad for p in head.parameters()),
        all(name in body and torch.equal(p.detach(), body[name]) for name, p in model.named_parameters()
            if not name.startswith(f"{attribute}.")),
    ]


def module_outcome(answer: Any, payload: dict, guard: ContextManager | None = None) -> list:
    """:func:`freeze_outcome` (``payload["function"] == "freeze"``) or :func:`head_outcome`
    (``"replace_head"``, with ``num_classes`` and ``attribute``) on the model ``payload["architecture"]``
    initialised with ``payload["seed"]``, frozen if ``payload["frozen"]``."""
    model = build_test_model(payload["architecture"], int(payload["seed"]), bool(payload.get("frozen")))
    if payload["function"] == "freeze":
        return freeze_outcome(answer, model, guard)
    if payload["function"] == "replace_head":
        return head_outcome(answer, model, int(payload["num_classes"]), str(payload["attribute"]), guard)
    raise ValueError(f"payload['function'] must be 'freeze' or 'replace_head', got {payload['function']!r}")


def finetune_scenario(answer: Any, payload: dict, guard: ContextManager | None = None) -> dict:
    """Run ``answer(model, X, y)`` on a DigitsCNN with ``payload["pretrained"]`` weights
    (``num_classes``, ``width``, ``hidden`` in ``payload["architecture"]``), torch seeded with
    ``payload["seed"]``. Returns ``{"returned": type name, "state": the returned module's
    state dict}`` (``state`` is None when it returned no module)."""
    import torch
    from torch import nn

    from ..models import DigitsCNN

    model = DigitsCNN(**payload["architecture"])
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in payload["pretrained"].items()})
    X, y = np.asarray(payload["X"]), np.asarray(payload["y"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(payload["seed"]))
        with quiet(), _guarded(guard):
            returned = answer(model, X, y)
    if not isinstance(returned, nn.Module):
        return {"returned": type(returned).__name__, "state": None}
    return {"returned": type(returned).__name__,
            "state": {k: v.detach().cpu().numpy().copy() for k, v in returned.state_dict().items()}}


RUNNERS: dict[str, Callable[[Any, dict], Any]] = {
    "describe_optimizer_class": describe_optimizer_class,
    "optimizer_scenario": optimizer_scenario,
    "module_outcome": module_outcome,
    "finetune": finetune_scenario,
}
