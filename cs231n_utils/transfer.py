"""Transfer learning: freeze and unfreeze layers, swap a classifier head, give each layer its own
learning rate, and the lecture's experiment comparing three ways to use a pretrained network.

The experiment pretrains :class:`DigitsCNN` on some of scikit-learn's digits (by default the
classes 0-4) and then learns the other classes (5-9) from a shrinking training set in three ways:

- **frozen features**: keep the pretrained body frozen and train only new top layers on its
  features (a linear probe when only the last layer is new);
- **finetune all**: start from the pretrained weights, train every layer with smaller,
  layer-wise learning rates;
- **from scratch**: the same network, randomly initialised, trained on the target data only.

Everything runs in a few seconds on a CPU, so pretraining happens on the fly (no weight file).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import data as datasets
from . import torch_optim
from .models import DigitsCNN
from .training import OptimizerFactory, evaluate, train
from .validation import check_positive, check_probability

__all__ = [
    "freeze",
    "unfreeze",
    "trainable_parameter_count",
    "replace_head",
    "discriminative_param_groups",
    "DigitsCNN",
    "STRATEGIES",
    "TransferResult",
    "select_classes",
    "subsample_per_class",
    "pretrain",
    "run_transfer_experiment",
    "summarize",
]

STRATEGIES = ("frozen features", "finetune all", "from scratch")


def freeze(module: nn.Module) -> nn.Module:
    """Stop training ``module``: set ``requires_grad = False`` on all its parameters; returns it.

    Frozen parameters get no gradient, so no optimizer changes them. Buffers are not
    parameters: a frozen ``BatchNorm`` layer still updates its running statistics in training
    mode unless you also call ``.eval()`` on it.
    """
    return _set_requires_grad(module, False, "module")


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo :func:`freeze`: set ``requires_grad = True`` on all parameters of ``module``; returns it."""
    return _set_requires_grad(module, True, "module")


def trainable_parameter_count(module: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad`` (what an optimizer would update)."""
    _check_module(module, "module")
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def replace_head(model: nn.Module, num_classes: int, attribute: str = "head") -> nn.Linear:
    """Replace the last layer ``model.<attribute>`` (an ``nn.Linear``) by a freshly initialised
    ``nn.Linear(in_features, num_classes)`` on the same device and dtype; return the new layer.

    ``attribute`` may be a dotted path such as ``"classifier.6"``. The rest of the model, the
    *body*, keeps its weights. The new layer is trainable even if the old one was frozen, and is
    initialised from torch's global random state (seed it with ``torch.manual_seed``).
    """
    _check_module(model, "model")
    num_classes = _check_count(num_classes, "num_classes")
    if not isinstance(attribute, str) or not attribute:
        raise ValueError(f"attribute must be a non-empty string, got {attribute!r}")
    parent_name, _, child_name = attribute.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
        old = parent.get_submodule(child_name)
    except AttributeError as error:
        raise ValueError(f"attribute: model has no submodule {attribute!r}") from error
    if not isinstance(old, nn.Linear):
        raise ValueError(f"attribute: model.{attribute} must be an nn.Linear, got {type(old).__name__}")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, child_name, new)
    return new


def discriminative_param_groups(
    model: nn.Module, base_lr: float, decay: float, layers: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise ("discriminative") learning rates for finetuning.

    With layers :math:`\\ell = 0, \\dots, L-1` ordered from input to output, layer :math:`\\ell`
    gets the learning rate

    .. math:: \\eta_\\ell = \\eta_{\\text{base}} \\cdot \\gamma^{\\,L-1-\\ell},

    so the last layer (the new head) learns at ``base_lr`` and each layer closer to the input
    ``decay`` (:math:`\\gamma`) times more slowly: early layers hold generic features that
    should move little. ``layers`` names the submodules in that order; the default is the
    model's direct children. Every trainable parameter must belong to one of the layers; frozen
    parameters and layers without trainable parameters are left out. Each group is a dict with
    ``"params"``, ``"lr"`` and ``"name"``, ready for any ``torch.optim.Optimizer``.
    """
    _check_module(model, "model")
    base_lr = check_positive(base_lr, "base_lr")
    decay = check_probability(decay, "decay")
    if layers is None:
        layers = [name for name, _ in model.named_children()]
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be a non-empty sequence of submodule names, got {layers!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must not repeat a name, got {list(layers)}")
    groups, covered = [], set()
    for depth, name in enumerate(layers):
        try:
            layer = model.get_submodule(name)
        except AttributeError as error:
            raise ValueError(f"layers: model has no submodule {name!r}") from error
        params = [p for p in layer.parameters() if p.requires_grad and id(p) not in covered]
        covered.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "lr": base_lr * decay ** (len(layers) - 1 - depth), "name": name})
    missed = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if missed:
        raise ValueError(f"layers must cover every trainable parameter; these are in none: {missed}")
    return groups


@dataclass(frozen=True)
class TransferResult:
    """One run of the experiment: a strategy trained on ``n_train`` target examples, and its
    accuracy on the held-out target examples."""

    strategy: str
    examples_per_class: int
    n_train: int
    seed: int
    accuracy: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_classes(X: np.ndarray, y: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The examples whose label is in ``classes``, relabelled ``0 .. len(classes) - 1`` in that order."""
    X, y = np.asarray(X), np.asarray(y)
    classes = _check_classes(classes, "classes")
    if len(X) != len(y):
        raise ValueError(f"y has {len(y)} labels, but X has {len(X)} examples")
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return X[keep], np.array([relabel[c] for c in y[keep]], dtype=np.int64)


def subsample_per_class(
    X: np.ndarray, y: np.ndarray, examples_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``examples_per_class`` randomly chosen examples of every class in ``y`` (seeded)."""
    X, y = np.asarray(X), np.asarray(y)
    examples_per_class = _check_count(examples_per_class, "examples_per_class")
    if len(X) != len(y):
        raise ValueError(f"y has {len(y)} labels, but X has {len(X)} examples")
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < examples_per_class:
            raise ValueError(f"examples_per_class={examples_per_class}, but class {label} has only {len(members)} examples")
        picked.append(rng.choice(members, size=examples_per_class, replace=False))
    index = np.sort(np.concatenate(picked))
    return X[index], y[index]


def pretrain(
    splits: datasets.DataSplits | None = None,
    source_classes: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 15,
    optimizer_factory: OptimizerFactory = partial(torch_optim.Adam, lr=3e-3),
    seed: int = 0,
) -> DigitsCNN:
    """A :class:`DigitsCNN` trained on the source classes of ``splits.X_train`` (default: digits
    0-4) with minibatches of 32; ``seed`` fixes the initial weights and the training order."""
    splits = splits if splits is not None else datasets.load_digits(as_images=True)
    source = select_classes(splits.X_train, splits.y_train, source_classes)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights, leave the global state alone
        torch.manual_seed(seed)
        model = DigitsCNN(num_classes=len(source_classes))
    train(model, source, optimizer_factory=optimizer_factory, epochs=epochs, batch_size=32, seed=seed)
    return model


def run_transfer_experiment(
    examples_per_class: Sequence[int | None] = (3, 10, 30, None),
    seeds: Sequence[int] = (0, 1, 2),
    source_classes: Sequence[int] = (0, 1, 2, 3, 4),
    target_classes: Sequence[int] = (5, 6, 7, 8, 9),
    steps: int = 100,
    batch_size: int = 32,
    probe_optimizer: OptimizerFactory = partial(torch_optim.Adam, lr=3e-3),
    finetune_optimizer: OptimizerFactory = partial(torch_optim.Adam),
    finetune_lr: float = 1e-3,
    finetune_decay: float = 1.0,
    scratch_optimizer: OptimizerFactory = partial(torch_optim.Adam, lr=3e-3),
    splits: datasets.DataSplits | None = None,
    pretrained: nn.Module | None = None,
    evaluate_on: str = "test",
    target_transform: Callable[[np.ndarray], np.ndarray] | None = None,
    reinitialize: Sequence[str] = ("fc",),
    strategies: Sequence[str] = STRATEGIES,
) -> list[TransferResult]:
    """The lecture's transfer table, measured: accuracy on the target classes of each strategy
    in :data:`STRATEGIES`, for each training-set size and seed.

    ``examples_per_class`` lists the target training-set sizes (``None``: the whole target
    training split). Every run takes the same number of optimizer ``steps`` (rounded up to
    whole epochs), so small sets are not also under-trained. All strategies start from a copy
    of ``pretrained`` (default: :func:`pretrain` on ``source_classes``) with a new ``head``:

    - *frozen features* re-initialises the layers named in ``reinitialize`` (default ``fc``,
      the top hidden layer, which is specific to the source classes) and trains only them and
      the head, with ``probe_optimizer``; with ``reinitialize=()`` it is a linear probe;
    - *finetune all* re-initialises the same layers and trains every layer with
      :func:`discriminative_param_groups` (``finetune_lr`` for the head, times
      ``finetune_decay`` per layer towards the input) and ``finetune_optimizer``;
    - *from scratch* re-initialises every layer and trains them with ``scratch_optimizer``.

    ``strategies`` picks a subset of them. ``target_transform`` (applied to target images only)
    makes the target domain differ from the source. Accuracy is measured on the target classes
    of the ``evaluate_on`` split (``"val"`` or ``"test"``).
    """
    splits = splits if splits is not None else datasets.load_digits(as_images=True)
    source_classes = _check_classes(source_classes, "source_classes")
    target_classes = _check_classes(target_classes, "target_classes")
    if set(source_classes) & set(target_classes):
        raise ValueError(f"target_classes must not overlap source_classes, both contain {sorted(set(source_classes) & set(target_classes))}")
    steps = _check_count(steps, "steps")
    batch_size = _check_count(batch_size, "batch_size")
    if evaluate_on not in ("val", "test"):
        raise ValueError(f"evaluate_on must be 'val' or 'test', got {evaluate_on!r}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    if isinstance(strategies, str) or not strategies or any(name not in STRATEGIES for name in strategies):
        raise ValueError(f"strategies must be a non-empty sequence drawn from {STRATEGIES}, got {strategies!r}")
    if not examples_per_class:
        raise ValueError("examples_per_class must not be empty")
    if target_transform is not None and not callable(target_transform):
        raise ValueError(f"target_transform must be callable or None, got {type(target_transform).__name__}")
    if isinstance(reinitialize, str):
        raise ValueError(f"reinitialize must be a sequence of submodule names, got the string {reinitialize!r}")
    architecture = pretrained if pretrained is not None else DigitsCNN()
    for name in reinitialize:
        try:
            architecture.get_submodule(name)
        except AttributeError as error:
            raise ValueError(f"reinitialize: the pretrained model has no submodule {name!r}") from error
    transform = target_transform if target_transform is not None else (lambda images: images)
    if pretrained is None:
        pretrained = pretrain(splits, source_classes)
    X_pool, y_pool = select_classes(splits.X_train, splits.y_train, target_classes)
    X_eval, y_eval = select_classes(getattr(splits, f"X_{evaluate_on}"), getattr(splits, f"y_{evaluate_on}"), target_classes)
    eval_data = (transform(X_eval), y_eval)
    full_size = int(np.bincount(y_pool).min())

    results = []
    for size in examples_per_class:
        per_class = full_size if size is None else _check_count(size, "examples_per_class")
        for seed in seeds:
            X_train, y_train = subsample_per_class(X_pool, y_pool, per_class, seed) if size is not None else (X_pool, y_pool)
            target = (transform(X_train), y_train)
            batches_per_epoch = -(-len(y_train) // batch_size)
            epochs = -(-steps // batches_per_epoch)
            fit = partial(train, train_data=target, epochs=epochs, batch_size=batch_size, seed=seed, eval_every=epochs)
            for strategy in strategies:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)  # the new layers' initial weights
                    model = _start_model(strategy, pretrained, len(target_classes), reinitialize)
                if strategy == "frozen features":
                    fit(model, optimizer_factory=probe_optimizer)
                elif strategy == "finetune all":
                    groups = discriminative_param_groups(model, finetune_lr, finetune_decay)
                    fit(model, optimizer_factory=finetune_optimizer, params=groups)
                else:
                    fit(model, optimizer_factory=scratch_optimizer)
                _, accuracy = evaluate(model, eval_data)
                results.append(TransferResult(strategy, per_class, len(y_train), int(seed), accuracy))
    return results


def summarize(results: Sequence[TransferResult]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of the accuracy of each (strategy, size) cell,
    sorted by strategy (in :data:`STRATEGIES` order) and size."""
    if not results:
        raise ValueError("results must not be empty")
    cells: dict[tuple[str, int], list[float]] = {}
    for result in results:
        cells.setdefault((result.strategy, result.examples_per_class), []).append(result.accuracy)
    order = {name: i for i, name in enumerate(STRATEGIES)}
    return [
        {
            "strategy": strategy,
            "examples_per_class": size,
            "mean_accuracy": float(np.mean(accs)),
            "std_accuracy": float(np.std(accs)),
            "runs": len(accs),
        }
        for (strategy, size), accs in sorted(cells.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1]))
    ]


def _start_model(strategy: str, pretrained: nn.Module, num_classes: int, reinitialize: Sequence[str]) -> nn.Module:
    """A copy of ``pretrained`` with a new head, prepared for ``strategy``."""
    model = copy.deepcopy(pretrained)
    (freeze if strategy == "frozen features" else unfreeze)(model)
    replace_head(model, num_classes)
    fresh = [model] if strategy == "from scratch" else [model.get_submodule(name) for name in reinitialize]
    for part in fresh:
        unfreeze(part)
        for layer in part.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    return model


def _set_requires_grad(module: nn.Module, flag: bool, name: str) -> nn.Module:
    _check_module(module, name)
    for parameter in module.parameters():
        parameter.requires_grad_(flag)
    return module


def _check_module(module: Any, name: str) -> None:
    if not isinstance(module, nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_classes(classes: Any, name: str) -> tuple[int, ...]:
    try:
        labels = tuple(int(c) for c in classes)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a sequence of integer labels, got {classes!r}") from error
    if len(labels) < 2 or len(set(labels)) != len(labels) or min(labels) < 0:
        raise ValueError(f"{name} must hold at least two distinct labels >= 0, got {classes!r}")
    return labels
