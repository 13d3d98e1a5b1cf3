"""Reference first-order update rules in NumPy, with the classic CS231n API.

Every rule has the signature ::

    next_w, config = rule(w, dw, config=None)

``w`` are the current weights, ``dw`` the gradient of the loss at ``w`` and ``config`` a dict of
hyperparameters and optimizer state. Missing keys get the CS231n defaults. The rule returns the
new weights as a fresh array (``w`` and ``dw`` are never modified) and the same ``config`` dict,
whose state arrays (``velocity``, ``cache``, ``m``, ``v``) are updated in place and owned by the
config: pass it back in on the next step. Bad input raises ``ValueError`` naming the argument.

The code allocates one array per step: ``next_w`` doubles as scratch space for the intermediate
terms (``out=`` and augmented assignments) instead of a temporary per expression as the textbook
form makes (``benchmarks/optim_step.py`` measures the difference). The docstrings give the
textbook formula each rule computes.

Notation in the docstrings: :math:`\\eta` learning rate, :math:`g = \\nabla_w L` the gradient,
:math:`\\rho` momentum, :math:`\\epsilon` the numerical-stability constant.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .validation import as_float_array, check_finite, check_positive, check_same_shape, check_unit_interval

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
    check_finite(w, "w")
    check_finite(dw, "dw")
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


def _scaled_step(w: np.ndarray, dw: np.ndarray, cache: np.ndarray, lr: float, eps: float, out: np.ndarray) -> np.ndarray:
    """:math:`w - \\eta\\, g / (\\sqrt{c} + \\epsilon)`, the step AdaGrad and RMSProp share, written into ``out``."""
    np.sqrt(cache, out=out)
    out += eps
    np.divide(dw, out, out=out)
    out *= -lr
    out += w
    return out


def sgd(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """Vanilla stochastic gradient descent.

    .. math:: w_{t+1} = w_t - \\eta\\, g_t

    config: ``learning_rate`` (default 1e-2).
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2})
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Any, dw: Any, config: Config | None = None) -> tuple[np.ndarray, Config]:
    """SGD with momentum: the velocity is a running sum of gradients with friction :math:`\\rho`.

    .. math::
        v_{t+1} = \\rho\\, v_t - \\eta\\, g_t, \\qquad w_{t+1} = w_t + v_{t+1}

    config: ``learning_rate`` (1e-2), ``momentum`` :math:`\\rho` (0.9), state ``velocity`` (zeros).
    Equals ``torch.optim.SGD(momentum=rho)`` with :math:`v_\\text{torch} = -v / \\eta`.
    """
    w, dw, config = _prepare(w, dw, config, {"learning_rate": 1e-2, "momentum": 0.9}, ("velocity",))
    v = config["velocity"]
    next_w = np.multiply(dw, config["learning_rate"])  # scratch: eta * g
    v *= config["momentum"]
    v -= next_w
    return np.add(w, v, out=next_w), config


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
    rho, v = config["momentum"], config["velocity"]
    next_w = np.multiply(v, -rho)  # -rho * v_t, before v is updated
    next_w += w
    v *= rho
    v -= config["learning_rate"] * dw
    next_w += (1 + rho) * v
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
    cache = config["cache"]
    next_w = np.multiply(dw, dw)  # scratch: g^2
    cache += next_w
    return _scaled_step(w, dw, cache, config["learning_rate"], config["epsilon"], out=next_w), config


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
    beta, cache = config["decay_rate"], config["cache"]
    next_w = np.multiply(dw, dw)  # scratch: (1 - beta) g^2
    next_w *= 1 - beta
    cache *= beta
    cache += next_w
    return _scaled_step(w, dw, cache, config["learning_rate"], config["epsilon"], out=next_w), config


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
    beta1, beta2, m, v = config["beta1"], config["beta2"], config["m"], config["v"]
    config["t"] = t = int(t) + 1
    next_w = np.multiply(dw, 1 - beta1)  # scratch: (1 - beta1) g
    m *= beta1
    m += next_w
    np.multiply(dw, dw, out=next_w)  # scratch: (1 - beta2) g^2
    next_w *= 1 - beta2
    v *= beta2
    v += next_w
    # With c1 = 1 - beta1^t and c2 = sqrt(1 - beta2^t), the bias-corrected step
    # eta (m / c1) / (sqrt(v) / c2 + eps) equals (eta c2 / c1) m / (sqrt(v) + eps c2): one pass fewer.
    c1, c2 = 1 - beta1**t, np.sqrt(1 - beta2**t)
    np.sqrt(v, out=next_w)
    next_w += config["epsilon"] * c2
    np.divide(m, next_w, out=next_w)
    next_w *= -config["learning_rate"] * c2 / c1
    next_w += w
    return next_w, config


UPDATE_RULES: dict[str, UpdateRule] = {
    rule.__name__: rule for rule in (sgd, sgd_momentum, nesterov_momentum, adagrad, rmsprop, adam)
}
