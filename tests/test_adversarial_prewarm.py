"""Jobs that share a pre-warmed zygote leave nothing to each other (:mod:`cs231n_utils.grading.prewarm`).

One worker grades, in this order, in one slot whose kernels are all forks of one zygote: a
*planter* that leaves files in every place a kernel may write, a SysV shared-memory segment
and a detached process, and tries to read the zygote's memory and to ptrace it; a *looker* that
reports what of it it finds; a *killer* that kills its zygote; and an honest student. The
looker must find nothing, the zygote must resist the planter, and the honest student after the
killer must get full marks from a new zygote. The planter and the looker print their kernel's
parent (the zygote) to show that they really shared it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.gradebook import load_results
from cs231n_utils.grading.sandbox import UID_BASE_VARIABLE, isolation_problem, processes_of_uid
from tests.test_adversarial_sandbox import _probe

PROBLEM = isolation_problem()
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
              pytest.mark.skipif(PROBLEM is not None or os.geteuid() != 0,
                                 reason=f"zygotes need isolation as root here: {PROBLEM or 'not root'}")]

UID_BASE = 1_960_000_000
SHM_KEY = 0x5EED
# the parent's pid and start time (field 22 of /proc/PID/stat): equal only for the same process
PARENT = "print('PARENT', os.getppid(), open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[19])\n"

PLANTER = (
    "import ctypes, os, time\n" + PARENT +
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "for path in ('/tmp/planted', '/dev/shm/planted', os.path.expanduser('~/planted'), '/tmp/matplotlib/matplotlibrc'):\n"
    "    os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "    open(path, 'w').write('backend: agg')\n"
    f"segment = libc.shmget({SHM_KEY}, 4096, 0o1666)\n"
    "print('SEGMENT', segment)\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(300)\n"
    "    os._exit(0)\n"
    "zygote = os.getppid()\n"
    + _probe("[('zygote memory', lambda: open(f'/proc/{zygote}/mem', 'rb').read(1)),"
             " ('zygote environ', lambda: open(f'/proc/{zygote}/environ', 'rb').read()),"
             " ('zygote fds', lambda: os.listdir(f'/proc/{zygote}/fd')),"
             " ('ptrace', lambda: libc.ptrace(16, zygote, 0, 0) == 0)]")
)
LOOKER = (
    "import ctypes, os\n" + PARENT +
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "mine = {os.getpid(), os.getppid()}\n"
    "others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine\n"
    "          and os.stat(f'/proc/{p}').st_uid == os.getuid()]\n"
    "seen = {'tmp': os.path.exists('/tmp/planted'), 'shm': os.path.exists('/dev/shm/planted'),\n"
    "        'home': os.path.exists(os.path.expanduser('~/planted')),\n"
    "        'matplotlibrc': os.path.exists('/tmp/matplotlib/matplotlibrc'),\n"
    f"        'sysv segment': libc.shmget({SHM_KEY}, 0, 0) != -1, 'process': bool(others)}}\n"
    "print('GOT', [label for label, found in seen.items() if found])\n"
)
KILLER = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
HONEST = dc.ANSWER + "\nimport os\n" + PARENT


def _printed(root: Path, student: str) -> str:
    path = root / "autograded" / student / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def _line(printed: str, word: str) -> str:
    return next(line for line in printed.splitlines() if line.startswith(word + " ")).split(" ", 1)[1]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = dc.build_course(tmp_path_factory.mktemp("course"))
    students = {"a_planter": PLANTER, "b_looker": LOOKER, "c_killer": KILLER, "d_honest": HONEST}
    for student, code in students.items():
        dc.write_submission(root, student, code)
    env = {**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("tmp")), UID_BASE_VARIABLE: str(UID_BASE)}
    completed = subprocess.run(
        [sys.executable, "-m", "cs231n_utils.grading.cli", "--course", str(root), "--quiet", "autograde",
         dc.ASSIGNMENT, "--student", ",".join(students), "--workers", "1", "--no-static-scan", "--timeout", "60"],
        env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    return {"root": root, "results": load_results(root, dc.ASSIGNMENT),
            "printed": {student: _printed(root, student) for student in students}}


def test_the_planter_and_the_looker_shared_one_zygote(batch):
    printed = batch["printed"]
    assert _line(printed["a_planter"], "PARENT") == _line(printed["b_looker"], "PARENT")
    assert int(_line(printed["a_planter"], "SEGMENT")) >= 0  # the segment was really made


def test_the_zygote_resists_its_kernels(batch):
    assert _line(batch["printed"]["a_planter"], "GOT") == "[]"


def test_nothing_of_one_job_reaches_the_next(batch):
    assert _line(batch["printed"]["b_looker"], "GOT") == "[]"


def test_after_its_zygote_is_killed_the_next_student_is_graded_by_a_new_one(batch):
    honest = batch["results"]["d_honest"]
    assert honest["status"] == "graded" and honest["score"] == 3.0, honest
    assert "kernel died" in " ".join(batch["results"]["c_killer"]["reasons"])
    assert _line(batch["printed"]["d_honest"], "PARENT") != _line(batch["printed"]["a_planter"], "PARENT")


def test_no_process_of_the_slot_is_left(batch):
    assert all(not processes_of_uid(UID_BASE + slot) for slot in range(4))
