"""Transfer-learning helpers: freezing, head replacement, layer-wise learning rates, the experiment."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from cs231n_utils import data, transfer
from cs231n_utils.training import train
from cs231n_utils.transfer import (
    DigitsCNN,
    TransferResult,
    discriminative_param_groups,
    freeze,
    replace_head,
    run_transfer_experiment,
    select_classes,
    subsample_per_class,
    summarize,
    trainable_parameter_count,
    unfreeze,
)

BODY = ("block1", "block2", "block3", "fc")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def splits():
    return data.load_digits(as_images=True)


@pytest.fixture(scope="module")
def pretrained(splits):
    return transfer.pretrain(splits)


def _cnn(num_classes: int = 10) -> DigitsCNN:
    torch.manual_seed(0)
    return DigitsCNN(num_classes)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_digits_cnn_maps_images_to_logits():
    assert _cnn(7)(torch.zeros(5, 1, 8, 8)).shape == (5, 7)
    with pytest.raises(ValueError, match="x must have shape"):
        _cnn()(torch.zeros(5, 64))


def test_freeze_stops_gradients_and_updates(splits):
    model = _cnn()
    freeze(model.block1)
    freeze(model.block2)
    assert not any(p.requires_grad for p in model.block1.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    before = _snapshot(model)
    # Hand every parameter to the optimizer, with momentum and weight decay that would move any
    # parameter it touches: the frozen ones must still not change, as they never get a gradient.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    X, y = torch.from_numpy(splits.X_train[:64]), torch.from_numpy(splits.y_train[:64])
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        assert model.block1[0].weight.grad is None
        optimizer.step()
    after = _snapshot(model)
    for name in before:
        frozen = name.startswith(("block1.", "block2."))
        assert torch.equal(before[name], after[name]) == frozen, name


def test_unfreeze_restores_training(splits):
    model = freeze(_cnn())
    assert trainable_parameter_count(model) == 0
    assert unfreeze(model) is model
    assert trainable_parameter_count(model) == sum(p.numel() for p in model.parameters())
    before = _snapshot(model)
    train(model, (splits.X_train[:64], splits.y_train[:64]), epochs=1)
    after = _snapshot(model)
    assert all(not torch.equal(before[name], after[name]) for name in before)


def test_replace_head_changes_the_output_and_keeps_the_body():
    model = freeze(_cnn(10))
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    old_head = model.head
    new_head = replace_head(model, 3)
    assert model.head is new_head and new_head is not old_head
    assert (new_head.in_features, new_head.out_features) == (old_head.in_features, 3)
    assert all(p.requires_grad for p in new_head.parameters())
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in body.items())


def test_replace_head_follows_a_dotted_path_and_keeps_dtype():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 5, bias=False))).double()
    new = replace_head(model, 2, attribute="2.0")
    assert model[2][0] is new and new.bias is None and new.weight.dtype == torch.float64
    assert model(torch.zeros(1, 4, dtype=torch.float64)).shape == (1, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_classes": 0}, "num_classes"), ({"attribute": "nothing"}, "attribute"), ({"attribute": "fc"}, "attribute"), ({"attribute": ""}, "attribute")],
)
def test_replace_head_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        replace_head(_cnn(), **{"num_classes": 3, **kwargs})


def test_discriminative_groups_have_geometric_learning_rates():
    model = _cnn()
    groups = discriminative_param_groups(model, base_lr=0.1, decay=0.5)
    assert [g["name"] for g in groups] == [*BODY, "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.1 / 16, 0.1 / 8, 0.1 / 4, 0.1 / 2, 0.1])
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once


def test_discriminative_groups_drive_an_optimizer_layer_by_layer():
    model = _cnn()
    groups = discriminative_param_groups(model, base_lr=0.1, decay=0.5)
    before = _snapshot(model)
    optimizer = torch.optim.SGD(groups, lr=123.0)  # every group's own lr overrides this default
    nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.arange(8)).backward()
    optimizer.step()
    lr_of = {"block1": 0.1 / 16, "block2": 0.1 / 8, "block3": 0.1 / 4, "fc": 0.1 / 2, "head": 0.1}
    for name, param in model.named_parameters():
        expected = before[name] - lr_of[name.split(".")[0]] * param.grad
        torch.testing.assert_close(param.detach(), expected)


def test_discriminative_groups_skip_frozen_layers_and_honour_explicit_layers():
    model = _cnn()
    freeze(model.block1)
    groups = discriminative_param_groups(model, base_lr=1.0, decay=0.1, layers=["block1", "block2", "block3", "fc", "head"])
    assert [g["name"] for g in groups] == ["block2", "block3", "fc", "head"]
    assert groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"base_lr": 0.0}, "base_lr"),
        ({"base_lr": float("nan")}, "base_lr"),
        ({"decay": 0.0}, "decay"),
        ({"decay": 1.5}, "decay"),
        ({"layers": ["block1", "head"]}, "layers must cover"),
        ({"layers": ["head", "head"]}, "layers"),
        ({"layers": ["nope"]}, "layers"),
        ({"layers": "head"}, "layers"),
        ({"model": "cnn"}, "model"),
    ],
)
def test_discriminative_groups_reject_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        discriminative_param_groups(**{"model": _cnn(), "base_lr": 0.1, "decay": 0.5, **kwargs})


@pytest.mark.parametrize("function", [freeze, unfreeze, trainable_parameter_count])
def test_freeze_helpers_reject_non_modules(function):
    with pytest.raises(ValueError, match="module"):
        function([nn.Parameter(torch.zeros(1))])


def test_select_classes_relabels_in_the_given_order():
    X = np.arange(20).reshape(10, 2)
    y = np.array([0, 5, 6, 5, 9, 6, 5, 0, 6, 9])
    X_sel, y_sel = select_classes(X, y, (6, 5))
    assert X_sel[:, 0].tolist() == [2, 4, 6, 10, 12, 16]
    assert y_sel.tolist() == [1, 0, 1, 0, 1, 0]
    X_sub, y_sub = subsample_per_class(X_sel, y_sel, 2, seed=0)
    assert np.bincount(y_sub).tolist() == [2, 2]
    assert set(X_sub[:, 0]) <= set(X_sel[:, 0])
    assert np.array_equal(subsample_per_class(X_sel, y_sel, 2, seed=0)[0], X_sub)  # seeded
    with pytest.raises(ValueError, match="examples_per_class"):
        subsample_per_class(X_sel, y_sel, 4, seed=0)
    with pytest.raises(ValueError, match="classes"):
        select_classes(X, y, (5,))


def test_summarize_averages_over_seeds():
    results = [
        TransferResult("from scratch", 3, 15, 0, 0.5),
        TransferResult("finetune all", 3, 15, 0, 0.9),
        TransferResult("from scratch", 3, 15, 1, 0.7),
        TransferResult("finetune all", 3, 15, 1, 0.8),
    ]
    table = summarize(results)
    assert [row["strategy"] for row in table] == ["finetune all", "from scratch"]
    assert table[1]["mean_accuracy"] == pytest.approx(0.6)
    assert table[1]["std_accuracy"] == pytest.approx(np.std([0.5, 0.7]))
    assert table[0]["runs"] == 2
    with pytest.raises(ValueError, match="results"):
        summarize([])


def test_pretraining_is_seeded_and_leaves_the_global_random_state_alone(splits):
    small = data.DataSplits(splits.X_train[:200], splits.y_train[:200], splits.X_val, splits.y_val,
                            splits.X_test, splits.y_test, splits.class_names)
    torch.manual_seed(99)
    expected = torch.rand(2)
    torch.manual_seed(99)
    first = transfer.pretrain(small, epochs=1, seed=3)
    assert torch.equal(torch.rand(2), expected)
    second = transfer.pretrain(small, epochs=1, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_pretraining_learns_the_source_classes(splits, pretrained):
    X, y = select_classes(splits.X_val, splits.y_val, (0, 1, 2, 3, 4))
    with torch.no_grad():
        predictions = pretrained.eval()(torch.from_numpy(X)).argmax(1).numpy()
    assert np.mean(predictions == y) > 0.95


def test_finetuning_beats_training_from_scratch_on_a_small_target_set(splits, pretrained):
    """Eight seeds of 3 examples per class (15 images), the same optimizer (Adam, lr 1e-3) and
    steps for both: the only difference is the starting point. Finetuning the pretrained net must
    win by more than 2 points on average (it wins by about 3.4 with torch 2.13 on CPU). A control:
    "finetuning" an *untrained* copy of the architecture wins by only about 1.3 (init noise)."""
    same_optimizer = partial(torch.optim.Adam, lr=1e-3)
    results = run_transfer_experiment(
        examples_per_class=(3,), seeds=range(8), splits=splits, pretrained=pretrained,
        strategies=("finetune all", "from scratch"), finetune_lr=1e-3, finetune_decay=1.0,
        finetune_optimizer=same_optimizer, scratch_optimizer=same_optimizer,
    )
    accuracy = {s: np.mean([r.accuracy for r in results if r.strategy == s]) for s in ("finetune all", "from scratch")}
    assert all(r.n_train == 15 for r in results) and len(results) == 16
    assert accuracy["finetune all"] > accuracy["from scratch"] + 0.02, accuracy


def test_frozen_features_leave_the_pretrained_body_untouched(splits, pretrained):
    before = _snapshot(pretrained)
    run_transfer_experiment(examples_per_class=(3,), seeds=(0,), splits=splits, pretrained=pretrained, steps=5)
    after = _snapshot(pretrained)
    assert all(torch.equal(before[name], after[name]) for name in before)  # the experiment works on copies


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"target_classes": (4, 5)}, "target_classes"),
        ({"source_classes": (1,)}, "source_classes"),
        ({"evaluate_on": "train"}, "evaluate_on"),
        ({"strategies": ("dreaming",)}, "strategies"),
        ({"reinitialize": "fc"}, "reinitialize"),
        ({"reinitialize": ("fc9",)}, "reinitialize"),
        ({"steps": 0}, "steps"),
        ({"seeds": ()}, "seeds"),
        ({"examples_per_class": (0,)}, "examples_per_class"),
        ({"target_transform": 3}, "target_transform"),
    ],
)
def test_experiment_rejects_bad_input(splits, pretrained, kwargs, name):
    with pytest.raises(ValueError, match=name):
        run_transfer_experiment(**{"splits": splits, "pretrained": pretrained, "steps": 1, **kwargs})


def test_the_full_experiment_table_has_every_cell(splits, pretrained):
    results = run_transfer_experiment(splits=splits, pretrained=pretrained, seeds=(0,))
    table = summarize(results)
    assert len(table) == 3 * 4
    full = [row for row in table if row["examples_per_class"] == max(r["examples_per_class"] for r in table)]
    assert all(row["mean_accuracy"] > 0.85 for row in full)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_finetuning_runs_on_cuda(splits, pretrained):
    model = unfreeze(_cnn())
    replace_head(model, 5)  # returns the new head; the model is changed in place
    groups = discriminative_param_groups(model, 1e-3, 0.5)
    X, y = select_classes(splits.X_train, splits.y_train, (5, 6, 7, 8, 9))
    history = train(model, (X, y), optimizer_factory=partial(torch.optim.Adam), params=groups, epochs=1, device="cuda")
    assert next(model.parameters()).device.type == "cuda" and np.isfinite(history.batch_loss).all()
