"""Simulated student answers for the autograde tests: correct, buggy and reference-calling.

Each answer is the source of an nbgrader answer cell (the notebook's setup cell provides ``np``
and ``torch``). The expected credit is derived by hand from the weighted properties that
:mod:`cs231n_utils.autograde` documents, not from running the grader:

- NumPy rules, weights (total 8): returns (next_w, config) 1, inputs unchanged 1, state in config
  1, defaults on the first step 1, first step 2, all steps 2. A bug that shows from the first
  step keeps only the first three (3/8); a bug in carrying state keeps all but "all steps" (6/8).
- torch optimizer, weights (total 10): defaults 1, first step 2, all steps 2, param groups 1,
  None grads skipped 1, grad unchanged 1, closure 1, state_dict round trip 1.

``keyword`` is a phrase the feedback must contain (the named mistake), or None when no known
mistake applies.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    source: str
    fraction: float
    keyword: str | None = None
    passes_visible_tests: bool = True


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
            next_w = w + config["velocity"]'''), 6 / 8, "not multiplied by the momentum"),
        "old_velocity": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            next_w = w + config["velocity"]
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw'''),
            3 / 8, "velocity from before"),
        "state_not_stored": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            velocity = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            next_w = w + velocity'''), 6 / 8, "not stored in the returned config"),
        "velocity_sign": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            next_w = w - config["velocity"]'''), 3 / 8, "velocity sign", passes_visible_tests=False),
        "mutates_w": Answer(_rule("sgd_momentum", _MOMENTUM, '''
            config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
            w += config["velocity"]
            next_w = w'''), 7 / 8, None),
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
            next_w = w - config["momentum"] * v_prev + (1 + config["momentum"]) * v'''), 3 / 8, "plain momentum"),
        "lookahead_sign": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v_prev = config["velocity"]
            config["velocity"] = config["momentum"] * v_prev - config["learning_rate"] * dw
            next_w = w + config["momentum"] * v_prev + (1 + config["momentum"]) * config["velocity"]'''),
            6 / 8, "look-ahead"),
        "hyperparameters_hardcoded": Answer(_rule("nesterov_momentum", _MOMENTUM, '''
            v_prev = config["velocity"]
            config["velocity"] = 0.9 * v_prev - 1e-2 * dw
            next_w = w - 0.9 * v_prev + 1.9 * config["velocity"]'''), 4 / 8, "hyperparameters in config are ignored"),
    },
    "adagrad": {
        "correct": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''), 1.0),
        "eps_inside_sqrt": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / np.sqrt(config["cache"] + config["epsilon"])'''),
            3 / 8, "inside the square root"),
        "no_sqrt": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (config["cache"] + config["epsilon"])'''),
            3 / 8, "square root of the cache"),
        "cache_not_accumulated": Answer(_rule("adagrad", _ADAGRAD, '''
            config["cache"] = dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            6 / 8, "accumulate the squared gradients"),
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
            3 / 8, "inside the square root"),
        "cache_not_decayed": Answer(_rule("rmsprop", _RMSPROP, '''
            config["cache"] = config["cache"] + dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            3 / 8, "cache is not decayed"),
        "decay_on_wrong_term": Answer(_rule("rmsprop", _RMSPROP, '''
            beta = config["decay_rate"]
            config["cache"] = (1 - beta) * config["cache"] + beta * dw ** 2
            next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])'''),
            3 / 8, "decay on the wrong term"),
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
            3 / 8, "no bias correction"),
        "t_not_incremented": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            t = config["t"] + 1
            m_hat = config["m"] / (1 - b1 ** t)
            v_hat = config["v"] / (1 - b2 ** t)
            next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])'''),
            6 / 8, "t is not incremented"),
        "t_incremented_after_correction": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            m_hat = config["m"] / (1 - b1 ** config["t"])
            v_hat = config["v"] / (1 - b2 ** config["t"])
            next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
            config["t"] += 1'''), 3 / 8, "incremented after the bias correction", passes_visible_tests=False),
        "eps_inside_sqrt": Answer(_rule("adam", _ADAM, _ADAM_MOMENTS, '''
            config["t"] += 1
            m_hat = config["m"] / (1 - b1 ** config["t"])
            v_hat = config["v"] / (1 - b2 ** config["t"])
            next_w = w - config["learning_rate"] * m_hat / np.sqrt(v_hat + config["epsilon"])'''),
            3 / 8, "inside the square root"),
        "state_not_stored": Answer(_rule("adam", _ADAM, '''
            b1, b2, t = config["beta1"], config["beta2"], config["t"] + 1
            m = b1 * config["m"] + (1 - b1) * dw
            v = b2 * config["v"] + (1 - b2) * dw ** 2
            next_w = w - config["learning_rate"] * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + config["epsilon"])'''),
            6 / 8, "not stored in the returned config"),
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
        p.sub_(lr * state["m"] / (state["v"].sqrt() + eps))'''), 5 / 10, "no bias correction"),
    "t_not_incremented": Answer(_torch('''
        state["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
        state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        p.sub_(lr * (state["m"] / (1 - beta1)) / ((state["v"] / (1 - beta2)).sqrt() + eps))'''),
        8 / 10, "t is not incremented"),
    "reads_self_defaults": Answer(_torch(hyperparameters=(
        'lr, (beta1, beta2), eps = self.defaults["lr"], self.defaults["betas"], self.defaults["eps"]')),
        9 / 10, "self.defaults"),
    "state_in_attributes": Answer(_torch('''
        m, v, t = self.moments.setdefault(p, [torch.zeros_like(p), torch.zeros_like(p), 0])
        t = self.moments[p][2] = t + 1
        m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        p.sub_(lr * (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps))'''), 9 / 10, None),
}

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
