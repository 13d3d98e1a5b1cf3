"""Every optimizer on the digits (cs231n_utils.optimizer_study): stacked copies train exactly as
separate runs, learning rates are picked on validation data, and bad arguments are named."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from cs231n_utils import data, torch_optim
from cs231n_utils.optimizer_study import StackedMLP, train_grid, tune_and_compare

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_splits() -> data.DataSplits:
    """A 300-image slice of the digits, enough for a few fast epochs."""
    full = data.load_digits()
    return data.DataSplits(full.X_train[:300], full.y_train[:300], full.X_val[:100], full.y_val[:100],
                           full.X_test[:100], full.y_test[:100], full.class_names)


def test_stacked_copies_compute_independent_networks() -> None:
    model = StackedMLP(seeds=(3, 4), in_features=5, hidden=7, classes=3)
    x = torch.randn(2, 6, 5)
    for k in range(2):
        expected = torch.relu(x[k] @ model.w1[k] + model.b1[k]) @ model.w2[k] + model.b2[k]
        torch.testing.assert_close(model(x)[k], expected)
    assert not torch.equal(model.w1[0], model.w1[1])
    torch.testing.assert_close(StackedMLP((4,), 5, 7, 3).w1[0], model.w1[1])  # copy = its own seed


@pytest.mark.parametrize("make", [partial(torch_optim.SGD, lr=0.1, momentum=0.9), torch_optim.Adam,
                                  partial(torch_optim.AdamW, weight_decay=0.1)])
def test_a_seed_trained_beside_others_equals_it_trained_alone(make, small_splits) -> None:
    together = train_grid(make, (0.01, 0.1), (0, 1), small_splits, epochs=2, cosine=True)
    alone = train_grid(make, (0.1,), (1,), small_splits, epochs=2, cosine=True)
    np.testing.assert_allclose(together["train_loss"][1, 1], alone["train_loss"][0, 0], rtol=1e-4)
    np.testing.assert_array_equal(together["test"][1, 1], alone["test"][0, 0])
    assert together["val"].shape == (2, 2) and together["train_loss"].shape == (2, 2, 2)


def test_the_rate_is_chosen_on_validation_accuracy(small_splits) -> None:
    results = tune_and_compare({"SGD": partial(torch_optim.SGD, lr=0.1)}, {"SGD": (1e-4, 0.1, 0.5)},
                               (0, 1, 2), small_splits, epochs=2)
    result = results["SGD"]
    assert result.best_lr == result.lrs[int(np.argmax(result.val_by_lr))]
    assert result.best_lr != 1e-4  # 2 epochs at 1e-4 barely move the weights
    assert result.test_accuracy.shape == (3,) and result.train_loss.shape == (3, 2)
    assert result.std == pytest.approx(np.std(result.test_accuracy, ddof=1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: train_grid(torch_optim.Adam, (), (0,), s), "lrs"),
        (lambda s: train_grid(torch_optim.Adam, (-1e-3,), (0,), s), "lrs"),
        (lambda s: train_grid(torch_optim.Adam, (1e-3,), (), s), "seeds"),
        (lambda s: tune_and_compare({"Adam": torch_optim.Adam}, {}, (0,), s), "lr_grids"),
        (lambda s: StackedMLP((0,), 0, 4, 2), "in_features"),
        (lambda s: StackedMLP((0,), 3, 4, 2)(torch.zeros(2, 1, 3)), "x must have shape"),
    ],
)
def test_bad_arguments_are_named(call, message: str, small_splits) -> None:
    with pytest.raises(ValueError, match=message):
        call(small_splits)
