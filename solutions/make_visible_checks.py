"""Maintainer script: write the visible checks and the "How you are graded" block of every
assignment notebook in ``solutions/`` from the reference implementations.

    .venv/bin/python solutions/make_visible_checks.py
    .venv/bin/nbgrader generate_assignment <assignment> --force   # then refresh the release

A visible check (CS231n style) is a locked, *ungraded* cell ``check_<f>`` right after the answer
cell ``f``: fixed inputs written as literals, and for each compared quantity ("probe", e.g. the
position after step 2) the value the reference implementation gives, computed here once and
written into the cell. ``check_value`` prints the relative error; when it is above 1e-6 the cell
fails, naming every known mistake (a mutant of :mod:`cs231n_utils.autograde`) whose value at
that probe equals the student's. Each mutant's value is written only at the first probe where it
differs from the reference. The graded cell ``test_<f>`` then holds only a comment and the hidden
tests, so a failing visible check never costs the hidden tests' credit.

``tests/test_visible_checks.py`` checks that the notebooks equal what this script writes.
"""
from __future__ import annotations

import contextlib
import io
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nbformat
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cs231n_utils import layers, optim, regularization, torch_optim  # noqa: E402
from cs231n_utils.autograde import layer_checks, second_order_checks  # noqa: E402
from cs231n_utils.autograde import torch_optimizer as torch_checks  # noqa: E402
from cs231n_utils.autograde.function import IN_PLACE_MISTAKE  # noqa: E402
from cs231n_utils.autograde.mutants import IN_PLACE, mutants_for  # noqa: E402

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
GRADED_CELL_HEADER = ("# Hidden tests run here when your notebook is graded (see \"How you are graded\").\n"
                      "# They use other inputs than the visible check above, and run whatever it printed.\n\n")
CHECK_HEADER = ("# Visible check (not graded): fixed inputs, and the values a correct answer returns,\n"
                "# computed once from the reference implementation. If your value equals that of a\n"
                "# common mistake, the message names it. The hidden tests use other, random inputs.\n")
MATCH = 1e-6

HELPERS = '''\
def rel_error(x, y):
    """Largest relative error max |x - y| / max(1e-8, |x| + |y|), as in CS231n."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)), initial=0.0))


def matches(actual, value):
    """True when actual equals value (None only matches None, NaN only NaN) to a relative
    error below 1e-6."""
    if actual is None or value is None:
        return actual is None and value is None
    try:
        a, b = np.asarray(actual, dtype=np.float64), np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return rel_error(a[~np.isnan(a)], b[~np.isnan(b)]) < 1e-6


def check_value(name, actual, expected, mistakes=()):
    """Print how far `actual` is from the `expected` value of a correct answer; fail when it
    differs, naming the common mistakes (message, value) whose value equals `actual`."""
    if matches(actual, expected):
        error = 0.0 if expected is None else rel_error(actual, expected)
        print(f"{name}: relative error {error:.1e}")
        return
    if np.shape(actual) != np.shape(expected) or actual is None or expected is None:
        detail = f"got {type(actual).__name__} of shape {np.shape(actual)}, expected shape {np.shape(expected)}"
    else:
        detail = f"relative error {rel_error(actual, expected):.1e}"
    named = [message for message, value in mistakes if matches(actual, value)]
    hint = " Likely mistake: " + " | ".join(named) if named else " Compare your code with the text above."
    raise AssertionError(f"{name}: wrong value ({detail}).{hint}")
'''

RUN_STEPS = '''

def run_steps(rule, w, dws, config):
    """Call rule once per gradient, passing each returned config into the next call, and
    return the positions next_w after every step and the last config."""
    positions = []
    for step, dw in enumerate(dws, start=1):
        w_in = w.copy()
        result = rule(w_in, dw.copy(), config)
        assert isinstance(result, tuple) and len(result) == 2, f"step {step}: return (next_w, config)"
        next_w, config = result
        assert np.array_equal(w_in, w, equal_nan=True), f"step {step}: " + (
            {in_place})
        assert isinstance(config, dict), f"step {step}: return the config dict as the second value"
        positions.append(np.array(next_w, dtype=np.float64))
        w = positions[-1]
    return positions, config
'''


@dataclass(frozen=True)
class VisibleCheck:
    """The visible check of answer ``function``: ``inputs`` and ``run`` are code (literal inputs,
    then the calls, with structural asserts); each probe ``(label, expression)`` is compared with
    the reference's value; ``after`` is code run last (e.g. in-place checks)."""

    function: str
    inputs: str
    run: str
    probes: tuple[tuple[str, str], ...]
    reference: Any
    mutants: tuple[tuple[str, Any], ...]
    after: str = ""


def _number(value: float) -> str:
    if not np.isfinite(value):
        return "np.nan" if np.isnan(value) else "np.inf" if value > 0 else "-np.inf"
    text = f"{float(value):.9g}"
    return text if any(c in text for c in ".eEn") else text + ".0"


def literal(value: Any, indent: int = 0) -> str:
    """Python source that evaluates to ``value`` (None, an int, a float or an array); a long
    1-D array is broken into lines of six numbers, continued at column ``indent`` + 10."""
    if value is None:
        return "None"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return _number(array)

    def nested(a: np.ndarray) -> str:
        if a.ndim == 1:
            numbers = [_number(v) for v in a]
            rows = [", ".join(numbers[i:i + 6]) for i in range(0, len(numbers), 6)]
            return "[" + (",\n" + " " * (indent + 10)).join(rows) + "]"
        return "[" + ", ".join(nested(row) for row in a) + "]"

    if array.ndim == 1:
        return f"np.array({nested(array)})"
    rows = [nested(row) for row in array]  # one line per first-axis entry
    return "np.array([" + (",\n" + " " * (indent + 10)).join(rows) + "])"


def evaluate(check: VisibleCheck, implementation: Any, helpers: str) -> list[Any]:
    """The probes' values when ``check.function`` is ``implementation``."""
    namespace: dict[str, Any] = {"np": np, "torch": torch, "nn": nn}
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        exec(helpers, namespace)  # noqa: S102 - the script's own code
        namespace[check.function] = implementation
        exec(check.inputs + "\n" + check.run, namespace)  # noqa: S102
        values = [eval(expression, namespace) for _, expression in check.probes]  # noqa: S307
    return [None if v is None else v if isinstance(v, (int, np.integer)) else np.array(v, dtype=np.float64)
            for v in values]


def _matches(actual: Any, value: Any) -> bool:
    """The notebook's ``matches``, on values this script computed."""
    if actual is None or value is None:
        return actual is None and value is None
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(value, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0)) < MATCH


def probe_table(check: VisibleCheck, helpers: str) -> list[tuple[str, str, Any, list[tuple[str, Any]]]]:
    """Per probe: label, expression, the reference's value, and the (mistake, value) of every
    mutant whose first difference from the reference is at this probe."""
    expected = evaluate(check, check.reference, helpers)
    table = [(label, expression, value, []) for (label, expression), value in zip(check.probes, expected)]
    for mistake, mutant in check.mutants:
        values = evaluate(check, mutant, helpers)
        first = next((i for i, (v, e) in enumerate(zip(values, expected)) if not _matches(v, e)), None)
        if first is None:
            raise ValueError(f"{check.function}: the visible check cannot tell this mistake apart: {mistake}")
        table[first][3].append((mistake, values[first]))
    return table


def _assert(condition: str, message: str) -> str:
    """``assert condition, (message)`` with the message wrapped."""
    return f"assert {condition}, (\n    {_string(message, 4)})"


def _string(text: str, indent: int) -> str:
    """A string literal wrapped into implicitly concatenated pieces of at most ~90 columns."""
    pieces = textwrap.wrap(text, width=88 - indent, drop_whitespace=False)
    return ("\n" + " " * indent).join(repr(piece) for piece in pieces)


def cell_source(check: VisibleCheck, helpers: str) -> str:
    """The source of the visible-check cell ``check_<function>``."""
    lines = [CHECK_HEADER + check.inputs.strip(), "", check.run.strip(), ""] if check.run.strip() else [
        CHECK_HEADER + check.inputs.strip(), ""]
    for label, expression, value, mistakes in probe_table(check, helpers):
        lines.append(f"check_value({label!r}, {expression},")
        lines.append(f"            {literal(value, 12)},")
        if mistakes:
            lines.append("            [")
            for mistake, mutant_value in mistakes:
                lines.append(f"                ({_string(mistake, 17)},")
                lines.append(f"                 {literal(mutant_value, 17)}),")
            lines.append("            ])")
        else:
            lines[-1] = lines[-1][:-1] + ")"
    if check.after.strip():
        lines += ["", check.after.strip()]
    lines += ["print(\"All visible checks passed.\")"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- update rules
_RULE_CONFIGS = {
    "sgd_momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "nesterov_momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "adagrad": {"learning_rate": 0.1, "epsilon": 1e-4},
    "rmsprop": {"learning_rate": 0.01, "decay_rate": 0.9, "epsilon": 1e-4},
    "adam": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-4},
}
_RULE_STATE = {"sgd_momentum": ("velocity",), "nesterov_momentum": ("velocity",), "adagrad": ("cache",),
               "rmsprop": ("cache",), "adam": ("m", "v", "t")}


def _gradients(seed: int, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Gradients with two decimals, one entry 0.001 (its square is comparable to epsilon)."""
    rng = np.random.default_rng(seed)
    grads = [np.round(rng.uniform(-1.0, 1.0, size=shape), 2) for shape in shapes]
    for g in grads:
        g.flat[1] = 0.001
        g[g == 0] = 0.05
    return grads


def update_rule_check(name: str) -> VisibleCheck:
    dws = _gradients(12, [(2, 3)] * 3)
    inputs = "\n".join([
        "w = np.array([[-0.4, -0.2, 0.1], [0.2, 0.4, 0.6]])",
        "dws = [  # one gradient per step",
        *[f"    {literal(dw)}," for dw in dws],
        "]",
        f"config = {_RULE_CONFIGS[name]!r}",
    ])
    keys = _RULE_STATE[name]
    run = "\n".join([
        f"default_w, _ = {name}(w.copy(), dws[0].copy())  # config=None: the default hyperparameters",
        f"positions, final_config = run_steps({name}, w, dws, dict(config))",
    ])
    after = (f"assert {{{', '.join(repr(k) for k in keys)}}} <= set(final_config), "
             f"\"keep the state in config: {', '.join(repr(k) for k in keys)}\"")
    probes = (("first step with config=None (default hyperparameters)", "default_w"),
              ("step 1", "positions[0]"), ("step 2", "positions[1]"), ("step 3", "positions[2]"))
    mutants = tuple((m.mistake, m.rule) for m in mutants_for(name))
    return VisibleCheck(name, inputs, run, probes, getattr(optim, name), mutants, after)


# ---------------------------------------------------------------------------- torch optimizer
CLOSURE_MISTAKE = ("step(closure) must call the closure once (inside torch.enable_grad()) and "
                   "return the loss it returns.")


class _AdamVariant(torch.optim.Optimizer):
    """Adam with switches that reproduce common mistakes (the mutants of the torch exercise)."""

    bias_correction, counter, reads_defaults, uses_closure, eps_inside = True, "per_parameter", False, True, False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self.global_t = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None and self.uses_closure:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            source = self.defaults if self.reads_defaults else group
            lr, (beta1, beta2), eps = source["lr"], source["betas"], source["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(t=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                if self.counter == "global":
                    self.global_t += 1
                    t = self.global_t
                elif self.counter == "frozen":
                    t = 1
                else:
                    state["t"] += 1
                    t = state["t"]
                m = state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v = state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat, v_hat = (m / (1 - beta1**t), v / (1 - beta2**t)) if self.bias_correction else (m, v)
                denominator = (v_hat + eps).sqrt() if self.eps_inside else v_hat.sqrt() + eps
                p.sub_(lr * m_hat / denominator)
        return loss


def _adam_variant(**switches: Any) -> type:
    return type("Adam", (_AdamVariant,), switches)


def torch_adam_check() -> VisibleCheck:
    numpy_mistakes = {m.name: m.mistake for m in mutants_for("adam")}
    shapes = [(2, 3), (3,), (2, 2)]
    starts = _gradients(5, shapes)
    steps = [_gradients(20 + k, shapes) for k in range(3)]
    inputs = "\n".join([
        "W = [" + ", ".join(literal(w) for w in starts) + "]",
        "GRADS = [  # per step, one gradient per parameter",
        *["    [" + ", ".join(literal(g) for g in grads) + "]," for grads in steps],
        "]",
    ])
    run = '''
params = [torch.nn.Parameter(torch.tensor(w)) for w in W]
optimizer = Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.05, "betas": (0.6, 0.9)}],
                 lr=0.01, betas=(0.8, 0.95), eps=1e-4)
calls, losses, positions = [], [], []


def closure():
    calls.append(1)
    return torch.tensor(0.5, dtype=torch.float64)


for grads in GRADS:
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    losses.append(optimizer.step(closure))
    assert all(torch.equal(p.grad, torch.tensor(g)) for p, g in zip(params, grads)), "step() must not modify p.grad"
    positions.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
'''
    probes = (("closure calls in 3 steps", "len(calls)"),
              ("loss returned by step(closure)", "None if losses[0] is None else float(losses[0])"),
              ("step 1, all parameters", "positions[0]"), ("step 2, all parameters", "positions[1]"),
              ("step 3, all parameters", "positions[2]"))
    mutants = (
        (CLOSURE_MISTAKE, _adam_variant(uses_closure=False)),
        (numpy_mistakes["no_bias_correction"], _adam_variant(bias_correction=False)),
        (numpy_mistakes["eps_inside_sqrt"], _adam_variant(eps_inside=True)),
        (torch_checks.READS_DEFAULTS, _adam_variant(reads_defaults=True)),
        (torch_checks.GLOBAL_STEP_COUNTER, _adam_variant(counter="global")),
        (numpy_mistakes["t_not_incremented"], _adam_variant(counter="frozen")),
    )
    return VisibleCheck("Adam", inputs, run, probes, torch_optim.Adam, mutants)


# ------------------------------------------------------------------------------ second order
def _spd(seed: int, dim: int) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    basis = np.round(rng.uniform(-1, 1, size=(dim, dim)), 1)
    return basis @ basis.T + np.eye(dim), rng


def newton_check() -> VisibleCheck:
    hessian, rng = _spd(7, 4)
    grad = np.round(rng.uniform(-1, 1, size=4), 2)
    inputs = f"grad = {literal(grad)}\nhessian = {literal(hessian)}  # symmetric positive definite"
    after = ("g, h = grad.copy(), hessian.copy()\nnewton_step(g, h, damping=2.0)\n"
             + _assert("np.array_equal(g, grad) and np.array_equal(h, hessian)", IN_PLACE_MISTAKE))
    probes = (("undamped step", "newton_step(grad.copy(), hessian.copy())"),
              ("damped step, damping=2", "newton_step(grad.copy(), hessian.copy(), damping=2.0)"))
    mutants = tuple((m.mistake, m.function) for m in second_order_checks.NEWTON_MUTANTS)
    return VisibleCheck("newton_step", inputs, "", probes, second_order_checks.reference_newton_step, mutants, after)


def two_loop_check() -> VisibleCheck:
    hessian, rng = _spd(3, 4)
    s_history = [np.round(rng.uniform(-1, 1, size=4), 2) for _ in range(3)]
    y_history = [np.round(hessian @ s + rng.uniform(-0.1, 0.1, size=4), 2) for s in s_history]
    if min(s @ y for s, y in zip(s_history, y_history)) <= 0:
        raise ValueError("the visible curvature pairs must have s @ y > 0")
    grad = np.round(rng.uniform(-1, 1, size=4), 2)
    inputs = "\n".join([
        f"grad = {literal(grad)}",
        "s_history = [  # oldest first",
        *[f"    {literal(s)}," for s in s_history], "]",
        "y_history = [  # s @ y > 0 for every pair",
        *[f"    {literal(y)}," for y in y_history], "]",
    ])
    after = ("s_copies, y_copies = [s.copy() for s in s_history], [y.copy() for y in y_history]\n"
             "two_loop_recursion(grad.copy(), s_copies, y_copies)\n"
             "assert len(s_copies) == len(y_copies) == 3 and all(\n"
             "    np.array_equal(a, b) for a, b in zip(s_copies + y_copies, s_history + y_history)), (\n"
             f"    {_string(IN_PLACE_MISTAKE, 4)})")
    pairs = "[s.copy() for s in s_history{0}], [y.copy() for y in y_history{0}]"
    probes = (("no pairs: r = grad", "two_loop_recursion(grad.copy(), [], [])"),
              ("one pair (the newest)", f"two_loop_recursion(grad.copy(), {pairs.format('[-1:]')})"),
              ("three pairs", f"two_loop_recursion(grad.copy(), {pairs.format('')})"))
    mutants = tuple((m.mistake, m.function) for m in second_order_checks.TWO_LOOP_MUTANTS)
    return VisibleCheck("two_loop_recursion", inputs, "", probes, second_order_checks.reference_two_loop, mutants, after)


# ---------------------------------------------------------------------------- regularization
def _fixed(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.round(np.random.default_rng(seed).uniform(-1, 1, size=shape), 2)


def dropout_forward_check() -> VisibleCheck:
    inputs = "\n".join([
        f"x = {literal(_fixed(1, (3, 4)))}",
        'train = {"p": 0.6, "mode": "train", "seed": 3}  # p is the probability of KEEPING a unit',
        'test = {"p": 0.6, "mode": "test", "seed": 3}',
    ])
    run = ("out, cache = dropout_forward(x.copy(), dict(train))\n"
           "assert isinstance(cache, tuple) and len(cache) == 2, \"return cache = (dropout_param, mask)\"")
    after = ("x_in = x.copy()\ndropout_forward(x_in, dict(train))\n"
             + _assert("np.array_equal(x_in, x)", IN_PLACE_MISTAKE))
    probes = (("train mode: out", "dropout_forward(x.copy(), dict(train))[0]"),
              ("train mode: cache[1], the scaled mask", "dropout_forward(x.copy(), dict(train))[1][1]"),
              ("test mode: out", "dropout_forward(x.copy(), dict(test))[0]"),
              ("test mode: cache[1]", "dropout_forward(x.copy(), dict(test))[1][1]"))
    mutants = tuple((m.mistake, m.function) for m in layer_checks.DROPOUT_FORWARD_MUTANTS)
    return VisibleCheck("dropout_forward", inputs, run, probes, layers.dropout_forward, mutants, after)


def dropout_backward_check() -> VisibleCheck:
    inputs = "\n".join([
        f"dout = {literal(_fixed(2, (3, 4)))}",
        'train = {"p": 0.6, "mode": "train", "seed": 3}',
        'test = {"p": 0.6, "mode": "test", "seed": 3}',
        "mask = (np.random.default_rng(3).random((3, 4)) < 0.6) / 0.6  # as dropout_forward caches it",
    ])
    after = ("dout_in = dout.copy()\ndropout_backward(dout_in, (dict(train), mask.copy()))\n"
             + _assert("np.array_equal(dout_in, dout)", IN_PLACE_MISTAKE))
    probes = (("train mode: dx", "dropout_backward(dout.copy(), (dict(train), mask.copy()))"),
              ("test mode: dx", "dropout_backward(dout.copy(), (dict(test), None))"))
    mutants = tuple((m.mistake, m.function) for m in layer_checks.DROPOUT_BACKWARD_MUTANTS)
    return VisibleCheck("dropout_backward", inputs, "", probes, layers.dropout_backward, mutants, after)


def l2_check() -> VisibleCheck:
    inputs = f'weights = {{"W1": {literal(_fixed(4, (2, 3)))}, "W2": {literal(_fixed(5, (3,)))}}}\nreg = 0.1'
    run = ("penalty, grads = l2_penalty({name: w.copy() for name, w in weights.items()}, reg)\n"
           "assert set(grads) == set(weights), \"return one gradient per weight array, with the same keys\"")
    after = ("copies = {name: w.copy() for name, w in weights.items()}\nl2_penalty(copies, reg)\n"
             + _assert("all(np.array_equal(copies[k], weights[k]) for k in weights)", IN_PLACE_MISTAKE))
    probes = (("gradient of W1", 'grads["W1"]'), ("gradient of W2", 'grads["W2"]'), ("penalty", "penalty"))
    mutants = tuple((m.mistake, m.function) for m in layer_checks.L2_MUTANTS)
    return VisibleCheck("l2_penalty", inputs, run, probes, regularization.l2_penalty, mutants, after)


def flip_check() -> VisibleCheck:
    inputs = f"# 4 images, 2 channels, 2 x 3 pixels\nx = {literal(_fixed(6, (4, 2, 2, 3)))}"
    after = ("x_in = x.copy()\nhorizontal_flip(x_in, 1.0, np.random.default_rng(0))\n"
             + _assert("np.array_equal(x_in, x)", IN_PLACE_MISTAKE))
    probes = (("p = 0.6 with rng seed 1", "horizontal_flip(x.copy(), 0.6, np.random.default_rng(1))"),
              ("p = 0", "horizontal_flip(x.copy(), 0.0, np.random.default_rng(1))"),
              ("p = 1", "horizontal_flip(x.copy(), 1.0, np.random.default_rng(1))"))
    mutants = tuple((m.mistake, m.function) for m in layer_checks.FLIP_MUTANTS)
    return VisibleCheck("horizontal_flip", inputs, "", probes, regularization.horizontal_flip, mutants, after)


NUMERIC_CHECKS: dict[str, tuple[Callable[[], VisibleCheck], ...]] = {
    "update_rules": tuple((lambda n=n: update_rule_check(n)) for n in _RULE_CONFIGS),
    "torch_optimizer": (torch_adam_check,),
    "second_order": (newton_check, two_loop_check),
    "regularization": (dropout_forward_check, dropout_backward_check, l2_check, flip_check),
}


def helpers_for(assignment: str) -> str:
    """The helper cell: ``rel_error`` and ``check_value``, and ``run_steps`` for update rules."""
    if assignment != "update_rules":
        return HELPERS
    return HELPERS + RUN_STEPS.replace("{in_place}", _string(IN_PLACE.mistake, 12))


# --------------------------------------------------------------------- transfer learning checks
TRANSFER_CHECKS = {
    "freeze": '''\
# Visible check (not graded). The hidden tests use other models.
model = DigitsCNN(num_classes=5)  # a new module is in training mode
returned = freeze(model.block1)
assert returned is model.block1, "return the module"
assert not any(p.requires_grad for p in model.block1.parameters()), "every parameter of block1 must be frozen"
assert all(p.requires_grad for p in model.head.parameters()), "freeze only the module you are given"
assert model.block1.training, ("freeze switched the module to eval mode (.eval()): freezing only sets "
                               "requires_grad = False; leave the train/eval mode as it was")
print("All visible checks passed.")''',
    "replace_head": '''\
# Visible check (not graded). The hidden tests use other models and attribute names.
model = freeze(DigitsCNN(num_classes=5, hidden=32))  # a head with 32 inputs, not 64
head = replace_head(model, 3)
assert isinstance(head, nn.Linear) and model.head is head, "install the new layer and return it"
assert head.in_features == 32, ("the new layer's number of inputs is hard-coded: read it from the old "
                                "layer, nn.Linear(old.in_features, num_classes)")
assert head.out_features == 3, "the new layer must have num_classes outputs"
assert all(p.requires_grad for p in head.parameters()), "the new head must be trainable"
assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3), "the model must now output 3 logits"
print("All visible checks passed.")''',
    "finetune": '''\
# Visible check (not graded). GOAL: at least 85% accuracy. Measured here on the validation
# images, over 3 runs (torch seeds 0, 1, 2). The hidden test also runs finetune 3 times and
# grades the MEAN accuracy on held-out test images you do not have: full credit from 85%,
# none at 75% or below, linear in between.
import copy

TARGET_ACCURACY = 0.85
accuracies = []
for seed in range(3):
    torch.manual_seed(seed)
    finetuned = finetune(copy.deepcopy(pretrained), X_target, y_target)
    assert isinstance(finetuned, nn.Module), "return the finetuned model"
    finetuned.eval()
    with torch.no_grad():
        logits = finetuned(torch.as_tensor(X_val))
    assert logits.shape == (len(y_val), 5), "the model must output 5 logits per image"
    accuracies.append(float((logits.argmax(dim=1).numpy() == y_val).mean()))
mean_accuracy = float(np.mean(accuracies))
print("validation accuracy per run:", ", ".join(f"{a:.1%}" for a in accuracies))
print(f"mean {mean_accuracy:.1%}: {'PASS' if mean_accuracy >= TARGET_ACCURACY else 'FAIL'} "
      f"(target {TARGET_ACCURACY:.0%})")
assert mean_accuracy >= TARGET_ACCURACY, ("below the 85% target: train longer, tune the learning rate, "
                                          "or train more layers")''',
}


# ------------------------------------------------------------------------ "How you are graded"
ASSIGNMENTS = ("update_rules", "torch_optimizer", "second_order", "regularization", "transfer_learning")


def _solution_namespace(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and (meta.get("grade_id") in ("setup", "pretraining") or meta.get("solution")):
                exec(cell.source, namespace)  # noqa: S102 - the course's own notebook
    return namespace


def _report(function: str, answer: Any):
    from cs231n_utils import autograde

    if function == "Adam":
        return autograde.check_torch_optimizer(answer, "adam")
    if function in _RULE_CONFIGS:
        return autograde.check_update_rule(answer, function)
    if function == "finetune":  # the returned pretrained model is enough to list the properties
        return autograde.check_finetuning(lambda model, X, y: model, runs=1)
    return getattr(autograde, f"check_{function}")(answer)


def grading_block(assignment: str, notebook: nbformat.NotebookNode) -> str:
    """The markdown of the "How you are graded" cell: points per property of every graded answer."""
    namespace = _solution_namespace(notebook)
    items = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("grade") and not meta.get("solution")):
            continue
        function, points = meta["grade_id"].removeprefix("test_"), float(meta["points"])
        with contextlib.redirect_stdout(io.StringIO()):
            report = _report(function, namespace[function])
        total = sum(p.weight for p in report.properties)
        parts = []
        for prop in report.properties:
            description = prop.description.split(";")[0].replace("over 1 seeds", "over 3 seeds")
            parts.append(f"{description} ({points * prop.weight / total:.2f})")
        items.append(f"- `{function}` ({points:g} points): " + "; ".join(parts) + ".")
    text = [
        "## How you are graded",
        "",
        "**Visible checks** (the cell after each answer, *not graded*): fixed inputs and the values a",
        "correct answer returns (for optimizers, three consecutive steps), computed once from the",
        "reference implementation, as in CS231n. Each check prints the relative error and, when your",
        "value equals that of a common mistake, names the mistake. Run them while you work.",
        "",
        "**Hidden tests** (the graded cell `test_<name>` after each visible check) run your function on",
        "**other, random inputs** (shapes, hyperparameters, more steps or models), compare it with the",
        "reference implementation and give **partial credit per property**, with feedback that names",
        "the likely mistake. They run whatever your visible checks printed: a failing visible check",
        "costs nothing by itself, but a mistake it shows usually costs points in the hidden tests too.",
        "",
        "Points per property (in brackets):",
        "",
        *items,
    ]
    if assignment == "transfer_learning":
        text += ["", "The finetuning accuracy is credited on a slope: the mean test accuracy of 3 runs earns",
                 "nothing at 75% or below, all 3 points at 85% or above, and linearly in between."]
    return "\n".join(text)


# ---------------------------------------------------------------------------------- notebooks
def _locked_cell(kind: str, grade_id: str, source: str) -> nbformat.NotebookNode:
    meta = {"nbgrader": {"cell_type": kind, "grade": False, "grade_id": grade_id, "locked": True,
                         "schema_version": 3, "solution": False, "task": False}}
    cell_id = grade_id.replace("_", "-")
    if kind == "code":
        return nbformat.v4.new_code_cell(source, id=cell_id, metadata=meta)
    return nbformat.v4.new_markdown_cell(source, id=cell_id, metadata=meta)


def render(assignment: str, notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` with its generated cells (helpers, visible checks, grading block) rewritten
    and its graded cells reduced to the header and the hidden tests."""
    generated = {"how_graded", "check_helpers"}
    cells = [c for c in notebook.cells
             if not (c.metadata.get("nbgrader", {}).get("grade_id", "") in generated
                     or c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check_"))]
    checks = {}
    helpers = helpers_for(assignment) if assignment in NUMERIC_CHECKS else ""
    for make in NUMERIC_CHECKS.get(assignment, ()):
        check = make()
        checks[check.function] = cell_source(check, helpers)
    checks.update(TRANSFER_CHECKS if assignment == "transfer_learning" else {})
    result = []
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if meta.get("grade") and not meta.get("solution") and HIDDEN_BEGIN in cell.source:
            cell.source = GRADED_CELL_HEADER + cell.source[cell.source.index(HIDDEN_BEGIN):]
        result.append(cell)
        if grade_id == "setup" and helpers:
            result.append(_locked_cell("code", "check_helpers", helpers.rstrip("\n")))
        if meta.get("solution") and not meta.get("grade") and grade_id in checks:
            result.append(_locked_cell("code", f"check_{grade_id}", checks[grade_id]))
    notebook.cells = result
    block = _locked_cell("markdown", "how_graded", grading_block(assignment, notebook))
    notebook.cells.insert(1, block)
    return notebook


def notebook_path(assignment: str) -> Path:
    return ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def rendered_text(assignment: str) -> str:
    """The text this script writes for ``solutions/<assignment>/<assignment>.ipynb``."""
    notebook = nbformat.read(notebook_path(assignment), as_version=4)
    return nbformat.writes(render(assignment, notebook)) + "\n"


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    for assignment in argv or ASSIGNMENTS:
        text = rendered_text(assignment)
        path = notebook_path(assignment)
        if path.read_text() != text:
            path.write_text(text)
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
