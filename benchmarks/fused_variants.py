#!/usr/bin/env python3
"""Time our fused optimizer step under candidate Inductor option sets against torch.optim's fused step.

    python benchmarks/fused_variants.py --device cuda          # 1 x 100M, ResNet-18's shapes, 62 small
    python benchmarks/fused_variants.py --device cpu           # 1 x 1M and 62 small tensors

For each layout and rule (Adam, SGD with momentum) the script makes one ``torch.optim`` fused
optimizer and, per option set in :data:`VARIANTS`, one of ours built with
``cs231n_utils.fused_kernels.INDUCTOR_OPTIONS[device]`` set to that option set. Every optimizer
steps the same parameters; the first step of each of ours compiles (its time is printed apart).
Then all of them are timed round-robin (per repeat a burst of steps of each, 10 in a row on CUDA,
then a synchronisation, as in benchmarks/optim_step.py) with an in-place ``a += s c`` on as many
elements as a bandwidth yardstick, and the table gives the median milliseconds, the ratio to
torch's fused step, the bandwidth (Adam moves 7 floats per parameter, SGD with momentum 5) and its
share of the yardstick's. A variant that fails to
compile or to run prints its error and is left out; the others go on. Before the timings, each
variant's weights after a few steps on four small tensors are compared with ``torch.optim``'s.
Choose the set with the best ratios among those that match on the target device and write it into
``INDUCTOR_OPTIONS``.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from optim_step import (  # noqa: E402
    CUDA_BURST,
    FLOATS_PER_PARAM,
    IN_PLACE,
    RULES,
    Layout,
    Step,
    default_burst,
    make_params,
    synchronizer,
    time_round_robin,
    yardstick_steps,
)

from cs231n_utils import fused_kernels  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"size_asserts": False},
    "combo_kernels": {"size_asserts": False, "combo_kernels": True},
    "cudagraphs": {"size_asserts": False, "triton.cudagraphs": True},
    "combo+cudagraphs": {"size_asserts": False, "combo_kernels": True, "triton.cudagraphs": True},
    "combo+coordinate_descent": {"size_asserts": False, "combo_kernels": True, "coordinate_descent_tuning": True},
}
"""Candidate Inductor option sets for ``INDUCTOR_OPTIONS``, by name."""

DEFAULT_LAYOUTS = {"cuda": ["100000000:1", "resnet18", "6200:62"], "cpu": ["1000000:1", "6200:62"]}
DEFAULT_RULES = ("Adam", "SGD-momentum")
TORCH_FUSED = "torch fused"


def ours_with_options(
    rule: str, params: list[torch.Tensor], device: torch.device, options: dict[str, Any]
) -> torch.optim.Optimizer:
    """Our fused optimizer for ``rule`` whose kernels compile with ``options``, after its first step."""
    _, ours, kwargs = RULES[rule]
    saved = fused_kernels.INDUCTOR_OPTIONS[device.type]
    fused_kernels.INDUCTOR_OPTIONS[device.type] = options
    try:
        optimizer = ours(params, fused=True, **kwargs)
        optimizer.step()  # compiles with the options set now
    finally:
        fused_kernels.INDUCTOR_OPTIONS[device.type] = saved
    return optimizer


def candidate_steps(
    rule: str, params: list[torch.Tensor], device: torch.device, variants: Sequence[str]
) -> tuple[dict[str, Step], list[str]]:
    """Steps of torch's fused optimizer and of ours under each variant that compiles and runs, and
    one line per variant on its first step (compile seconds, or the error)."""
    theirs, _, kwargs = RULES[rule]
    sync = synchronizer(device)
    steps: dict[str, Step] = {}
    notes = []
    try:
        torch_fused = theirs(params, fused=True, **kwargs)
        torch_fused.step()
        steps[TORCH_FUSED] = torch_fused.step
    except RuntimeError as error:  # torch has no fused kernel for this device or dtype
        notes.append(f"{TORCH_FUSED}: not available ({error})")
    for name in variants:
        start = time.perf_counter()
        try:
            optimizer = ours_with_options(rule, params, device, VARIANTS[name])
            optimizer.step()  # a second step: CUDA graphs record on a later step than the first
            sync()
        except Exception as error:  # noqa: BLE001 - one failing variant must not stop the others
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            notes.append(f"ours {name}: FAILED {last[:300]}")
            continue
        steps[f"ours {name}"] = optimizer.step
        notes.append(f"ours {name}: first two steps (compile or cache load) {time.perf_counter() - start:.1f} s")
    return steps, notes


CHECK_LAYOUT = Layout.parse("4000:4")
CHECK_STEPS = 5


def set_gradients(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    """Give each parameter a copy of its gradient (an optimizer must never see another's tensors)."""
    for param, grad in zip(params, grads):
        param.grad = grad.clone()


def check_against_torch(rule: str, device: torch.device, variants: Sequence[str]) -> list[str]:
    """One line per variant: the largest difference between our weights and ``torch.optim``'s
    (foreach) after :data:`CHECK_STEPS` steps from the same start, with a new gradient every step,
    on :data:`CHECK_LAYOUT` (a fast option set is of no use if it computes something else)."""
    theirs, _, kwargs = RULES[rule]
    reference = make_params(CHECK_LAYOUT, device, torch.float32)
    reference_optimizer = theirs(reference, foreach=True, **kwargs)
    gradients = [[torch.randn_like(p) for p in reference] for _ in range(CHECK_STEPS)]
    for grads in gradients:
        set_gradients(reference, grads)
        reference_optimizer.step()
    lines = []
    for name in variants:
        params = make_params(CHECK_LAYOUT, device, torch.float32)
        try:
            set_gradients(params, gradients[0])
            optimizer = ours_with_options(rule, params, device, VARIANTS[name])  # takes the first step
            for grads in gradients[1:]:
                set_gradients(params, grads)
                optimizer.step()
            worst = max((p - r).abs().max().item() for p, r in zip(params, reference))
        except Exception as error:  # noqa: BLE001 - one failing variant must not stop the others
            lines.append(f"check ours {name}: FAILED {type(error).__name__}: {str(error)[:200]}")
            continue
        verdict = "matches" if worst <= 1e-5 else "DIFFERS from"
        lines.append(f"check ours {name}: {verdict} torch.optim after {CHECK_STEPS} steps (max |diff| {worst:.1e})")
    return lines


def table(rule: str, layout: Layout, seconds: dict[str, float], itemsize: int) -> list[str]:
    """Rows of milliseconds, ratio to torch's fused step, bandwidth, and bandwidth as a share of the
    in-place yardstick ``a += s c`` on as many elements, timed in the same round robin."""
    in_place = 3 * layout.numel * itemsize / seconds.pop(IN_PLACE)
    moved = FLOATS_PER_PARAM[rule] * layout.numel * itemsize
    lines = [
        f"{rule}, {layout} (in-place yardstick {in_place / 1e9:.1f} GB/s)",
        f"{'candidate':<28}{'ms/step':>10}{'÷ torch fused':>15}{'GB/s':>9}{'% in-pl.':>10}",
    ]
    for name, value in seconds.items():
        ratio = f"{value / seconds[TORCH_FUSED]:>15.2f}" if TORCH_FUSED in seconds else f"{'-':>15}"
        bandwidth = moved / value
        lines.append(f"{name:<28}{value * 1e3:>10.3f}{ratio}{bandwidth / 1e9:>9.1f}{100 * bandwidth / in_place:>9.0f}%")
    return lines


def run_one(rule: str, layout: Layout, device: torch.device, args: argparse.Namespace) -> None:
    """Print the table of one rule on one layout; an error in the timing is printed, not raised."""
    params = make_params(layout, device, torch.float32)
    steps, notes = candidate_steps(rule, params, device, args.variant)
    steps[IN_PLACE] = yardstick_steps(layout.numel, device, torch.float32)[IN_PLACE]
    print("\n".join(notes))
    try:
        seconds = time_round_robin(steps, args.repeats, args.warmup, synchronizer(device), args.burst)
    except Exception as error:  # noqa: BLE001 - the next layout or rule still runs
        print(f"timing {rule} on {layout} FAILED: {type(error).__name__}: {error}")
        return
    print("\n".join(table(rule, layout, seconds, params[0].element_size())), end="\n\n", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device: cuda (default) or cpu")
    parser.add_argument(
        "--layout", type=Layout.parse, action="append", metavar="NUMEL:TENSORS",
        help="resnet18 or NUMEL:TENSORS (repeatable; default on cuda 100000000:1, resnet18, 6200:62; "
        "on cpu 1000000:1, 6200:62)",
    )
    parser.add_argument("--rule", choices=DEFAULT_RULES, action="append", help="rule (repeatable; default both)")
    parser.add_argument(
        "--variant", choices=list(VARIANTS), action="append", help="option set (repeatable; default all)"
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per candidate, median reported")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per candidate first")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--burst", type=int, default=None,
        help=f"steps in a row per timed sample (default 1 on cpu, {CUDA_BURST} on cuda; "
        "see optim_step.time_round_robin)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type not in DEFAULT_LAYOUTS:
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    args.layout = args.layout or [Layout.parse(text) for text in DEFAULT_LAYOUTS[device.type]]
    args.rule = args.rule or list(DEFAULT_RULES)
    args.variant = args.variant or list(VARIANTS)
    if args.burst is None:
        args.burst = default_burst(device)
    if args.repeats < 1 or args.warmup < 0 or args.burst < 1:
        parser.error("--repeats and --burst must be >= 1 and --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}; float32; median of {args.repeats} round-robin repeats\n", flush=True)
    for rule in args.rule:
        print("\n".join(check_against_torch(rule, device, args.variant)), end="\n\n", flush=True)
    for layout in args.layout:
        for rule in args.rule:
            run_one(rule, layout, device, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
