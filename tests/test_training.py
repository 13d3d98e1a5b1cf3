"""The torch training loop: it learns, it repeats with a seed, it validates, it runs on CUDA."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from cs231n_utils import data
from cs231n_utils.training import History, accuracy, as_tensors, evaluate, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10))


def test_training_reduces_loss_and_reaches_a_sane_accuracy(digits):
    model = _mlp()
    initial_loss, initial_acc = evaluate(model, (digits.X_val, digits.y_val))
    history = train(
        model, (digits.X_train, digits.y_train), (digits.X_val, digits.y_val),
        partial(torch.optim.SGD, lr=0.1, momentum=0.9), epochs=8, batch_size=32,
    )
    assert initial_acc < 0.3  # an untrained net guesses
    assert history.epochs == 8 and len(history.val_acc) == 8 and history.eval_epochs == list(range(1, 9))
    assert len(history.batch_loss) == 8 * -(-len(digits.y_train) // 32)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0] < 0.2 * initial_loss
    assert history.val_loss[-1] < initial_loss / 5
    assert history.val_acc[-1] > 0.93


def test_history_metrics_agree_with_an_independent_computation(digits):
    model = _mlp()
    history = train(model, (digits.X_train, digits.y_train), (digits.X_val, digits.y_val), epochs=2)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(digits.X_val))
    labels = torch.from_numpy(digits.y_val)
    assert history.val_loss[-1] == pytest.approx(nn.CrossEntropyLoss()(logits, labels).item(), rel=1e-5)
    expected_acc = float(np.mean(logits.argmax(1).numpy() == digits.y_val))
    assert history.val_acc[-1] == pytest.approx(expected_acc)
    assert accuracy(logits, labels) == pytest.approx(expected_acc)


def test_same_seed_repeats_exactly_and_a_different_seed_does_not(digits):
    def run(seed: int) -> tuple[History, torch.Tensor]:
        model = _mlp(dropout=0.3)  # dropout makes the model itself random
        history = train(model, (digits.X_train, digits.y_train), epochs=2, seed=seed)
        return history, nn.utils.parameters_to_vector(model.parameters())

    (h1, w1), (h2, w2), (h3, w3) = run(7), run(7), run(8)
    assert h1.batch_loss == h2.batch_loss and torch.equal(w1, w2)
    assert h1.batch_loss != h3.batch_loss and not torch.equal(w1, w3)


def test_train_leaves_the_global_random_state_alone(digits):
    model = _mlp(dropout=0.5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, (digits.X_train[:64], digits.y_train[:64]), epochs=1, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_evaluate_restores_training_mode(digits):
    model = _mlp().train()
    evaluate(model, (digits.X_val, digits.y_val))
    assert model.training
    model.eval()
    evaluate(model, (digits.X_val, digits.y_val))
    assert not model.training


def test_lr_schedule_is_stepped_once_per_epoch(digits):
    history = train(
        _mlp(), (digits.X_train[:100], digits.y_train[:100]), epochs=4,
        optimizer_factory=partial(torch.optim.SGD, lr=0.1),
        lr_schedule=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
    )
    assert history.lr == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_param_groups_and_frozen_parameters_are_respected(digits):
    model = _mlp()
    first = model[0].weight.detach().clone()
    model[0].requires_grad_(False)
    train(model, (digits.X_train[:100], digits.y_train[:100]), epochs=1)
    assert torch.equal(model[0].weight, first)
    groups = [{"params": model[3].parameters(), "lr": 0.0}]
    last = model[3].weight.detach().clone()
    train(model, (digits.X_train[:100], digits.y_train[:100]), epochs=1, params=groups,
          optimizer_factory=partial(torch.optim.SGD, lr=0.1))
    assert torch.equal(model[3].weight, last)  # lr 0 in the group overrides the default lr


def test_eval_every_records_every_kth_and_the_last_epoch(digits):
    history = train(_mlp(), (digits.X_train[:100], digits.y_train[:100]), (digits.X_val, digits.y_val), epochs=7, eval_every=3)
    assert history.eval_epochs == [3, 6, 7] and len(history.val_acc) == 3 and len(history.train_loss) == 3
    assert history.epochs == 7 and len(history.lr) == 7


def test_verbose_prints_one_line_per_epoch(digits, capsys):
    train(_mlp(), (digits.X_train[:100], digits.y_train[:100]), (digits.X_val, digits.y_val), epochs=3, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3") and "val loss" in lines[-1]


def test_as_tensors_converts_and_checks():
    X, y = as_tensors((np.ones((3, 2), dtype=np.float64), np.array([0.0, 1.0, 2.0])), "data")
    assert X.dtype == torch.float32 and y.dtype == torch.int64


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"optimizer_factory": "adam"}, "optimizer_factory"),
        ({"optimizer_factory": lambda params: None}, "optimizer_factory"),
        ({"lr_schedule": 3}, "lr_schedule"),
        ({"seed": 1.5}, "seed"),
        ({"eval_every": 0}, "eval_every"),
        ({"device": "not-a-device"}, "device"),
        ({"train_data": np.zeros((4, 64))}, "train_data"),
        ({"train_data": (np.zeros((4, 64)), np.zeros(3))}, "train_data"),
        ({"train_data": (np.full((4, 64), np.nan), np.zeros(4))}, "train_data"),
        ({"train_data": (np.zeros((4, 64)), np.array([0.5, 1, 2, 3]))}, "train_data"),
        ({"train_data": (np.zeros((4, 64)), np.array([0, 1, 2, -3]))}, "train_data"),
        ({"val_data": (np.zeros((4, 64)), np.zeros(5))}, "val_data"),
        ({"model": "mlp"}, "model"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    arguments = {"model": _mlp(), "train_data": (np.zeros((4, 64)), np.zeros(4, dtype=int)), "epochs": 1}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
        train(**arguments)


def test_labels_beyond_the_models_outputs_are_reported():
    with pytest.raises(ValueError, match="labels go up to 12"):
        train(_mlp(), (np.zeros((4, 64)), np.array([0, 1, 2, 12])), epochs=1)


def test_a_diverging_run_stops_with_a_clear_error(digits):
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(_mlp(), (digits.X_train, digits.y_train), optimizer_factory=partial(torch.optim.SGD, lr=1e12), epochs=3)


def test_fully_frozen_model_is_refused():
    with pytest.raises(ValueError, match="requires_grad"):
        train(_mlp().requires_grad_(False), (np.zeros((4, 64)), np.zeros(4, dtype=int)), epochs=1)


@pytest.mark.parametrize("logits, labels", [(torch.zeros(3), torch.zeros(3)), (torch.zeros(3, 2), torch.zeros(4)), (torch.zeros(0, 2), torch.zeros(0))])
def test_accuracy_rejects_bad_shapes(logits, labels):
    with pytest.raises(ValueError, match="logits|labels"):
        accuracy(logits, labels.long())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_follows_the_cpu_run(digits):
    """Same seed, same initial weights: the CUDA run repeats the CPU run up to float rounding."""
    runs = {}
    for device in ("cpu", "cuda"):
        model = _mlp()
        history = train(model, (digits.X_train, digits.y_train), (digits.X_val, digits.y_val), epochs=3, device=device)
        assert next(model.parameters()).device.type == device
        runs[device] = history
    np.testing.assert_allclose(runs["cuda"].batch_loss, runs["cpu"].batch_loss, rtol=1e-3)
    assert abs(runs["cuda"].val_acc[-1] - runs["cpu"].val_acc[-1]) <= 2 / len(digits.y_val)
    assert runs["cuda"].val_acc[-1] > runs["cuda"].val_acc[0]
