"""The processes of this machine, read from ``/proc``: find and signal the processes of a grading slot.

The sandbox (:mod:`.sandbox`) ends a job by the uid of its slot, and the pre-warmed slots
(:mod:`.prewarm`) also find the kernel their zygote forked by its parent. Every question here is
answered from ``/proc/<pid>/status``; a process that is gone, or a zombie waiting to be reaped,
counts as not there.
"""
from __future__ import annotations

import os
import signal
import time

__all__ = ["children_of", "is_alive", "kill_uid", "processes_of_uid", "signal_uid"]


def _live_status(pid: int | str) -> dict[str, str] | None:
    """The fields of ``/proc/<pid>/status``, or ``None`` if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None if fields.get("State", "").split()[:1] in (["Z"], ["X"]) else fields


def _live_processes() -> dict[int, dict[str, str]]:
    """The status fields of every live process, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _live_status(entry)) is not None:
            found[int(entry)] = fields
    return found


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    return _live_status(pid) is not None


def processes_of_uid(uid: int) -> set[int]:
    """Live (not zombie) process ids whose real uid is ``uid``."""
    return {pid for pid, fields in _live_processes().items() if int(fields.get("Uid", "-1").split()[0]) == uid}


def children_of(parent: int) -> list[int]:
    """Live process ids whose parent is ``parent``."""
    return [pid for pid, fields in _live_processes().items() if int(fields.get("PPid", "-1").split()[0]) == parent]


def signal_uid(uid: int, signum: int, *, spare: int | None = None) -> int:
    """Send ``signum`` to every process of ``uid`` but ``spare``; return how many there were."""
    pids = processes_of_uid(uid) - {spare}
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return len(pids)


def kill_uid(uid: int, *, spare: int | None = None, timeout_s: float) -> int:
    """SIGKILL every process of ``uid`` but ``spare`` until none is left; return the most seen at once.
    Raises ``RuntimeError`` if some are still there after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    most = 0
    while others := processes_of_uid(uid) - {spare}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(others)} process(es) of uid {uid} survive SIGKILL")
        most = max(most, signal_uid(uid, signal.SIGKILL, spare=spare))
        time.sleep(0.01)
    return most
