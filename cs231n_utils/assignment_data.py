"""Deterministic data and pretrained models that an assignment notebook and its hidden tests share.

Each task is built once per Python process (the notebook's kernel) and handed out as fresh copies:
the hidden test reuses the pretraining the notebook already paid for, and no caller can change
what the next one gets by modifying its copy. The held-out test images that grade the finetuning
are not part of the task the notebook receives: only the grader calls
:func:`held_out_target_digits`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from . import data, transfer

__all__ = ["FinetuningTask", "digits_finetuning_task", "held_out_target_digits", "SOURCE_CLASSES", "TARGET_CLASSES",
           "EXAMPLES_PER_CLASS"]

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
EXAMPLES_PER_CLASS = 10


@dataclass(frozen=True)
class FinetuningTask:
    """A network pretrained on the source digits, and the target digits relabelled ``0 .. 4``:
    a small training set and the validation split (images ``(N, 1, 8, 8)``). The test split is
    deliberately absent (see :func:`held_out_target_digits`)."""

    pretrained: nn.Module
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray


@lru_cache(maxsize=1)
def _build_digits_finetuning_task() -> FinetuningTask:
    splits = data.load_digits(as_images=True)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        pretrained = transfer.pretrain(splits, SOURCE_CLASSES)
    pool = transfer.select_classes(splits.X_train, splits.y_train, TARGET_CLASSES)
    X_train, y_train = transfer.subsample_per_class(*pool, EXAMPLES_PER_CLASS, seed=0)
    X_val, y_val = transfer.select_classes(splits.X_val, splits.y_val, TARGET_CLASSES)
    return FinetuningTask(pretrained, X_train, y_train, X_val, y_val)


def digits_finetuning_task() -> FinetuningTask:
    """The transfer-learning exercise: :func:`cs231n_utils.transfer.pretrain` (a
    :class:`~cs231n_utils.transfer.DigitsCNN` trained on the digits 0-4 of scikit-learn's digits,
    seeded), ``EXAMPLES_PER_CLASS`` training images of each of the digits 5-9 (seed 0), and the
    validation images of the digits 5-9, labels ``digit - 5``. Deterministic for a given
    torch thread count; every call returns deep copies (about 2 s on a CPU the first time)."""
    return copy.deepcopy(_build_digits_finetuning_task())


def held_out_target_digits() -> tuple[np.ndarray, np.ndarray]:
    """The test images ``(N, 1, 8, 8)`` of the digits 5-9 and their labels ``digit - 5``: the data
    that grades a finetuning. Only the grader calls this; the notebook never imports it."""
    splits = data.load_digits(as_images=True)
    return transfer.select_classes(splits.X_test, splits.y_test, TARGET_CLASSES)
