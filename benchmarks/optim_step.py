#!/usr/bin/env python3
"""Time one optimizer step: cs231n_utils.torch_optim against torch.optim, and NumPy rule forms.

    python benchmarks/optim_step.py                 # 10M float32 parameters in 100 tensors and in 1
    python benchmarks/optim_step.py --quick         # smoke run with tiny sizes
    python benchmarks/optim_step.py --device cuda --layout 100000000:100

Every number comes from this run. The candidates are timed round-robin (one step of each, then the
next repeat), so that a change in the machine's load hits all of them alike; each time is the
median over the repeats, after warm-up steps. The bandwidth column counts the floats a step must
move at least (Adam: read w, g, m, v and write w, m, v = 7 per parameter; SGD with momentum: 5)
and compares it with a STREAM triad (a = b + s c, 3 floats per element) timed in the same
round-robin. Under each Adam table a line checks the targets of issue 3: our multi-tensor step
at most 1.0x torch.optim's foreach=True time, and at least 60 % (CPU) or 80 % (GPU) of the triad.
The NumPy part compares the rules of cs231n_utils.optim (one new array per step, with input
checks) with the naive textbook form of the same formulas (a fresh array for every intermediate).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cs231n_utils import optim as numpy_rules  # noqa: E402
from cs231n_utils import torch_optim  # noqa: E402

Step = Callable[[], object]
FLOATS_PER_PARAM = {"Adam": 7, "SGD-momentum": 5}
TORCH_BASELINES = ("torch foreach=False", "torch foreach=True", "torch fused")
TRIAD = "STREAM triad"


@dataclass(frozen=True)
class Layout:
    """``numel`` parameters split into ``tensors`` equal tensors."""

    numel: int
    tensors: int

    @classmethod
    def parse(cls, text: str) -> "Layout":
        try:
            numel, tensors = (int(float(part)) for part in text.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"layout must look like NUMEL:TENSORS, got {text!r}") from None
        if numel < 1 or not 1 <= tensors <= numel:
            raise argparse.ArgumentTypeError(f"layout needs 1 <= TENSORS <= NUMEL, got {text!r}")
        return cls(numel, tensors)

    def __str__(self) -> str:
        return f"{self.numel:,} params in {self.tensors} tensor{'s' * (self.tensors > 1)}"


FULL_DEFAULTS = {
    "layout": [Layout(10_000_000, 100), Layout(10_000_000, 1)],
    "repeats": 15,
    "warmup": 3,
    "numpy_numel": 10_000_000,
}
QUICK_DEFAULTS = {
    "layout": [Layout(100_000, 10), Layout(100_000, 1)],
    "repeats": 3,
    "warmup": 1,
    "numpy_numel": 100_000,
}


def time_round_robin(steps: dict[str, Step], repeats: int, warmup: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds per call of each step, timed one after another in every repeat."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def triad_step(numel: int, device: torch.device, dtype: torch.dtype) -> Step:
    """One STREAM triad ``a = b + s * c`` on ``numel``-element tensors (moves 3 floats per element)."""
    a = torch.empty(numel, device=device, dtype=dtype)
    b = torch.rand(numel, device=device, dtype=dtype)
    c = torch.rand(numel, device=device, dtype=dtype)
    return lambda: torch.add(b, c, alpha=3.0, out=a)


def make_params(layout: Layout, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    """Parameters with fixed random gradients; the sizes differ by at most one element."""
    generator = torch.Generator().manual_seed(0)
    sizes = [layout.numel // layout.tensors + (i < layout.numel % layout.tensors) for i in range(layout.tensors)]
    params = []
    for size in sizes:
        param = torch.randn(size, generator=generator, dtype=dtype).to(device).requires_grad_()
        param.grad = 1e-3 * torch.randn(size, generator=generator, dtype=dtype).to(device)
        params.append(param)
    return params


def torch_optim_steps(rule: str, params: list[torch.Tensor]) -> dict[str, Step]:
    """One ``step`` per implementation of ``rule``; torch's fused variant only where the device has it."""
    if rule == "Adam":
        theirs, ours, kwargs = torch.optim.Adam, torch_optim.Adam, {"lr": 1e-3}
    else:
        theirs, ours, kwargs = torch.optim.SGD, torch_optim.SGD, {"lr": 1e-3, "momentum": 0.9}
    optimizers = {
        "torch foreach=False": theirs(params, foreach=False, **kwargs),
        "torch foreach=True": theirs(params, foreach=True, **kwargs),
    }
    try:
        fused = theirs(params, fused=True, **kwargs)
        fused.step()
        optimizers["torch fused"] = fused
    except RuntimeError:  # not supported on this device or dtype
        pass
    optimizers["ours foreach=False"] = ours(params, foreach=False, **kwargs)
    optimizers["ours foreach=True"] = ours(params, foreach=True, **kwargs)
    return {name: optimizer.step for name, optimizer in optimizers.items()}


def torch_table(rule: str, layout: Layout, seconds: dict[str, float], itemsize: int, device_type: str) -> list[str]:
    """Rows of times, ratios to each torch.optim variant, and bandwidth as a fraction of the triad's."""
    triad = 3 * layout.numel * itemsize / seconds.pop(TRIAD)
    baselines = [name for name in TORCH_BASELINES if name in seconds]
    header = f"{'implementation':<22}{'ms/step':>9}" + "".join(f"{'÷ ' + b[6:]:>16}" for b in baselines)
    lines = [f"{rule}, {layout} (triad {triad / 1e9:.1f} GB/s)", header + f"{'GB/s':>8}{'% triad':>9}"]
    moved = FLOATS_PER_PARAM[rule] * layout.numel * itemsize
    for name, value in seconds.items():
        ratios = "".join(f"{value / seconds[b]:>16.2f}" for b in baselines)
        bandwidth = moved / value
        lines.append(f"{name:<22}{value * 1e3:>9.2f}{ratios}{bandwidth / 1e9:>8.1f}{100 * bandwidth / triad:>8.0f}%")
    if rule == "Adam":
        lines.append(target_line(seconds, moved / triad, device_type))
    return lines


def target_line(seconds: dict[str, float], triad_seconds: float, device_type: str) -> str:
    """Whether our multi-tensor Adam meets the issue's targets in this run."""
    ours = seconds["ours foreach=True"]
    ratio, fraction = ours / seconds["torch foreach=True"], triad_seconds / ours
    wanted = 0.8 if device_type == "cuda" else 0.6
    verdict = {True: "met", False: "missed"}
    return (
        f"targets: ours foreach=True / torch foreach=True = {ratio:.2f} (<= 1.0 {verdict[ratio <= 1.0]}), "
        f"{100 * fraction:.0f}% of triad (>= {100 * wanted:.0f}% {verdict[fraction >= wanted]})"
    )


# --- NumPy: the textbook form of the two rules, against cs231n_utils.optim -------------------------


def naive_sgd_momentum(w: np.ndarray, dw: np.ndarray, v: np.ndarray, lr: float, rho: float):
    """Textbook SGD with momentum: every expression makes a new array."""
    v = rho * v - lr * dw
    return w + v, v


def naive_adam(w, dw, m, v, t, lr, beta1, beta2, eps):
    """Textbook Adam: every expression makes a new array."""
    m = beta1 * m + (1 - beta1) * dw
    v = beta2 * v + (1 - beta2) * (dw**2)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def numpy_steps(rule: str, numel: int, dtype: np.dtype) -> dict[str, Step]:
    """One step of each NumPy form of ``rule``, each with its own state, on the same ``w`` and ``dw``."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(numel).astype(dtype)
    dw = (1e-3 * rng.standard_normal(numel)).astype(dtype)
    lr, rho, beta1, beta2, eps = 1e-3, 0.9, 0.9, 0.999, 1e-8
    if rule == "SGD-momentum":
        naive_state = {"v": np.zeros_like(w)}
        reference = numpy_rules.sgd_momentum
        config = {"learning_rate": lr, "momentum": rho}

        def naive() -> None:
            _, naive_state["v"] = naive_sgd_momentum(w, dw, naive_state["v"], lr, rho)

    else:
        naive_state = {"m": np.zeros_like(w), "v": np.zeros_like(w), "t": 0}
        reference = numpy_rules.adam
        config = {"learning_rate": lr, "beta1": beta1, "beta2": beta2, "epsilon": eps}

        def naive() -> None:
            s = naive_state
            s["t"] += 1
            _, s["m"], s["v"] = naive_adam(w, dw, s["m"], s["v"], s["t"], lr, beta1, beta2, eps)

    return {"naive textbook": naive, "cs231n_utils.optim": lambda: reference(w, dw, config)}


def numpy_table(rule: str, numel: int, seconds: dict[str, float]) -> list[str]:
    lines = [f"NumPy {rule}, {numel:,} float32 params", f"{'form':<22}{'ms/step':>9}{'speed-up vs naive':>19}"]
    for name, value in seconds.items():
        lines.append(f"{name:<22}{value * 1e3:>9.2f}{seconds['naive textbook'] / value:>18.2f}x")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--layout", type=Layout.parse, action="append", metavar="NUMEL:TENSORS",
        help="parameter layout to time (repeatable; default 10000000:100 and 10000000:1; quick 100000:10, 100000:1)",
    )
    parser.add_argument("--repeats", type=int, help="timed steps per candidate, median reported (default 15; quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed steps per candidate first (default 3; quick 1)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--numpy-numel", type=int, help="array size for the NumPy rules (default 10M; quick 100k)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats")
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.repeats < 1 or args.numpy_numel < 1 or args.warmup < 0:
        parser.error("--repeats and --numpy-numel must be >= 1, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        run(args)
    finally:
        torch.set_num_threads(threads)
    return 0


def run(args: argparse.Namespace) -> None:
    device, dtype = torch.device(args.device), torch.float32
    sync = synchronizer(device)
    print(f"torch {torch.__version__}, numpy {np.__version__}, device {device}, {torch.get_num_threads()} threads")
    print(f"float32; median of {args.repeats} round-robin repeats after {args.warmup} warm-up steps; "
          f"the triad runs in the same round-robin\n")
    for layout in args.layout:
        params = make_params(layout, device, dtype)
        triad = triad_step(layout.numel, device, dtype)
        for rule in FLOATS_PER_PARAM:
            steps = {**torch_optim_steps(rule, params), TRIAD: triad}
            seconds = time_round_robin(steps, args.repeats, args.warmup, sync)
            table = torch_table(rule, layout, seconds, params[0].element_size(), device.type)
            print("\n".join(table), end="\n\n")
        del params, triad
    for rule in FLOATS_PER_PARAM:
        steps = numpy_steps(rule, args.numpy_numel, np.float32)
        seconds = time_round_robin(steps, args.repeats, args.warmup, lambda: None)
        print("\n".join(numpy_table(rule, args.numpy_numel, seconds)), end="\n\n")


if __name__ == "__main__":
    sys.exit(main())
