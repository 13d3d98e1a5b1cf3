"""The shared assignment tasks: independent copies, the documented splits and labels."""
import numpy as np
import torch

from cs231n_utils.assignment_data import EXAMPLES_PER_CLASS, TARGET_CLASSES, digits_finetuning_task
from cs231n_utils.autograde.transfer_checks import held_out_target_digits
from cs231n_utils.data import load_digits


def test_finetuning_task_hands_out_independent_copies_of_the_documented_splits():
    first, second = digits_finetuning_task(), digits_finetuning_task()
    with torch.no_grad():
        for parameter in first.pretrained.parameters():
            parameter.zero_()
    first.X_train[:] = 0.0
    assert all(bool(p.abs().sum() > 0) for p in second.pretrained.parameters())
    assert np.abs(second.X_train).sum() > 0
    assert np.array_equal(np.bincount(second.y_train), [EXAMPLES_PER_CLASS] * len(TARGET_CLASSES))
    splits = load_digits(as_images=True)
    test_targets = np.isin(splits.y_test, TARGET_CLASSES)
    X_test, y_test = held_out_target_digits()
    assert np.array_equal(X_test, splits.X_test[test_targets])
    assert np.array_equal(y_test, splits.y_test[test_targets] - 5)
    assert not any("test" in field for field in vars(second)), "the notebook's task must not hold the test split"
    assert second.pretrained.head.out_features == 5
