"""Reference first-order update rules in NumPy, with the classic CS231n API.

Every rule has the signature ::

    next_w, config = rule(w, dw, config=None)

``w`` are the current weights, ``dw`` the gradient of the loss at ``w`` and ``config`` a dict of
hyperparameters and optimizer state. Missing keys get the CS231n defaults. The rule returns the
new weights as a fresh array (``w`` and ``dw`` are never modified) and the same ``config`` dict,
whose state arrays (``velocity``, ``cache``, ``m``, ``v``) are updated in place and owned by the
config: pass it back in on the next step. Bad input raises ``ValueError`` naming the argument.

A NaN or infinity in ``w`` or ``dw`` is caught in the same pass that computes the update (see
:func:`_update_blocks`): every such input makes the new weights non-finite, so each block of new
weights is checked while it is still in the cache, with one dot product of the block with itself.
That check reads every new weight once more, from the cache. On a 10M-element float32 step it
cost 2.6-3.3 % of Adam, 3.4-4.5 % of RMSProp and AdaGrad, 2.7-4.2 % of Nesterov momentum,
5.0-6.5 % of SGD with momentum and 6.5-8.6 % of plain SGD (two runs on the course's shared 2-core
machine, one of them ``benchmarks/optim_step.py --threads 2``; each range spans the step with the
check minus the step without it and the time clocked inside the check), where separate
``np.isfinite`` checks of both inputs cost 22 % of Adam and 49 % of SGD with momentum. The two SGD
rules do so little arithmetic per weight that one more read of each new weight from the cache is
more than 5 % of their step; no check that reads every element can be much cheaper (see
:func:`~cs231n_utils.validation.maybe_non_finite`). The price: when that ``ValueError`` is
raised, the state arrays of ``config`` may already be partly updated, so discard that config (the
weights ``w`` are never modified).

Each rule writes its textbook formula once, and applies it to blocks of ``BLOCK_SIZE`` elements
at a time (:func:`_blocks`): the intermediate arrays of a block stay in the CPU cache instead of
streaming through main memory, which makes a step on millions of parameters about twice as fast
as the same formula on whole arrays (``benchmarks/optim_step.py`` measures it).

Notation in the docstrings: :math:`\\eta` learning rate, :math:`g = \\nabla_w L` the gradient,
:math:`\\rho` momentum, :math:`\\epsilon` the numerical-stability constant.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from .validation import (
    as_float_array,
    check_finite,
    check_positive,
    check_same_shape,
    check_unit_interval,
    maybe_non_finite,
)

Config = dict[str, Any]
UpdateRule = Callable[[np.ndarray, np.ndarray, "Config | None"], tuple[np.ndarray, Config]]

__all__ = ["sgd", "sgd_momentum", "nesterov_momentum", "adagrad", "rmsprop", "adam", "UPDATE_RULES"]

# Hyperparameter name -> validator; a rule's defaults decide which of these it accepts.
_HYPERPARAMETER_CHECKS = {
    "learning_rate": check_positive,
    "momentum": check_unit_interval,
    "decay_rate": check_unit_interval,
    "beta1": check_unit_interval,
    "beta2": check_unit_interval,
    "epsilon": check_positive,
}


def _prepare(
    w: Any, dw: Any, config: Config | None, defaults: dict[str, float], state: tuple[str, ...] = ()
) -> tuple[np.ndarray, np.ndarray, Config]:
    """Validate the inputs, fill in default hyperparameters and zero state, and return them."""
    w = as_float_array(w, "w")
    dw = as_float_array(dw, "dw")
    check_same_shape(w, "w", dw, "dw")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise ValueError(f"config must be a dict or None, got {type(config).__name__}")
    unknown = set(config) - set(defaults) - set(state) - {"t"}
    if unknown:
        known = ", ".join(sorted([*defaults, *state]))
        raise ValueError(f"config has unknown key(s) {sorted(unknown)}; this rule knows: {known}")
    for key, default in defaults.items():
        config[key] = _HYPERPARAMETER_CHECKS[key](config.get(key, default), f"config['{key}']")
    for key in state:
        if key not in config:
            config[key] = np.zeros_like(w)
        else:
            buffer = as_float_array(config[key], f"config['{key}']")
            check_same_shape(w, "w", buffer, f"config['{key}']")
            config[key] = buffer
    return w, dw, config


BLOCK_SIZE = 1 << 15
"""Elements per block: a block of every operand and its temporaries fit in the CPU's cache.

Chosen by measurement on the course's shared 2-core machine (10M elements, one round robin): with
:math:`2^{15}` a float32 Adam step took 53 ms, against 55 ms with :math:`2^{14}` and 88 ms with
:math:`2^{16}` (SGD 17.6, 20.7 and 32.2 ms; float64 Adam 117, 119 and 159 ms). The slow
:math:`2^{16}` case is the allocator's: with glibc's ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` raised to 1 GB, :math:`2^{16}` was as fast as :math:`2^{15}`, so the
time went into handing each block's temporaries back to the operating system and faulting them in
again."""


def _blocks(*arrays: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Aligned flat views of ``BLOCK_SIZE`` elements of same-shape arrays; writing into a view
    writes into its array. Yields the whole arrays once when one is not C-contiguous (no flat view)."""
    if not all(array.flags.c_contiguous for array in arrays):
        yield arrays
        return
    flat = [array.reshape(-1) for array in arrays]
    for start in range(0, flat[0].size, BLOCK_SIZE):
        yield tuple(array[start : start + BLOCK_SIZE] for array in flat)


def _update_blocks(
    next_w: np.ndarray, w: np.ndarray, dw: np.ndarray, *state: np.ndarray
) -> Iterator[tuple[np.ndarray, ...]]:
    """:func:`_blocks` of ``(next_w, w, dw, *state)`` that checks each block of new weights once the
    loop body has written it, while it is still in the cache.

    A NaN or infinity in ``w`` or ``dw`` makes the new weights non-finite in every rule here (the
    learning rate is > 0, and :math:`\\infty/\\sqrt{\\infty}` is NaN). Non-finite new weights
    therefore trigger the full :func:`check_finite` of both inputs, which raises ``ValueError``
    naming the culprit; if both are finite the update merely overflowed and the loop goes on.
    """
    inputs_checked = False
    for block in _blocks(next_w, w, dw, *state):
        yield block
        if not inputs_checked and maybe_non_finite(block[0].reshape(-1)):
            check_finite(w, "w")
            check_finite(dw, "dw")
            inputs_checked = True


def _new_weights(w: np.ndarray, dw: np.ndarray) -> np.ndarray:
    return np.empty(w.shape, dtype=np.result_type(w, dw))


def sgd(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Vanilla stochastic gradient descent.

    .. math:: w_{t+1} = w_t - \\eta\\, g_t

    config: ``learning_rate`` (default 1e-2).
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2})
    lr = config["learning_rate"]
    next_w = _new_weights(w, dw)
    for new, w_, g in _update_blocks(next_w, w, dw):
        new[...] = w_ - lr * g
    return next_w, config


def sgd_momentum(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """SGD with momentum: the velocity is a running sum of gradients with friction :math:`\\rho`.

    .. math::
        v_{t+1} = \\rho\\, v_t - \\eta\\, g_t, \\qquad w_{t+1} = w_t + v_{t+1}

    config: ``learning_rate`` (1e-2), ``momentum`` :math:`\\rho` (0.9), state ``velocity`` (zeros).
    Equals ``torch.optim.SGD(momentum=rho)`` with :math:`v_\\text{torch} = -v / \\eta`.
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",))
    lr, rho = config["learning_rate"], config["momentum"]
    next_w = _new_weights(w, dw)
    for new, w_, g, v in _update_blocks(next_w, w, dw, config["velocity"]):
        v *= rho
        v -= lr * g
        np.add(w_, v, out=new)
    return next_w, config


def nesterov_momentum(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Nesterov momentum in the change of variables that needs only the gradient at ``w``.

    Nesterov evaluates the gradient at the look-ahead point :math:`w_t + \\rho v_t`. Writing
    :math:`\\tilde w_t = w_t + \\rho v_t` for that point and renaming it :math:`w` gives

    .. math::
        v_{t+1} = \\rho\\, v_t - \\eta\\, g_t, \\qquad
        w_{t+1} = w_t - \\rho\\, v_t + (1 + \\rho)\\, v_{t+1}
        \\;(= w_t + v_{t+1} + \\rho\\,(v_{t+1} - v_t)).

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), state ``velocity`` (zeros).
    Equals ``torch.optim.SGD(momentum=rho, nesterov=True)``.
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",))
    lr, rho = config["learning_rate"], config["momentum"]
    next_w = _new_weights(w, dw)
    for new, w_, g, v in _update_blocks(next_w, w, dw, config["velocity"]):
        v_prev = v.copy()
        v *= rho
        v -= lr * g
        new[...] = w_ - rho * v_prev + (1 + rho) * v
    return next_w, config


def adagrad(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """AdaGrad: divide each coordinate's step by the root of its summed squared gradients.

    .. math::
        c_{t+1} = c_t + g_t^2, \\qquad w_{t+1} = w_t - \\eta\\, \\frac{g_t}{\\sqrt{c_{t+1}} + \\epsilon}

    The sum only grows, so the effective step size shrinks towards zero over training.
    config: ``learning_rate`` (1e-2), ``epsilon`` (1e-8), state ``cache`` (zeros).
    Equals ``torch.optim.Adagrad(eps=epsilon)``.
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2, "epsilon": 1e-8}, ("cache",))
    lr, eps = config["learning_rate"], config["epsilon"]
    next_w = _new_weights(w, dw)
    for new, w_, g, cache in _update_blocks(next_w, w, dw, config["cache"]):
        cache += g * g
        new[...] = w_ - lr * g / (np.sqrt(cache) + eps)
    return next_w, config


def rmsprop(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """RMSProp: AdaGrad with a *leaky* (exponentially decaying) average of squared gradients.

    .. math::
        c_{t+1} = \\beta\\, c_t + (1 - \\beta)\\, g_t^2, \\qquad
        w_{t+1} = w_t - \\eta\\, \\frac{g_t}{\\sqrt{c_{t+1}} + \\epsilon}

    config: ``learning_rate`` (1e-2), ``decay_rate`` :math:`\\beta` (0.99), ``epsilon`` (1e-8),
    state ``cache`` (zeros). Equals ``torch.optim.RMSprop(alpha=decay_rate)``.
    """
    defaults = {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}
    w, dw, config = _prepare(w, dw, config, defaults, ("cache",))
    lr, beta, eps = config["learning_rate"], config["decay_rate"], config["epsilon"]
    next_w = _new_weights(w, dw)
    for new, w_, g, cache in _update_blocks(next_w, w, dw, config["cache"]):
        cache *= beta
        cache += (1 - beta) * g * g
        new[...] = w_ - lr * g / (np.sqrt(cache) + eps)
    return next_w, config


def adam(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Adam: momentum's first moment plus RMSProp's second moment, both bias-corrected.

    .. math::
        t &\\leftarrow t + 1 \\\\
        m &\\leftarrow \\beta_1 m + (1 - \\beta_1)\\, g, \\qquad
        v \\leftarrow \\beta_2 v + (1 - \\beta_2)\\, g^2 \\\\
        \\hat m &= \\frac{m}{1 - \\beta_1^t}, \\qquad \\hat v = \\frac{v}{1 - \\beta_2^t}, \\qquad
        w \\leftarrow w - \\eta\\, \\frac{\\hat m}{\\sqrt{\\hat v} + \\epsilon}

    ``t`` is incremented *before* the bias correction, so the first step uses ``t = 1``.
    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8),
    state ``m``, ``v`` (zeros) and ``t`` (0). Equals ``torch.optim.Adam(betas=(beta1, beta2))``.
    """
    defaults = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    w, dw, config = _prepare(w, dw, config, defaults, ("m", "v"))
    t = config.get("t", 0)
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
        raise ValueError(f"config['t'] must be a non-negative integer, got {t!r}")
    lr, beta1, beta2, eps = config["learning_rate"], config["beta1"], config["beta2"], config["epsilon"]
    config["t"] = t = int(t) + 1
    next_w = _new_weights(w, dw)
    for new, w_, g, m, v in _update_blocks(next_w, w, dw, config["m"], config["v"]):
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        new[...] = w_ - lr * m_hat / (np.sqrt(v_hat) + eps)
    return next_w, config


UPDATE_RULES: dict[str, UpdateRule] = {
    rule.__name__: rule for rule in (sgd, sgd_momentum, nesterov_momentum, adagrad, rmsprop, adam)
}
