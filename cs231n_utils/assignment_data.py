"""Deterministic data and pretrained models that an assignment notebook and its hidden tests share.

Each task is built once per Python process (the notebook's kernel) and handed out as fresh copies:
the hidden test reuses the pretraining the notebook already paid for, and no caller can change
what the next one gets by modifying its copy. The task has no test split: the held-out test
images that grade the finetuning live with the grader
(:func:`cs231n_utils.autograde.transfer_checks.held_out_target_digits`).

Inside the grading sandbox the reference (``transfer``) is absent: there the task is read from
:data:`STUDENT_TASK_FILE`, written next to this module by the package boundary
(:func:`save_student_task`) with the pretrained weights and the training and validation splits.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data
from .models import DigitsCNN

__all__ = ["FinetuningTask", "digits_finetuning_task", "save_student_task", "SOURCE_CLASSES", "TARGET_CLASSES",
           "EXAMPLES_PER_CLASS", "STUDENT_TASK_FILE"]

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
EXAMPLES_PER_CLASS = 10
STUDENT_TASK_FILE = Path(__file__).with_name("digits_finetuning_task.npz")


@dataclass(frozen=True)
class FinetuningTask:
    """A network pretrained on the source digits, and the target digits relabelled ``0 .. 4``:
    a small training set and the validation split (images ``(N, 1, 8, 8)``). The test split is
    deliberately absent (see
    :func:`cs231n_utils.autograde.transfer_checks.held_out_target_digits`)."""

    pretrained: nn.Module
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray


@lru_cache(maxsize=1)
def _build_digits_finetuning_task() -> FinetuningTask:
    if STUDENT_TASK_FILE.exists():
        return _load_student_task()
    from . import transfer  # the reference: absent inside the grading sandbox

    splits = data.load_digits(as_images=True)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        pretrained = transfer.pretrain(splits, SOURCE_CLASSES)
    pool = transfer.select_classes(splits.X_train, splits.y_train, TARGET_CLASSES)
    X_train, y_train = transfer.subsample_per_class(*pool, EXAMPLES_PER_CLASS, seed=0)
    X_val, y_val = transfer.select_classes(splits.X_val, splits.y_val, TARGET_CLASSES)
    return FinetuningTask(pretrained, X_train, y_train, X_val, y_val)


def save_student_task(path: str | Path) -> Path:
    """Write the task without its test split to ``path`` (``.npz``: the pretrained weights under
    ``state/<name>``, the architecture, the training and validation splits)."""
    task = _build_digits_finetuning_task()
    arrays = {f"state/{k}": v.numpy() for k, v in task.pretrained.state_dict().items()}
    arrays.update({f"architecture/{k}": np.array(v) for k, v in task.pretrained.architecture().items()})
    np.savez(path, X_train=task.X_train, y_train=task.y_train, X_val=task.X_val, y_val=task.y_val, **arrays)
    return Path(path)


def _load_student_task() -> FinetuningTask:
    with np.load(STUDENT_TASK_FILE, allow_pickle=False) as saved:
        architecture = {k.split("/", 1)[1]: int(saved[k]) for k in saved.files if k.startswith("architecture/")}
        pretrained = DigitsCNN(**architecture)
        pretrained.load_state_dict({k.split("/", 1)[1]: torch.as_tensor(saved[k])
                                    for k in saved.files if k.startswith("state/")})
        return FinetuningTask(pretrained, saved["X_train"], saved["y_train"], saved["X_val"], saved["y_val"])


def digits_finetuning_task() -> FinetuningTask:
    """The transfer-learning exercise: :func:`cs231n_utils.transfer.pretrain` (a
    :class:`~cs231n_utils.transfer.DigitsCNN` trained on the digits 0-4 of scikit-learn's digits,
    seeded), ``EXAMPLES_PER_CLASS`` training images of each of the digits 5-9 (seed 0), and the
    validation images of the digits 5-9, labels ``digit - 5``. Deterministic for a given
    torch thread count; every call returns deep copies (about 2 s on a CPU the first time)."""
    return copy.deepcopy(_build_digits_finetuning_task())
