"""Every optimizer on real data: one small MLP trained on scikit-learn's digits with each of
``torch_optim``'s optimizers, over a grid of learning rates and several seeds, all at once.

The network is :math:`x \\mapsto W_2^T\\,\\mathrm{relu}(W_1^T x + b_1) + b_2` (64 inputs, ``hidden``
units, 10 classes), trained with minibatches on the mean cross-entropy. One :class:`StackedMLP`
holds ``copies`` independent networks and evaluates them with batched matrix products, so the
seeds of a learning rate train side by side. The loss that is differentiated is the *sum* of the
copies' losses: copy :math:`k`'s parameters receive exactly the gradient of its own loss, and
every optimizer here updates each parameter entry from its own gradient history only, so each
copy follows the same path as a separate run would (up to floating-point summation order).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import data as datasets
from .schedules import CosineAnnealing, torch_scheduler

__all__ = ["StackedMLP", "StudyResult", "train_grid", "tune_and_compare"]


class StackedMLP(nn.Module):
    """``copies`` independent one-hidden-layer ReLU networks, initialised like ``nn.Linear``
    (:math:`U(-1/\\sqrt{n_{in}}, 1/\\sqrt{n_{in}})` for weights and biases) from one seed each.

    ``forward`` takes ``(copies, batch, in_features)`` and returns ``(copies, batch, classes)``.
    """

    def __init__(self, seeds: Sequence[int], in_features: int, hidden: int, classes: int) -> None:
        super().__init__()
        if len(seeds) == 0:
            raise ValueError("seeds must not be empty")
        for value, name in ((in_features, "in_features"), (hidden, "hidden"), (classes, "classes")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        shapes = {"w1": (in_features, hidden), "b1": (hidden,), "w2": (hidden, classes), "b2": (classes,)}
        fan_in = {"w1": in_features, "b1": in_features, "w2": hidden, "b2": hidden}
        tensors: dict[str, list[torch.Tensor]] = {name: [] for name in shapes}
        for seed in seeds:
            generator = torch.Generator().manual_seed(int(seed))
            for name, shape in shapes.items():
                bound = 1.0 / np.sqrt(fan_in[name])
                tensors[name].append((torch.rand(shape, generator=generator) * 2 - 1) * bound)
        for name, parts in tensors.items():
            setattr(self, name, nn.Parameter(torch.stack(parts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[0] != self.w1.shape[0] or x.shape[2] != self.w1.shape[1]:
            raise ValueError(f"x must have shape ({self.w1.shape[0]}, batch, {self.w1.shape[1]}), got {tuple(x.shape)}")
        hidden = torch.relu(torch.baddbmm(self.b1[:, None, :], x, self.w1))
        return torch.baddbmm(self.b2[:, None, :], hidden, self.w2)


@dataclass(frozen=True)
class StudyResult:
    """One optimizer at its tuned learning rate: accuracies and loss curves of every seed.

    ``val_by_lr[i]`` is the mean validation accuracy over seeds at ``lrs[i]``; ``best_lr`` the
    learning rate with the highest one; ``test_accuracy`` (one per seed) and ``train_loss``
    (seeds x epochs, the mean minibatch loss of each epoch) belong to ``best_lr``.
    """

    name: str
    schedule: bool
    lrs: tuple[float, ...]
    val_by_lr: tuple[float, ...]
    best_lr: float
    test_accuracy: np.ndarray
    train_loss: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.test_accuracy.mean())

    @property
    def std(self) -> float:
        return float(self.test_accuracy.std(ddof=1))


def train_grid(
    make_optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    lrs: Sequence[float],
    seeds: Sequence[int],
    splits: datasets.DataSplits,
    epochs: int = 15,
    batch_size: int = 64,
    hidden: int = 64,
    cosine: bool = False,
) -> dict[str, np.ndarray]:
    """Train one :class:`StackedMLP` per learning rate (one copy per seed) with one optimizer.

    ``make_optimizer(groups)`` builds the optimizer from parameter groups that carry their own
    ``"lr"``. Seed ``s`` fixes copy ``s``'s initial weights and its minibatch order, which is
    the same for every learning rate. With ``cosine`` each group's rate follows
    :class:`~cs231n_utils.schedules.CosineAnnealing` to zero over the run (stepped per
    minibatch). Returns ``val`` and ``test`` accuracies (lrs x seeds) and ``train_loss``
    (lrs x seeds x epochs).
    """
    if len(lrs) == 0 or any(not lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be a non-empty sequence of positive numbers, got {lrs!r}")
    if len(seeds) == 0:
        raise ValueError("seeds must not be empty")
    X, y = torch.as_tensor(splits.X_train), torch.as_tensor(splits.y_train)
    if X.ndim != 2:
        raise ValueError(f"splits must hold flat features (N, D), got X_train of shape {tuple(X.shape)}")
    classes = int(y.max()) + 1
    models = [StackedMLP(seeds, X.shape[1], hidden, classes) for _ in lrs]
    groups = [{"params": list(model.parameters()), "lr": float(lr)} for model, lr in zip(models, lrs)]
    optimizer = make_optimizer(groups)
    steps_per_epoch = -(-len(y) // batch_size)
    scheduler = None
    if cosine:
        scheduler = torch_scheduler(optimizer, CosineAnnealing(1.0, total_steps=epochs * steps_per_epoch))
    orders = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    losses = torch.zeros(len(lrs), len(seeds), epochs)
    for epoch in range(epochs):
        permutation = torch.stack([torch.randperm(len(y), generator=g) for g in orders])
        for start in range(0, len(y), batch_size):
            batch = permutation[:, start : start + batch_size]
            inputs, labels = X[batch], y[batch]
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for index, model in enumerate(models):
                logits = model(inputs)
                per_copy = nn.functional.cross_entropy(
                    logits.reshape(-1, classes), labels.reshape(-1), reduction="none"
                ).view(len(seeds), -1).mean(dim=1)
                losses[index, :, epoch] += per_copy.detach() * batch.shape[1] / len(y)
                total = total + per_copy.sum()
            total.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    return {
        "val": _accuracies(models, splits.X_val, splits.y_val, len(seeds)),
        "test": _accuracies(models, splits.X_test, splits.y_test, len(seeds)),
        "train_loss": losses.numpy(),
    }


def tune_and_compare(
    optimizers: Mapping[str, Callable[[list[dict[str, Any]]], torch.optim.Optimizer]],
    lr_grids: Mapping[str, Sequence[float]],
    seeds: Sequence[int],
    splits: datasets.DataSplits,
    cosine: bool = False,
    **train_options: Any,
) -> dict[str, StudyResult]:
    """For each optimizer, :func:`train_grid` over its learning rates and pick the rate with the
    best mean *validation* accuracy; report that rate's *test* accuracies."""
    missing = set(optimizers) - set(lr_grids)
    if missing:
        raise ValueError(f"lr_grids has no learning rates for {sorted(missing)}")
    results = {}
    for name, make in optimizers.items():
        lrs = tuple(float(lr) for lr in lr_grids[name])
        grid = train_grid(make, lrs, seeds, splits, cosine=cosine, **train_options)
        val_by_lr = grid["val"].mean(axis=1)
        best = int(np.argmax(val_by_lr))
        results[name] = StudyResult(name, cosine, lrs, tuple(float(v) for v in val_by_lr), lrs[best],
                                    grid["test"][best], grid["train_loss"][best])
    return results


@torch.no_grad()
def _accuracies(models: list[StackedMLP], X: np.ndarray, y: np.ndarray, copies: int) -> np.ndarray:
    inputs = torch.as_tensor(X).expand(copies, -1, -1)
    labels = torch.as_tensor(y)
    return np.array([(model(inputs).argmax(dim=2) == labels).float().mean(dim=1).numpy() for model in models])
