"""Neural-network layers in NumPy with the CS231n forward / backward API.

Every forward function returns ``out, cache`` and the matching backward function takes the
upstream gradient ``dout`` and that ``cache`` and returns the gradient(s) with respect to the
forward's inputs. Inputs are never modified. Bad input raises ``ValueError`` naming the argument.

Layers: affine (fully connected), ReLU, softmax cross-entropy loss and inverted dropout.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import log_softmax

from .validation import as_float_array, check_finite, check_probability, check_same_shape

__all__ = [
    "affine_forward",
    "affine_backward",
    "relu_forward",
    "relu_backward",
    "softmax_loss",
    "dropout_forward",
    "dropout_backward",
]

AffineCache = tuple[np.ndarray, np.ndarray, np.ndarray]
DropoutCache = tuple[dict[str, Any], "np.ndarray | None"]
_DROPOUT_KEYS = {"p", "mode", "seed"}


def _finite_array(value: Any, name: str) -> np.ndarray:
    array = as_float_array(value, name)
    check_finite(array, name)
    return array


def affine_forward(x: Any, w: Any, b: Any) -> tuple[np.ndarray, AffineCache]:
    """Fully connected layer :math:`\\text{out} = \\tilde x W + b`.

    ``x`` has shape ``(N, d_1, ..., d_k)`` and is flattened to :math:`\\tilde x` of shape ``(N, D)``
    with :math:`D = \\prod_i d_i`; ``w`` is ``(D, M)`` and ``b`` is ``(M,)``. Returns ``out``
    ``(N, M)`` and the cache ``(x, w, b)``.
    """
    x, w, b = _finite_array(x, "x"), _finite_array(w, "w"), _finite_array(b, "b")
    if x.ndim < 1:
        raise ValueError("x must have a leading batch axis, got a scalar")
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (D, M) matrix, got shape {w.shape}")
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != w.shape[0]:
        raise ValueError(f"w has {w.shape[0]} rows, but x has {flat.shape[1]} features per example")
    if b.shape != (w.shape[1],):
        raise ValueError(f"b must have shape ({w.shape[1]},) to match w, got {b.shape}")
    return flat @ w + b, (x, w, b)


def affine_backward(dout: Any, cache: AffineCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the affine layer.

    .. math::
        \\frac{\\partial L}{\\partial \\tilde x} = \\delta W^\\top, \\qquad
        \\frac{\\partial L}{\\partial W} = \\tilde x^\\top \\delta, \\qquad
        \\frac{\\partial L}{\\partial b} = \\textstyle\\sum_n \\delta_n

    with :math:`\\delta` = ``dout`` of shape ``(N, M)``; ``dx`` is reshaped back to ``x``'s shape.
    """
    x, w, b = _unpack(cache, 3, "cache")
    dout = _finite_array(dout, "dout")
    if dout.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"dout must have shape {(x.shape[0], w.shape[1])}, got {dout.shape}")
    flat = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), flat.T @ dout, dout.sum(axis=0)


def relu_forward(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rectified linear unit :math:`\\max(0, x)`, elementwise. The cache is ``x``."""
    x = _finite_array(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dout: Any, cache: np.ndarray) -> np.ndarray:
    """:math:`\\partial L/\\partial x = \\delta \\cdot \\mathbb{1}[x > 0]` (the subgradient 0 at :math:`x = 0`)."""
    x = _finite_array(cache, "cache")
    dout = _finite_array(dout, "dout")
    check_same_shape(x, "cache", dout, "dout")
    return dout * (x > 0)


def softmax_loss(x: Any, y: Any) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of class scores ``x`` ``(N, C)`` for integer labels ``y`` ``(N,)``.

    .. math::
        L = -\\frac1N \\sum_n \\log \\frac{e^{x_{n y_n}}}{\\sum_c e^{x_{nc}}}, \\qquad
        \\frac{\\partial L}{\\partial x_{nc}} = \\frac1N\\big(\\operatorname{softmax}(x_n)_c - \\mathbb{1}[c = y_n]\\big)

    The log-softmax is computed stably by ``scipy.special.log_softmax``.
    """
    x = _finite_array(x, "x")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, C) array of scores, got shape {x.shape}")
    labels = _labels(y, x.shape[0], x.shape[1], "y")
    n = x.shape[0]
    log_probs = log_softmax(x, axis=1)
    loss = -float(log_probs[np.arange(n), labels].mean())
    dx = np.exp(log_probs)
    dx[np.arange(n), labels] -= 1
    return loss, dx / n


def _labels(y: Any, n: int, num_classes: int, name: str) -> np.ndarray:
    """``y`` as an int array of shape ``(n,)`` with values in ``[0, num_classes)``."""
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    return labels


def _check_dropout_param(dropout_param: Any) -> tuple[float, str, Any]:
    if not isinstance(dropout_param, dict):
        raise ValueError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    unknown = set(dropout_param) - _DROPOUT_KEYS
    if unknown:
        raise ValueError(f"dropout_param has unknown key(s) {sorted(unknown)}; known: {sorted(_DROPOUT_KEYS)}")
    if "p" not in dropout_param or "mode" not in dropout_param:
        raise ValueError("dropout_param needs the keys 'p' (keep probability) and 'mode' ('train' or 'test')")
    p = check_probability(dropout_param["p"], "dropout_param['p']")
    mode = dropout_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    seed = dropout_param.get("seed")
    if seed is not None and not isinstance(seed, np.random.Generator):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"dropout_param['seed'] must be a non-negative int or a Generator, got {seed!r}")
    return p, mode, seed


def dropout_forward(x: Any, dropout_param: dict[str, Any]) -> tuple[np.ndarray, DropoutCache]:
    """Inverted dropout: keep each unit with probability :math:`p` and divide the kept ones by :math:`p`.

    .. math::
        m_i \\sim \\text{Bernoulli}(p), \\qquad \\text{out} = \\frac{m \\odot x}{p}
        \\quad\\text{(train)}, \\qquad \\text{out} = x \\quad\\text{(test)}

    so that :math:`\\mathbb{E}[\\text{out}] = x` in training and the test-time pass needs no
    scaling. ``dropout_param`` keys (CS231n convention): ``p`` the **keep** probability in
    :math:`(0, 1]`, ``mode`` ``"train"`` or ``"test"``, optional ``seed`` (an int for a
    reproducible mask, or a ``numpy.random.Generator`` to draw from). The cache is
    ``(dropout_param, mask)`` with the scaled mask :math:`m/p` (``None`` in test mode).
    """
    x = _finite_array(x, "x")
    p, mode, seed = _check_dropout_param(dropout_param)
    if mode == "test":
        return x.copy(), (dropout_param, None)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mask = (rng.random(x.shape) < p).astype(x.dtype) / x.dtype.type(p)
    return x * mask, (dropout_param, mask)


def dropout_backward(dout: Any, cache: DropoutCache) -> np.ndarray:
    """Gradient of inverted dropout: :math:`\\partial L/\\partial x = \\delta \\odot m / p` in
    training (the stored mask), and :math:`\\delta` unchanged in test mode."""
    dropout_param, mask = _unpack(cache, 2, "cache")
    _, mode, _ = _check_dropout_param(dropout_param)
    dout = _finite_array(dout, "dout")
    if mode == "test":
        return dout.copy()
    check_same_shape(mask, "the cached mask", dout, "dout")
    return dout * mask


def _unpack(cache: Any, length: int, name: str) -> tuple:
    if not isinstance(cache, tuple) or len(cache) != length:
        raise ValueError(f"{name} must be the {length}-tuple returned by the forward pass")
    return cache
