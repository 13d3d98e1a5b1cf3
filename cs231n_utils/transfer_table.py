"""The transfer-learning experiment behind the lecture's 2x2 table: how much target data, and how
similar the target is to the source, decide whether to train the head only, a few top layers,
everything, or to start from scratch.

Design. The training split of scikit-learn's digits is cut in two stratified halves. A
:class:`~cs231n_utils.transfer.DigitsCNN` is pretrained on the ten digits of the *source* half.
Each *target* dataset is the other half, seen through a transform: unchanged (a similar dataset:
new images of the same kind) or with its 64 pixels shuffled by one fixed permutation (a very
different dataset: the same information, but no stroke, edge or neighbourhood the pretrained
filters know). From each target, ``k`` images per class are drawn (per seed), and four
strategies, named for what they train, learn the ten classes from them:

- ``head only (linear probe)``: pretrained body frozen, a new linear ``head`` trained;
- ``top layers (fc + head)``: frozen convolutional blocks, the pretrained ``fc`` finetuned and a
  new head trained;
- ``finetune all``: every layer trained from the pretrained weights (new head), smaller steps;
- ``from scratch``: the same network from a random initialisation.

Every run takes the same number of Adam steps on random minibatches; accuracy is measured on the
test split seen through the same transform. The seeds of one cell train side by side in a
:class:`StackedDigitsCNN` (grouped convolutions and batched matrix products), exactly as
separate runs would, so ten seeds cost little more than one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

from . import data as datasets
from . import torch_optim
from .training import train
from .transfer import DigitsCNN, freeze, replace_head, subsample_per_class

__all__ = [
    "STRATEGIES",
    "StackedDigitsCNN",
    "TransferRun",
    "shuffle_pixels",
    "split_source_target",
    "pretrain_source",
    "strategy_inputs",
    "train_strategy",
    "test_accuracies",
    "run_transfer_table",
    "gain_over_scratch",
]

#: Strategy name -> (the DigitsCNN parts it trains, Adam's learning rate). Fixed in advance.
#: The parts before the first trained one are frozen: their output is computed once.
STRATEGIES: dict[str, tuple[tuple[str, ...], float]] = {
    "head only (linear probe)": (("head",), 1e-2),
    "top layers (fc + head)": (("fc", "head"), 3e-3),
    "finetune all": (("block1", "block2", "block3", "fc", "head"), 1e-3),
    "from scratch": (("block1", "block2", "block3", "fc", "head"), 3e-3),
}
_CONVS = ("block1", "block2", "block3")
_PARTS = (*_CONVS, "fc", "head")


class StackedDigitsCNN(nn.Module):
    """Several :class:`DigitsCNN` copies (same ``width`` and ``hidden``) evaluated at once.

    Copy :math:`s`'s convolutions become group :math:`s` of a grouped convolution and its linear
    layers a batched matrix product, so copy :math:`s` computes exactly ``models[s](x[s])``.
    ``trainable`` names the parts (``block1`` ... ``head``) whose parameters get gradients.
    ``forward(x)`` maps ``(copies, batch, 1, 8, 8)`` to ``(copies, batch, classes)``;
    ``forward(h, start="fc")`` or ``start="head"`` starts from the input of that part instead,
    ``(copies, batch, features)``: the frozen parts below need not be recomputed.
    """

    def __init__(self, models: Sequence[DigitsCNN], trainable: Sequence[str]) -> None:
        super().__init__()
        if len(models) == 0 or not all(isinstance(m, DigitsCNN) for m in models):
            raise ValueError("models must be a non-empty sequence of DigitsCNN")
        unknown = set(trainable) - set(_PARTS)
        if unknown:
            raise ValueError(f"trainable names unknown parts {sorted(unknown)}")
        self.copies = len(models)
        for part in _CONVS:
            conv = [m.get_submodule(part)[0] for m in models]
            self._stack(part, torch.cat([c.weight for c in conv]), torch.cat([c.bias for c in conv]), part in trainable)
        for part, layer in (("fc", lambda m: m.fc[1]), ("head", lambda m: m.head)):
            linear = [layer(m) for m in models]
            self._stack(part, torch.stack([l.weight for l in linear]), torch.stack([l.bias for l in linear]), part in trainable)

    def _stack(self, part: str, weight: torch.Tensor, bias: torch.Tensor, trainable: bool) -> None:
        setattr(self, f"{part}_weight", nn.Parameter(weight.detach().clone(), requires_grad=trainable))
        setattr(self, f"{part}_bias", nn.Parameter(bias.detach().clone(), requires_grad=trainable))

    def forward(self, x: torch.Tensor, start: str = "block1") -> torch.Tensor:
        if start not in ("block1", "fc", "head"):
            raise ValueError(f"start must be 'block1', 'fc' or 'head', got {start!r}")
        if x.shape[0] != self.copies:
            raise ValueError(f"x must hold {self.copies} copies along its first axis, got {tuple(x.shape)}")
        if start == "head":
            return self._linear(x, "head")
        if start == "fc":
            return self._linear(F.relu(self._linear(x, "fc")), "head")
        if x.ndim != 5 or tuple(x.shape[2:]) != (1, 8, 8):
            raise ValueError(f"x must have shape ({self.copies}, batch, 1, 8, 8), got {tuple(x.shape)}")
        batch = x.shape[1]
        h = x.transpose(0, 1).reshape(batch, self.copies, 8, 8)  # copy s is channel group s
        h = F.relu(F.conv2d(h, self.block1_weight, self.block1_bias, padding=1, groups=self.copies))
        h = F.relu(F.conv2d(h, self.block2_weight, self.block2_bias, padding=1, groups=self.copies))
        h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, self.block3_weight, self.block3_bias, padding=1, groups=self.copies))
        h = F.max_pool2d(h, 2)
        h = h.reshape(batch, self.copies, -1).transpose(0, 1)  # nn.Flatten's (C, H, W) order per copy
        return self.forward(h, start="fc")

    def _linear(self, h: torch.Tensor, part: str) -> torch.Tensor:
        weight, bias = getattr(self, f"{part}_weight"), getattr(self, f"{part}_bias")
        return torch.baddbmm(bias[:, None], h, weight.transpose(1, 2))


@dataclass(frozen=True)
class TransferRun:
    """One seed of one cell: ``strategy`` trained on ``examples_per_class`` images per class of
    ``target``, and its test accuracy."""

    target: str
    strategy: str
    examples_per_class: int
    seed: int
    accuracy: float


def shuffle_pixels(seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A transform that applies one fixed random permutation (from ``seed``) to the 64 pixels."""
    permutation = np.random.default_rng(seed).permutation(64)

    def shuffled(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        return images.reshape(len(images), 64)[:, permutation].reshape(images.shape)

    return shuffled


def split_source_target(splits: datasets.DataSplits, seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The training split cut in two stratified halves: ``(source, target_pool)``, each ``(X, y)``."""
    X_source, X_target, y_source, y_target = train_test_split(
        splits.X_train, splits.y_train, test_size=0.5, random_state=seed, stratify=splits.y_train)
    return (X_source, y_source), (X_target, y_target)


def pretrain_source(source: tuple[np.ndarray, np.ndarray], epochs: int = 15, seed: int = 0,
                    width: int = 8) -> DigitsCNN:
    """A :class:`DigitsCNN` of the given ``width`` trained on ``source`` with Adam (3e-3),
    minibatches of 32."""
    X, y = source
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN(num_classes=int(np.max(y)) + 1, width=width)
    train(model, (X, y), optimizer_factory=lambda p: torch_optim.Adam(p, lr=3e-3), epochs=epochs,
          batch_size=32, seed=seed)
    return model


def _start_models(strategy: str, pretrained: DigitsCNN, classes: int, seeds: Sequence[int]) -> list[DigitsCNN]:
    models = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))  # the new head's (or, from scratch, every layer's) weights
            if strategy == "from scratch":
                model = DigitsCNN(num_classes=classes, width=pretrained.block1[0].out_channels,
                                  hidden=pretrained.head.in_features)
            else:
                model = copy.deepcopy(pretrained)
                freeze(model)
                replace_head(model, classes)
        models.append(model)
    return models


def _first_trained(strategy: str) -> str:
    parts = STRATEGIES[strategy][0]
    return "block1" if "block1" in parts else parts[0]


@torch.no_grad()
def strategy_inputs(strategy: str, pretrained: DigitsCNN, images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """What ``strategy``'s trained parts see of ``images`` ``(copies, n, 1, 8, 8)``: the images
    themselves, or the output of the frozen pretrained parts below its first trained part,
    ``(copies, n, features)``, computed once."""
    images = torch.as_tensor(images, dtype=torch.float32)
    start = _first_trained(strategy)
    if start == "block1":
        return images
    copies, n = images.shape[:2]
    conv = pretrained.block3(pretrained.block2(pretrained.block1(images.reshape(-1, 1, 8, 8))))
    features = conv.flatten(1) if start == "fc" else pretrained.fc(conv)
    return features.reshape(copies, n, -1)


def train_strategy(
    strategy: str,
    pretrained: DigitsCNN,
    X: np.ndarray,
    y: np.ndarray,
    seeds: Sequence[int],
    steps: int = 100,
    batch_size: int = 32,
) -> StackedDigitsCNN:
    """Train ``strategy`` (a key of :data:`STRATEGIES`) once per seed, seed ``s`` on ``X[s], y[s]``
    (shapes ``(seeds, n, 1, 8, 8)`` and ``(seeds, n)``), for ``steps`` Adam steps on minibatches
    of ``batch_size`` drawn at random per seed (the whole set when it is smaller). Seed ``s``
    also draws the new head's initial weights (from scratch: all weights)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    X, y = np.asarray(X), torch.as_tensor(np.asarray(y), dtype=torch.int64)
    if X.ndim != 5 or tuple(y.shape) != X.shape[:2] or X.shape[0] != len(seeds):
        raise ValueError(f"X must be (seeds, n, 1, 8, 8) and y (seeds, n) with {len(seeds)} seeds, "
                         f"got {X.shape} and {tuple(y.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    parts, lr = STRATEGIES[strategy]
    start = _first_trained(strategy)
    inputs_all = strategy_inputs(strategy, pretrained, X)
    classes = int(y.max()) + 1
    model = StackedDigitsCNN(_start_models(strategy, pretrained, classes, seeds), trainable=parts)
    optimizer = torch_optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    copies, n = y.shape
    generator = torch.Generator().manual_seed(int(seeds[0]))
    for _ in range(steps):
        if n > batch_size:
            batch = torch.argsort(torch.rand(copies, n, generator=generator), dim=1)[:, :batch_size]
            inputs, labels = inputs_all[torch.arange(copies)[:, None], batch], torch.gather(y, 1, batch)
        else:
            inputs, labels = inputs_all, y
        logits = model(inputs, start=start)
        loss = F.cross_entropy(logits.reshape(-1, classes), labels.reshape(-1), reduction="none")
        optimizer.zero_grad(set_to_none=True)
        loss.view(copies, -1).mean(dim=1).sum().backward()  # copy s gets its own loss's gradient
        optimizer.step()
    return model


@torch.no_grad()
def test_accuracies(model: StackedDigitsCNN, strategy: str, pretrained: DigitsCNN, X: np.ndarray,
                    y: np.ndarray) -> np.ndarray:
    """Accuracy of every copy of a trained ``strategy`` on the images ``X`` ``(N, 1, 8, 8)``."""
    images = torch.as_tensor(np.asarray(X), dtype=torch.float32).expand(model.copies, *np.shape(X))
    logits = model(strategy_inputs(strategy, pretrained, images), start=_first_trained(strategy))
    return (logits.argmax(dim=2) == torch.as_tensor(y)).float().mean(dim=1).numpy()


def run_transfer_table(
    splits: datasets.DataSplits,
    pretrained: DigitsCNN,
    target_pool: tuple[np.ndarray, np.ndarray],
    targets: Mapping[str, Callable[[np.ndarray], np.ndarray] | None],
    examples_per_class: Sequence[int | None] = (1, 3, 10, None),
    seeds: Sequence[int] = tuple(range(10)),
    strategies: Sequence[str] = tuple(STRATEGIES),
    steps: int = 100,
) -> list[TransferRun]:
    """Every strategy on every target and training-set size (``None``: the whole pool), one
    :class:`TransferRun` per seed; accuracy on ``splits``' test split through the target's
    transform (``None``: unchanged)."""
    if not targets or not examples_per_class or not seeds:
        raise ValueError("targets, examples_per_class and seeds must not be empty")
    X_pool, y_pool = target_pool
    full = int(np.bincount(y_pool).min())
    runs = []
    for target, transform in targets.items():
        view = transform if transform is not None else (lambda images: images)
        X_test = view(splits.X_test)
        for size in examples_per_class:
            per_class = full if size is None else size
            picks = [subsample_per_class(X_pool, y_pool, per_class, seed) for seed in seeds]
            X = np.stack([view(images) for images, _ in picks])
            y = np.stack([labels for _, labels in picks])
            for strategy in strategies:
                model = train_strategy(strategy, pretrained, X, y, seeds, steps=steps)
                accuracies = test_accuracies(model, strategy, pretrained, X_test, splits.y_test)
                runs += [TransferRun(target, strategy, per_class, int(seed), float(accuracy))
                         for seed, accuracy in zip(seeds, accuracies)]
    return runs


def gain_over_scratch(runs: Sequence[TransferRun], strategy: str, target: str, examples_per_class: int,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Mean accuracy gain of ``strategy`` over ``from scratch``, paired by seed (same images), and
    the half-width of its ``confidence`` interval: :math:`t_{n-1} \\cdot s_d / \\sqrt n` for the
    ``n`` seed-wise differences with standard deviation :math:`s_d`."""
    cell = {(r.strategy, r.seed): r.accuracy for r in runs
            if r.target == target and r.examples_per_class == examples_per_class}
    seeds = sorted(seed for name, seed in cell if name == strategy)
    if len(seeds) < 2 or any(("from scratch", seed) not in cell for seed in seeds):
        raise ValueError(f"runs need >= 2 seeds of {strategy!r} and 'from scratch' for {target!r}, "
                         f"{examples_per_class} per class")
    differences = np.array([cell[(strategy, seed)] - cell[("from scratch", seed)] for seed in seeds])
    half_width = stats.t.ppf(0.5 + confidence / 2, len(seeds) - 1) * differences.std(ddof=1) / np.sqrt(len(seeds))
    return float(differences.mean()), float(half_width)
