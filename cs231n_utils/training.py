"""A small, readable torch training loop for classifiers: minibatch SGD-style training,
evaluation, and a per-epoch history of loss and accuracy.

The loss is the mean cross-entropy of a minibatch of :math:`B` examples with logits
:math:`s_i` and labels :math:`y_i`,

.. math:: L = -\\frac{1}{B} \\sum_{i=1}^{B} \\log \\frac{e^{s_{i, y_i}}}{\\sum_j e^{s_{ij}}},

and every step updates the parameters with whatever ``torch.optim.Optimizer`` the caller's
``optimizer_factory`` builds. Datasets are ``(X, y)`` pairs of arrays or tensors small enough to
move to the device in one piece (the case for the book's datasets), so the loop needs no
``DataLoader``: each epoch draws a seeded permutation and slices it into minibatches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from . import torch_optim
from .validation import check_positive

__all__ = [
    "History",
    "OptimizerFactory",
    "ScheduleFactory",
    "default_optimizer",
    "as_tensors",
    "accuracy",
    "evaluate",
    "train",
]

#: Builds an optimizer from parameters or parameter groups, e.g. ``partial(torch.optim.SGD, lr=0.1)``.
OptimizerFactory = Callable[[Any], torch.optim.Optimizer]
#: Builds a learning-rate scheduler for an optimizer; it is stepped once per epoch.
ScheduleFactory = Callable[[torch.optim.Optimizer], Any]

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)

#: The optimizer :func:`train` uses when none is given: Adam with the lecture's defaults.
default_optimizer: OptimizerFactory = partial(torch_optim.Adam, lr=1e-3, betas=(0.9, 0.999))


@dataclass
class History:
    """What happened during :func:`train`.

    ``batch_loss`` has one entry per optimizer step (the minibatch loss the step descended) and
    ``lr`` one per epoch (the learning rate of the first parameter group during the epoch). The
    losses and accuracies are measured in evaluation mode after each epoch listed in
    ``eval_epochs`` (every epoch unless ``train`` was given ``eval_every``). Validation lists stay
    empty when no validation data was given.
    """

    batch_loss: list[float] = field(default_factory=list)
    eval_epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.lr)


def as_tensors(data: Any, name: str, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Check an ``(X, y)`` pair and return it as ``(float32 inputs, int64 labels)`` on ``device``.

    ``X`` has one example per row along its first axis; ``y`` holds integer class labels >= 0.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{name} must be a pair (X, y), got {type(data).__name__}")
    X, y = (torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a) for a in data)
    if X.ndim < 2 or len(X) == 0:
        raise ValueError(f"{name}: X must have shape (N, ...) with N >= 1, got {tuple(X.shape)}")
    if not (X.is_floating_point() or X.dtype in _INTEGER_DTYPES):
        raise ValueError(f"{name}: X must be numeric, got dtype {X.dtype}")
    X = X.to(device=device, dtype=torch.float32)
    if not torch.isfinite(X).all():
        raise ValueError(f"{name}: X contains NaN or infinity")
    if y.shape != (len(X),):
        raise ValueError(f"{name}: y must have shape ({len(X)},) to match X, got {tuple(y.shape)}")
    if not (y.dtype in _INTEGER_DTYPES or (y.is_floating_point() and torch.equal(y, y.round()))):
        raise ValueError(f"{name}: y must hold integer class labels, got dtype {y.dtype}")
    y = y.to(device=device, dtype=torch.int64)
    if (y < 0).any():
        raise ValueError(f"{name}: y must hold class labels >= 0, got {int(y.min())}")
    return X, y


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is at the true label: :math:`\\frac1N\\sum_i [\\arg\\max_j s_{ij} = y_i]`."""
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("labels must not be empty")
    return (logits.argmax(dim=1) == labels).float().mean().item()


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Any, batch_size: int = 512, device: torch.device | str | None = None
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data = (X, y)``, in evaluation mode.

    The model's train/eval mode is restored afterwards. ``device`` defaults to the device of
    the model's parameters.
    """
    batch_size = _check_count(batch_size, "batch_size")
    device = _resolve_device(model, device)
    X, y = as_tensors(data, "data", device)
    was_training = model.training
    model.eval()
    try:
        total_loss, correct = 0.0, 0
        for start in range(0, len(X), batch_size):
            logits = model(X[start : start + batch_size])
            labels = y[start : start + batch_size]
            _check_logits(logits, len(labels), int(labels.max()))
            total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(dim=1) == labels).sum().item()
    finally:
        model.train(was_training)
    return total_loss / len(X), correct / len(X)


def train(
    model: nn.Module,
    train_data: Any,
    val_data: Any | None = None,
    optimizer_factory: OptimizerFactory = default_optimizer,
    epochs: int = 10,
    batch_size: int = 64,
    lr_schedule: ScheduleFactory | None = None,
    params: Iterable[nn.Parameter] | Sequence[dict] | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    verbose: bool = False,
    eval_every: int = 1,
) -> History:
    """Train a classifier with minibatch gradient steps on the mean cross-entropy loss.

    Each epoch visits the training examples once in a random order; every minibatch takes one
    step :math:`\\theta \\leftarrow \\mathrm{update}(\\theta, \\nabla_\\theta L_{\\text{batch}})` of
    the optimizer that ``optimizer_factory(params)`` returns, e.g.
    ``partial(torch.optim.SGD, lr=0.1, momentum=0.9)``. ``params`` defaults to the model's
    parameters with ``requires_grad``; pass parameter groups (a list of dicts with their own
    ``"lr"``) for layer-wise learning rates. ``lr_schedule(optimizer)`` may return a
    ``torch.optim.lr_scheduler`` object; it is stepped after every epoch.

    After every ``eval_every``-th epoch and after the last one, the loss and accuracy on the
    training and validation data are recorded (and printed when ``verbose``).

    The model is moved to ``device`` (default: where its parameters already are). With the same
    ``seed`` and a model in the same initial state, a run on the CPU repeats exactly: the
    shuffling and any randomness inside the model (dropout) come from ``seed``, and the global
    random state is left as it was. On CUDA, exact repeats also need
    ``torch.use_deterministic_algorithms(True)``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = _check_count(epochs, "epochs")
    batch_size = _check_count(batch_size, "batch_size")
    eval_every = _check_count(eval_every, "eval_every")
    if not callable(optimizer_factory):
        raise ValueError(f"optimizer_factory must be callable, got {type(optimizer_factory).__name__}")
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be callable or None, got {type(lr_schedule).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    device = _resolve_device(model, device)
    model.to(device)
    X, y = as_tensors(train_data, "train_data", device)
    if val_data is not None:
        val_data = as_tensors(val_data, "val_data", device)  # fail before training, not after an epoch
    largest_label = int(y.max())
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no parameter with requires_grad=True; unfreeze something or pass params")
    optimizer = optimizer_factory(params)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer_factory must return a torch.optim.Optimizer, got {type(optimizer).__name__}")
    scheduler = lr_schedule(optimizer) if lr_schedule is not None else None

    history = History()
    shuffle = torch.Generator().manual_seed(int(seed))
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(int(seed))  # dropout & co. inside the model; restored on exit
        for epoch in range(1, epochs + 1):
            history.lr.append(optimizer.param_groups[0]["lr"])
            model.train()
            order = torch.randperm(len(X), generator=shuffle).to(device)
            epoch_losses = []
            for start in range(0, len(X), batch_size):
                batch = order[start : start + batch_size]
                logits = model(X[batch])
                _check_logits(logits, len(batch), largest_label)
                loss = nn.functional.cross_entropy(logits, y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_losses.append(loss.detach())
            history.batch_loss.extend(torch.stack(epoch_losses).tolist())  # one device sync per epoch
            if not np.isfinite(history.batch_loss[-len(epoch_losses):]).all():
                raise FloatingPointError(f"the loss became NaN or infinite in epoch {epoch}; lower the learning rate")
            if scheduler is not None:
                scheduler.step()
            if epoch % eval_every and epoch != epochs:
                continue
            _record_epoch(history, epoch, model, (X, y), val_data, device)
            if verbose:
                print(_epoch_summary(history, epoch, epochs), flush=True)
    return history


def _record_epoch(history: History, epoch: int, model: nn.Module, train_data, val_data, device: torch.device) -> None:
    history.eval_epochs.append(epoch)
    train_loss, train_acc = evaluate(model, train_data, device=device)
    history.train_loss.append(train_loss)
    history.train_acc.append(train_acc)
    if val_data is not None:
        val_loss, val_acc = evaluate(model, val_data, device=device)
        history.val_loss.append(val_loss)
        history.val_acc.append(val_acc)


def _epoch_summary(history: History, epoch: int, epochs: int) -> str:
    line = (
        f"epoch {epoch:>{len(str(epochs))}}/{epochs}  lr {history.lr[-1]:.2e}  "
        f"train loss {history.train_loss[-1]:.4f} acc {history.train_acc[-1]:.3f}"
    )
    if history.val_loss:
        line += f"  val loss {history.val_loss[-1]:.4f} acc {history.val_acc[-1]:.3f}"
    return line


def _check_logits(logits: torch.Tensor, batch_size: int, largest_label: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != batch_size:
        raise ValueError(f"model must return logits of shape ({batch_size}, classes), got {tuple(logits.shape)}")
    if largest_label >= logits.shape[1]:
        raise ValueError(f"labels go up to {largest_label}, but the model returns only {logits.shape[1]} logits")


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is None:
        first = next(iter(model.parameters()), None)
        return first.device if first is not None else torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must name a torch device, got {device!r}") from error


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_positive(int(value), name)
    return int(value)

