"""``cs231n-grade``: collect, autograde, feedback and export for a whole class, on top of nbgrader.

    cs231n-grade collect ps1 canvas_download.zip more_notebooks/ --roster canvas_gradebook.csv
    cs231n-grade autograde ps1 --workers 2 --timeout 300 --memory-mb 2048 --cpu-seconds 240
    cs231n-grade autograde ps1 --scheduler tcp://10.0.0.5:8786      # an existing Dask cluster
    cs231n-grade feedback ps1                  # refuses while cells need manual grades
    cs231n-grade export ps1 --out grades/ --roster canvas_gradebook.csv

Every command takes ``--course DIR`` (default: the current directory), the folder that holds
``nbgrader_config.py``. Exit status: 0 when every submission was graded, 1 when some were
recorded as failed or tampered (they still have a score and a reason), 2 on usage errors.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from collections import Counter

from tqdm import tqdm

from .pool import start_pool_server


def _utc(text: str) -> datetime.datetime:
    """An ISO 8601 time as naive UTC (a time without a zone is taken as UTC)."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when


def _cmd_collect(args: argparse.Namespace) -> int:
    from .collect import collect, summary
    from .roster import read_roster

    roster = read_roster(args.roster) if args.roster else None
    report = collect(args.course, args.assignment, args.inputs, student_id=args.student_id, roster=roster,
                     deadline=args.deadline)
    print("\n".join(summary(report)))
    return 0


def _cmd_autograde(args: argparse.Namespace) -> int:
    from .autograde_batch import autograde, submitted_students
    from .sandbox import SandboxLimits

    students = args.student.split(",") if args.student else submitted_students(args.course, args.assignment)
    limits = SandboxLimits(timeout_s=args.timeout, cell_timeout_s=min(args.cell_timeout, args.timeout),
                           memory_mb=args.memory_mb, cpu_seconds=args.cpu_seconds,
                           max_processes=args.max_processes,
                           kernel_prefix=tuple(args.kernel_prefix.split()) if args.kernel_prefix else (),
                           isolate=not args.unsafe_no_isolation, prewarm=not args.cold_kernels)
    with tqdm(total=len(students), desc=f"autograde {args.assignment}", unit="submission",
              disable=args.quiet) as bar:
        def progress(result) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{result.student}: {result.status} {result.score:g}/{result.max_score:g}")

        results = autograde(args.course, args.assignment, students=students, workers=args.workers,
                            scheduler=args.scheduler, limits=limits, static_scan=not args.no_static_scan,
                            on_result=progress)
    counts = Counter(r.status for r in results)
    print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    for result in sorted(results, key=lambda r: r.student):
        if result.status != "graded":
            print(f"  {result.student}: {result.status}, {result.score:g}/{result.max_score:g}: "
                  + "; ".join(result.reasons))
    return 0 if set(counts) <= {"graded"} else 1


def _cmd_feedback(args: argparse.Namespace) -> int:
    from .feedback import autograded_students, generate_feedback, pending_manual_grades

    students = args.student.split(",") if args.student else autograded_students(args.course, args.assignment)
    pending = pending_manual_grades(args.course, args.assignment, students)
    if pending:
        print(f"{len(pending)} submissions still need manual grades (formgrader: Manual Grading):")
        for student, cells in sorted(pending.items()):
            print(f"  {student}: {', '.join(cells)}")
        if not args.allow_ungraded:
            print("no feedback written: grade them first, or pass --allow-ungraded "
                  "(those cells then show their autograded score, usually 0)")
            return 1
    with tqdm(total=len(students), desc=f"feedback {args.assignment}", unit="student", disable=args.quiet) as bar:
        outcome = generate_feedback(args.course, args.assignment, students, on_student=lambda s, ok: bar.update(1))
    failed = {s: e for s, e in outcome.items() if e is not None}
    print(f"feedback for {len(outcome) - len(failed)} of {len(outcome)} students")
    for student, error in failed.items():
        print(f"  {student}: {error.strip().splitlines()[-1] if error.strip() else 'failed'}")
    return 0 if not failed else 1


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export
    from .roster import read_roster

    roster = read_roster(args.roster) if args.roster else None
    paths = export(args.course, args.assignment, args.out, roster=roster, lms_column=args.lms_column)
    for path in (paths.grades_csv, paths.lms_csv, paths.histogram_png, paths.failures_csv):
        if path is not None:
            print(path)
    if paths.needs_manual_grade:
        print(f"warning: {len(paths.needs_manual_grade)} submissions still need manual grades, so their "
              f"scores are incomplete: {', '.join(paths.needs_manual_grade)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cs231n-grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", default=".", help="course directory with nbgrader_config.py (default: .)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    collect = commands.add_parser("collect", help="LMS zip files or folders -> submitted/<student>/<assignment>/")
    collect.add_argument("assignment")
    collect.add_argument("inputs", nargs="+", help="zip files or folders of notebooks")
    collect.add_argument("--student-id", choices=["userid", "name"], default="userid",
                         help="which part of an LMS file name is the student id (default: userid)")
    collect.add_argument("--roster", help="LMS roster CSV (Canvas gradebook export): names and emails")
    collect.add_argument("--deadline", type=_utc,
                         help="ISO 8601 due time (default: the assignment's due date in the gradebook); "
                              "the LMS late_ marker puts a file after it")
    collect.set_defaults(run=_cmd_collect)

    grade = commands.add_parser("autograde", help="autograde every submission, in parallel and sandboxed")
    grade.add_argument("assignment")
    grade.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    grade.add_argument("--scheduler", help="address of an existing Dask scheduler (overrides --workers)")
    grade.add_argument("--student", help="comma-separated student ids (default: every submission)")
    grade.add_argument("--timeout", type=float, default=300.0, help="wall-clock seconds per submission")
    grade.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell before an interrupt")
    grade.add_argument("--memory-mb", type=int, default=2048,
                       help="memory of all of a submission's processes together (MB; default: 2048)")
    grade.add_argument("--cpu-seconds", type=int, default=240, help="CPU-time limit of the kernel")
    grade.add_argument("--max-processes", type=int, default=256,
                       help="processes and threads of one submission, all together (default: 256)")
    grade.add_argument("--kernel-prefix", help="isolation command put before the kernel, e.g. 'bwrap ...'")
    grade.add_argument("--no-static-scan", action="store_true", help="skip the static tamper scan")
    grade.add_argument("--cold-kernels", action="store_true",
                       help="start every kernel in a new sandbox instead of forking it from the worker's "
                            "pre-warmed zygote (slower: every kernel imports its modules again)")
    grade.add_argument("--unsafe-no-isolation", action="store_true",
                       help="run kernels without the OS sandbox (bubblewrap) where it is unavailable: the "
                            "student's code can then read and change whatever the grading user can")
    grade.set_defaults(run=_cmd_autograde)

    feedback = commands.add_parser("feedback", help="nbgrader generate_feedback, per student")
    feedback.add_argument("assignment")
    feedback.add_argument("--student", help="comma-separated student ids (default: every autograded one)")
    feedback.add_argument("--allow-ungraded", action="store_true",
                          help="write feedback even though some cells still need manual grades")
    feedback.set_defaults(run=_cmd_feedback)

    export = commands.add_parser("export", help="grades CSV, LMS import CSV, score histogram PNG, "
                                                "per-test failure CSV")
    export.add_argument("assignment")
    export.add_argument("--out", default="grading-export", help="output folder (default: grading-export)")
    export.add_argument("--roster", help="LMS roster CSV (Canvas gradebook export): writes the LMS import file")
    export.add_argument("--lms-column", help="LMS assignment column, e.g. 'Update rules (4321)' "
                                             "(default: the roster's matching column)")
    export.set_defaults(run=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "autograde" and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.command == "autograde" and not args.scheduler:
        start_pool_server()  # the workers' imports run beside this process's own
    from .job import ignore_session_warnings

    ignore_session_warnings()
    try:
        return args.run(args)
    except ValueError as error:
        print(f"cs231n-grade: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
