"""OS-level attacks and faults, end to end through ``cs231n-grade autograde`` in the sandbox.

One temporary demo course (:mod:`cs231n_utils.grading.demo_course`: ``double`` worth 3
points), graded in one batch by the real command line in a subprocess, with the static scan
off so that every attack really runs. Every attack leaves the answer unwritten, so any point
it earns came from the attack; each prints ``GOT [...]``, the list of things it managed to
read, write or reach (it must stay empty). The subprocess gets its own temporary folder and
uid range, so "nothing left behind" is checked on what this batch alone could leave.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import cs231n_utils
from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.course import open_course
from cs231n_utils.grading.gradebook import load_results
from cs231n_utils.grading.sandbox import UID_BASE_VARIABLE, isolation_problem, processes_of_uid

PROBLEM = isolation_problem()
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.skipif(PROBLEM is not None, reason=f"no OS isolation here: {PROBLEM}")]

UID_BASE = 1_950_000_000
PACKAGE = Path(cs231n_utils.__file__).resolve().parent
MEMORY_MB = 2000


def _probe(attempts: str) -> str:
    """A cell that runs ``attempts`` (a list of ``(label, callable)``), records what succeeded in
    GOT, prints it and re-raises the first error (the recorded reason)."""
    return (
        "import os, sys, socket, glob\n"
        "got, errors = [], []\n"
        f"for label, attempt in {attempts}:\n"
        "    try:\n"
        "        if attempt():\n"
        "            got.append(label)\n"
        "    except Exception as error:\n"
        "        errors.append(error)\n"
        "print('GOT', got)\n"
        "if errors:\n"
        "    raise errors[0]\n"
    )


def _attacks(course: Path, port: int) -> dict[str, str]:
    grader = sorted(str(p) for p in PACKAGE.rglob("*.py") if "grading" in p.parts or "autograde" in p.parts)
    gradebook, solutions = course / "gradebook.db", course / "solutions" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"
    honest_nb = course / "submitted" / "honest" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"
    course_text = str(course)
    daemon = (
        "import os, time, sqlite3\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for _ in range(120):\n"
        "            time.sleep(0.5)\n"
        "            try:\n"
        f"                open({str(course / 'pwned')!r}, 'w').write('x')\n"
        f"                db = sqlite3.connect({str(gradebook)!r})\n"
        "                db.execute('update grade set manual_score = 99')\n"
        "                db.commit()\n"
        "            except Exception:\n"
        "                pass\n"
        "    os._exit(0)\n"
        "raise RuntimeError('daemon started')\n"
    )
    return {
        "append_grader": _probe(f"[(p, lambda p=p: open(p, 'a').write('\\n# pwned\\n')) for p in {grader!r}]"),
        "read_reference": _probe(
            f"[('optim', lambda: open({str(PACKAGE / 'optim.py')!r}).read()),"
            f" ('solutions', lambda: open({str(solutions)!r}).read()),"
            f" ('gradebook', lambda: open({str(gradebook)!r}, 'rb').read()),"
            " ('import optim', lambda: __import__('cs231n_utils.optim')),"
            " ('import autograde', lambda: __import__('cs231n_utils.autograde')),"
            " ('import grading', lambda: __import__('cs231n_utils.grading'))]"),
        "proc_and_env": _probe(
            f"[('PWD', lambda: {course_text!r} in os.environ.get('PWD', '')),"
            " ('gradebook url', lambda: 'CS231N_GRADEBOOK_URL' in os.environ or 'NBGRADER' in str(os.environ)),"
            f" ('proc environ', lambda: any({course_text!r} in open(f'/proc/{{p}}/environ', errors='ignore').read()"
            "   for p in os.listdir('/proc') if p.isdigit())),"
            f" ('proc cmdline', lambda: any({course_text!r} in open(f'/proc/{{p}}/cmdline', errors='ignore').read()"
            "   for p in os.listdir('/proc') if p.isdigit())),"
            " ('proc root', lambda: os.listdir('/proc/1/root')),"
            f" ('course dir', lambda: os.listdir({course_text!r}))]"),
        "write_others": _probe(
            f"[('honest notebook', lambda: open({str(honest_nb)!r}, 'a').write(' ')),"
            f" ('gradebook', lambda: open({str(gradebook)!r}, 'ab').write(b' ')),"
            f" ('autograded', lambda: open({str(course / 'autograded' / 'pwned')!r}, 'w').write('x'))]"),
        "daemon": daemon,
        "network": _probe(
            f"[('grader loopback', lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2)),"
            " ('internet', lambda: socket.create_connection(('1.1.1.1', 53), timeout=2))]"),
        "memory": (
            "import os, time\n"
            "children = []\n"
            "for _ in range(5):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        block = b'\\x01' * (800 * 2**20)\n"
            "        time.sleep(1)\n"
            "        os._exit(0)\n"
            "    children.append(pid)\n"
            "statuses = [os.waitpid(pid, 0)[1] for pid in children]\n"
            "print('SUCCEEDED', sum(status == 0 for status in statuses))\n"
        ),
        "forkbomb": (
            "import os, time\n"
            "while True:\n"
            "    if os.fork() == 0:\n"
            "        try:\n"
            "            while True:\n"
            "                os.fork()\n"
            "        finally:\n"
            "            time.sleep(60)\n"
            "            os._exit(0)\n"
        ),
        "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\n"
                       "os.kill(os.getpid(), signal.SIGKILL)",
        "loop": "while True:\n    pass",
        "segfault": "import faulthandler\nfaulthandler._sigsegv()",
    }


def _package_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _job_processes() -> set[int]:
    found: set[int] = set()
    for slot in range(8):  # a 2-worker batch uses the first slots
        found |= processes_of_uid(UID_BASE + slot)
    return found


def _scores(root: Path) -> dict[str, float]:
    coursedir, _ = open_course(root)
    with Gradebook(coursedir.db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(dc.ASSIGNMENT).submissions}


def _printed(root: Path, student: str) -> str:
    path = root / "autograded" / student / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def _grade(root: Path, students: list[str], scratch: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(scratch), UID_BASE_VARIABLE: str(UID_BASE)}
    command = [sys.executable, "-m", "cs231n_utils.grading.cli", "--course", str(root), "--quiet", "autograde",
               dc.ASSIGNMENT, "--student", ",".join(students), "--workers", "2", "--no-static-scan",
               "--timeout", "30", "--cell-timeout", "15", "--cpu-seconds", "8", "--memory-mb", str(MEMORY_MB),
               "--max-processes", "64"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = dc.build_course(tmp_path_factory.mktemp("course"))
    scratch = tmp_path_factory.mktemp("tmp")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    attacks = _attacks(root, listener.getsockname()[1])
    for student, answer in {"honest": dc.ANSWER, "blank": None, "neighbour": dc.ANSWER}.items():
        dc.write_submission(root, student, answer)
    first = _grade(root, ["honest", "blank"], scratch)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {"scores": _scores(root), "package": _package_hash(),
              "honest": (root / "submitted" / "honest" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb").read_bytes()}
    for student, code in attacks.items():
        dc.write_submission(root, student, code)
    completed = _grade(root, [*attacks, "neighbour"], scratch)
    time.sleep(2)  # the daemon would act every 0.5 s if it had survived
    try:
        listener.accept()
        connected = True
    except BlockingIOError:
        connected = False
    listener.close()
    yield {"root": root, "scratch": scratch, "attacks": attacks, "before": before, "completed": completed,
           "results": load_results(root, dc.ASSIGNMENT), "connected": connected}


def test_the_batch_ran_and_reported_the_faults(batch):
    completed = batch["completed"]
    assert completed.returncode == 1, completed.stderr[-3000:]
    assert "failed" in completed.stdout


@pytest.mark.parametrize("student", ["append_grader", "read_reference", "proc_and_env", "write_others", "daemon",
                                     "network", "memory", "forkbomb", "kill_parent", "loop", "segfault"])
def test_attack_scores_no_more_than_blank_and_is_recorded(batch, student):
    scores = _scores(batch["root"])
    assert scores[student] <= batch["before"]["scores"]["blank"] == 0.0
    assert batch["results"][student]["reasons"], f"{student}: no reason recorded"


@pytest.mark.parametrize("student", ["append_grader", "read_reference", "proc_and_env", "write_others", "network"])
def test_nothing_outside_the_sandbox_was_reachable(batch, student):
    printed = _printed(batch["root"], student)
    assert "GOT []" in printed, printed[-2000:]


@pytest.mark.parametrize("student, words", [
    ("append_grader", "raised"), ("read_reference", "raised"), ("write_others", "raised"), ("network", "raised"),
    ("memory", f"memory limit reached ({MEMORY_MB} MB"), ("forkbomb", "BlockingIOError"),
    # the kernel's parent is its slot's pre-warmed zygote (same uid): killing it, then every process
    # the kernel may signal, ends only this job (the neighbour's score is checked below)
    ("kill_parent", "kernel died"), ("segfault", "SIGSEGV"),
])
def test_each_fault_has_a_readable_reason(batch, student, words):
    assert words in " ".join(batch["results"][student]["reasons"])


def test_memory_limit_holds_for_all_processes_together(batch):
    # at most two children of 800 MB fit in 2000 MB for the whole submission (kernel included)
    printed = _printed(batch["root"], "memory")
    if "SUCCEEDED" in printed:  # the kernel itself survived the OOM killer
        assert int(printed.split("SUCCEEDED")[1].split()[0]) <= 2


def test_other_students_and_the_grader_are_untouched(batch):
    root, before = batch["root"], batch["before"]
    scores = _scores(root)
    assert scores["honest"] == before["scores"]["honest"] == 3.0
    assert scores["neighbour"] == 3.0 and batch["results"]["neighbour"]["reasons"] == []
    assert _package_hash() == before["package"]
    assert (root / "submitted" / "honest" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb").read_bytes() == before["honest"]
    assert not (root / "pwned").exists() and not (root / "autograded" / "pwned").exists()
    assert not batch["connected"]


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:120]
    except OSError:  # it has just exited
        return None


def test_no_process_and_no_job_file_is_left(batch):
    left = {pid: command for pid in _job_processes() if (command := _cmdline(pid)) is not None}
    assert left == {}
    assert list(batch["scratch"].iterdir()) == []
