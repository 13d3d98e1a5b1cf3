"""FullyConnectedNet (against torch autograd and numerical gradients) and Solver (training behaviour)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from cs231n_utils import optim
from cs231n_utils.data import load_digits
from cs231n_utils.gradcheck import eval_numerical_gradient, rel_error
from cs231n_utils.networks import FullyConnectedNet
from cs231n_utils.solver import Solver


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """These nets multiply tiny matrices: one BLAS thread is fastest, and many times faster on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def _small(digits, n: int, y_train: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return {
        "X_train": digits.X_train[:n],
        "y_train": digits.y_train[:n] if y_train is None else y_train,
        "X_val": digits.X_val,
        "y_val": digits.y_val,
    }


# ---------------------------------------------------------------------------------- network
def test_parameter_shapes_and_initial_loss_is_log_num_classes():
    model = FullyConnectedNet([7, 6], input_dim=5, num_classes=4, weight_scale=1e-4, seed=0)
    assert {k: v.shape for k, v in model.params.items()} == {
        "W1": (5, 7), "b1": (7,), "W2": (7, 6), "b2": (6,), "W3": (6, 4), "b3": (4,)
    }
    X, y = np.random.default_rng(0).standard_normal((10, 5)), np.arange(10) % 4
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(math.log(4), abs=1e-3)  # tiny weights: uniform class probabilities


@pytest.mark.parametrize("reg", [0.0, 0.7])
@pytest.mark.parametrize("keep", [1.0, 0.5])
def test_full_network_gradients_match_numerical_gradients(reg, keep):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    model = FullyConnectedNet([8, 7], input_dim=5, num_classes=3, dropout_keep_ratio=keep, reg=reg,
                              weight_scale=0.5, seed=2, dropout_seed=123)
    _, grads = model.loss(X, y)
    for name in model.params:
        original = model.params[name]

        def loss_at(value, name=name):
            model.params[name] = value
            return model.loss(X, y)[0]

        numerical = eval_numerical_gradient(loss_at, original, h=1e-6)
        model.params[name] = original
        assert rel_error(grads[name], numerical) < 1e-6, name


def test_loss_and_gradients_match_torch_autograd_without_dropout():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((9, 4)), rng.integers(0, 3, 9)
    model = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, reg=0.3, weight_scale=0.7, seed=4)
    loss, grads = model.loss(X, y)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = torch.relu(torch.from_numpy(X) @ p["W1"] + p["b1"])
    h = torch.relu(h @ p["W2"] + p["b2"])
    scores = h @ p["W3"] + p["b3"]
    expected = torch.nn.functional.cross_entropy(scores, torch.from_numpy(y)) + 0.15 * sum(
        (p[k] ** 2).sum() for k in ("W1", "W2", "W3")
    )
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    for k in model.params:
        np.testing.assert_allclose(grads[k], p[k].grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.loss(X), scores.detach().numpy(), rtol=1e-12)


def test_dropout_is_off_at_test_time_and_masks_change_between_training_passes():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)

    def two_training_losses(seed: int) -> tuple[float, float]:
        model = FullyConnectedNet([20], input_dim=6, num_classes=3, dropout_keep_ratio=0.5, seed=seed)
        np.testing.assert_array_equal(model.loss(X), model.loss(X))  # test mode: deterministic
        return model.loss(X, y)[0], model.loss(X, y)[0]

    first, second = two_training_losses(0)
    assert first != second  # a fresh mask every training pass
    assert two_training_losses(0) == (first, second)  # ... from a reproducible stream


def test_dropout_seed_fixes_the_masks_for_gradient_checks():
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
    model = FullyConnectedNet([20], input_dim=6, num_classes=3, dropout_keep_ratio=0.5, seed=0, dropout_seed=9)
    assert model.loss(X, y)[0] == model.loss(X, y)[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_dims": [0]}, r"hidden_dims\[0\]"),
        ({"hidden_dims": 10}, "hidden_dims must be a sequence"),
        ({"dropout_keep_ratio": 0.0}, "dropout_keep_ratio"),
        ({"reg": -1.0}, "reg must be >= 0"),
        ({"weight_scale": "xavier"}, "weight_scale"),
        ({"dtype": np.int64}, "dtype"),
        ({"dropout_seed": -3}, "dropout_seed"),
    ],
)
def test_network_validates_its_arguments(kwargs, message):
    args = {"hidden_dims": [4], "input_dim": 3, "num_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        FullyConnectedNet(**args)


def test_network_rejects_inputs_of_the_wrong_width():
    with pytest.raises(ValueError, match="X must have shape"):
        FullyConnectedNet([4], input_dim=3, num_classes=2).loss(np.ones((2, 5)))


# ----------------------------------------------------------------------------------- solver
def test_training_reduces_the_loss_and_fits_the_training_data(digits):
    model = FullyConnectedNet([64], input_dim=64, num_classes=10, weight_scale="he", seed=0)
    solver = Solver(model, _small(digits, 300), update_rule="adam", optim_config={"learning_rate": 3e-3},
                    num_epochs=15, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert np.mean(solver.loss_history[-6:]) < 0.2 * np.mean(solver.loss_history[:6])
    assert solver.train_acc_history[-1] > 0.95 and solver.val_acc_history[-1] > 0.85
    assert len(solver.loss_history) == 15 * 6 and len(solver.val_acc_history) == 16
    assert solver.epoch_history == list(range(16))


@pytest.mark.parametrize("rule", sorted(optim.UPDATE_RULES))
def test_every_update_rule_by_name_reduces_the_loss(digits, rule):
    lr = {"sgd": 0.1, "sgd_momentum": 0.05, "nesterov_momentum": 0.05, "adagrad": 0.05}.get(rule, 3e-3)
    model = FullyConnectedNet([32], input_dim=64, num_classes=10, weight_scale="he", seed=1)
    solver = Solver(model, _small(digits, 200), update_rule=rule, optim_config={"learning_rate": lr},
                    num_epochs=8, batch_size=50, verbose=False, seed=1)
    solver.train()
    assert np.mean(solver.loss_history[-4:]) < 0.5 * np.mean(solver.loss_history[:4])


def test_a_callable_rule_gets_its_own_config_per_parameter(digits):
    seen = []

    def counting_sgd(w, dw, config=None):
        seen.append(id(config))
        return optim.sgd(w, dw, config)

    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    solver = Solver(model, _small(digits, 100), update_rule=counting_sgd, optim_config={"learning_rate": 0.1},
                    num_epochs=2, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert len(seen) == 2 * 2 * len(model.params)
    assert len(set(seen)) == len(model.params)  # one config dict per parameter, reused every step


def test_per_parameter_configs_override_the_shared_one(digits):
    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    W1 = model.params["W1"].copy()
    W2 = model.params["W2"].copy()
    solver = Solver(model, _small(digits, 100), update_rule="sgd", optim_config={"learning_rate": 0.1},
                    param_optim_config={"W1": {"learning_rate": 1e-12}}, num_epochs=2, batch_size=50,
                    verbose=False, restore_best=False, seed=0)
    solver.train()
    assert np.abs(model.params["W1"] - W1).max() < 1e-10
    assert np.abs(model.params["W2"] - W2).max() > 1e-3
    with pytest.raises(ValueError, match="unknown parameter"):
        Solver(model, _small(digits, 100), param_optim_config={"W9": {}}, verbose=False)


def test_lr_decay_multiplies_the_learning_rate_once_per_epoch(digits):
    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    solver = Solver(model, _small(digits, 100), update_rule="sgd_momentum", optim_config={"learning_rate": 0.05},
                    lr_decay=0.5, num_epochs=3, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert solver.lr_history == pytest.approx([0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125])
    assert all(c["learning_rate"] == pytest.approx(0.05 * 0.5**3) for c in solver.optim_configs.values())


def test_an_lr_schedule_callable_sets_the_rate_of_every_step(digits):
    def schedule(step: int) -> float:
        return 0.1 / (1 + step)

    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    solver = Solver(model, _small(digits, 100), update_rule="sgd", lr_schedule=schedule,
                    num_epochs=3, batch_size=25, verbose=False, seed=0)
    solver.train()
    assert solver.lr_history == pytest.approx([0.1 / (1 + t) for t in range(12)])
    bad = Solver(model, _small(digits, 100), lr_schedule=lambda step: -1.0, verbose=False)
    with pytest.raises(ValueError, match=r"lr_schedule\(0\)"):
        bad.step()


def test_training_is_reproducible_with_a_seed(digits):
    def run(seed):
        model = FullyConnectedNet([16], input_dim=64, num_classes=10, dropout_keep_ratio=0.7, seed=seed)
        solver = Solver(model, _small(digits, 100), update_rule="adam", num_epochs=2, batch_size=20,
                        verbose=False, seed=seed)
        return solver.train().loss_history

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_best_parameters_are_restored(digits):
    model = FullyConnectedNet([16], input_dim=64, num_classes=10, seed=0)
    solver = Solver(model, _small(digits, 100), update_rule="sgd", optim_config={"learning_rate": 0.5},
                    num_epochs=6, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert solver.best_val_acc == max(solver.val_acc_history)
    assert solver.check_accuracy(digits.X_val, digits.y_val) == solver.best_val_acc
    for name, value in solver.best_params.items():
        np.testing.assert_array_equal(model.params[name], value)


def test_verbose_controls_progress_output(digits, capsys):
    for verbose in (True, False):
        model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
        Solver(model, _small(digits, 100), num_epochs=1, batch_size=50, print_every=1, verbose=verbose, seed=0).train()
        out = capsys.readouterr().out
        if verbose:
            assert "(Iteration 1 / 2) loss:" in out and "(Epoch 1 / 1) train acc:" in out
        else:
            assert out == ""


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"update_rule": "sgdd"}, "update_rule 'sgdd' is not one of"),
        ({"update_rule": 3}, "update_rule must be"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_epochs": 1.5}, "num_epochs"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"lr_decay": 0.9}, "lr_decay needs an explicit 'learning_rate'"),
        ({"lr_decay": 0.9, "lr_schedule": lambda t: 0.1, "optim_config": {"learning_rate": 0.1}}, "not both"),
        ({"optim_config": [0.1]}, "optim_config must be a dict"),
    ],
)
def test_solver_validates_its_arguments(digits, kwargs, message):
    model = FullyConnectedNet([4], input_dim=64, num_classes=10)
    with pytest.raises(ValueError, match=message):
        Solver(model, _small(digits, 50), verbose=False, **kwargs)


def test_solver_validates_data_and_model(digits):
    model = FullyConnectedNet([4], input_dim=64, num_classes=10)
    data = _small(digits, 50)
    with pytest.raises(ValueError, match="data lacks 'X_val'"):
        Solver(model, {k: v for k, v in data.items() if k != "X_val"}, verbose=False)
    with pytest.raises(ValueError, match=r"data\['y_train'\]"):
        Solver(model, {**data, "y_train": data["y_train"][:10]}, verbose=False)
    with pytest.raises(ValueError, match="model must have"):
        Solver(object(), data, verbose=False)
    assert Solver(model, digits, verbose=False).X_train.shape == digits.X_train.shape  # DataSplits works too


# ------------------------------------------------------------------- regularization narrows the gap
def _noisy_labels(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Replace a ``fraction`` of labels by a different class: memorising them is pure overfitting."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    flip = rng.random(len(y)) < fraction
    noisy[flip] = (noisy[flip] + rng.integers(1, 10, flip.sum())) % 10
    return noisy


def test_dropout_and_l2_narrow_the_train_val_gap_of_an_overfit_net(digits):
    # 200 training digits, 30% of their labels wrong, a net far bigger than the data needs.
    data = _small(digits, 200, _noisy_labels(digits.y_train[:200], 0.3, seed=0))

    def gap_and_val(keep: float, reg: float) -> tuple[float, float]:
        model = FullyConnectedNet([128, 128], input_dim=64, num_classes=10, dropout_keep_ratio=keep, reg=reg,
                                  weight_scale="he", seed=0)
        solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 2e-3}, num_epochs=60,
                        batch_size=50, num_train_samples=None, verbose=False, restore_best=False, seed=0)
        solver.train()
        train, val = np.mean(solver.train_acc_history[-5:]), np.mean(solver.val_acc_history[-5:])
        return train - val, val

    plain_gap, plain_val = gap_and_val(1.0, 0.0)
    dropout_gap, dropout_val = gap_and_val(0.5, 0.0)
    l2_gap, l2_val = gap_and_val(1.0, 0.05)
    assert plain_gap > 0.2  # the run really does overfit
    assert dropout_gap < plain_gap - 0.1 and dropout_val > plain_val
    assert l2_gap < plain_gap - 0.1 and l2_val > plain_val


def test_augment_is_applied_to_training_minibatches_only(digits):
    seen = []

    def augment(X, rng):
        seen.append(X.copy())
        return -X

    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    solver = Solver(model, _small(digits, 100), augment=augment, num_epochs=1, batch_size=50, verbose=False, seed=0)
    solver.train()
    assert len(seen) == 2 and all(x.shape == (50, 64) for x in seen)
    train_rows = {tuple(row) for row in digits.X_train[:100]}
    assert all(tuple(row) in train_rows for x in seen for row in x)
    with pytest.raises(ValueError, match="augment must be a callable"):
        Solver(model, _small(digits, 100), augment="flip", verbose=False)
    with pytest.raises(ValueError, match="augment must return"):
        Solver(model, _small(digits, 100), augment=lambda X, rng: X[:1], verbose=False).step()


def test_the_model_trains_on_the_augmented_batch(digits):
    model = FullyConnectedNet([8], input_dim=64, num_classes=10, seed=0)
    W1 = model.params["W1"].copy()
    Solver(model, _small(digits, 100), augment=lambda X, rng: np.zeros_like(X), optim_config={"learning_rate": 0.1},
           num_epochs=2, batch_size=50, verbose=False, restore_best=False, seed=0).train()
    np.testing.assert_array_equal(model.params["W1"], W1)  # zero inputs give W1 a zero gradient
    assert not np.array_equal(model.params["b2"], np.zeros(10))  # the output bias still learns the class prior
