"""Grade inverted dropout, the L2 penalty and horizontal flipping against the course references.

Student APIs (the assignment ``regularization``), identical to the references':

- ``dropout_forward(x, dropout_param) -> (out, cache)`` and ``dropout_backward(dout, cache) -> dx``
  of :mod:`cs231n_utils.layers`: ``p`` is the **keep** probability, the mask is drawn as
  ``np.random.default_rng(dropout_param["seed"]).random(x.shape) < p`` and the cache is
  ``(dropout_param, mask / p)`` (``(dropout_param, None)`` in test mode);
- ``l2_penalty(weights, reg) -> (penalty, grads)`` of :mod:`cs231n_utils.regularization`, with
  :math:`R = \\frac{\\lambda}{2}\\sum_k \\|W_k\\|^2`;
- ``horizontal_flip(x, p, rng)``: one draw ``rng.random(N) < p`` decides which images are mirrored.

Since the random draws are prescribed, a correct answer reproduces the reference exactly.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import layers, regularization
from .function import Case, CaseGroup, FunctionMutant, check_function
from .guard import ReferenceWatch
from .report import GradeReport
from .update_rule import check_count

__all__ = ["check_dropout_forward", "check_dropout_backward", "check_l2_penalty", "check_horizontal_flip"]


def _watch(*modules: str) -> ReferenceWatch:
    return ReferenceWatch(modules, torch_optimizers=False)


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(2, 7, size=rng.integers(1, 4)))


# ----------------------------------------------------------------------------------- dropout
def _dropout_cases(rng: np.random.Generator, count: int, mode: str) -> tuple[Case, ...]:
    cases = []
    for _ in range(count):
        shape, p, seed = _shape(rng), float(rng.uniform(0.2, 0.9)), int(rng.integers(0, 2**31))
        param = {"p": p, "mode": mode, "seed": seed}
        cases.append(Case((rng.standard_normal(shape), param), description=f"x of shape {shape}, p={p:.3g}, mode={mode!r}"))
    return tuple(cases)


def _keep(x, param, p):
    return (np.random.default_rng(param["seed"]).random(x.shape) < p).astype(x.dtype)


def _dropout_no_division(x, param):
    if param["mode"] == "test":
        return x.copy(), (param, None)
    mask = _keep(x, param, param["p"])
    return x * mask, (param, mask)


def _dropout_vanilla(x, param):
    if param["mode"] == "test":
        return x * param["p"], (param, None)
    return _dropout_no_division(x, param)


def _dropout_drop_probability(x, param):
    if param["mode"] == "test":
        return x.copy(), (param, None)
    mask = _keep(x, param, 1 - param["p"]) / (1 - param["p"])
    return x * mask, (param, mask)


def _dropout_mask_not_stored(x, param):
    if param["mode"] == "test":
        return x.copy(), (param, None)
    mask = _keep(x, param, param["p"]) / param["p"]
    return x * mask, (param, None)


def _dropout_test_scaled(x, param):
    if param["mode"] == "test":
        return x * param["p"], (param, None)
    mask = _keep(x, param, param["p"]) / param["p"]
    return x * mask, (param, mask)


def _dropout_test_dropped(x, param):
    mask = _keep(x, param, param["p"]) / param["p"]
    return x * mask, (param, mask)


DROPOUT_FORWARD_MUTANTS = (
    FunctionMutant("no_division", "the kept units are not divided by p at train time: inverted dropout "
                   "scales by 1/p in training so that the test pass is the identity.", _dropout_no_division),
    FunctionMutant("vanilla_dropout", "this is the original, non-inverted dropout (no 1/p in training, "
                   "times p at test time); implement inverted dropout: divide by p in training, "
                   "return x unchanged at test time.", _dropout_vanilla),
    FunctionMutant("drop_probability", "p is treated as the drop probability; in the CS231n API p is "
                   "the probability of KEEPING a unit (keep where random < p).", _dropout_drop_probability),
    FunctionMutant("mask_not_stored", "the mask is not stored in the cache: return (dropout_param, mask) "
                   "so that the backward pass can use it.", _dropout_mask_not_stored),
    FunctionMutant("test_scaled", "test mode must be the identity with inverted dropout: do not multiply by p "
                   "at test time.", _dropout_test_scaled),
    FunctionMutant("test_dropped", "units are dropped in test mode too: at test time return x unchanged.",
                   _dropout_test_dropped),
)


def check_dropout_forward(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``dropout_forward(x, dropout_param)`` with :func:`cs231n_utils.layers.dropout_forward`.

    Properties (weight): train-mode output from the prescribed mask (2); the cache holds
    ``(dropout_param, mask / p)`` (1); test mode returns ``x`` unchanged (1); inputs unchanged (1).
    """
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    train, test = _dropout_cases(rng, 6, "train"), _dropout_cases(rng, 3, "test")
    groups = (
        CaseGroup("train mode: out = x * keep / p with the prescribed keep mask", 2, train,
                  lambda out: {"out": out[0]}),
        CaseGroup("train mode: the cache is (dropout_param, keep / p)", 1, train,
                  lambda out: {"cache's dropout_param": out[1][0], "cache's mask": out[1][1]}),
        CaseGroup("test mode: out = x and cache = (dropout_param, None)", 1, test,
                  lambda out: {"out": out[0], "cache's dropout_param": out[1][0], "cache's mask": out[1][1]}),
    )
    return check_function(student, layers.dropout_forward, groups, subject="dropout_forward",
                          mutants=DROPOUT_FORWARD_MUTANTS, watch=_watch("layers"))


def _backward_cases(rng: np.random.Generator, count: int, mode: str) -> tuple[Case, ...]:
    cases = []
    for case in _dropout_cases(rng, count, mode):
        x, param = case.args
        _, cache = layers.dropout_forward(x, param)
        cases.append(Case((rng.standard_normal(x.shape), cache), description=case.description))
    return tuple(cases)


def _backward_ignores_mask(dout, cache):
    return dout.copy()


def _backward_divides_again(dout, cache):
    param, mask = cache
    return dout.copy() if param["mode"] == "test" else dout * mask / param["p"]


def _backward_unscaled(dout, cache):
    param, mask = cache
    return dout.copy() if param["mode"] == "test" else dout * (mask != 0)


DROPOUT_BACKWARD_MUTANTS = (
    FunctionMutant("ignores_mask", "the backward pass does not use the mask: in training dx = dout * mask "
                   "(the cached mask already includes 1/p).", _backward_ignores_mask),
    FunctionMutant("divides_again", "the gradient is divided by p a second time: the cached mask is "
                   "already mask / p.", _backward_divides_again),
    FunctionMutant("unscaled_mask", "the 1/p scale is missing from the gradient: multiply by the cached "
                   "mask itself (mask / p), not by mask != 0.", _backward_unscaled),
)


def check_dropout_backward(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``dropout_backward(dout, cache)`` with :func:`cs231n_utils.layers.dropout_backward`
    on caches made by the reference forward pass (so a mistake in the student's forward does not
    cost twice). Properties (weight): train mode (2); test mode (1); inputs unchanged (1)."""
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    groups = (
        CaseGroup("train mode: dx = dout * cached mask (the cached mask already holds keep / p)", 2,
                  _backward_cases(rng, 6, "train"), lambda dx: {"dx": dx}),
        CaseGroup("test mode: dx = dout", 1, _backward_cases(rng, 3, "test"), lambda dx: {"dx": dx}),
    )
    return check_function(student, layers.dropout_backward, groups, subject="dropout_backward",
                          mutants=DROPOUT_BACKWARD_MUTANTS, watch=_watch("layers"))


# -------------------------------------------------------------------------------- L2 penalty
def _l2_cases(rng: np.random.Generator, count: int) -> tuple[Case, ...]:
    cases = []
    for _ in range(count):
        names = [f"W{i + 1}" for i in range(int(rng.integers(1, 4)))]
        weights = {name: rng.standard_normal(_shape(rng)) for name in names}
        reg = float(10 ** rng.uniform(-4, 0))
        cases.append(Case((weights, reg), description=f"weights {', '.join(names)}, reg={reg:.3g}"))
    return tuple(cases)


def _l2(weights, reg, *, loss_factor=0.5, grad_factor=1.0, accumulate=True):
    penalty, grads = 0.0, {}
    for name, w in weights.items():
        term = loss_factor * reg * float(np.sum(w * w))
        penalty = penalty + term if accumulate else term
        grads[name] = grad_factor * reg * w
    return penalty, grads


L2_MUTANTS = (
    FunctionMutant("no_half", "the factor one half is missing: R = 0.5 * reg * sum(W**2), whose gradient "
                   "is reg * W.", lambda w, reg: _l2(w, reg, loss_factor=1.0, grad_factor=2.0)),
    FunctionMutant("penalty_no_half", "the penalty lacks the factor one half: R = 0.5 * reg * sum(W**2) "
                   "(your gradient reg * W is right for that R, not for reg * sum(W**2)).",
                   lambda w, reg: _l2(w, reg, loss_factor=1.0)),
    FunctionMutant("gradient_factor_two", "the gradient of 0.5 * reg * sum(W**2) is reg * W, not 2 * reg * W.",
                   lambda w, reg: _l2(w, reg, grad_factor=2.0)),
    FunctionMutant("gradient_factor_half", "the gradient of 0.5 * reg * sum(W**2) is reg * W, not 0.5 * reg * W.",
                   lambda w, reg: _l2(w, reg, grad_factor=0.5)),
    FunctionMutant("not_accumulated", "the penalty is not summed over all weight arrays: only the last one counts.",
                   lambda w, reg: _l2(w, reg, accumulate=False)),
)


def check_l2_penalty(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``l2_penalty(weights, reg)`` with :func:`cs231n_utils.regularization.l2_penalty`.
    Properties (weight): the penalty (2), the gradients (2), inputs unchanged (1)."""
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    cases = _l2_cases(rng, 6)
    groups = (
        CaseGroup("penalty 0.5 * reg * (sum of squared weights of all arrays)", 2, cases,
                  lambda out: {"penalty": out[0]}),
        CaseGroup("gradients reg * W, one per weight array", 2, cases,
                  lambda out: {f"gradient of {name}": grad for name, grad in out[1].items()}),
    )
    return check_function(student, regularization.l2_penalty, groups, subject="l2_penalty", mutants=L2_MUTANTS,
                          watch=_watch("regularization"))


# --------------------------------------------------------------------------- horizontal flip
def _flip_cases(rng: np.random.Generator, probabilities: list[float]) -> tuple[Case, ...]:
    cases = []
    for p in probabilities:
        shape = (int(rng.integers(4, 13)), int(rng.integers(1, 4)), int(rng.integers(2, 6)), int(rng.integers(2, 6)))
        generator = np.random.default_rng(int(rng.integers(0, 2**31)))
        cases.append(Case((rng.standard_normal(shape), p, generator), description=f"x of shape {shape}, p={p:.3g}"))
    return tuple(cases)


def _flip(x, p, rng, *, decide=lambda draws, p: draws < p, axis=-1, per_image=True):
    draws = rng.random(x.shape[0]) if per_image else np.full(x.shape[0], rng.random())
    chosen = decide(draws, p)[:, None, None, None]
    return np.where(chosen, np.flip(x, axis=axis), x)


FLIP_MUTANTS = (
    FunctionMutant("vertical", "the images are flipped upside down: a horizontal flip reverses the last "
                   "axis (width), x[..., ::-1].", lambda x, p, rng: _flip(x, p, rng, axis=-2)),
    FunctionMutant("probability_inverted", "images are flipped with probability 1 - p: flip where "
                   "rng.random(N) < p.", lambda x, p, rng: _flip(x, p, rng, decide=lambda d, q: d >= q)),
    FunctionMutant("one_draw", "one random draw decides for the whole batch: draw one number per image, "
                   "rng.random(N).", lambda x, p, rng: _flip(x, p, rng, per_image=False)),
    FunctionMutant("channels", "the channel axis is reversed instead of the width axis.",
                   lambda x, p, rng: _flip(x, p, rng, axis=1)),
)


def check_horizontal_flip(student: Callable[..., Any], *, seed: int = 0) -> GradeReport:
    """Compare ``horizontal_flip(x, p, rng)`` with :func:`cs231n_utils.regularization.horizontal_flip`
    given generators in the same state. Properties (weight): random p (2); p = 0 and p = 1 (1);
    inputs unchanged (1)."""
    rng = np.random.default_rng(check_count(seed, "seed", 0))
    groups = (
        CaseGroup("flips exactly the images where rng.random(N) < p", 2,
                  _flip_cases(rng, [float(p) for p in rng.uniform(0.2, 0.8, size=5)])),
        CaseGroup("p = 0 flips nothing and p = 1 flips every image", 1, _flip_cases(rng, [0.0, 1.0])),
    )
    return check_function(student, regularization.horizontal_flip, groups, subject="horizontal_flip",
                          mutants=FLIP_MUTANTS, watch=_watch("regularization"))
