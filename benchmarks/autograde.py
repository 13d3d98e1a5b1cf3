"""Throughput of ``cs231n-grade autograde`` against plain sequential ``nbgrader autograde``.

Builds the demo course (:mod:`cs231n_utils.grading.demo_course`) with N simulated submissions
(half correct, a quarter passing only the visible test, a quarter the blank release), copies it
three times and grades each copy once, all in this one run, as a fresh command each:

1. ``nbgrader autograde ps1`` (sequential, no sandbox: the baseline),
2. ``cs231n-grade autograde ps1 --workers 1`` (one sandboxed worker process),
3. ``cs231n-grade autograde ps1 --workers 2`` (Dask LocalCluster, two worker processes).

Prints submissions per minute, the ratios to nbgrader, whether all three gradebooks agree, and
where the time of our runs goes (start-up, per-job time, parallel efficiency).

    PYTHONPATH=. .venv/bin/python benchmarks/autograde.py --submissions 40
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nbgrader.api import Gradebook

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.course import ensure_tools_on_path, open_course

PARTIAL = "def double(x):\n    return 4 if np.isscalar(x) else x"


def make_course(root: Path, submissions: int) -> Path:
    dc.build_course(root)
    for index in range(submissions):
        answer = [dc.ANSWER, dc.ANSWER, PARTIAL, None][index % 4]
        dc.write_submission(root, f"student{index:03d}", answer)
    return root


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"{command} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    return elapsed


def scores(root: Path) -> dict[str, float]:
    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(dc.ASSIGNMENT).submissions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds; each round runs the three commands in a rotated order, the median is shown")
    args = parser.parse_args()
    if args.submissions < 1 or args.repeats < 1:
        parser.error("--submissions and --repeats must be at least 1")
    ensure_tools_on_path()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="cs231n-bench-") as scratch:
        base = make_course(Path(scratch) / "base", args.submissions)
        runs = {
            "nbgrader autograde (sequential)": [python, "-m", "nbgrader", "autograde", dc.ASSIGNMENT],
            "cs231n-grade --workers 1": [python, "-m", "cs231n_utils.grading.cli", "--quiet", "autograde",
                                         dc.ASSIGNMENT, "--workers", "1"],
            "cs231n-grade --workers 2": [python, "-m", "cs231n_utils.grading.cli", "--quiet", "autograde",
                                         dc.ASSIGNMENT, "--workers", "2"],
        }
        walls: dict[str, list[float]] = {label: [] for label in runs}
        results: dict[str, object] = {}
        labels = list(runs)
        for round_index in range(args.repeats):
            order = labels[round_index % 3:] + labels[:round_index % 3]  # no command always goes first
            for label in order:
                course = Path(scratch) / f"round{round_index}" / label.split()[0] / label.split()[-1]
                shutil.copytree(base, course)
                walls[label].append(timed(runs[label], course))
                results[label] = scores(course)
                if label.startswith("cs231n"):
                    table = json.loads((course / "grading" / dc.ASSIGNMENT / "results.json").read_text())
                    results.setdefault(label + " job seconds", []).extend(e["seconds"] for e in table.values())
                print(f"round {round_index + 1}: {label}: {walls[label][-1]:.1f} s", flush=True)
        seconds = {label: statistics.median(values) for label, values in walls.items()}
    n = args.submissions
    baseline = seconds["nbgrader autograde (sequential)"]
    print(f"{n} submissions, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"median of {args.repeats} round(s)")
    print(f"{'run':34s} {'wall s':>8s} {'subm/min':>9s} {'vs nbgrader':>12s}")
    for label, wall in seconds.items():
        print(f"{label:34s} {wall:8.1f} {60 * n / wall:9.1f} {baseline / wall:11.2f}x")
    reference = results["nbgrader autograde (sequential)"]
    agree = all(results[label] == reference for label in runs)
    print(f"all three gradebooks hold the same scores: {agree} (total {sum(reference.values()):g} points)")
    for workers, label in ((1, "cs231n-grade --workers 1"), (2, "cs231n-grade --workers 2")):
        jobs = results[label + " job seconds"]
        busy = sum(jobs)
        print(f"{label}: mean job {busy / len(jobs):.2f} s (kernel start, guarded execution, private gradebook); "
              f"jobs' busy time / wall / workers = {busy / args.repeats / seconds[label] / workers:.0%}; "
              f"rest = interpreter, nbgrader and worker start-up, template, serial merges")


if __name__ == "__main__":
    main()
