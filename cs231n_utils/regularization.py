"""Regularization: the L2 penalty, data augmentation, model ensembles and parameter averaging.

Data augmentation works on image batches of shape ``(N, C, H, W)``, either NumPy arrays or torch
tensors (any device); the result has the input's type, dtype and device. Random draws (crop
offsets, flip decisions, jitter factors, cutout centres, the mixup coefficient) always come from
a ``numpy.random.Generator`` — a few numbers per image — so that the NumPy and torch versions give
identical results for the same ``rng``. Pass an ``int`` seed or a ``Generator`` as ``rng``.

The common pattern behind all of them: add randomness during training, average it out (or
switch it off) at test time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar

import numpy as np
import torch
from scipy.special import softmax
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .validation import as_float_array, check_finite, check_positive, check_unit_interval

__all__ = [
    "l2_penalty",
    "random_crop",
    "horizontal_flip",
    "color_jitter",
    "cutout",
    "mixup",
    "MixupBatch",
    "ensemble_probabilities",
    "ParameterAverager",
    "torch_averaged_model",
]

Batch = TypeVar("Batch", np.ndarray, torch.Tensor)


# ----------------------------------------------------------------------------------- L2 penalty
def l2_penalty(weights: Mapping[str, Any], reg: float) -> tuple[float, dict[str, np.ndarray]]:
    """L2 weight penalty and its gradient, with the CS231n factor one half.

    .. math:: R(W) = \\frac{\\lambda}{2} \\sum_{k} \\lVert W_k \\rVert_F^2, \\qquad
        \\frac{\\partial R}{\\partial W_k} = \\lambda\\, W_k

    ``weights`` maps names to arrays (pass the weight matrices, not the biases); ``reg`` is
    :math:`\\lambda \\ge 0`. Returns the penalty and a dict of gradients with the same keys.
    With plain SGD, adding this gradient is the same as *weight decay*: each step multiplies the
    weights by :math:`1 - \\eta\\lambda`.
    """
    reg = check_positive(reg, "reg", allow_zero=True)
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a mapping from names to arrays, got {type(weights).__name__}")
    penalty, grads = 0.0, {}
    for name, value in weights.items():
        w = as_float_array(value, f"weights[{name!r}]")
        check_finite(w, f"weights[{name!r}]")
        penalty += 0.5 * reg * float(np.sum(w * w))
        grads[name] = reg * w
    return penalty, grads


# ---------------------------------------------------------------------------- data augmentation
def _generator(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, a non-negative int seed or None, got {rng!r}")


def _check_batch(x: Any, name: str = "x", images: bool = True) -> None:
    """Raise unless ``x`` is a finite floating array/tensor, 4-D ``(N, C, H, W)`` when ``images``."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinity")
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must be a floating-point array, got {x.dtype}")
        check_finite(x, name)
    else:
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if images and x.ndim != 4:
        raise ValueError(f"{name} must be an image batch of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not images and x.ndim < 1:
        raise ValueError(f"{name} must have a leading batch axis, got a scalar")


def _non_negative_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _like(values: np.ndarray, x: Batch) -> Batch:
    """``values`` (per-image parameters) as the same kind of object as ``x``, on its device."""
    if isinstance(x, torch.Tensor):
        dtype = x.dtype if np.issubdtype(values.dtype, np.floating) else None
        return torch.as_tensor(values, dtype=dtype, device=x.device)
    return values.astype(x.dtype) if np.issubdtype(values.dtype, np.floating) else values


def _where(condition: Batch, a: Batch | float, b: Batch) -> Batch:
    if isinstance(b, torch.Tensor):
        return torch.where(condition, torch.as_tensor(a, dtype=b.dtype, device=b.device), b)
    return np.where(condition, a, b).astype(b.dtype, copy=False)


def random_crop(x: Batch, padding: int, rng: Any = None, fill: float = 0.0) -> Batch:
    """Pad each image by ``padding`` pixels of value ``fill`` on every side, then cut out an
    ``H x W`` window at an offset drawn uniformly from :math:`\\{0, \\dots, 2p\\}^2` per image.

    .. math:: \\text{out}_n[c, i, j] = \\operatorname{pad}(x_n)[c,\\, i + a_n,\\, j + b_n]

    The result is the input shifted by :math:`(p - a_n, p - b_n)` pixels, with ``fill`` where it
    moved in from outside. ``padding=0`` returns a copy.
    """
    _check_batch(x)
    padding = _non_negative_int(padding, "padding")
    fill = _finite_float(fill, "fill")
    n, c, h, w = x.shape
    offsets = _generator(rng).integers(0, 2 * padding + 1, size=(n, 2))
    rows = offsets[:, :1] + np.arange(h)  # (N, H) rows of the padded image
    cols = offsets[:, 1:] + np.arange(w)  # (N, W)
    index = (np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :])
    if isinstance(x, torch.Tensor):
        padded = torch.nn.functional.pad(x, (padding,) * 4, value=fill)
        return padded[tuple(torch.as_tensor(i, device=x.device) for i in index)]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    return padded[index]


def horizontal_flip(x: Batch, p: float = 0.5, rng: Any = None) -> Batch:
    """Mirror each image left-right with probability ``p``: :math:`\\text{out}_n[c, i, j] = x_n[c, i, W-1-j]`."""
    _check_batch(x)
    p = _finite_float(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    flip = _like(_generator(rng).random(x.shape[0]) < p, x)[:, None, None, None]
    mirrored = x.flip(-1) if isinstance(x, torch.Tensor) else x[..., ::-1]
    return _where(flip, mirrored, x)


def color_jitter(
    x: Batch, brightness: float = 0.2, contrast: float = 0.2, rng: Any = None, clip: tuple[float, float] | None = None
) -> Batch:
    """Random brightness and contrast per image.

    With :math:`\\beta_n \\sim U[1 - b, 1 + b]` and :math:`\\gamma_n \\sim U[1 - c, 1 + c]`:

    .. math:: y_n = \\beta_n x_n, \\qquad \\text{out}_n = \\gamma_n\\,(y_n - \\bar y_n) + \\bar y_n

    where :math:`\\bar y_n` is the mean of :math:`y_n` over all its channels and pixels (so the
    contrast change keeps the image's mean). ``clip=(low, high)`` clamps the result, e.g.
    ``(0, 1)`` for images in :math:`[0, 1]`; leave it ``None`` for standardised inputs.
    """
    _check_batch(x)
    brightness = check_unit_interval(brightness, "brightness")
    contrast = check_unit_interval(contrast, "contrast")
    if clip is not None and (not isinstance(clip, (tuple, list)) or len(clip) != 2 or not float(clip[0]) < float(clip[1])):
        raise ValueError(f"clip must be None or a pair (low, high) with low < high, got {clip!r}")
    generator = _generator(rng)
    n = x.shape[0]
    beta = _like(generator.uniform(1 - brightness, 1 + brightness, n), x)[:, None, None, None]
    gamma = _like(generator.uniform(1 - contrast, 1 + contrast, n), x)[:, None, None, None]
    y = beta * x
    mean = y.mean(axis=(1, 2, 3), keepdims=True) if isinstance(x, np.ndarray) else y.mean(dim=(1, 2, 3), keepdim=True)
    out = gamma * (y - mean) + mean
    if clip is None:
        return out
    return out.clamp(*clip) if isinstance(out, torch.Tensor) else np.clip(out, *clip)


def cutout(x: Batch, size: int, rng: Any = None, fill: float = 0.0) -> Batch:
    """Cutout: set an ``s x s`` square (``s = size``) of every channel to ``fill``. The square's
    centre :math:`(r_n, q_n)` is a pixel drawn uniformly per image, and the square is clipped at
    the border, so part of it may fall outside the image:

    .. math:: \\text{out}_n[c, i, j] = \\begin{cases} \\text{fill} & \\text{if } 0 \\le i - r_n + \\lfloor s/2 \\rfloor < s
        \\text{ and } 0 \\le j - q_n + \\lfloor s/2 \\rfloor < s \\\\ x_n[c, i, j] & \\text{otherwise} \\end{cases}
    """
    _check_batch(x)
    size = _non_negative_int(size, "size", minimum=1)
    n, _, h, w = x.shape
    generator = _generator(rng)
    top = generator.integers(0, h, size=n) - size // 2
    left = generator.integers(0, w, size=n) - size // 2
    in_rows = (np.arange(h) >= top[:, None]) & (np.arange(h) < top[:, None] + size)  # (N, H)
    in_cols = (np.arange(w) >= left[:, None]) & (np.arange(w) < left[:, None] + size)  # (N, W)
    hole = _like(in_rows[:, None, :, None] & in_cols[:, None, None, :], x)
    return _where(hole, _finite_float(fill, "fill"), x)


@dataclass(frozen=True)
class MixupBatch:
    """A mixup batch: ``inputs`` :math:`= \\lambda x + (1 - \\lambda) x_{\\pi}` with the two label
    vectors ``labels_a`` :math:`= y` and ``labels_b`` :math:`= y_{\\pi}` and the coefficient ``lam``.

    Train with :math:`\\lambda\\, L(f(\\tilde x), y) + (1 - \\lambda)\\, L(f(\\tilde x), y_\\pi)`,
    which for cross-entropy equals the loss against :meth:`soft_labels`.
    """

    inputs: Any
    labels_a: Any
    labels_b: Any
    lam: float

    def soft_labels(self, num_classes: int) -> Any:
        """:math:`\\lambda\\, \\text{onehot}(y) + (1 - \\lambda)\\, \\text{onehot}(y_\\pi)`, shape ``(N, num_classes)``."""
        num_classes = _non_negative_int(num_classes, "num_classes", minimum=1)
        if isinstance(self.labels_a, torch.Tensor):
            one_hot = torch.nn.functional.one_hot
            dtype = self.inputs.dtype
            return self.lam * one_hot(self.labels_a, num_classes).to(dtype) + (1 - self.lam) * one_hot(
                self.labels_b, num_classes
            ).to(dtype)
        eye = np.eye(num_classes, dtype=self.inputs.dtype)
        return self.lam * eye[self.labels_a] + (1 - self.lam) * eye[self.labels_b]


def mixup(x: Batch, y: Any, alpha: float = 0.2, rng: Any = None) -> MixupBatch:
    """Mixup: blend the batch with a random permutation of itself.

    .. math:: \\lambda \\sim \\text{Beta}(\\alpha, \\alpha), \\quad \\pi \\text{ a random permutation}, \\quad
        \\tilde x = \\lambda x + (1 - \\lambda)\\, x_{\\pi}

    One :math:`\\lambda` per batch. ``x`` is any batch ``(N, ...)``; ``y`` are integer labels
    ``(N,)`` of the same kind (array or tensor). Returns a :class:`MixupBatch`.
    """
    _check_batch(x, images=False)
    alpha = check_positive(alpha, "alpha")
    labels = y if isinstance(x, torch.Tensor) else np.asarray(y)
    if isinstance(x, torch.Tensor) != isinstance(labels, torch.Tensor):
        raise ValueError("y must be a torch tensor when x is one, and array-like when x is a NumPy array")
    if tuple(labels.shape) != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
    integer_dtypes = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    is_integer = labels.dtype in integer_dtypes if isinstance(labels, torch.Tensor) else np.issubdtype(labels.dtype, np.integer)
    if not is_integer:
        raise ValueError(f"y must hold integer class labels, got dtype {labels.dtype}")
    generator = _generator(rng)
    lam = float(generator.beta(alpha, alpha))
    perm = generator.permutation(x.shape[0])
    if isinstance(x, torch.Tensor):
        perm = torch.as_tensor(perm, device=x.device)
    return MixupBatch(lam * x + (1 - lam) * x[perm], labels, labels[perm], lam)


# ------------------------------------------------------------------------------------ ensembles
def ensemble_probabilities(models: Iterable[Callable[[Any], Any]], X: Any) -> Any:
    """Average of the members' predicted class probabilities.

    .. math:: \\bar p(y \\mid x) = \\frac1K \\sum_{k=1}^K \\operatorname{softmax}(f_k(x))

    Each model maps ``X`` to class scores ``(N, C)`` (e.g. ``FullyConnectedNet.loss`` or an
    ``nn.Module``). For ``nn.Module`` members the forward runs in eval mode without gradients, and
    each module's train/eval flag is restored afterwards. Returns an array or tensor ``(N, C)``.
    """
    members = list(models)
    if not members:
        raise ValueError("models must contain at least one model")
    total = None
    for k, model in enumerate(members):
        if not callable(model):
            raise ValueError(f"models[{k}] is not callable")
        probs = _probabilities(model, X)
        if total is not None and tuple(probs.shape) != tuple(total.shape):
            raise ValueError(f"models[{k}] gives scores of shape {tuple(probs.shape)}, models[0] gives {tuple(total.shape)}")
        total = probs if total is None else total + probs
    return total / len(members)


def _probabilities(model: Callable[[Any], Any], X: Any) -> Any:
    if isinstance(model, torch.nn.Module):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                scores = model(X)
        finally:
            model.train(was_training)
    else:
        scores = model(X)
    if isinstance(scores, torch.Tensor):
        if scores.ndim != 2:
            raise ValueError(f"a model returned scores of shape {tuple(scores.shape)}, expected (N, C)")
        return torch.softmax(scores, dim=1)
    scores = as_float_array(scores, "scores")
    if scores.ndim != 2:
        raise ValueError(f"a model returned scores of shape {scores.shape}, expected (N, C)")
    return softmax(scores, axis=1)


# ----------------------------------------------------------------------- parameter averaging
class ParameterAverager:
    """Polyak averaging (``decay=None``) or an exponential moving average of NumPy parameters.

    Call :meth:`update` with the current parameters after every optimizer step; the first call
    copies them. After :math:`t + 1` calls with :math:`\\theta_0, \\dots, \\theta_t`:

    .. math::
        \\text{Polyak:}\\quad \\bar\\theta_t = \\frac{1}{t + 1} \\sum_{k=0}^{t} \\theta_k, \\qquad
        \\text{EMA:}\\quad \\bar\\theta_t = \\beta\\, \\bar\\theta_{t-1} + (1 - \\beta)\\, \\theta_t
        = \\beta^t \\theta_0 + (1 - \\beta) \\sum_{k=1}^{t} \\beta^{t-k} \\theta_k

    the same conventions as ``torch.optim.swa_utils.AveragedModel`` (see
    :func:`torch_averaged_model`). Evaluate the model with :attr:`averaged` at test time.
    """

    def __init__(self, decay: float | None = None) -> None:
        self.decay = None if decay is None else check_unit_interval(decay, "decay")
        self.num_averaged = 0
        self._average: dict[str, np.ndarray] = {}

    def update(self, params: Mapping[str, Any]) -> None:
        """Fold the current ``params`` (name -> array) into the average."""
        if not isinstance(params, Mapping) or not params:
            raise ValueError("params must be a non-empty mapping from names to arrays")
        arrays = {}
        for name, value in params.items():
            array = as_float_array(value, f"params[{name!r}]")
            check_finite(array, f"params[{name!r}]")
            arrays[name] = array
        if self.num_averaged == 0:
            self._average = {name: array.copy() for name, array in arrays.items()}
        else:
            if set(arrays) != set(self._average):
                raise ValueError(f"params has keys {sorted(arrays)}, the average has {sorted(self._average)}")
            weight = 1.0 / (self.num_averaged + 1) if self.decay is None else 1.0 - self.decay
            for name, array in arrays.items():
                if array.shape != self._average[name].shape:
                    raise ValueError(f"params[{name!r}] has shape {array.shape}, the average has {self._average[name].shape}")
                self._average[name] += weight * (array - self._average[name])
        self.num_averaged += 1

    @property
    def averaged(self) -> dict[str, np.ndarray]:
        """A copy of the averaged parameters."""
        if self.num_averaged == 0:
            raise ValueError("no parameters averaged yet: call update(params) first")
        return {name: array.copy() for name, array in self._average.items()}


def torch_averaged_model(module: torch.nn.Module, decay: float | None = None, use_buffers: bool = False) -> AveragedModel:
    """A ``torch.optim.swa_utils.AveragedModel`` of ``module``: the uniform (Polyak / SWA) average
    when ``decay`` is ``None``, otherwise an EMA with ``torch``'s ``get_ema_multi_avg_fn(decay)``.

    Same formulas as :class:`ParameterAverager`: call ``averaged.update_parameters(module)`` after
    each optimizer step (the first call copies). ``use_buffers=True`` also averages buffers such
    as batch-norm running statistics.
    """
    if not isinstance(module, torch.nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if decay is None:
        return AveragedModel(module, use_buffers=use_buffers)
    decay = check_unit_interval(decay, "decay")
    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=use_buffers)
