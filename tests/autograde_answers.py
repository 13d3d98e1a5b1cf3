"""Simulated student answers for the autograde tests: correct, buggy and reference-calling.

Each answer is the source of an nbgrader answer cell (the notebook's setup cell provides ``np``
and ``torch``). The expected credit is derived by hand from the weighted properties that
:mod:`cs231n_utils.autograde` documents, not from running the grader:

- NumPy rules, weights (total 11): returns (next_w, config) 1, inputs unchanged 1, state in config
  1, defaults on the first step 1, first step 1, all steps 6. A bug that shows from the first
  step keeps only the first three (3/11); a bug in carrying state keeps all but "all steps" (5/11,
  less than half); an in-place update of w with the right values loses only "inputs" (10/11).
- torch optimizer, weights (total 15): defaults 1, first step 1, all steps 8, param groups 1,
  None grads skipped 1, grad unchanged 1, closure 1, state_dict round trip 1 (a bug from the
  second step keeps 7/15).

``keyword`` is a phrase the feedback must contain (the named mistake), or None when no known
mistake applies; ``visible`` the phrase of the notebook's visible check that fails for it.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass


AS_KEYWORD = "<the keyword>"
"""``Answer.visible`` default: the visible check fails with the same phrase as the feedback."""


@dataclass(frozen=True)
class Answer:
    """An answer cell, its expected hidden credit (fraction of the points), the phrase the
    hidden feedback must contain (``keyword``; None: no known mistake is named) and the phrase
    the failing visible check's message must contain (``visible``; None: the visible check
    passes, :data:`AS_KEYWORD`: the same as ``keyword``)."""

    source: str
    fraction: float
    keyword: str | None = None
    visible: str | None = AS_KEYWORD

    @property
    def visible_phrase(self) -> str | None:
        return self.keyword if self.visible == AS_KEYWORD else self.visible


def _cell(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def _rule(name: str, defaults: str, *body: str) -> str:
    """An answer cell with the notebook's scaffold around the ``body`` parts."""
    lines = [f"def {name}(w, dw, config=None):", "    if config is None:", "        config = {}"]
    for part in (defaults, *body):
        lines.append(textwrap.indent(textwrap.dedent(part).strip(), "    "))
    lines.append("    return next_w, config")
    return "\n".join(lines) + "\n"


_MOMENTUM = '''
config.setdefault("learning_rate", 1e-2)
config.setdefault("momentum", 0.9)
config.setdefault("velocity", np.zeros_like(w))
'''
_ADAGRAD = '''
config.setdefault("learning_rate", 1e-2)
config.setdefault("epsilon", 1e-8)
config.setdefault("cache", np.zeros_like(w))
'''
_RMSPROP = '''
config.setdefault("learning_rate", 1e-2)
config.setdefault("decay_rate", 0.99)
config.setdefault("epsilon", 1e-8)
config.setdefault("cache", np.zeros_like(w))
'''
_ADAM = '''
config.setdefault("learning_rate", 1e-3)
config.setdefault("beta1", 0.9)
config.setdefault("beta2", 0.999)
config.setdefault("epsilon", 1e-8)
config.setdefault("m", np.zeros_like(w))
config.setdefault("v", np.zeros_like(w))
config.setdefault("t", 0)
'''
_ADAM_MOMENTS = '''
b1, b2 = config["beta1"], config["beta2"]
config["m"] = b1 * config["m"] + (1 - b1) * dw
config["v"] = b2 * config["v"] + (1 - b2) * dw ** 2
'''

UPDATE_RULE_ANSWERS: dict[str, dict[str, Answer]] = {
    "sgd_momentum": {
        "correct": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            next_w = w + config["velocity"]'''), 1.0),
        "no_friction": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["velocity"] - config["learning_rate"] * dw
            next_w = w + config["velocity"]'''), 5 / 11, "not multiplied by the momentum"),
        "old_velocity": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            next_w = w + config["velocity"]
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw'''),
            3 / 11, "velocity from before"),
        "state_not_stored": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            velocity = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            next_w = w + velocity'''), 5 / 11, "not stored in the returned config"),
        "velocity_sign": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            next_w = w - config["velocity"]'''), 3 / 11, "velocity sign"),
        "mutates_w": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            w += config["velocity"]
            next_w = w'''), 10 / 11, "updated in place"),
    },
    "nesterov_momentum": {
        "correct": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v_prev = config["velocity"]
            config["velocity"] = config["momentum"] * v_prev - config["learning_rate"] * dw
            next_w = w - config["momentum"] * v_prev + (1 + config["momentum"]) * config["velocity"]'''), 1.0),
        "plain_momentum": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v = config["velocity"]
            v *= config["momentum"]
            v -= config["learning_rate"] * dw
            v_prev = v  # not a copy: the look-ahead correction cancels
            next_w = w - config["momentum"] * v_prev + (1 + config["momentum"]) * v'''), 3 / 11, "plain momentum"),
        "lookahead_sign": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v_prev = config["velocity"]
            config["velocity"] = config["momentum"] * v_prev - config["learning_rate"] * dw
            next_w = w + config["momentum"] * v_prev + (1 + config["momentum"]) * config["velocity"]'''),
            5 / 11, "look-ahead"),
        "hyperparameters_hardcoded": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v_prev = config["velocity"]
            config["velocity"] = 0.9 * v_prev - 1e-2 * dw
            next_w = w - 0.9 * v_prev + 1.9 * config["velocity"]'''), 4 / 11, "hyperparameters in config are ignored"),
    },
    "adagrad": {
        "correct": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''), 1.0),
        "eps_inside_sqrt": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / np.sqrt(config["cache"] + config["epsilon"])'''),
            3 / 11, "inside the square root"),
        "no_sqrt": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (config["cache"] + config["epsilon"])'''),
            3 / 11, "square root of the cache"),
        "cache_not_accumulated": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            5 / 11, "accumulate the squared gradients"),
        "in_place": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] += dw ** 2
            w -= config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])
            next_w = w'''), 10 / 11, "updated in place"),
    },
    "rmsprop": {
        "correct": Answer(_rule("rmsprop", _RMSPROP, '''
            beta = config["decay_rate"]
            config["cache"] = beta * config["cache"] + (1 - beta) * dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''), 1.0),
        "eps_inside_sqrt": Answer(_rule("rmsprop", _RMSPROP, '''
            beta = config["decay_rate"]
            config["cache"] = beta * config["cache"] + (1 - beta) * dw ** 2
            next_w = w - config["learning_rate"] * dw / np.sqrt(config["cache"] + config["epsilon"])'''),
            3 / 11, "inside the square root"),
        "cache_not_decayed": Answer(_rule("rmsprop", _RMSPROP, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            3 / 11, "cache is not decayed"),
        "decay_on_wrong_term": Answer(_rule("rmsprop", _RMSPROP, '''
            beta = config["decay_rate"]
            config["cache"] = (1 - beta) * config["cache"] + beta * dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            3 / 11, "decay on the wrong term"),
    },
    "adam": {
        "correct": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            config["t"] += 1
            m_hat = config["m"] / (1 - b1 ** config["t"])
            v_hat = config["v"] / (1 - b2 ** config["t"])
            next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])'''), 1.0),
        "no_bias_correction": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            config["t"] += 1
            next_w = w - config["learning_rate"] * config["m"] / (np.sqrt(config["v"]) + config["epsilon"])'''),
            3 / 11, "no bias correction"),
        "t_not_incremented": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            t = config["t"] + 1
            m_hat = config["m"] / (1 - b1 ** t)
            v_hat = config["v"] / (1 - b2 ** t)
            next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])'''),
            5 / 11, "t is not incremented"),
        "t_incremented_after_correction": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            m_hat = config["m"] / (1 - b1 ** config["t"])
            v_hat = config["v"] / (1 - b2 ** config["t"])
            next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
            config["t"] += 1'''), 3 / 11, "incremented after the bias correction"),
        "eps_inside_sqrt": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            config["t"] += 1
            m_hat = config["m"] / (1 - b1 ** config["t"])
            v_hat = config["v"] / (1 - b2 ** config["t"])
            next_w = w - config["learning_rate"] * m_hat / np.sqrt(v_hat + config["epsilon"])'''),
            3 / 11, "inside the square root"),
        "state_not_stored": Answer(_rule("adam", _ADAM, '''
            b1, b2, t = config["beta1"], config["beta2"], config["t"] + 1
            m = b1 * config["m"] + (1 - b1) * dw
            v = b2 * config["v"] + (1 - b2) * dw ** 2
            next_w = w - config["learning_rate"] * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + config["epsilon"])'''),
            5 / 11, "not stored in the returned config"),
    },
}

# Answers that run the reference under another name: each must get no credit.
REFERENCE_CALLERS: dict[str, str] = {
    "import_as": _cell('''
        from cs231n_utils.optim import {rule} as reference_rule

        def {rule}(w, dw, config=None):
            return reference_rule(w, dw, config)
    '''),
    "module_alias": _cell('''
        import cs231n_utils.optim as o

        def {rule}(w, dw, config=None):
            next_w, config = getattr(o, "{rule}")(w.copy(), dw.copy(), config)
            return next_w + 0.0, config
    '''),
    "assignment": _cell('''
        import importlib

        {rule} = importlib.import_module("cs231n_utils.optim").UPDATE_RULES["{rule}"]
    '''),
}

# Torch optimizer answers (the class must be called Adam, as in the notebook).
_TORCH_INIT = '''
class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        self.moments = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            HYPERPARAMETERS
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                UPDATE
        return loss
'''
_GROUP = 'lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]'
_CORRECT_UPDATE = '''
state["t"] += 1
state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
m_hat = state["m"] / (1 - beta1 ** state["t"])
v_hat = state["v"] / (1 - beta2 ** state["t"])
p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
'''


def _torch(update: str = _CORRECT_UPDATE, hyperparameters: str = _GROUP) -> str:
    source = _cell(_TORCH_INIT).replace("HYPERPARAMETERS", hyperparameters)
    return source.replace("                UPDATE\n", textwrap.indent(textwrap.dedent(update).strip(), " " * 16) + "\n")


TORCH_ANSWERS: dict[str, Answer] = {
    "correct": Answer(_torch(), 1.0),
    "no_bias_correction": Answer(_torch('''
        state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
        state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        p.sub_(lr * state["m"] / (state["v"].sqrt() + eps))'''), 5 / 15, "no bias correction"),
    "t_not_incremented": Answer(_torch('''
        state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
        state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        p.sub_(lr * (state["m"] / (1 - beta1)) / ((state["v"] / (1 - beta2)).sqrt() + eps))'''),
        7 / 15, "t is not incremented"),
    "reads_self_defaults": Answer(_torch(hyperparameters=(
        'lr, (beta1, beta2), eps = self.defaults["lr"], self.defaults["betas"], self.defaults["eps"]')),
        14 / 15, "self.defaults"),
    "state_in_attributes": Answer(_torch('''
        m, v, t = self.moments.setdefault(p, [torch.zeros_like(p), torch.zeros_like(p), 0])
        t = self.moments[p][2] = t + 1
        m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        p.sub_(lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps))'''), 14 / 15, None),
}

TORCH_ANSWERS["global_step_counter"] = Answer(_torch('''
    self.step_count = getattr(self, "step_count", 0) + 1  # one counter for every parameter
    t = self.step_count
    state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
    state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
    p.sub_(lr * (state["m"] / (1 - beta1 ** t)) / ((state["v"] / (1 - beta2 ** t)).sqrt() + eps))'''),
    3 / 15, "one step counter is shared")
TORCH_ANSWERS["ignores_closure"] = Answer(
    _torch().replace("if closure is not None:", "if False:  # the closure is never called"),
    14 / 15, None, visible="call the closure once")
# Only "step(closure) calls the closure once and returns its loss" fails; its detail explains.
# Keeps only what compares the optimizer with itself on one parameter per group: None grads
# skipped, grad unchanged, closure (3/15); defaults, steps, groups and the reload all differ.

TORCH_REFERENCE_CALLERS: dict[str, str] = {
    "wraps_torch_adam": _cell('''
        class Adam(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
                params = list(params)
                super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
                self.inner = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
                self.state = self.inner.state  # so that state_dict() and the visible tests see it

            def step(self, closure=None):
                return self.inner.step(closure)
    '''),
    "subclasses_torch_adam": _cell('''
        class Adam(torch.optim.Adam):
            """Just torch's Adam."""
    '''),
    "is_torch_adamw": _cell('''
        from torch.optim import AdamW as Adam
    '''),
}


# --- Second round: pure functions graded by check_function (one property per case group) -------
# Weights, from the checks' docstrings; every check adds "inputs unchanged" (1) except freeze and
# replace_head, whose job is to change the model.
# - newton_step (total 4): undamped 1, damped 2, inputs 1.
# - two_loop_recursion (total 6): no pairs 1, one pair 1, 2-10 pairs 2, inputs 1, Rosenbrock run 1.
#   The Rosenbrock run converges with a wrong but still positive definite H_k (identity scaling,
#   loops in the wrong order, gamma of the oldest pair) and fails when the direction is wrong.
# - dropout_forward (total 5): train output 2, train cache 1, test mode 1, inputs 1.
# - dropout_backward (total 4): train 2, test 1, inputs 1.
# - l2_penalty (total 5): penalty 2, gradients 2, inputs 1.
# - horizontal_flip (total 4): random p 2, p in {0, 1} 1, inputs 1.
# - freeze (total 4): DigitsCNN 2, nested model with a direct parameter 2.
# - replace_head (total 4): DigitsCNN 2, frozen model 1, other attribute name 1.
# - finetune (total 4): returns a model with (N, 5) logits 1, test accuracy >= threshold 3.

FUNCTION_ANSWERS: dict[str, dict[str, dict[str, Answer]]] = {
    "second_order": {
        "newton_step": {
            "correct": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    return -np.linalg.solve(hessian + damping * np.eye(len(grad)), grad)
            '''), 1.0),
            "diagonal_only": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    return -grad / (np.diag(hessian) + damping)
            '''), 1 / 4, "only the diagonal of H is used"),
            "damping_everywhere": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    return -np.linalg.solve(hessian + damping, grad)
            '''), 2 / 4, "added to every entry of H"),
            "modifies_hessian": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    hessian += damping * np.eye(len(grad))
                    return -np.linalg.solve(hessian, grad)
            '''), 3 / 4, "modified in place"),
            "wrong_sign": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    return np.linalg.solve(hessian + damping * np.eye(len(grad)), grad)
            '''), 1 / 4, "goes uphill"),
            "damping_ignored": Answer(_cell('''
                def newton_step(grad, hessian, damping=0.0):
                    return -np.linalg.solve(hessian, grad)
            '''), 2 / 4, "damping is ignored"),
        },
        "two_loop_recursion": {
            "correct": Answer(_cell('''
                def two_loop_recursion(grad, s_history, y_history):
                    q, alphas = grad.copy(), []
                    for s, y in zip(reversed(s_history), reversed(y_history)):
                        alphas.append((s @ q) / (y @ s))
                        q = q - alphas[-1] * y
                    gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
                    r = gamma * q
                    for s, y, a in zip(s_history, y_history, reversed(alphas)):
                        r = r + (a - (y @ r) / (y @ s)) * s
                    return r
            '''), 1.0),
            "no_scaling": Answer(_cell('''
                def two_loop_recursion(grad, s_history, y_history):
                    q, alphas = grad.copy(), []
                    for s, y in zip(reversed(s_history), reversed(y_history)):
                        alphas.append((s @ q) / (y @ s))
                        q = q - alphas[-1] * y
                    r = q
                    for s, y, a in zip(s_history, y_history, reversed(alphas)):
                        r = r + (a - (y @ r) / (y @ s)) * s
                    return r
            '''), 3 / 6, "initial matrix is the identity"),
            "first_loop_order": Answer(_cell('''
                def two_loop_recursion(grad, s_history, y_history):
                    q, alphas = grad.copy(), []
                    for s, y in zip(s_history, y_history):
                        alphas.append((s @ q) / (y @ s))
                        q = q - alphas[-1] * y
                    gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
                    r = gamma * q
                    for s, y, a in zip(s_history, y_history, alphas):
                        r = r + (a - (y @ r) / (y @ s)) * s
                    return r
            '''), 4 / 6, "from the newest pair to the oldest"),
            "rho_y_y": Answer(_cell('''
                def two_loop_recursion(grad, s_history, y_history):
                    q, alphas = grad.copy(), []
                    for s, y in zip(reversed(s_history), reversed(y_history)):
                        alphas.append((s @ q) / (y @ y))
                        q = q - alphas[-1] * y
                    gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
                    r = gamma * q
                    for s, y, a in zip(s_history, y_history, reversed(alphas)):
                        r = r + (a - (y @ r) / (y @ y)) * s
                    return r
            '''), 2 / 6, "not 1 / (y_i^T y_i)"),
            "returns_direction": Answer(_cell('''
                def two_loop_recursion(grad, s_history, y_history):
                    q, alphas = grad.copy(), []
                    for s, y in zip(reversed(s_history), reversed(y_history)):
                        alphas.append((s @ q) / (y @ s))
                        q = q - alphas[-1] * y
                    gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
                    r = gamma * q
                    for s, y, a in zip(s_history, y_history, reversed(alphas)):
                        r = r + (a - (y @ r) / (y @ s)) * s
                    return -r
            '''), 1 / 6, "return H_k grad itself"),
        },
    },
    "regularization": {
        "dropout_forward": {
            "correct": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x, (dropout_param, None)
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p
                    return x * mask, (dropout_param, mask)
            '''), 1.0),
            "vanilla_dropout": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x * p, (dropout_param, None)
                    mask = np.random.default_rng(dropout_param["seed"]).random(x.shape) < p
                    return x * mask, (dropout_param, mask * 1.0)
            '''), 1 / 5, "non-inverted dropout"),
            "mask_not_stored": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x.copy(), (dropout_param, None)
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p
                    return x * mask, (dropout_param, None)
            '''), 4 / 5, "mask is not stored in the cache"),
            "no_division": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x.copy(), (dropout_param, None)
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p).astype(float)
                    return x * mask, (dropout_param, mask)
            '''), 2 / 5, "not divided by p at train time"),
            "test_scaled": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p
                    if mode == "test":
                        return x * p, (dropout_param, None)
                    return x * mask, (dropout_param, mask)
            '''), 4 / 5, "test mode must be the identity"),
            "in_place": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x, (dropout_param, None)
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < p) / p
                    x *= mask
                    return x, (dropout_param, mask)
            '''), 4 / 5, "modified in place"),
            "drop_probability": Answer(_cell('''
                def dropout_forward(x, dropout_param):
                    p, mode = dropout_param["p"], dropout_param["mode"]
                    if mode == "test":
                        return x.copy(), (dropout_param, None)
                    mask = (np.random.default_rng(dropout_param["seed"]).random(x.shape) < 1 - p) / (1 - p)
                    return x * mask, (dropout_param, mask)
            '''), 2 / 5, "treated as the drop probability"),
        },
        "dropout_backward": {
            "correct": Answer(_cell('''
                def dropout_backward(dout, cache):
                    dropout_param, mask = cache
                    return dout if dropout_param["mode"] == "test" else dout * mask
            '''), 1.0),
            "divides_again": Answer(_cell('''
                def dropout_backward(dout, cache):
                    dropout_param, mask = cache
                    return dout if dropout_param["mode"] == "test" else dout * mask / dropout_param["p"]
            '''), 2 / 4, "divided by p a second time"),
            "unscaled_mask": Answer(_cell('''
                def dropout_backward(dout, cache):
                    dropout_param, mask = cache
                    return dout if dropout_param["mode"] == "test" else dout * (mask > 0)
            '''), 2 / 4, "scale is missing from the gradient"),
            "ignores_mask": Answer(_cell('''
                def dropout_backward(dout, cache):
                    return dout
            '''), 2 / 4, "does not use the mask"),
        },
        "l2_penalty": {
            "correct": Answer(_cell('''
                def l2_penalty(weights, reg):
                    penalty = 0.5 * reg * sum(np.sum(w ** 2) for w in weights.values())
                    return penalty, {name: reg * w for name, w in weights.items()}
            '''), 1.0),
            "no_half": Answer(_cell('''
                def l2_penalty(weights, reg):
                    penalty = reg * sum(np.sum(w ** 2) for w in weights.values())
                    return penalty, {name: 2 * reg * w for name, w in weights.items()}
            '''), 1 / 5, "factor one half is missing"),
            "penalty_no_half": Answer(_cell('''
                def l2_penalty(weights, reg):
                    penalty = reg * sum(np.sum(w ** 2) for w in weights.values())
                    return penalty, {name: reg * w for name, w in weights.items()}
            '''), 3 / 5, "penalty lacks the factor one half"),
            "gradient_factor_two": Answer(_cell('''
                def l2_penalty(weights, reg):
                    penalty = 0.5 * reg * sum(np.sum(w ** 2) for w in weights.values())
                    return penalty, {name: 2 * reg * w for name, w in weights.items()}
            '''), 3 / 5, "not 2 * reg * W"),
            "not_accumulated": Answer(_cell('''
                def l2_penalty(weights, reg):
                    grads = {}
                    for name, w in weights.items():
                        penalty = 0.5 * reg * np.sum(w ** 2)
                        grads[name] = reg * w
                    return penalty, grads
            '''), 3 / 5, "not summed over all weight arrays"),
        },
        "horizontal_flip": {
            "correct": Answer(_cell('''
                def horizontal_flip(x, p, rng):
                    out = x.copy()
                    flip = rng.random(len(x)) < p
                    out[flip] = x[flip][:, :, :, ::-1]
                    return out
            '''), 1.0),
            "one_draw": Answer(_cell('''
                def horizontal_flip(x, p, rng):
                    return x[..., ::-1].copy() if rng.random() < p else x.copy()
            '''), 2 / 4, "one random draw decides for the whole batch"),
            "in_place": Answer(_cell('''
                def horizontal_flip(x, p, rng):
                    flip = rng.random(len(x)) < p
                    x[flip] = x[flip][..., ::-1]
                    return x
            '''), 3 / 4, "modified in place"),
            "vertical": Answer(_cell('''
                def horizontal_flip(x, p, rng):
                    flip = rng.random(len(x)) < p
                    return np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
            '''), 1 / 4, "flipped upside down"),
            "probability_inverted": Answer(_cell('''
                def horizontal_flip(x, p, rng):
                    flip = rng.random(len(x)) >= p
                    return np.where(flip[:, None, None, None], x[..., ::-1], x)
            '''), 1 / 4, "with probability 1 - p"),
        },
    },
    "transfer_learning": {
        "freeze": {
            "correct": Answer(_cell('''
                def freeze(module):
                    for parameter in module.parameters():
                        parameter.requires_grad = False
                    return module
            '''), 1.0),
            "children_only": Answer(_cell('''
                def freeze(module):
                    for child in module.children():
                        child.requires_grad_(False)
                    return module
            '''), 2 / 4, "registered directly on the module", visible=None),
            "first_child_only": Answer(_cell('''
                def freeze(module):
                    for parameter in next(module.children()).parameters():
                        parameter.requires_grad = False
                    return module
            '''), 0.0, "only the first submodule is frozen", visible=None),
            "freeze_and_eval": Answer(_cell('''
                def freeze(module):
                    for parameter in module.parameters():
                        parameter.requires_grad = False
                    return module.eval()
            '''), 0.0, "switched the module to eval mode"),
            "eval_instead": Answer(_cell('''
                def freeze(module):
                    return module.eval()
            '''), 0.0, "does not freeze anything",
                visible="every parameter of block1 must be frozen"),
        },
        "replace_head": {
            "correct": Answer(_cell('''
                def replace_head(model, num_classes, attribute="head"):
                    head = nn.Linear(getattr(model, attribute).in_features, num_classes)
                    setattr(model, attribute, head)
                    return head
            '''), 1.0),
            "copies_requires_grad": Answer(_cell('''
                def replace_head(model, num_classes, attribute="head"):
                    old = getattr(model, attribute)
                    head = nn.Linear(old.in_features, num_classes).requires_grad_(old.weight.requires_grad)
                    setattr(model, attribute, head)
                    return head
            '''), 3 / 4, "copies the old head", visible="must be trainable"),
            "ignores_attribute": Answer(_cell('''
                def replace_head(model, num_classes, attribute="head"):
                    model.head = nn.Linear(model.head.in_features, num_classes)
                    return model.head
            '''), 3 / 4, "attribute argument is ignored", visible=None),
            "hard_coded_in_features": Answer(_cell('''
                def replace_head(model, num_classes, attribute="head"):
                    head = nn.Linear(64, num_classes)
                    setattr(model, attribute, head)
                    return head
            '''), 0.0, "hard-coded"),
            "keeps_classes": Answer(_cell('''
                def replace_head(model, num_classes, attribute="head"):
                    old = getattr(model, attribute)
                    head = nn.Linear(old.in_features, old.out_features)
                    setattr(model, attribute, head)
                    return head
            '''), 0.0, "keeps the old number of outputs",
                visible="must have num_classes outputs"),
        },
        "finetune": {
            "correct": Answer(_cell('''
                def finetune(model, X, y):
                    model.head = nn.Linear(model.head.in_features, 5)
                    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                    X, y = torch.as_tensor(X), torch.as_tensor(y)
                    for step in range(100):
                        batch = torch.randint(0, len(y), (32,))
                        loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                    return model
            '''), 1.0),
            "untrained": Answer(_cell('''
                def finetune(model, X, y):
                    model.head = nn.Linear(model.head.in_features, 5)
                    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                    loss = nn.functional.cross_entropy(model(torch.as_tensor(X)), torch.as_tensor(y))
                    loss.backward()  # no optimizer.step(): nothing is trained
                    return model
            '''), 1 / 4, "accuracy near chance", visible="below the 85% target"),
            "returns_nothing": Answer(_cell('''
                def finetune(model, X, y):
                    model.head = nn.Linear(model.head.in_features, 5)
            '''), 0.0, None, visible="return the finetuned model"),
        },
    },
}

# Answers that run a reference function under another name: each must get no credit.
FUNCTION_REFERENCE_CALLERS: dict[str, str] = {
    "newton_step": _cell('''
        from cs231n_utils import second_order

        def newton_step(grad, hessian, damping=0.0):
            quadratic = lambda x: (grad @ x + 0.5 * x @ hessian @ x, grad + hessian @ x)
            return second_order.newton(quadratic, lambda x: hessian, np.zeros_like(grad), damping=damping, max_iter=1).x
    '''),
    "two_loop_recursion": _cell('''
        from collections import deque
        from cs231n_utils.second_order import two_loop_recursion as library_two_loop

        def two_loop_recursion(grad, s_history, y_history):
            pairs = deque((s, y, 1.0 / (s @ y)) for s, y in zip(s_history, y_history))
            gamma = (s_history[-1] @ y_history[-1]) / (y_history[-1] @ y_history[-1]) if s_history else 1.0
            return library_two_loop(grad, pairs, gamma)
    '''),
    "dropout_forward": _cell('''
        import cs231n_utils.layers as L

        dropout_forward = L.dropout_forward
    '''),
    "dropout_backward": _cell('''
        def dropout_backward(dout, cache):
            from cs231n_utils.layers import dropout_backward as backward
            return backward(dout, cache)
    '''),
    "l2_penalty": _cell('''
        import importlib

        def l2_penalty(weights, reg):
            return importlib.import_module("cs231n_utils.regularization").l2_penalty(weights, reg)
    '''),
    "horizontal_flip": _cell('''
        from functools import partial
        from cs231n_utils.regularization import horizontal_flip as flip

        horizontal_flip = partial(flip)
    '''),
    "freeze": _cell('''
        from cs231n_utils.transfer import freeze
    '''),
    "replace_head": _cell('''
        from cs231n_utils import transfer

        def replace_head(model, num_classes, attribute="head"):
            return transfer.replace_head(model, num_classes, attribute)
    '''),
    "finetune": _cell('''
        from cs231n_utils import transfer

        def finetune(model, X, y):
            transfer.replace_head(model, 5)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            for step in range(100):
                loss = nn.functional.cross_entropy(model(torch.as_tensor(X)), torch.as_tensor(y))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return model
    '''),
}
