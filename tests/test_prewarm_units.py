"""Unit tests of the pre-warmed slot's clean-up (:mod:`cs231n_utils.grading.prewarm`)."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from cs231n_utils.grading.prewarm import SlotFolders
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
