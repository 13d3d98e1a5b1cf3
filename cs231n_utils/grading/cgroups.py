"""Aggregate memory and process limits for all of one submission's processes together.

Per-process ``setrlimit`` cannot bound a submission that forks: five children of 0.8 GB each
pass a 2000 MB ``RLIMIT_AS``. A control group can: every process the kernel starts inherits
its group, the kernel's OOM killer stops the group at ``memory_mb`` in total, and ``fork``
fails once the group holds ``max_processes`` tasks (threads count). The grader (root) makes
one group per job, the kernel's launcher joins it before it ``exec``\\ s the sandbox, and
:meth:`JobCgroup.kill_all` stops whatever is left when the job ends.

Both cgroup layouts are supported: v1 (separate ``memory`` and ``pids`` hierarchies under
``/sys/fs/cgroup``) and the unified v2 hierarchy (``memory.max``, ``pids.max``,
``cgroup.kill``). :func:`find_cgroup_root` returns ``None`` when neither is writable (not
root, no controllers): the sandbox then falls back to per-process limits (see
:mod:`~cs231n_utils.grading.sandbox`).
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
GROUP_NAME = "cs231n-grade"


@dataclass(frozen=True)
class CgroupRoot:
    """Where job groups are made: ``version`` 1 (``memory`` and ``pids`` folders) or 2 (one folder)."""

    version: int
    memory: Path
    pids: Path


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _v2_root() -> CgroupRoot | None:
    for mount in (CGROUP_FS, CGROUP_FS / "unified"):
        controllers = mount / "cgroup.controllers"
        if not controllers.exists() or not _writable_dir(mount):
            continue
        if not {"memory", "pids"} <= set(controllers.read_text().split()):
            continue
        parent = mount / GROUP_NAME
        try:
            parent.mkdir(exist_ok=True)
            for control in (mount / "cgroup.subtree_control", parent / "cgroup.subtree_control"):
                control.write_text("+memory +pids")
        except OSError:
            continue
        return CgroupRoot(2, parent, parent)
    return None


def _v1_root() -> CgroupRoot | None:
    memory, pids = CGROUP_FS / "memory", CGROUP_FS / "pids"
    if not (_writable_dir(memory) and _writable_dir(pids)):
        return None
    try:
        for hierarchy in (memory, pids):
            (hierarchy / GROUP_NAME).mkdir(exist_ok=True)
    except OSError:
        return None
    return CgroupRoot(1, memory / GROUP_NAME, pids / GROUP_NAME)


def find_cgroup_root() -> CgroupRoot | None:
    """A writable cgroup hierarchy with the memory and pids controllers, or ``None``."""
    return _v1_root() or _v2_root()


@dataclass(frozen=True)
class JobCgroup:
    """One job's control group(s); ``procs_files`` are what the launcher writes its pid into."""

    root: CgroupRoot
    memory: Path
    pids: Path

    @classmethod
    def create(cls, root: CgroupRoot, *, memory_mb: int, max_processes: int) -> "JobCgroup":
        """Make the job's group with ``memory_mb`` MB of memory (no swap) and ``max_processes`` tasks."""
        for name, value in (("memory_mb", memory_mb), ("max_processes", max_processes)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        name = f"job-{uuid.uuid4().hex}"
        group = cls(root, root.memory / name, root.pids / name)
        limit = memory_mb * 1024 * 1024
        if root.version == 1:
            group.memory.mkdir()
            group.pids.mkdir()
            (group.memory / "memory.limit_in_bytes").write_text(str(limit))
            swap = group.memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit))
            (group.pids / "pids.max").write_text(str(max_processes))
        else:
            group.memory.mkdir()
            (group.memory / "memory.max").write_text(str(limit))
            swap = group.memory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
            (group.pids / "pids.max").write_text(str(max_processes))
        return group

    @property
    def procs_files(self) -> list[str]:
        folders = {self.memory, self.pids}
        return [str(folder / "cgroup.procs") for folder in sorted(folders)]

    def pids_inside(self) -> set[int]:
        """Every process id currently in the job's group(s)."""
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found.update(int(line) for line in Path(procs).read_text().split())
            except FileNotFoundError:
                pass
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer stopped for exceeding the group's memory."""
        name = "memory.oom_control" if self.root.version == 1 else "memory.events"
        try:
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (FileNotFoundError, ValueError):
            pass
        if self.root.version == 1:  # kernels without the oom_kill counter: count hits of the limit
            try:
                return int((self.memory / "memory.failcnt").read_text()) and 1
            except (FileNotFoundError, ValueError):
                return 0
        return 0

    def kill_all(self, timeout_s: float = 10.0) -> bool:
        """SIGKILL every process in the group until it is empty; True when it is."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.root.version == 2 and (self.memory / "cgroup.kill").exists():
                try:
                    (self.memory / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            remaining = self.pids_inside()
            if not remaining:
                return True
            if time.monotonic() > deadline:
                return False
            for pid in remaining:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left and delete the group(s)."""
        self.kill_all()
        for folder in {self.memory, self.pids}:
            for _ in range(50):  # a killed task leaves the group a moment after SIGKILL
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
