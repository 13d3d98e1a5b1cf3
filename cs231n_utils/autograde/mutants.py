"""Known buggy variants ("mutants") of the reference update rules, each naming its mistake.

When a student's rule disagrees with the reference, the checks run every mutant of that rule
on the same inputs; a mutant that reproduces the student's results exactly names the likely
mistake in the feedback. Each mutant below is the reference with one common bug, written out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..optim import Config, UpdateRule
from .rules import rule_spec

__all__ = ["Mutant", "mutants_for", "IN_PLACE"]


@dataclass(frozen=True)
class Mutant:
    """A buggy rule and the feedback sentence that explains its mistake."""

    name: str
    mistake: str
    rule: UpdateRule


def _filled(name: str, w: np.ndarray, config: Config | None) -> Config:
    """``config`` (a new dict if None) with the reference's defaults and zero state filled in."""
    spec = rule_spec(name)
    config = {} if config is None else config
    for key, value in spec.defaults.items():
        config.setdefault(key, value)
    for key in spec.state:
        config.setdefault(key, 0 if key == "t" else np.zeros_like(w))
    return config


def _state_not_stored(name: str) -> Mutant:
    """Computes the right step from fresh state every time: the state never reaches ``config``."""
    spec = rule_spec(name)

    def rule(w, dw, config=None):
        config = {} if config is None else config
        scratch = {k: v for k, v in config.items() if k not in spec.state}
        return spec.reference(w, dw, scratch)[0], config

    return Mutant(
        "state_not_stored",
        f"the state ({', '.join(spec.state)}) is not stored in the returned config, so every step "
        "starts again from zero state. Write the updated values back into config.",
        rule,
    )


def _hyperparameters_ignored(name: str) -> Mutant:
    """Uses the default hyperparameters whatever ``config`` says (hard-coded values)."""
    spec = rule_spec(name)

    def rule(w, dw, config=None):
        config = {} if config is None else config
        scratch = {k: config[k] for k in spec.state if k in config}
        next_w, scratch = spec.reference(w, dw, scratch)
        config.update({k: scratch[k] for k in spec.state})
        return next_w, config

    return Mutant(
        "hyperparameters_ignored",
        "the hyperparameters in config are ignored (hard-coded defaults?). Read "
        + ", ".join(f"config['{k}']" for k in spec.defaults)
        + ".",
        rule,
    )


# --- SGD with momentum: v <- rho v - lr g; w <- w + v ---------------------------------------


def _momentum_velocity_sign(w, dw, config=None):
    c = _filled("sgd_momentum", w, config)
    c["velocity"] = c["momentum"] * c["velocity"] - c["learning_rate"] * dw
    return w - c["velocity"], c


def _momentum_no_friction(w, dw, config=None):
    c = _filled("sgd_momentum", w, config)
    c["velocity"] = c["velocity"] - c["learning_rate"] * dw
    return w + c["velocity"], c


def _momentum_old_velocity(w, dw, config=None):
    c = _filled("sgd_momentum", w, config)
    next_w = w + c["velocity"]
    c["velocity"] = c["momentum"] * c["velocity"] - c["learning_rate"] * dw
    return next_w, c


# --- Nesterov: v <- rho v - lr g; w <- w - rho v_prev + (1 + rho) v -----------------------


def _nesterov_velocity_sign(w, dw, config=None):
    c = _filled("nesterov_momentum", w, config)
    rho, v_prev = c["momentum"], c["velocity"]
    c["velocity"] = rho * v_prev - c["learning_rate"] * dw
    return w + rho * v_prev - (1 + rho) * c["velocity"], c


def _nesterov_plain_momentum(w, dw, config=None):
    c = _filled("nesterov_momentum", w, config)
    c["velocity"] = c["momentum"] * c["velocity"] - c["learning_rate"] * dw
    return w + c["velocity"], c


def _nesterov_lookahead_sign(w, dw, config=None):
    c = _filled("nesterov_momentum", w, config)
    rho, v_prev = c["momentum"], c["velocity"]
    c["velocity"] = rho * v_prev - c["learning_rate"] * dw
    return w + rho * v_prev + (1 + rho) * c["velocity"], c


# --- AdaGrad: c <- c + g^2; w <- w - lr g / (sqrt(c) + eps) --------------------------------


def _adagrad_eps_inside_sqrt(w, dw, config=None):
    c = _filled("adagrad", w, config)
    c["cache"] = c["cache"] + dw * dw
    return w - c["learning_rate"] * dw / np.sqrt(c["cache"] + c["epsilon"]), c


def _adagrad_cache_not_accumulated(w, dw, config=None):
    c = _filled("adagrad", w, config)
    c["cache"] = dw * dw
    return w - c["learning_rate"] * dw / (np.sqrt(c["cache"]) + c["epsilon"]), c


def _adagrad_no_sqrt(w, dw, config=None):
    c = _filled("adagrad", w, config)
    c["cache"] = c["cache"] + dw * dw
    return w - c["learning_rate"] * dw / (c["cache"] + c["epsilon"]), c


# --- RMSProp: c <- beta c + (1 - beta) g^2; w <- w - lr g / (sqrt(c) + eps) ------------------


def _rmsprop_eps_inside_sqrt(w, dw, config=None):
    c = _filled("rmsprop", w, config)
    beta = c["decay_rate"]
    c["cache"] = beta * c["cache"] + (1 - beta) * dw * dw
    return w - c["learning_rate"] * dw / np.sqrt(c["cache"] + c["epsilon"]), c


def _rmsprop_cache_not_decayed(w, dw, config=None):
    c = _filled("rmsprop", w, config)
    c["cache"] = c["cache"] + dw * dw
    return w - c["learning_rate"] * dw / (np.sqrt(c["cache"]) + c["epsilon"]), c


def _rmsprop_decay_on_wrong_term(w, dw, config=None):
    c = _filled("rmsprop", w, config)
    beta = c["decay_rate"]
    c["cache"] = (1 - beta) * c["cache"] + beta * dw * dw
    return w - c["learning_rate"] * dw / (np.sqrt(c["cache"]) + c["epsilon"]), c


# --- Adam ------------------------------------------------------------------------------------


def _adam_moments(c: Config, dw: np.ndarray) -> None:
    c["m"] = c["beta1"] * c["m"] + (1 - c["beta1"]) * dw
    c["v"] = c["beta2"] * c["v"] + (1 - c["beta2"]) * dw * dw


def _adam_step(w, c: Config, t: int, *, eps_inside: bool = False):
    m_hat = c["m"] / (1 - c["beta1"] ** t)
    v_hat = c["v"] / (1 - c["beta2"] ** t)
    denominator = np.sqrt(v_hat + c["epsilon"]) if eps_inside else np.sqrt(v_hat) + c["epsilon"]
    return w - c["learning_rate"] * m_hat / denominator


def _adam_no_bias_correction(w, dw, config=None):
    c = _filled("adam", w, config)
    c["t"] += 1
    _adam_moments(c, dw)
    return w - c["learning_rate"] * c["m"] / (np.sqrt(c["v"]) + c["epsilon"]), c


def _adam_t_not_incremented(w, dw, config=None):
    c = _filled("adam", w, config)
    _adam_moments(c, dw)
    return _adam_step(w, c, c["t"] + 1), c


def _adam_t_incremented_after_correction(w, dw, config=None):
    c = _filled("adam", w, config)
    _adam_moments(c, dw)
    next_w = _adam_step(w, c, c["t"])
    c["t"] += 1
    return next_w, c


def _adam_eps_inside_sqrt(w, dw, config=None):
    c = _filled("adam", w, config)
    c["t"] += 1
    _adam_moments(c, dw)
    return _adam_step(w, c, c["t"], eps_inside=True), c


_EPS_INSIDE = "epsilon is inside the square root: use sqrt(...) + epsilon, not sqrt(... + epsilon)."

_SPECIFIC: dict[str, tuple[Mutant, ...]] = {
    "sgd_momentum": (
        Mutant("velocity_sign", "velocity sign: with v = rho*v - learning_rate*dw the step is w + v "
               "(your updates go uphill).", _momentum_velocity_sign),
        Mutant("no_friction", "the old velocity is not multiplied by the momentum rho "
               "(v = rho*v - learning_rate*dw).", _momentum_no_friction),
        Mutant("old_velocity", "the step uses the velocity from before this step's update; update v "
               "first, then step with the new v.", _momentum_old_velocity),
    ),
    "nesterov_momentum": (
        Mutant("velocity_sign", "velocity sign: v = rho*v - learning_rate*dw and the step adds "
               "-rho*v_prev + (1 + rho)*v (your updates go uphill).", _nesterov_velocity_sign),
        Mutant("plain_momentum", "this is plain momentum (w + v): the look-ahead correction "
               "-rho*v_prev + (1 + rho)*v is missing, or v_prev was not copied before v was "
               "updated in place.", _nesterov_plain_momentum),
        Mutant("lookahead_sign", "sign of the look-ahead term: the step is -rho*v_prev + (1 + rho)*v, "
               "not +rho*v_prev.", _nesterov_lookahead_sign),
    ),
    "adagrad": (
        Mutant("eps_inside_sqrt", _EPS_INSIDE, _adagrad_eps_inside_sqrt),
        Mutant("cache_not_accumulated", "the cache must accumulate the squared gradients "
               "(cache += dw**2), not be replaced by the latest one.", _adagrad_cache_not_accumulated),
        Mutant("no_sqrt", "divide by the square root of the cache, not by the cache itself.", _adagrad_no_sqrt),
    ),
    "rmsprop": (
        Mutant("eps_inside_sqrt", _EPS_INSIDE, _rmsprop_eps_inside_sqrt),
        Mutant("cache_not_decayed", "the cache is not decayed: this is AdaGrad's running sum. Use "
               "cache = decay_rate*cache + (1 - decay_rate)*dw**2.", _rmsprop_cache_not_decayed),
        Mutant("decay_on_wrong_term", "decay on the wrong term: decay_rate multiplies the old cache, "
               "(1 - decay_rate) the new squared gradient.", _rmsprop_decay_on_wrong_term),
    ),
    "adam": (
        Mutant("no_bias_correction", "no bias correction: divide m by (1 - beta1**t) and v by "
               "(1 - beta2**t) before the update.", _adam_no_bias_correction),
        Mutant("t_not_incremented", "t is not incremented (or not stored): every step uses the "
               "bias correction of step 1. Increment config['t'] on every call.", _adam_t_not_incremented),
        Mutant("t_incremented_after_correction", "t is incremented after the bias correction: increment "
               "it first, so the first step uses t = 1 (with t = 0 you divide by 1 - beta**0 = 0).",
               _adam_t_incremented_after_correction),
        Mutant("eps_inside_sqrt", _EPS_INSIDE, _adam_eps_inside_sqrt),
    ),
}


def _in_place_sgd(w, dw, config=None):
    """Plain SGD that updates ``w`` in place and returns it: right values, modified input."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config


IN_PLACE = Mutant(
    "in_place",
    "w is updated in place (w -= ..., w += ..., or an in-place NumPy call on w), which changes the "
    "caller's array. Compute a new array (next_w = w - ...) and leave w and dw unchanged.",
    _in_place_sgd,
)
"""Named whenever a rule modifies its input; its values can be right, so it is not in
:func:`mutants_for` (which lists mutants told apart by their values)."""


def mutants_for(name: str) -> tuple[Mutant, ...]:
    """The mutants of reference rule ``name``: its specific bugs plus the generic config bugs."""
    spec = rule_spec(name)
    generic = [_hyperparameters_ignored(name)]
    if spec.state:
        generic.append(_state_not_stored(name))
    return (*_SPECIFIC.get(name, ()), *generic)
