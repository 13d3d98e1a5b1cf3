r"""The update rules of :mod:`cs231n_utils.optim` as PyTorch optimizers that run on any device.

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW`` subclass :class:`torch.optim.Optimizer`
and take ``torch.optim``'s argument names and defaults, so they drop into any training loop::

    opt = Adam(model.parameters(), lr=1e-3)
    loss.backward(); opt.step(); opt.zero_grad()

The state lives next to each parameter (same device and dtype) under ``torch.optim``'s names
(``momentum_buffer``, ``sum``, ``square_avg``, ``exp_avg``, ``exp_avg_sq``, ``step``), and
``state_dict()`` / ``load_state_dict()`` work as in ``torch.optim``.

Each rule is written once, as an elementwise ``formula`` (a static method that takes the weights,
the gradient and the state and returns their new values), and has three implementations:

* the per-tensor path (``foreach=False``) applies the formula to one parameter at a time, and on the
  CPU to one cache-sized piece of it at a time, so its temporaries never grow to the size of a
  parameter: it is the one to read. Each operation of the formula (17 for Adam, 4 for SGD with
  momentum) is a separate loop over the piece; pieces of 128 KiB and up run the formula traced
  once into ``out=`` steps over a few reused piece-sized buffers
  (:mod:`cs231n_utils.piece_formula`; Adam keeps four 1 MiB buffers per dtype, the other rules
  one or two, and every rule's results go straight into their weight and state pieces), since a
  fresh result per operation of that size page-faults, and smaller pieces run it eagerly.
  Measured against the old in-place per-tensor code (commit 90be679, 3-10 in-place operations per
  rule on whole tensors) in one round-robin run on the course's shared 2-core machine, 2 threads:
  0.6-0.8x its time for Adam, AdamW, Adagrad and RMSprop on 1 x 10M parameters, 0.8-0.9x (Adam,
  AdamW) and 1.6-1.7x (the others) on ResNet-18's shapes, 1.65x for SGD with momentum on 1 x 10M
  (its old code was three in-place passes), and 2-3x on 62 tensors of 100 elements, where the
  formula's extra operations cost their call overhead;
* the multi-tensor path (``foreach=True``) updates all parameters of one device and dtype together
  with in-place ``torch._foreach_*`` operations. On the CPU it runs the whole chain of operations
  on one cache-sized block of elements at a time (:mod:`cs231n_utils.tensor_blocks`), so that
  memory traffic stays close to the minimum;
* the fused path (``fused=True``) compiles the same ``formula`` with ``torch.compile`` into one
  loop (C++ on the CPU, Triton on CUDA) that reads each element's operands once and writes the
  results in place (:mod:`cs231n_utils.fused_kernels`). The first step compiles each group: on the
  course's loaded 2-core machine 16-21 s of CPU time cold and about 6 s from Inductor's disk cache,
  which keeps kernels across processes (where it lives and how to move it: see that module). Later
  steps never recompile. Float32 and float64 parameters on the CPU or a CUDA device only; others
  raise ``ValueError`` naming the parameter.

``foreach=None`` (the default) picks the multi-tensor path, the fastest of the first two for every
rule in ``benchmarks/optim_step.py`` on the course's 2-thread CPU (1 x 10M parameters and
ResNet-18's shapes), SGD with momentum included.
Fused needs the compile, so it is chosen explicitly, as in ``torch.optim``.

Hyperparameters are checked when an optimizer or a parameter group is created and when a
state dict is loaded: a bad value raises ``ValueError`` naming it. Sparse or complex gradients
raise ``RuntimeError`` naming the parameter at the first ``step``.

Notation: :math:`w` parameter, :math:`g` its gradient, :math:`\eta` ``lr``, :math:`\lambda`
``weight_decay``, :math:`\epsilon` ``eps``, :math:`t` the step count starting at 1.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import torch

from .fused_kernels import FusedUpdate, check_fusable
from .piece_formula import PieceFormula
from .tensor_blocks import Scratch, block_numel_for, cache_blocks, group_by_device_and_dtype
from .validation import check_positive, check_unit_interval

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]

TRACED_PIECE_BYTES = 128 << 10
"""Pieces of at least this many bytes per operand run the traced ``out=`` form of the formula on the
per-tensor path; smaller ones run it eagerly. glibc serves fresh blocks from this size up (its
default ``mmap`` threshold) with new pages that fault on first touch (measured: 22 000 faults per
10M-element Adam step with 1 MiB pieces); smaller ones come from its heap, and for them the traced
form's Python steps cost more than they save."""

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]
Check = Callable[[Any, str], Any]
Closure = Callable[[], Any]
Group = dict[str, Any]  # a parameter group: "params" and hyperparameters
State = dict[str, Any]  # one parameter's optimizer state
Tensors = list[torch.Tensor]
Coefficients = dict[str, float]  # a formula's scalar inputs, by name


def _non_negative(value: Any, name: str) -> float:
    return check_positive(value, name, allow_zero=True)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _optional_flag(value: Any, name: str) -> bool | None:
    return None if value is None else _flag(value, name)


def _betas(value: Any, name: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (beta1, beta2), got {value!r}")
    return check_unit_interval(value[0], f"{name}[0]"), check_unit_interval(value[1], f"{name}[1]")


class _ElementwiseOptimizer(torch.optim.Optimizer):
    """What every rule here shares: checks, lazily created zero state, and the choice of path.

    A subclass declares ``_checks`` (hyperparameter name -> validator) and ``_buffer_names`` (the
    zero-initialised state tensors it needs), and implements ``formula`` (the rule for one element,
    applied by the per-tensor and the fused paths), ``_coefficient_names``, ``_coefficients`` and
    ``_flags`` (its scalar and structural inputs for one parameter) and ``_update_foreach`` (the
    rule for lists of tensors on one device and dtype).
    """

    _checks: Mapping[str, Check] = {}

    def __init__(self, params: Params, **hyperparameters: Any) -> None:
        defaults = {name: self._checks[name](value, name) for name, value in hyperparameters.items()}
        self._check_combination(defaults, "")
        super().__init__(params, defaults)

    def add_param_group(self, param_group: Group) -> None:
        """Check the group's own hyperparameters, then add it as :class:`torch.optim.Optimizer` does."""
        if isinstance(param_group, dict):  # anything else: torch.optim raises its TypeError
            where = f"param_groups[{len(self.param_groups)}]"
            for name, check in self._checks.items():
                if name in param_group:
                    param_group[name] = check(param_group[name], f"{where}['{name}']")
            self._check_combination({**self.defaults, **param_group}, f"{where}: ")
        super().add_param_group(param_group)
        group, group_index = self.param_groups[-1], len(self.param_groups) - 1
        if group["fused"]:
            try:
                for index, param in enumerate(group["params"]):
                    check_fusable(param, _describe_param(group, group_index, index))
            except ValueError:
                self.param_groups.pop()
                raise

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check the saved groups' hyperparameters, then load as :class:`torch.optim.Optimizer` does,
        except that each group keeps this optimizer's own path (``foreach``, ``fused``): a checkpoint
        saved by a fused optimizer resumes on the per-tensor path and vice versa."""
        for index, group in enumerate(state_dict.get("param_groups", [])):
            where = f"state_dict['param_groups'][{index}]"
            for name, check in self._checks.items():
                if name in group:
                    check(group[name], f"{where}['{name}']")
            self._check_combination({**self.defaults, **group}, f"{where}: ")
        paths = [{name: group[name] for name in ("foreach", "fused")} for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, path in zip(self.param_groups, paths):
            group.update(path)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()`` (re-evaluated loss) if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # collect every group first, so that a bad gradient stops the step before anything changes
        collected = [self._collect(group, index) for index, group in enumerate(self.param_groups)]
        for group_index, (group, (params, grads, states)) in enumerate(zip(self.param_groups, collected)):
            if not params:
                continue
            if group["fused"]:
                self._update_fused(params, grads, states, group, group_index)
                continue
            if group["foreach"] is False:
                for param, grad, state in zip(params, grads, states):
                    self._update_tensor(param, grad, state, group)
                continue
            for members in group_by_device_and_dtype(params).values():  # foreach=None takes this path too
                self._update_foreach(
                    [params[i] for i in members], [grads[i] for i in members], [states[i] for i in members], group
                )
        return loss

    def _update_tensor(self, param: torch.Tensor, grad: torch.Tensor, state: State, group: Group) -> None:
        """Apply ``formula`` to one parameter; on the CPU one cache-sized piece at a time, traced into
        ``out=`` steps over reused buffers (:class:`PieceFormula`), elsewhere eagerly on the whole tensor."""
        self._advance(state)
        coefficients, flags = self._coefficients(group, state), self._flags(group)
        operands = [param, grad, *[state[name] for name in self._buffer_names(group)]]
        block_numel = block_numel_for(param)
        for block, _ in cache_blocks([[operand] for operand in operands], block_numel):
            piece = [pieces[0] for pieces in block]  # one tensor in, so one piece of it per block
            size = piece[0].numel()
            if block_numel is None or size > block_numel or size * param.element_size() < TRACED_PIECE_BYTES:
                new_values = self.formula(*piece, **coefficients, **flags)
            else:
                program = self._piece_formula(len(piece), flags)
                new_values = program(piece, coefficients, self._piece_buffers(program.buffer_count, param))
            for target, value in zip([piece[0], *piece[2:]], new_values):
                target.copy_(value)

    def _piece_formula(self, operand_count: int, flags: Mapping[str, Any]) -> PieceFormula:
        """``formula`` traced for these flags, once per optimizer (not in the state: rebuilt after a copy)."""
        programs = self.__dict__.setdefault("_piece_formulas", {})
        key = (operand_count, tuple(sorted(flags.items())))
        if key not in programs:
            targets = [0, *range(2, operand_count)]  # new weights, then new state; the gradient is read only
            programs[key] = PieceFormula(self.formula, operand_count, self._coefficient_names, flags, targets)
        return programs[key]

    def _piece_buffers(self, count: int, like: torch.Tensor) -> list[torch.Tensor]:
        """``count`` reused flat buffers of one CPU block each, with ``like``'s dtype and device."""
        buffers = self.__dict__.setdefault("_piece_buffer_lists", {}).setdefault((like.device, like.dtype), [])
        while len(buffers) < count:
            buffers.append(torch.empty(block_numel_for(like), dtype=like.dtype, device=like.device))
        return buffers

    def _update_fused(
        self, params: Tensors, grads: Tensors, states: list[State], group: Group, group_index: int
    ) -> None:
        """Apply ``formula`` to every parameter of the group through compiled single-pass kernels."""
        flags, buffer_names = self._flags(group), self._buffer_names(group)
        for (device, dtype), members in group_by_device_and_dtype(params).items():
            member_states = [states[i] for i in members]
            operand_lists = [
                [params[i] for i in members],
                [grads[i] for i in members],
                *[[state[name] for state in member_states] for name in buffer_names],
            ]
            update = self._fused_update(group_index, device, dtype)
            update(operand_lists, self._coefficient_rows(member_states, group), flags)

    def _fused_update(self, group_index: int, device: torch.device, dtype: torch.dtype) -> FusedUpdate:
        """The compiled update of one group's tensors on ``device`` with ``dtype``, made at first use."""
        updates = self.__dict__.setdefault("_fused_updates", {})  # not in the state: rebuilt after a copy
        key = (group_index, device, dtype)
        if key not in updates:
            label = f"{type(self).__name__}_{id(self):x}_{group_index}_{device.type}_{str(dtype)[6:]}"
            updates[key] = FusedUpdate(self.formula, self._coefficient_names, label, device.type)
        return updates[key]

    def _coefficient_rows(self, states: list[State], group: Group) -> list[tuple[float, ...]]:
        """Advance every state; return one row of coefficients per tensor, or a single row shared by all.

        The coefficients depend on the group and on the phase :meth:`_advance` returns (Adam: the
        step count), so they are computed once per distinct phase, not once per tensor.
        """
        phases = [self._advance(state) for state in states]
        rows = {}
        for phase, state in zip(phases, states):
            if phase not in rows:
                coefficients = self._coefficients(group, state)
                rows[phase] = tuple([coefficients[name] for name in self._coefficient_names])
        if len(rows) == 1:
            return list(rows.values())
        return [rows[phase] for phase in phases]

    def _collect(self, group: Group, group_index: int) -> tuple[Tensors, Tensors, list[State]]:
        """The group's parameters that have a gradient, their gradients and their (initialised) state."""
        params, grads, states = [], [], []
        buffer_names = self._buffer_names(group)
        for index, param in enumerate(group["params"]):
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse or grad.is_complex():  # a complex parameter has a complex gradient
                kind = "sparse" if grad.is_sparse else "complex"
                raise RuntimeError(
                    f"{type(self).__name__} supports only dense real gradients, but "
                    f"{_describe_param(group, group_index, index)} has a {kind} "
                    f"{'gradient' if grad.is_sparse else 'dtype'}"
                )
            state = self.state[param]
            for name in buffer_names:
                if name not in state:
                    state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
            params.append(param)
            grads.append(grad)
            states.append(state)
        return params, grads, states

    def _check_combination(self, group: Mapping[str, Any], where: str) -> None:
        """Checks that involve several hyperparameters; every rule rejects foreach=True with fused=True."""
        if group.get("fused") and group.get("foreach"):
            raise ValueError(f"{where}fused=True and foreach=True exclude each other; pick one")

    def _buffer_names(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        raise NotImplementedError

    _coefficient_names: tuple[str, ...] = ()

    @staticmethod
    def formula(w: torch.Tensor, g: torch.Tensor, *state: torch.Tensor, **inputs: Any) -> tuple[torch.Tensor, ...]:
        """The new ``(w, *state)`` for weights ``w``, gradient ``g`` and state, elementwise."""
        raise NotImplementedError

    def _advance(self, state: State) -> Hashable:
        """Per-parameter bookkeeping before an update (Adam counts its steps); none by default.

        Returns the phase of ``state``: two states of one group with equal phases have equal
        :meth:`_coefficients` (the rules here without a step count have a single phase, ``None``).
        """
        return None

    def _coefficients(self, group: Group, state: State) -> Coefficients:
        """The formula's scalar inputs for one parameter, named as in ``_coefficient_names``."""
        return {name: group[name] for name in self._coefficient_names}

    def _flags(self, group: Group) -> dict[str, bool]:
        """The formula's structural inputs (compiled into the fused kernel); none by default."""
        return {}

    def _update_foreach(self, params: Tensors, grads: Tensors, states: list[State], group: Group) -> None:
        raise NotImplementedError


def _describe_param(group: Mapping[str, Any], group_index: int, index: int) -> str:
    where = f"param_groups[{group_index}]['params'][{index}]"
    names = group.get("param_names")
    return f"{where} ({names[index]!r})" if names else where


class SGD(_ElementwiseOptimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    With the decayed gradient :math:`d_t = g_t + \lambda w_t` and momentum :math:`\rho`:

    .. math::
        b_{t+1} = \rho\, b_t + d_t, \qquad
        w_{t+1} = \begin{cases}
            w_t - \eta\, b_{t+1} & \text{momentum} \\
            w_t - \eta\, (d_t + \rho\, b_{t+1}) & \text{Nesterov momentum}
        \end{cases}

    and :math:`w_{t+1} = w_t - \eta\, d_t` when ``momentum=0``. The buffer :math:`b` (state
    ``momentum_buffer``, zeros at first) is ``torch.optim``'s, in gradient units: the NumPy
    reference's ``velocity`` is :math:`v = -\eta b`, and both give the same weights while
    :math:`\eta` stays constant. Equals ``torch.optim.SGD`` (``dampening=0``),
    ``optim.sgd_momentum`` and ``optim.nesterov_momentum``.
    """

    _checks = {
        "lr": _non_negative,
        "momentum": check_unit_interval,
        "nesterov": _flag,
        "weight_decay": _non_negative,
        "foreach": _optional_flag,
        "fused": _optional_flag,
    }
    _coefficient_names = ("lr", "momentum", "weight_decay")

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, foreach=foreach,
            fused=fused,
        )

    def _check_combination(self, group: Mapping[str, Any], where: str) -> None:
        super()._check_combination(group, where)
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError(f"{where}nesterov=True needs momentum > 0, got momentum={group['momentum']!r}")

    def _buffer_names(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    def _flags(self, group: Group) -> dict[str, bool]:
        return {"nesterov": group["nesterov"], "decay": bool(group["weight_decay"])}

    @staticmethod
    def formula(w, g, *buffer, lr, momentum, weight_decay, nesterov: bool, decay: bool):
        """New ``(w,)``, or ``(w, b)`` with a momentum buffer ``b``: the formula of the class docstring."""
        d = g + weight_decay * w if decay else g
        if not buffer:
            return (w - lr * d,)
        b = momentum * buffer[0] + d
        return w - lr * (d + momentum * b if nesterov else b), b

    def _update_foreach(self, params: Tensors, grads: Tensors, states: list[State], group: Group) -> None:
        lr, rho, decay, nesterov = group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]
        operands = [params, grads]
        if rho:
            operands.append([state["momentum_buffer"] for state in states])
        for block, _ in cache_blocks(operands, block_numel_for(params[0])):
            w, g = block[0], block[1]
            d = torch._foreach_add(g, w, alpha=decay) if decay else g
            if not rho:
                torch._foreach_add_(w, d, alpha=-lr)
                continue
            b = block[2]
            torch._foreach_mul_(b, rho)
            torch._foreach_add_(b, d)
            if nesterov:
                torch._foreach_add_(w, d, alpha=-lr)
            torch._foreach_add_(w, b, alpha=-lr * rho if nesterov else -lr)


class Adagrad(_ElementwiseOptimizer):
    r"""AdaGrad: each coordinate's step is divided by the root of its summed squared gradients.

    .. math::
        s_{t+1} = s_t + g_t^2, \qquad w_{t+1} = w_t - \eta\, \frac{g_t}{\sqrt{s_{t+1}} + \epsilon}

    State ``sum`` (zeros at first). Equals ``torch.optim.Adagrad`` (``lr_decay=0``,
    ``weight_decay=0``, ``initial_accumulator_value=0``) and ``optim.adagrad`` with
    ``epsilon=eps`` (mind the defaults: ``eps=1e-10`` here and in torch, ``1e-8`` in the NumPy rule).
    """

    _checks = {"lr": _non_negative, "eps": _non_negative, "foreach": _optional_flag, "fused": _optional_flag}
    _coefficient_names = ("lr", "eps")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        eps: float = 1e-10,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, lr=lr, eps=eps, foreach=foreach, fused=fused)

    def _buffer_names(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    @staticmethod
    def formula(w, g, s, *, lr, eps):
        """New ``(w, s)``: the formula of the class docstring."""
        s = s + g * g
        return w - lr * g / (torch.sqrt(s) + eps), s

    def _update_foreach(self, params: Tensors, grads: Tensors, states: list[State], group: Group) -> None:
        sums, scratch = [state["sum"] for state in states], Scratch()
        for (w, g, s), _ in cache_blocks([params, grads, sums], block_numel_for(params[0])):
            torch._foreach_addcmul_(s, g, g)
            denom = scratch.sqrt(s)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(w, g, denom, -group["lr"])


class RMSprop(_ElementwiseOptimizer):
    r"""RMSProp: AdaGrad with a leaky (exponentially decaying) average of squared gradients.

    .. math::
        a_{t+1} = \alpha\, a_t + (1 - \alpha)\, g_t^2, \qquad
        w_{t+1} = w_t - \eta\, \frac{g_t}{\sqrt{a_{t+1}} + \epsilon}

    State ``square_avg`` (zeros at first). Equals ``torch.optim.RMSprop`` (``momentum=0``,
    ``centered=False``, ``weight_decay=0``) and ``optim.rmsprop`` with ``decay_rate=alpha``,
    ``epsilon=eps``.
    """

    _checks = {
        "lr": _non_negative,
        "alpha": check_unit_interval,
        "eps": _non_negative,
        "foreach": _optional_flag,
        "fused": _optional_flag,
    }
    _coefficient_names = ("lr", "alpha", "eps")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, foreach=foreach, fused=fused)

    def _buffer_names(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("square_avg",)

    @staticmethod
    def formula(w, g, a, *, lr, alpha, eps):
        """New ``(w, a)``: the formula of the class docstring."""
        a = alpha * a + (1 - alpha) * g * g
        return w - lr * g / (torch.sqrt(a) + eps), a

    def _update_foreach(self, params: Tensors, grads: Tensors, states: list[State], group: Group) -> None:
        alpha = group["alpha"]
        averages, scratch = [state["square_avg"] for state in states], Scratch()
        for (w, g, a), _ in cache_blocks([params, grads, averages], block_numel_for(params[0])):
            torch._foreach_mul_(a, alpha)
            torch._foreach_addcmul_(a, g, g, 1 - alpha)
            denom = scratch.sqrt(a)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(w, g, denom, -group["lr"])


class Adam(_ElementwiseOptimizer):
    r"""Adam: momentum's first moment and RMSProp's second moment, both bias-corrected.

    With :math:`d_t = g_t + \lambda w_t` (L2 weight decay, added to the gradient):

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1)\, d_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, d_t^2, \\
        w_t = w_{t-1} - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \qquad
        \hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}.

    State ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`), zeros at first, and ``step``
    (:math:`t`, a Python int). The multi-tensor path uses the equal form
    :math:`\frac{\hat m}{\sqrt{\hat v} + \epsilon} = \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
    \cdot \frac{m}{\sqrt{v} + \epsilon \sqrt{1 - \beta_2^t}}`, which saves a pass over :math:`v`.
    Equals ``torch.optim.Adam`` (``amsgrad=False``) and ``optim.adam`` with ``beta1, beta2 = betas``,
    ``epsilon=eps``.
    """

    _decoupled_weight_decay = False
    _checks = {
        "lr": _non_negative,
        "betas": _betas,
        "eps": _non_negative,
        "weight_decay": _non_negative,
        "foreach": _optional_flag,
        "fused": _optional_flag,
    }
    _coefficient_names = (
        "lr", "beta1", "beta2", "eps", "weight_decay", "decoupled_weight_decay", "bias_correction1", "bias_correction2"
    )

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
        )

    def _buffer_names(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _advance(self, state: State) -> int:
        return self._advance_step(state)

    def _coefficients(self, group: Group, state: State) -> Coefficients:
        (beta1, beta2), t, decay = group["betas"], state["step"], group["weight_decay"]
        decoupled = self._decoupled_weight_decay
        return {
            "lr": group["lr"], "beta1": beta1, "beta2": beta2, "eps": group["eps"],
            "weight_decay": 0.0 if decoupled else decay, "decoupled_weight_decay": decay if decoupled else 0.0,
            "bias_correction1": 1 - beta1**t, "bias_correction2": 1 - beta2**t,
        }

    @staticmethod
    def formula(
        w, g, m, v, *, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, bias_correction1, bias_correction2
    ):
        """New ``(w, m, v)``: the formula of the class docstring, with ``bias_correction1``
        :math:`= 1 - \\beta_1^t` and ``bias_correction2`` :math:`= 1 - \\beta_2^t`. Adam passes its
        :math:`\\lambda` as ``weight_decay`` and AdamW as ``decoupled_weight_decay``, the other one 0
        (which leaves ``w`` and ``g`` exactly as they are): one compiled kernel serves both."""
        w = w * (1 - lr * decoupled_weight_decay)  # AdamW: shrink the weights
        g = g + weight_decay * w  # Adam: the gradient of the L2 penalty
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / bias_correction1
        v_hat = v / bias_correction2
        return w - lr * m_hat / (torch.sqrt(v_hat) + eps), m, v

    @staticmethod
    def _advance_step(state: State) -> int:
        """Increment and return :math:`t` (a 0-d tensor from a ``torch.optim`` checkpoint is accepted)."""
        state["step"] = int(state.get("step", 0)) + 1
        return state["step"]

    def _update_foreach(self, params: Tensors, grads: Tensors, states: list[State], group: Group) -> None:
        (beta1, beta2), lr, decay = group["betas"], group["lr"], group["weight_decay"]
        root_corrections, step_sizes = [], []
        for state in states:  # parameters may have taken different numbers of steps
            t = self._advance_step(state)
            root_corrections.append(math.sqrt(1 - beta2**t))
            step_sizes.append(-lr * root_corrections[-1] / (1 - beta1**t))
        eps = [group["eps"] * root for root in root_corrections]
        firsts = [state["exp_avg"] for state in states]
        seconds = [state["exp_avg_sq"] for state in states]
        scratch = Scratch()
        for (w, g, m, v), owners in cache_blocks([params, grads, firsts, seconds], block_numel_for(params[0])):
            if decay and self._decoupled_weight_decay:
                torch._foreach_mul_(w, 1 - lr * decay)
            elif decay:
                g = torch._foreach_add(g, w, alpha=decay)
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, 1 - beta2)
            denom = scratch.sqrt(v)
            torch._foreach_add_(denom, [eps[i] for i in owners])
            torch._foreach_addcdiv_(w, m, denom, [step_sizes[i] for i in owners])


class AdamW(Adam):
    r"""Adam with decoupled weight decay: the decay shrinks the weights instead of entering the moments.

    .. math:: w \leftarrow (1 - \eta\lambda)\, w, \quad\text{then the Adam step with } d_t = g_t.

    Same arguments as :class:`Adam`, but ``weight_decay`` defaults to ``1e-2`` as in
    ``torch.optim.AdamW``, which this equals.
    """

    _decoupled_weight_decay = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, fused=fused
        )
