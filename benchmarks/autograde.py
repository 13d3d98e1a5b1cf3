"""Throughput of ``cs231n-grade autograde`` against plain sequential ``nbgrader autograde``.

Builds a course with N simulated submissions, copies it four times and grades each copy once,
all in this one run, as a fresh command each. ``--assignment update_rules`` (the issue's
benchmark): the course's real ``update_rules`` assignment, every submission the honest solution.
``--assignment demo``: the demo course (:mod:`cs231n_utils.grading.demo_course`), half correct,
a quarter passing only the visible test, a quarter the blank release. The commands:

1. ``nbgrader autograde ps1`` (sequential, no sandbox: the baseline),
2. ``cs231n-grade autograde ps1 --workers 1`` (one sandboxed worker process, pre-warmed kernels),
3. ``cs231n-grade autograde ps1 --workers 2`` (two worker processes, pre-warmed kernels),
4. ``cs231n-grade autograde ps1 --workers 2 --cold-kernels`` (every kernel in a new sandbox).

Prints submissions per minute, the ratios to nbgrader, whether all the gradebooks agree, and
where the time of our runs goes (start-up, per-job time and its phases, parallel efficiency).

    PYTHONPATH=. .venv/bin/python benchmarks/autograde.py --assignment update_rules --submissions 16
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

import nbformat
from nbgrader.api import Gradebook

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.course import ensure_tools_on_path, open_course

PARTIAL = "def double(x):\n    return 4 if np.isscalar(x) else x"


REPO = Path(__file__).resolve().parents[1]


def make_course(root: Path, submissions: int) -> Path:
    dc.build_course(root)
    for index in range(submissions):
        answer = [dc.ANSWER, dc.ANSWER, PARTIAL, None][index % 4]
        dc.write_submission(root, f"student{index:03d}", answer)
    return root


def _solution_source(source: str) -> str:
    """A solution cell as an honest student writes it: the solution without nbgrader's markers."""
    return "\n".join(line for line in source.splitlines() if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


def make_real_course(root: Path, assignment: str, submissions: int) -> Path:
    """The course's own ``assignment``, released with nbgrader, with ``submissions`` honest students."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "solutions" / assignment, root / "solutions" / assignment)
    env = {k: v for k, v in os.environ.items() if k != "CS231N_GRADEBOOK_URL"}
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"], cwd=root,
                   env=env, check=True, capture_output=True)
    for source in (root / "solutions" / assignment).glob("*.ipynb"):
        solution = nbformat.read(str(source), as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: _solution_source(c.source) for c in solution.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        release = nbformat.read(str(root / "assignments" / assignment / source.name), as_version=4)
        for cell in release.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        for index in range(submissions):
            folder = root / "submitted" / f"student{index:03d}" / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(release, str(folder / source.name))
            (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    return root


def timed(command: list[str], cwd: Path) -> float:
    env = {**{k: v for k, v in os.environ.items() if k != "CS231N_GRADEBOOK_URL"}, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise RuntimeError(f"{command} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    return elapsed


def scores(root: Path, assignment: str) -> dict[str, float]:
    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(assignment).submissions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=16)
    parser.add_argument("--assignment", default="update_rules",
                        help="'demo' (the demo course) or an assignment of this course (default: update_rules)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds; each round runs the four commands in a rotated order, the median is shown")
    args = parser.parse_args()
    if args.submissions < 1 or args.repeats < 1:
        parser.error("--submissions and --repeats must be at least 1")
    ensure_tools_on_path()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="cs231n-bench-") as scratch:
        assignment = dc.ASSIGNMENT if args.assignment == "demo" else args.assignment
        base = (make_course(Path(scratch) / "base", args.submissions) if args.assignment == "demo"
                else make_real_course(Path(scratch) / "base", assignment, args.submissions))
        runs = {
            "nbgrader autograde (sequential)": [python, "-m", "nbgrader", "autograde", assignment],
            "cs231n-grade --workers 1": [python, "-m", "cs231n_utils.grading.cli", "--quiet", "autograde",
                                         assignment, "--workers", "1"],
            "cs231n-grade --workers 2": [python, "-m", "cs231n_utils.grading.cli", "--quiet", "autograde",
                                         assignment, "--workers", "2"],
            "cs231n-grade --workers 2 --cold-kernels": [python, "-m", "cs231n_utils.grading.cli", "--quiet",
                                                        "autograde", assignment, "--workers", "2", "--cold-kernels"],
        }
        walls: dict[str, list[float]] = {label: [] for label in runs}
        results: dict[str, object] = {}
        labels = list(runs)
        for round_index in range(args.repeats):
            shift = round_index % len(labels)
            order = labels[shift:] + labels[:shift]  # no command always goes first
            for label in order:
                course = Path(scratch) / f"round{round_index}" / str(labels.index(label))
                shutil.copytree(base, course)
                walls[label].append(timed(runs[label], course))
                results[label] = scores(course, assignment)
                if label.startswith("cs231n"):
                    table = json.loads((course / "grading" / assignment / "results.json").read_text())
                    results.setdefault(label + " job seconds", []).extend(e["seconds"] for e in table.values())
                    results.setdefault(label + " phases", []).extend(e.get("timings", {}) for e in table.values())
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
    print(f"all the gradebooks hold the same scores: {agree} (total {sum(reference.values()):g} points)")
    for workers, label in ((1, "cs231n-grade --workers 1"), (2, "cs231n-grade --workers 2"),
                           (2, "cs231n-grade --workers 2 --cold-kernels")):
        jobs = results[label + " job seconds"]
        busy = sum(jobs)
        print(f"{label}: mean job {busy / len(jobs):.2f} s (kernel start, guarded execution, private gradebook); "
              f"jobs' busy time / wall / workers = {busy / args.repeats / seconds[label] / workers:.0%}; "
              f"rest = interpreter, nbgrader and worker start-up, template, serial merges")
        phases = [p for p in results[label + " phases"] if p]
        if phases:
            print("  per-submission breakdown, mean s: " + ", ".join(
                f"{name} {statistics.mean(p[name] for p in phases):.2f}" for name in phases[0]))
    print(f"nbgrader autograde: {baseline / n:.2f} s per submission (kernel start and every cell, sequential)")


if __name__ == "__main__":
    main()
