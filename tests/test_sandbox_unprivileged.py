"""Grading by a user who is not root: the sandbox's user-namespace path, end to end.

A grader without root has no per-slot uid and no cgroups: bubblewrap puts the kernel in a new
user namespace (``--unshare-user``) as the grading user, and every kernel starts cold. Run as
``nobody`` through ``setpriv`` (so this needs root to set up, and unprivileged user namespaces):
the honest answer gets full marks, the blank one none, and a student who looks for the course's
files, the gradebook and the grader's processes finds nothing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from cs231n_utils.grading import demo_course as dc
from cs231n_utils.grading.gradebook import load_results
from tests.test_adversarial_sandbox import _probe

NOBODY = 65534
REPO = Path(__file__).resolve().parent.parent


def _as_nobody(command: list[str], home: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(REPO),
           "LANG": "C.UTF-8"}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _unprivileged_problem(tmp: Path) -> str | None:
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("bwrap"):
        return "needs root (to become nobody), setpriv and bubblewrap"
    probe = _as_nobody([sys.executable, "-c", "import cs231n_utils.grading.sandbox as s; "
                        "print(s.isolation_problem())"], tmp, tmp, timeout=60)
    if probe.returncode != 0 or probe.stdout.strip() != "None":
        return f"nobody cannot run the grader or bubblewrap here: {(probe.stdout + probe.stderr)[-300:]}"
    return None


PROBE = _probe(
    "[('gradebook', lambda: open({gradebook!r}, 'rb').read()), ('course', lambda: os.listdir({course!r})),"
    " ('grader processes', lambda: [p for p in os.listdir('/proc') if p.isdigit() and int(p) > 2"
    " and 'cs231n_utils.grading' in open(f'/proc/{{p}}/cmdline').read()])]"
)


@pytest.fixture
def work():
    """A folder nobody can reach (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="cs231n-nobody-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_grader_without_root_isolates_and_scores(work):
    problem = _unprivileged_problem(work)
    if problem:
        pytest.skip(problem)
    root = dc.build_course(work / "course")
    dc.write_submission(root, "honest", dc.ANSWER)
    dc.write_submission(root, "blank", None)
    dc.write_submission(root, "prober", PROBE.format(gradebook=str(root / "gradebook.db"), course=str(root)))
    for folder, _, files in os.walk(work):
        os.chown(folder, NOBODY, NOBODY)
        for name in files:
            os.chown(os.path.join(folder, name), NOBODY, NOBODY)
    completed = _as_nobody([sys.executable, "-m", "cs231n_utils.grading.cli", "--course", str(root), "--quiet",
                            "autograde", dc.ASSIGNMENT, "--workers", "1", "--no-static-scan"], work, work)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    results = load_results(root, dc.ASSIGNMENT)
    assert results["honest"]["score"] == 3.0 and results["blank"]["score"] == 0.0, results
    notebook = nbformat.read(str(root / "autograded" / "prober" / dc.ASSIGNMENT / f"{dc.NOTEBOOK}.ipynb"), as_version=4)
    printed = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert "GOT []" in printed, printed[-2000:]
