#!/usr/bin/env python3
"""Time one optimizer step: cs231n_utils.torch_optim against torch.optim, and NumPy rule forms.

    python benchmarks/optim_step.py --threads 2     # 1 x 10M float32, ResNet-18's 62 shapes, 62 small
    python benchmarks/optim_step.py --quick         # smoke run with tiny sizes
    python benchmarks/optim_step.py --device cuda --layout 100000000:1 --layout resnet18

Every number comes from this run. The candidates are timed round-robin (one step of each, then the
next repeat), so that a change in the machine's load hits all of them alike; each time is the
median over the repeats, after warm-up steps (the first step of a fused optimizer compiles; its
time is printed apart and never enters a median). On CUDA each repeat times a burst of 10 steps in
a row before synchronising (--burst), so the host queues a step while the previous one runs, as in
a training loop; a single synchronised step would also count the host's launch latency, during
which the GPU idles. The bandwidth column counts the floats a step
must move at least (Adam and AdamW: read w, g, m, v and write w, m, v = 7 per parameter; SGD with
momentum: 5) and compares it with two yardsticks timed in the same round-robin: a STREAM triad
(a = b + s c, 3 floats per element, which writes a fresh array) and an in-place update
(a += s c, 3 floats per element, the access pattern of an optimizer step, steadier across the
machine's memory-bandwidth modes). Under each table a line checks the targets of issue 15: our
fused step at most 1.2x torch's fused step (1.5x for layouts of small tensors, where the per-step
overhead dominates).
The NumPy part compares the rules of cs231n_utils.optim (one new array per step, with input
checks) with the naive textbook form of the same formulas (a fresh array for every intermediate),
and times the input checks: the in-pass check of the new weights, both as the step with it minus
the step without it and clocked inside the step, and the old separate np.isfinite checks of w and
dw that it replaced.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cs231n_utils import optim as numpy_rules  # noqa: E402
from cs231n_utils import torch_optim  # noqa: E402
from cs231n_utils.validation import check_finite, maybe_non_finite  # noqa: E402

Step = Callable[[], object]
FLOATS_PER_PARAM = {"Adam": 7, "AdamW": 7, "SGD-momentum": 5}
RULES = {  # name: (torch.optim class, ours, keyword arguments both take)
    "Adam": (torch.optim.Adam, torch_optim.Adam, {"lr": 1e-3}),
    "AdamW": (torch.optim.AdamW, torch_optim.AdamW, {"lr": 1e-3, "weight_decay": 1e-2}),
    "SGD-momentum": (torch.optim.SGD, torch_optim.SGD, {"lr": 1e-3, "momentum": 0.9}),
}
TORCH_BASELINES = ("torch foreach=False", "torch foreach=True", "torch fused")
TRIAD, IN_PLACE = "STREAM triad", "in-place a += s*c"
CUDA_BURST = 10  # steps per timed sample on a GPU (see time_round_robin)
SMALL_TENSOR_NUMEL = 10_000  # below this mean size a layout counts as "small tensors" (overhead-bound)


def resnet18_shapes() -> list[tuple[int, ...]]:
    """The 62 parameter shapes of torchvision's ResNet-18 (11.7M parameters), in model order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            shapes += [(width, channels, 3, 3), (width,), (width,), (width, width, 3, 3), (width,), (width,)]
            if block == 0 and (stride != 1 or channels != width):
                shapes += [(width, channels, 1, 1), (width,), (width,)]
            channels = width
    return shapes + [(1000, 512), (1000,)]


@dataclass(frozen=True)
class Layout:
    """Parameters of the given shapes, called ``name`` in the tables."""

    name: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def numel(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.shapes)

    @classmethod
    def parse(cls, text: str) -> "Layout":
        """``resnet18``, or ``NUMEL:TENSORS`` (``NUMEL`` parameters in ``TENSORS`` near-equal 1-D tensors)."""
        if text == "resnet18":
            return cls("ResNet-18's 62 shapes", tuple(resnet18_shapes()))
        try:
            numel, tensors = (int(float(part)) for part in text.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"layout must be resnet18 or NUMEL:TENSORS, got {text!r}") from None
        if numel < 1 or not 1 <= tensors <= numel:
            raise argparse.ArgumentTypeError(f"layout needs 1 <= TENSORS <= NUMEL, got {text!r}")
        sizes = [numel // tensors + (i < numel % tensors) for i in range(tensors)]
        return cls(f"{tensors} tensor{'s' * (tensors > 1)}", tuple((size,) for size in sizes))

    def __str__(self) -> str:
        return f"{self.numel:,} params in {self.name}"

    @property
    def small_tensors(self) -> bool:
        return self.numel / len(self.shapes) < SMALL_TENSOR_NUMEL


FULL_DEFAULTS = {
    "layout": [Layout.parse("10000000:1"), Layout.parse("resnet18"), Layout.parse("6200:62")],
    "repeats": 15,
    "warmup": 3,
    "numpy_numel": 10_000_000,
}
QUICK_DEFAULTS = {
    "layout": [Layout.parse("100000:10"), Layout.parse("100000:1")],
    "repeats": 3,
    "warmup": 1,
    "numpy_numel": 100_000,
}


def time_round_robin(
    steps: dict[str, Step], repeats: int, warmup: int, sync: Callable[[], None], burst: int = 1
) -> dict[str, float]:
    """Median seconds per call of each step, timed one after another in every repeat.

    Each sample is ``burst`` calls in a row and one synchronisation, divided by ``burst``. On a GPU,
    where a call only queues kernels, a burst lets the host queue a step while the previous one
    runs, as in a training loop: the sample is the device time per step when the host keeps ahead,
    and the host's time per step when it cannot. With ``burst=1`` every sample also holds the host's
    launch latency, which the device spends idle.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(burst):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / burst)
    return {name: statistics.median(values) for name, values in times.items()}


def default_burst(device: torch.device) -> int:
    """Steps per timed sample: 1 on the CPU (each call runs to completion), CUDA_BURST elsewhere."""
    return 1 if device.type == "cpu" else CUDA_BURST


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def yardstick_steps(numel: int, device: torch.device, dtype: torch.dtype) -> dict[str, Step]:
    """A STREAM triad ``a = b + s c`` and an in-place ``a += s c`` on ``numel`` elements (3 floats each)."""
    a = torch.empty(numel, device=device, dtype=dtype)
    b = torch.rand(numel, device=device, dtype=dtype)
    c = torch.rand(numel, device=device, dtype=dtype)
    return {TRIAD: lambda: torch.add(b, c, alpha=3.0, out=a), IN_PLACE: lambda: b.add_(c, alpha=1e-9)}


def make_params(layout: Layout, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    """Parameters of the layout's shapes with fixed random gradients."""
    generator = torch.Generator().manual_seed(0)
    params = []
    for shape in layout.shapes:
        param = torch.randn(shape, generator=generator, dtype=dtype).to(device).requires_grad_()
        param.grad = 1e-3 * torch.randn(shape, generator=generator, dtype=dtype).to(device)
        params.append(param)
    return params


def torch_optim_steps(
    rule: str, params: list[torch.Tensor], sync: Callable[[], None], fused: bool = True
) -> tuple[dict[str, Step], float | None]:
    """One ``step`` per implementation of ``rule`` (torch's fused one where the device has it), and the
    seconds our fused optimizer's first step took (trace and compile, or load from Inductor's cache;
    ``None`` when ``fused`` is false and ours is left out)."""
    theirs, ours, kwargs = RULES[rule]
    optimizers = {
        "torch foreach=False": theirs(params, foreach=False, **kwargs),
        "torch foreach=True": theirs(params, foreach=True, **kwargs),
    }
    try:
        torch_fused = theirs(params, fused=True, **kwargs)
        torch_fused.step()
        optimizers["torch fused"] = torch_fused
    except RuntimeError:  # not supported on this device or dtype
        pass
    optimizers["ours foreach=False"] = ours(params, foreach=False, **kwargs)
    optimizers["ours foreach=True"] = ours(params, foreach=True, **kwargs)
    if not fused:
        return {name: optimizer.step for name, optimizer in optimizers.items()}, None
    optimizers["ours fused"] = ours(params, fused=True, **kwargs)
    start = time.perf_counter()
    optimizers["ours fused"].step()
    sync()
    return {name: optimizer.step for name, optimizer in optimizers.items()}, time.perf_counter() - start


def torch_table(rule: str, layout: Layout, seconds: dict[str, float], itemsize: int) -> list[str]:
    """Rows of times, ratios to each torch.optim variant, and bandwidth against both yardsticks."""
    yardsticks = {name: 3 * layout.numel * itemsize / seconds.pop(name) for name in (TRIAD, IN_PLACE)}
    baselines = [name for name in TORCH_BASELINES if name in seconds]
    header = f"{'implementation':<20}{'ms/step':>9}" + "".join(f"{'÷ ' + b[6:]:>17}" for b in baselines)
    lines = [
        f"{rule}, {layout} (triad {yardsticks[TRIAD] / 1e9:.1f} GB/s, in-place {yardsticks[IN_PLACE] / 1e9:.1f} GB/s)",
        header + f"{'GB/s':>7}{'% triad':>8}{'% in-pl.':>9}",
    ]
    moved = FLOATS_PER_PARAM[rule] * layout.numel * itemsize
    for name, value in seconds.items():
        ratios = "".join(f"{value / seconds[b]:>17.2f}" for b in baselines)
        bandwidth = moved / value
        fractions = "".join(f"{100 * bandwidth / yardsticks[y]:>7.0f}% " for y in (TRIAD, IN_PLACE))
        lines.append(f"{name:<20}{value * 1e3:>9.3f}{ratios}{bandwidth / 1e9:>7.1f}{fractions}")
    if "torch fused" in seconds and "ours fused" in seconds:
        lines.append(target_line(seconds, layout))
    return lines


def target_line(seconds: dict[str, float], layout: Layout) -> str:
    """Whether our fused step meets issue 15's target against torch's fused step in this run."""
    ratio = seconds["ours fused"] / seconds["torch fused"]
    bound = 1.5 if layout.small_tensors else 1.2
    return f"target: ours fused / torch fused = {ratio:.2f} (<= {bound} {'met' if ratio <= bound else 'missed'})"


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


@contextmanager
def check_replaced_by(check: Callable[[np.ndarray], bool]) -> Iterator[None]:
    """Run the NumPy rules with ``check`` in place of their in-pass finiteness check, then restore it."""
    numpy_rules.maybe_non_finite = check
    try:
        yield
    finally:
        numpy_rules.maybe_non_finite = maybe_non_finite


def numpy_steps(rule: str, numel: int, dtype: np.dtype, check_shares: list[float]) -> dict[str, Step]:
    """One step of each NumPy form of ``rule``, each with its own state, on the same ``w`` and ``dw``;
    each step of the ``check clocked`` form appends the share of it spent in the check to ``check_shares``."""
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

    unchecked_config, timed_config = dict(config), dict(config)

    def unchecked() -> None:
        """The same rule with its in-pass finiteness check switched off."""
        with check_replaced_by(lambda flat: False):
            reference(w, dw, unchecked_config)

    def timed_check() -> None:
        """The same rule with a clock around every call of its check; appends the check's share of the step."""
        spent = 0.0

        def timed(flat: np.ndarray) -> bool:
            nonlocal spent
            start = time.perf_counter()
            found = maybe_non_finite(flat)
            spent += time.perf_counter() - start
            return found

        with check_replaced_by(timed):
            start = time.perf_counter()
            reference(w, dw, timed_config)
            check_shares.append(spent / (time.perf_counter() - start))

    def old_checks() -> None:
        check_finite(w, "w")
        check_finite(dw, "dw")

    return {
        "naive textbook": naive,
        "cs231n_utils.optim": lambda: reference(w, dw, config),
        UNCHECKED: unchecked,
        TIMED_CHECK: timed_check,
        OLD_CHECKS: old_checks,
    }


NUMPY_RULES = ("Adam", "SGD-momentum")
UNCHECKED, TIMED_CHECK, OLD_CHECKS = "no finiteness check", "check clocked", "old isfinite checks"


def numpy_table(rule: str, numel: int, seconds: dict[str, float], check_shares: list[float]) -> list[str]:
    """Times of the rule's forms, and the cost of its finiteness check as a share of the step, two
    ways: the step with it minus the step without it (medians of a noisy machine, so this difference
    scatters), and the time inside the check clocked on every call (the median of ``check_shares``,
    one share per timed step; it leaves out what the check costs later operations, and holds the
    clock's own cost, about 0.1 us a call); then the old separate ``np.isfinite`` checks of w and dw."""
    unchecked, old_checks = seconds.pop(UNCHECKED), seconds.pop(OLD_CHECKS)
    seconds.pop(TIMED_CHECK)
    lines = [f"NumPy {rule}, {numel:,} float32 params", f"{'form':<22}{'ms/step':>9}{'speed-up vs naive':>19}"]
    for name, value in seconds.items():
        lines.append(f"{name:<22}{value * 1e3:>9.2f}{seconds['naive textbook'] / value:>18.2f}x")
    step = seconds["cs231n_utils.optim"]
    clocked = statistics.median(check_shares)
    checks = (
        ("check: with - without", step - unchecked), ("check: clocked inside", clocked * step), (OLD_CHECKS, old_checks)
    )
    for name, value in checks:
        lines.append(f"{name:<22}{value * 1e3:>9.2f}{100 * value / step:>18.1f}% of the cs231n_utils.optim step")
    verdicts = ["met" if share <= 0.05 else "missed" for share in ((step - unchecked) / step, clocked)]
    lines.append(f"target: check <= 5 % of the step: {verdicts[0]} (with - without), {verdicts[1]} (clocked inside)")
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--layout", type=Layout.parse, action="append", metavar="NUMEL:TENSORS",
        help="resnet18 or NUMEL:TENSORS (repeatable; default 10000000:1, resnet18, 6200:62; quick 100000:10, 100000:1)",
    )
    parser.add_argument("--repeats", type=int, help="timed steps per candidate, median reported (default 15; quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed steps per candidate first (default 3; quick 1)")
    parser.add_argument(
        "--rule", choices=list(FLOATS_PER_PARAM), action="append", help="torch rule to time (repeatable; default all)"
    )
    parser.add_argument(
        "--no-fused", action="store_true", help="leave out our fused optimizers (each compiles at its first step)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--numpy-numel", type=int, help="array size for the NumPy rules (default 10M; quick 100k)")
    parser.add_argument(
        "--burst", type=int,
        help=f"steps in a row per timed sample, one synchronisation after them (default 1 on cpu, "
        f"{CUDA_BURST} on cuda, "
        "where the host then queues a step while the previous one runs; 1 adds the launch latency to every step)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, few repeats")
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.rule = args.rule or list(FLOATS_PER_PARAM)
    if args.repeats < 1 or args.numpy_numel < 1 or args.warmup < 0:
        parser.error("--repeats and --numpy-numel must be >= 1, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.burst is None:
        args.burst = default_burst(torch.device(args.device))
    if args.burst < 1:
        parser.error("--burst must be >= 1")
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
    print(f"float32; median of {args.repeats} round-robin repeats after {args.warmup} warm-up steps, "
          f"each repeat {args.burst} step{'s' * (args.burst > 1)} in a row then a synchronisation; "
          f"the yardsticks run in the same round-robin\n")
    for layout in args.layout:
        params = make_params(layout, device, dtype)
        yardsticks = yardstick_steps(layout.numel, device, dtype)
        for rule in args.rule:
            steps, compile_seconds = torch_optim_steps(rule, params, sync, fused=not args.no_fused)
            seconds = time_round_robin({**steps, **yardsticks}, args.repeats, args.warmup, sync, args.burst)
            print("\n".join(torch_table(rule, layout, seconds, params[0].element_size())))
            if compile_seconds is not None:
                print(f"ours fused: first step (compile or cache load) {compile_seconds:.1f} s")
            print()
        del params, yardsticks
    if device.type != "cpu":
        return
    for rule in NUMPY_RULES:
        check_shares: list[float] = []
        steps = numpy_steps(rule, args.numpy_numel, np.float32, check_shares)
        seconds = time_round_robin(steps, args.repeats, args.warmup, lambda: None)
        timed_shares = check_shares[args.warmup :]  # the warm-up steps come first
        print("\n".join(numpy_table(rule, args.numpy_numel, seconds, timed_shares)), end="\n\n")


if __name__ == "__main__":
    sys.exit(main())
