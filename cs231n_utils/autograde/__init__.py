"""Helpers that nbgrader hidden tests call to grade students' optimizers.

- :func:`check_update_rule` compares a NumPy rule ``next_w, config = rule(w, dw, config)`` with
  ``cs231n_utils.optim`` over random shapes, hyperparameters and consecutive steps;
- :func:`check_torch_optimizer` compares a ``torch.optim.Optimizer`` subclass with the same
  NumPy reference on the same gradients.

Both return a :class:`GradeReport` with credit per property, the likely mistake (found by running
known buggy variants of the reference, :mod:`.mutants`) and zero credit for an answer that runs
a reference implementation (:mod:`.guard`). A hidden test cell ends with ::

    check_update_rule(adam, "adam").award(points=3)

which prints the feedback and returns the partial credit that nbgrader records.
"""
from .report import GradeReport, PropertyResult
from .update_rule import check_update_rule

__all__ = ["GradeReport", "PropertyResult", "check_update_rule", "check_torch_optimizer"]


def __getattr__(name: str):
    # torch is imported only when the torch check is used: NumPy-only notebooks stay fast.
    if name == "check_torch_optimizer":
        from .torch_optimizer import check_torch_optimizer

        return check_torch_optimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
