"""A fully connected network in NumPy (CS231n ``FullyConnectedNet`` style) with L2 and dropout.

Architecture for ``L - 1`` hidden layers::

    {affine - relu - [dropout]} x (L - 1) - affine - softmax

Parameters live in ``model.params`` under ``W1, b1, ..., WL, bL``; ``model.loss(X)`` returns class
scores and ``model.loss(X, y)`` returns the loss and the gradients of every parameter, which is
all :class:`cs231n_utils.solver.Solver` needs.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import layers
from .regularization import l2_penalty
from .validation import as_float_array, check_finite, check_positive, check_probability

__all__ = ["FullyConnectedNet"]


class FullyConnectedNet:
    """Fully connected classifier with ReLU hidden layers, optional inverted dropout and L2.

    The training loss is

    .. math:: L = \\frac1N \\sum_n -\\log \\operatorname{softmax}(f(x_n))_{y_n}
        + \\frac{\\lambda}{2} \\sum_{l=1}^{L} \\lVert W_l \\rVert_F^2

    (biases are not penalised). Arguments: ``hidden_dims`` the width of each hidden layer,
    ``input_dim`` and ``num_classes``, ``dropout_keep_ratio`` the keep probability :math:`p` of
    the dropout after every hidden ReLU (1 means no dropout), ``reg`` :math:`\\lambda`,
    ``weight_scale`` the standard deviation of the Gaussian initial weights or ``"he"`` for
    :math:`\\sqrt{2 / \\text{fan-in}}`, ``dtype`` of the parameters, ``seed`` for the initial
    weights and the stream of dropout masks (a fresh mask every training forward pass), and
    ``dropout_seed``: if set, every training forward pass uses this same seed and hence the same
    masks — what CS231n's ``seed`` does, and what a gradient check needs.
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout_keep_ratio: float = 1.0,
        reg: float = 0.0,
        weight_scale: float | str = 1e-2,
        dtype: type = np.float64,
        seed: int | None = None,
        dropout_seed: int | None = None,
    ) -> None:
        dims = [_positive_int(input_dim, "input_dim")]
        if isinstance(hidden_dims, (str, bytes)) or not isinstance(hidden_dims, Sequence):
            raise ValueError(f"hidden_dims must be a sequence of layer widths, got {hidden_dims!r}")
        dims += [_positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims)]
        dims.append(_positive_int(num_classes, "num_classes"))
        if not (isinstance(dtype, type) and np.issubdtype(dtype, np.floating)):
            raise ValueError(f"dtype must be a NumPy floating type, got {dtype!r}")
        if weight_scale != "he":
            check_positive(weight_scale, "weight_scale")
        for name, value in (("seed", seed), ("dropout_seed", dropout_seed)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
                raise ValueError(f"{name} must be None or a non-negative integer, got {value!r}")
        self.reg = check_positive(reg, "reg", allow_zero=True)
        self.dropout_keep_ratio = check_probability(dropout_keep_ratio, "dropout_keep_ratio")
        self.use_dropout = self.dropout_keep_ratio < 1
        self.num_layers = len(dims) - 1
        self.dtype = dtype
        self.dropout_seed = dropout_seed
        self._rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
            scale = np.sqrt(2.0 / fan_in) if weight_scale == "he" else float(weight_scale)
            self.params[f"W{layer}"] = (scale * self._rng.standard_normal((fan_in, fan_out))).astype(dtype)
            self.params[f"b{layer}"] = np.zeros(fan_out, dtype=dtype)

    def loss(self, X: Any, y: Any = None) -> np.ndarray | tuple[float, dict[str, np.ndarray]]:
        """Class scores ``(N, C)`` for ``X`` when ``y`` is ``None`` (test mode: no dropout);
        otherwise the training loss and a dict of gradients keyed like ``params`` (train mode)."""
        X = as_float_array(X, "X")
        check_finite(X, "X")
        X = X.astype(self.dtype, copy=False)
        if X.ndim < 2 or int(np.prod(X.shape[1:])) != self.params["W1"].shape[0]:
            raise ValueError(f"X must have shape (N, ...) with {self.params['W1'].shape[0]} features, got {X.shape}")
        mode = "test" if y is None else "train"
        caches = []
        hidden = X
        for layer in range(1, self.num_layers):
            hidden, affine_cache = layers.affine_forward(hidden, self.params[f"W{layer}"], self.params[f"b{layer}"])
            hidden, relu_cache = layers.relu_forward(hidden)
            dropout_cache = None
            if self.use_dropout:
                hidden, dropout_cache = layers.dropout_forward(hidden, self._dropout_param(mode))
            caches.append((affine_cache, relu_cache, dropout_cache))
        last = self.num_layers
        scores, last_cache = layers.affine_forward(hidden, self.params[f"W{last}"], self.params[f"b{last}"])
        if y is None:
            return scores

        data_loss, dscores = layers.softmax_loss(scores, y)
        weights = {name: w for name, w in self.params.items() if name.startswith("W")}
        reg_loss, reg_grads = l2_penalty(weights, self.reg)
        grads: dict[str, np.ndarray] = {}
        dhidden, grads[f"W{last}"], grads[f"b{last}"] = layers.affine_backward(dscores, last_cache)
        for layer in range(self.num_layers - 1, 0, -1):
            affine_cache, relu_cache, dropout_cache = caches[layer - 1]
            if dropout_cache is not None:
                dhidden = layers.dropout_backward(dhidden, dropout_cache)
            dhidden = layers.relu_backward(dhidden, relu_cache)
            dhidden, grads[f"W{layer}"], grads[f"b{layer}"] = layers.affine_backward(dhidden, affine_cache)
        for name, grad in reg_grads.items():
            grads[name] = grads[name] + grad
        return data_loss + reg_loss, grads

    def _dropout_param(self, mode: str) -> dict[str, Any]:
        if mode == "test":
            return {"p": self.dropout_keep_ratio, "mode": "test"}
        seed = self.dropout_seed if self.dropout_seed is not None else self._rng
        return {"p": self.dropout_keep_ratio, "mode": "train", "seed": seed}


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
