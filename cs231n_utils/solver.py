"""A CS231n-style ``Solver``: minibatch training of a NumPy model with any update rule.

The model needs ``model.params`` (name -> array) and ``model.loss(X, y=None)`` returning class
scores when ``y`` is ``None`` and ``(loss, grads)`` otherwise, like
:class:`cs231n_utils.networks.FullyConnectedNet`. L2 and dropout are the model's business
(``reg``, ``dropout_keep_ratio``); the solver runs the loop::

    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    num_epochs=10, batch_size=100, seed=0)
    solver.train()
    solver.loss_history, solver.train_acc_history, solver.val_acc_history
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

import numpy as np

from . import optim
from .layers import softmax_loss
from .validation import as_float_array, check_finite, check_positive

__all__ = ["Solver"]

LearningRateSchedule = Callable[[int], float]
Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class Solver:
    """Train ``model`` on ``data`` with minibatch gradient steps.

    ``data`` is a mapping or an object (e.g. :class:`cs231n_utils.data.DataSplits`) with
    ``X_train, y_train, X_val, y_val``. Keyword arguments:

    - ``update_rule``: a name from :data:`cs231n_utils.optim.UPDATE_RULES` (``"sgd"``,
      ``"adam"``, ...) or any callable ``next_w, config = rule(w, dw, config)``.
    - ``optim_config``: hyperparameters given to the rule for every parameter; each parameter
      gets its own deep copy, so optimizer state is per parameter. ``param_optim_config`` maps a
      parameter name to overrides for that parameter only (e.g. a smaller learning rate).
    - ``lr_decay``: CS231n's schedule, every ``learning_rate`` is multiplied by it after each
      epoch; or ``lr_schedule``: any callable ``step -> lr`` (``step`` counts iterations from 0),
      whose value replaces every parameter's ``learning_rate`` before each step. Not both.
    - ``augment``: optional data augmentation ``X_batch = augment(X_batch, rng)`` applied to every
      training minibatch (not to the examples scored for the history), drawing from the solver's
      generator, e.g. ``lambda X, rng: random_crop(X, 1, rng)`` from
      :mod:`cs231n_utils.regularization`.
    - ``batch_size``, ``num_epochs``; an epoch is ``max(N_train // batch_size, 1)`` iterations,
      each on ``batch_size`` examples drawn without replacement from a ``seed``-ed generator.
    - ``num_train_samples`` / ``num_val_samples``: how many examples (random subset) to score for
      the accuracy history (``None``: all).
    - ``print_every``, ``verbose``: progress printing; ``restore_best``: at the end of
      :meth:`train` put the parameters with the best validation accuracy back into the model.

    History, recorded at the start and after every epoch (``epoch_history`` says which epoch):
    ``train_acc_history``, ``val_acc_history`` and ``train_data_loss_history``,
    ``val_data_loss_history`` (cross-entropy in test mode, without the penalty); per iteration:
    ``loss_history`` (the minibatch training loss, with penalty and dropout) and ``lr_history``
    (the learning rate of the first parameter, if its config has one).
    """

    def __init__(
        self,
        model: Any,
        data: Any,
        *,
        update_rule: str | optim.UpdateRule = "sgd",
        optim_config: Mapping[str, Any] | None = None,
        param_optim_config: Mapping[str, Mapping[str, Any]] | None = None,
        lr_decay: float = 1.0,
        lr_schedule: LearningRateSchedule | None = None,
        augment: Augmentation | None = None,
        batch_size: int = 100,
        num_epochs: int = 10,
        num_train_samples: int | None = 1000,
        num_val_samples: int | None = None,
        print_every: int = 10,
        verbose: bool = True,
        restore_best: bool = True,
        seed: int | None = None,
    ) -> None:
        if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
            raise ValueError("model must have a dict `params` and a method `loss(X, y=None)`")
        self.model = model
        self.X_train, self.y_train = _split(data, "train")
        self.X_val, self.y_val = _split(data, "val")
        self.update_rule = _resolve_rule(update_rule)
        self.lr_decay = check_positive(lr_decay, "lr_decay")
        if self.lr_decay > 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {lr_decay!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise ValueError(f"lr_schedule must be a callable step -> learning rate, got {lr_schedule!r}")
        if lr_schedule is not None and self.lr_decay != 1:
            raise ValueError("give either lr_schedule or lr_decay, not both")
        self.lr_schedule = lr_schedule
        if augment is not None and not callable(augment):
            raise ValueError(f"augment must be a callable (X_batch, rng) -> X_batch, got {augment!r}")
        self.augment = augment
        self.batch_size = _count(batch_size, "batch_size")
        self.num_epochs = _count(num_epochs, "num_epochs")
        self.num_train_samples = None if num_train_samples is None else _count(num_train_samples, "num_train_samples")
        self.num_val_samples = None if num_val_samples is None else _count(num_val_samples, "num_val_samples")
        self.print_every = _count(print_every, "print_every")
        self.verbose = bool(verbose)
        self.restore_best = bool(restore_best)
        self._rng = np.random.default_rng(seed)
        self.optim_configs = self._make_configs(optim_config, param_optim_config)
        if self.lr_decay != 1 and any("learning_rate" not in c for c in self.optim_configs.values()):
            raise ValueError("lr_decay needs an explicit 'learning_rate' in optim_config for every parameter")
        self._reset()

    def _make_configs(self, optim_config: Any, param_optim_config: Any) -> dict[str, dict[str, Any]]:
        base = {} if optim_config is None else optim_config
        overrides = {} if param_optim_config is None else param_optim_config
        if not isinstance(base, Mapping):
            raise ValueError(f"optim_config must be a dict or None, got {type(base).__name__}")
        if not isinstance(overrides, Mapping) or not all(isinstance(v, Mapping) for v in overrides.values()):
            raise ValueError("param_optim_config must map parameter names to dicts")
        unknown = set(overrides) - set(self.model.params)
        if unknown:
            raise ValueError(f"param_optim_config names unknown parameter(s) {sorted(unknown)}")
        return {name: copy.deepcopy({**base, **overrides.get(name, {})}) for name in self.model.params}

    def _reset(self) -> None:
        self.epoch = 0
        self.iteration = 0
        self.best_val_acc = -1.0
        self.best_params: dict[str, np.ndarray] = {}
        self.loss_history: list[float] = []
        self.lr_history: list[float] = []
        self.epoch_history: list[int] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.train_data_loss_history: list[float] = []
        self.val_data_loss_history: list[float] = []

    @property
    def iterations_per_epoch(self) -> int:
        return max(len(self.X_train) // self.batch_size, 1)

    def step(self) -> float:
        """One update of every parameter on a random minibatch; returns the minibatch loss."""
        batch = self._rng.choice(len(self.X_train), size=min(self.batch_size, len(self.X_train)), replace=False)
        X_batch = self.X_train[batch]
        if self.augment is not None:
            X_batch = self.augment(X_batch, self._rng)
            if not isinstance(X_batch, np.ndarray) or len(X_batch) != len(batch):
                raise ValueError("augment must return a NumPy array with one row per example of the minibatch")
        loss, grads = self.model.loss(X_batch, self.y_train[batch])
        if not np.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at iteration {self.iteration}; lower the learning rate")
        if self.lr_schedule is not None:
            lr = check_positive(self.lr_schedule(self.iteration), f"lr_schedule({self.iteration})")
            for config in self.optim_configs.values():
                config["learning_rate"] = lr
        for name, w in self.model.params.items():
            next_w, self.optim_configs[name] = self.update_rule(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w
        self.lr_history.append(float(next(iter(self.optim_configs.values())).get("learning_rate", np.nan)))
        self.loss_history.append(float(loss))
        self.iteration += 1
        return float(loss)

    def evaluate(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None, batch_size: int = 500) -> tuple[float, float]:
        """Accuracy and mean cross-entropy of the model in test mode on (a random subset of) ``X, y``."""
        if num_samples is not None and len(X) > num_samples:
            subset = self._rng.choice(len(X), size=num_samples, replace=False)
            X, y = X[subset], y[subset]
        scores = np.concatenate([self.model.loss(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
        loss, _ = softmax_loss(scores, y)
        return float(np.mean(np.argmax(scores, axis=1) == y)), loss

    def check_accuracy(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None, batch_size: int = 500) -> float:
        """Fraction of correctly classified examples (CS231n name)."""
        return self.evaluate(X, y, num_samples, batch_size)[0]

    def _record(self) -> None:
        train_acc, train_loss = self.evaluate(self.X_train, self.y_train, self.num_train_samples)
        val_acc, val_loss = self.evaluate(self.X_val, self.y_val, self.num_val_samples)
        self.epoch_history.append(self.epoch)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self.train_data_loss_history.append(train_loss)
        self.val_data_loss_history.append(val_loss)
        if val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = {name: w.copy() for name, w in self.model.params.items()}
        if self.verbose:
            print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:.3f}; val acc: {val_acc:.3f}")

    def train(self) -> "Solver":
        """Run ``num_epochs`` epochs, recording the history; returns ``self``."""
        total = self.num_epochs * self.iterations_per_epoch
        self._record()
        for t in range(total):
            loss = self.step()
            if self.verbose and t % self.print_every == 0:
                print(f"(Iteration {t + 1} / {total}) loss: {loss:.6f}")
            if (t + 1) % self.iterations_per_epoch == 0:
                self.epoch += 1
                for config in self.optim_configs.values():
                    config["learning_rate"] *= self.lr_decay
                self._record()
        if self.restore_best:
            self.model.params.update({name: w.copy() for name, w in self.best_params.items()})
        return self


def _resolve_rule(update_rule: Any) -> optim.UpdateRule:
    if isinstance(update_rule, str):
        if update_rule not in optim.UPDATE_RULES:
            raise ValueError(f"update_rule {update_rule!r} is not one of {sorted(optim.UPDATE_RULES)}")
        return optim.UPDATE_RULES[update_rule]
    if not callable(update_rule):
        raise ValueError(f"update_rule must be a rule name or a callable, got {update_rule!r}")
    return update_rule


def _split(data: Any, part: str) -> tuple[np.ndarray, np.ndarray]:
    def get(key: str) -> Any:
        if isinstance(data, Mapping):
            if key not in data:
                raise ValueError(f"data lacks {key!r}")
            return data[key]
        if not hasattr(data, key):
            raise ValueError(f"data lacks {key!r}")
        return getattr(data, key)

    X = as_float_array(get(f"X_{part}"), f"data['X_{part}']")
    check_finite(X, f"data['X_{part}']")
    y = np.asarray(get(f"y_{part}"))
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(X),) or len(X) == 0:
        raise ValueError(f"data['y_{part}'] must be non-empty integer labels of shape ({len(X)},), got {y.dtype} {y.shape}")
    return X, y


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
