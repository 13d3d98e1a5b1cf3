"""The 2x2-table experiment (cs231n_utils.transfer_table): stacked copies compute what separate
networks compute, each strategy trains exactly the parts its name says, and the statistics."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cs231n_utils import data, transfer_table
from cs231n_utils.transfer import DigitsCNN
from cs231n_utils.transfer_table import STRATEGIES, StackedDigitsCNN, TransferRun

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PARTS = ("block1", "block2", "block3", "fc", "head")


def _models(count: int, width: int = 4) -> list[DigitsCNN]:
    torch.manual_seed(0)
    return [DigitsCNN(num_classes=10, width=width, hidden=16) for _ in range(count)]


def test_stacked_copies_compute_what_each_network_computes() -> None:
    models = _models(3)
    stacked = StackedDigitsCNN(models, trainable=())
    x = torch.randn(3, 7, 1, 8, 8)
    expected = torch.stack([model(x[index]) for index, model in enumerate(models)])
    torch.testing.assert_close(stacked(x), expected, rtol=1e-5, atol=1e-5)


def test_starting_from_fc_or_head_skips_the_frozen_parts() -> None:
    models = _models(2)
    stacked = StackedDigitsCNN(models, trainable=())
    x = torch.randn(2, 5, 1, 8, 8)
    conv = torch.stack([m.block3(m.block2(m.block1(x[i]))).flatten(1) for i, m in enumerate(models)])
    hidden = torch.stack([m.fc(m.block3(m.block2(m.block1(x[i])))) for i, m in enumerate(models)])
    torch.testing.assert_close(stacked(conv, start="fc"), stacked(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stacked(hidden, start="head"), stacked(x), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def pretrained() -> DigitsCNN:
    return _models(1, width=4)[0]


def _small_task(seeds: int, n_per_class: int = 1):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((seeds, 10 * n_per_class, 1, 8, 8)).astype(np.float32)
    y = np.tile(np.repeat(np.arange(10), n_per_class), (seeds, 1))
    return X, y


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_trains_exactly_the_parts_it_names(strategy: str, pretrained: DigitsCNN) -> None:
    before = copy.deepcopy(pretrained.state_dict())
    X, y = _small_task(2)
    model = transfer_table.train_strategy(strategy, pretrained, X, y, seeds=(0, 1), steps=3)
    trained = set(STRATEGIES[strategy][0])
    start = StackedDigitsCNN([pretrained, pretrained], trainable=())
    for part in PARTS:
        moved = not torch.equal(getattr(model, f"{part}_weight"), getattr(start, f"{part}_weight"))
        if part == "head" or strategy == "from scratch":
            assert (part in trained) and (moved or strategy == "from scratch")
        else:
            assert moved == (part in trained), f"{strategy}: {part} moved={moved}"
        assert getattr(model, f"{part}_weight").requires_grad == (part in trained)
    assert all(torch.equal(before[k], v) for k, v in pretrained.state_dict().items()), "pretrained changed"


def test_head_only_leaves_the_body_bitwise_equal(pretrained: DigitsCNN) -> None:
    X, y = _small_task(2)
    model = transfer_table.train_strategy("head only (linear probe)", pretrained, X, y, seeds=(0, 1), steps=5)
    for part, layer in (("block1", pretrained.block1[0]), ("fc", pretrained.fc[1])):
        for copy_index in range(2):
            weight = getattr(model, f"{part}_weight")
            rows = layer.weight.shape[0]
            stacked = weight[copy_index] if part == "fc" else weight[copy_index * rows:(copy_index + 1) * rows]
            assert torch.equal(stacked, layer.weight)


def test_seeds_train_independently(pretrained: DigitsCNN) -> None:
    """Full-batch steps: seed 1 trained beside seed 0 equals seed 1 trained alone."""
    X, y = _small_task(2)
    both = transfer_table.train_strategy("finetune all", pretrained, X, y, seeds=(0, 1), steps=4)
    alone = transfer_table.train_strategy("finetune all", pretrained, X[1:], y[1:], seeds=(1,), steps=4)
    images = torch.randn(6, 1, 8, 8)
    together = transfer_table.test_accuracies(both, "finetune all", pretrained, images.numpy(), np.zeros(6))
    assert together.shape == (2,)
    torch.testing.assert_close(both(images.expand(2, -1, -1, -1, -1))[1], alone(images[None])[0],
                               rtol=1e-4, atol=1e-5)


def test_gain_over_scratch_is_a_paired_t_interval() -> None:
    runs = [TransferRun("t", "from scratch", 1, seed, acc) for seed, acc in enumerate((0.5, 0.6, 0.4))]
    runs += [TransferRun("t", "finetune all", 1, seed, acc) for seed, acc in enumerate((0.6, 0.8, 0.7))]
    gain, half_width = transfer_table.gain_over_scratch(runs, "finetune all", "t", 1)
    # differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1; t(0.975, 2 dof) = 4.302653 (from a table)
    assert gain == pytest.approx(0.2)
    assert half_width == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-6)
    with pytest.raises(ValueError, match="2 seeds"):
        transfer_table.gain_over_scratch(runs[:4], "finetune all", "t", 1)


def test_shuffle_pixels_is_one_fixed_permutation() -> None:
    images = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    shuffled = transfer_table.shuffle_pixels(seed=3)(images)
    assert shuffled.shape == images.shape
    np.testing.assert_array_equal(np.sort(shuffled.reshape(2, -1)), images.reshape(2, -1))
    np.testing.assert_array_equal(shuffled[1] - shuffled[0], np.full((1, 8, 8), 64.0))  # same order
    assert not np.array_equal(shuffled, images)
    np.testing.assert_array_equal(transfer_table.shuffle_pixels(seed=3)(images), shuffled)


def test_source_and_target_halves_are_disjoint_and_stratified() -> None:
    splits = data.load_digits(as_images=True)
    (X_s, y_s), (X_t, y_t) = transfer_table.split_source_target(splits)
    assert len(y_s) + len(y_t) == len(splits.y_train)
    assert abs(len(y_s) - len(y_t)) <= 1
    assert np.abs(np.bincount(y_s) - np.bincount(y_t)).max() <= 1
    rows = {row.tobytes() for row in X_s}
    assert not any(row.tobytes() in rows for row in X_t)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: transfer_table.train_strategy("linear probe", p, *_small_task(1), seeds=(0,)), "strategy"),
        (lambda p: transfer_table.train_strategy("finetune all", p, *_small_task(2), seeds=(0,)), "seeds"),
        (lambda p: transfer_table.train_strategy("finetune all", p, *_small_task(1), seeds=(0,), steps=0), "steps"),
        (lambda p: StackedDigitsCNN([p], trainable=("conv",)), "unknown"),
        (lambda p: StackedDigitsCNN([p], trainable=())(torch.zeros(2, 1, 1, 8, 8)), "copies"),
        (lambda p: StackedDigitsCNN([p], trainable=())(torch.zeros(1, 1, 8, 8), start="block2"), "start"),
    ],
)
def test_bad_arguments_are_named(call, message: str, pretrained: DigitsCNN) -> None:
    with pytest.raises(ValueError, match=message):
        call(pretrained)
