"""Helpers that nbgrader hidden tests call to grade students' answers.

- :func:`check_update_rule` compares a NumPy rule ``next_w, config = rule(w, dw, config)`` with
  ``cs231n_utils.optim`` over random shapes, hyperparameters and consecutive steps;
- :func:`check_torch_optimizer` compares a ``torch.optim.Optimizer`` subclass with the same
  NumPy reference on the same gradients;
- :func:`check_function` compares a pure function with a reference on groups of generated
  inputs; the exercise checks built on it are :func:`check_newton_step`,
  :func:`check_two_loop_recursion` (:mod:`.second_order_checks`), :func:`check_dropout_forward`,
  :func:`check_dropout_backward`, :func:`check_l2_penalty`, :func:`check_horizontal_flip`
  (:mod:`.layer_checks`), :func:`check_freeze`, :func:`check_replace_head` and
  :func:`check_finetuning` (:mod:`.transfer_checks`, imported on first use: it needs torch).

Both return a :class:`GradeReport` with credit per property, the likely mistake (found by running
known buggy variants of the reference, :mod:`.mutants`) and zero credit for an answer that runs
a reference implementation (:mod:`.guard`). A hidden test cell only says ::

    from cs231n_utils.kernel import grade
    grade("test_adam", adam, points=3)

and :mod:`.registry` says which check grades ``test_adam``. Under ``cs231n-grade`` the check runs in
the trusted checker outside the student's kernel and reaches the answer through
:mod:`.remote`; with plain nbgrader it runs in the kernel and ``award`` prints the feedback and
returns the partial credit that nbgrader records.
"""
from .report import GradeReport, PropertyResult
from .update_rule import check_update_rule

_LAZY = {
    "check_torch_optimizer": "torch_optimizer",
    "check_function": "function",
    "check_newton_step": "second_order_checks",
    "check_two_loop_recursion": "second_order_checks",
    "check_dropout_forward": "layer_checks",
    "check_dropout_backward": "layer_checks",
    "check_l2_penalty": "layer_checks",
    "check_horizontal_flip": "layer_checks",
    "check_freeze": "transfer_checks",
    "check_replace_head": "transfer_checks",
    "check_finetuning": "transfer_checks",
}

__all__ = ["GradeReport", "PropertyResult", "check_update_rule", *_LAZY]


def __getattr__(name: str):
    # torch is imported only when a check that needs it is used: NumPy-only notebooks stay fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
