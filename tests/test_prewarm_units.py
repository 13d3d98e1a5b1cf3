"""Unit tests of the pre-warmed slot's clean-up (:mod:`cs231n_utils.grading.prewarm`)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest

from cs231n_utils.grading.prewarm import SlotFolders
from cs231n_utils.grading.processes import children_of, is_alive, processes_of_uid
from cs231n_utils.grading.sandbox import mount_targets

STUDENT = 1_970_000_000


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files of another uid")
def test_the_sweep_keeps_only_root_owned_folders_on_the_way_to_a_mount_point(tmp_path):
    folders = SlotFolders(tmp_path)
    for folder in folders.writable:
        folder.mkdir()
    (folders.tmp / "clone" / ".venv").mkdir(parents=True)  # made by bubblewrap as root to mount the venv
    (folders.tmp / "clone" / "left.txt").write_text("a file in a root folder is deleted too")
    student = {folders.tmp / "planted.txt": "file", folders.tmp / "box": "dir", folders.home / "notes": "dir",
               folders.shm / "segment": "file", folders.tmp / "clone2": "dir"}
    for path, kind in student.items():
        path.mkdir() if kind == "dir" else path.write_text("x")
        os.chown(path, STUDENT, STUDENT)
    (folders.tmp / "box" / ".venv").mkdir()  # a student's look-alike of a kept path
    kept = folders.with_mount_points(["/tmp", "/tmp/clone", "/tmp/clone/.venv", "/tmp/box/.venv", "/opt/x"],
                                     {folders.tmp: "/tmp", folders.home: "/home/student"})
    assert dict(kept.mounted)[folders.tmp] == (PurePosixPath("clone"), PurePosixPath("clone/.venv"),
                                               PurePosixPath("box/.venv"))
    kept.empty()
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["home", "kernel", "shm", "tmp", "tmp/clone", "tmp/clone/.venv"]


def test_mount_targets_reads_every_mount_and_folder_up_to_the_command():
    arguments = ["--unshare-pid", "--bind", "/a", "/tmp", "--perms", "0755", "--dir", "/tmp/x",
                 "--ro-bind", "/v", "/tmp/x/.venv", "--setenv", "HOME", "/home", "--tmpfs", "/dev/shm",
                 "--", "python", "--bind", "/not", "/this"]
    assert mount_targets(arguments) == ["/tmp", "/tmp/x", "/tmp/x/.venv", "/dev/shm"]


def test_processes_finds_live_processes_by_uid_and_parent_and_not_zombies():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in children_of(os.getpid()) and child.pid in processes_of_uid(os.getuid())
        assert is_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while is_alive(child.pid) and time.monotonic() < deadline:  # a zombie until reaped: not alive
            time.sleep(0.01)
        assert not is_alive(child.pid) and child.pid not in children_of(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert not is_alive(child.pid)
