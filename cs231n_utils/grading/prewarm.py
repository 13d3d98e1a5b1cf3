"""Pre-warmed kernels: a sandboxed *zygote* per grading slot forks the kernel of each job.

A fresh kernel spends most of its CPU time importing: measured on the course's 2-core machine,
``ipykernel``, NumPy and ``matplotlib.pyplot`` take 0.65 s of CPU, and ``sklearn.datasets``
(which the update-rules notebook imports) 0.9 s more, for every submission. A zygote is one
Python process, in its own sandbox, that imports these modules once (:data:`PRELOAD`); the kernel
of every job of its slot is a ``fork`` of it, which starts with the modules already in memory.

The zygote's sandbox is the same as a cold kernel's (:func:`~.sandbox.bwrap_command`: the slot's
unprivileged uid, no network, new PID/IPC/UTS namespaces, read-only system, allowlisted
environment, student view of the package), with one difference: the places a kernel may write
(its home, ``/tmp``, ``/dev/shm``, the socket folders) are host folders of the slot
(:class:`SlotFolders`), not a tmpfs that lives as long as the sandbox. The jobs of a slot run one
after another, and :meth:`Zygote.sweep` leaves nothing of one job to the next:

* every process of the slot's uid except the zygote is killed, and the sweep waits until
  they are gone;
* the slot's writable folders are emptied, and the SysV IPC objects of the sandbox's IPC
  namespace are removed (``ipcrm --all``); POSIX message queues cannot be made at all
  (``RLIMIT_MSGQUEUE`` is 0);
* each kernel is moved into its own job's control group before it runs any code, so the job's
  memory and process limits count all its processes, as with a cold kernel.

The zygote is protected from the kernels it forks, which run as the same uid: it is not
dumpable (``prctl(PR_SET_DUMPABLE, 0)``), so they cannot ``ptrace`` it or read or write its
memory through ``/proc``; it reads commands only from a socket it inherited from the grader,
which every kernel closes before it runs anything; it ignores ``SIGINT`` (interrupts go to the
whole uid). A kernel can kill it: the slot's next job then finds it gone and starts a new one,
so a student can only slow down grading, never reach another submission.

Only graders running as root use zygotes (a per-slot uid is what lets the sweep find every
process of a job); otherwise, and with ``SandboxLimits(prewarm=False)``, every kernel is cold.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from .boundary import grader_cache_dir
from .processes import children_of, is_alive, kill_uid, processes_of_uid

__all__ = ["PRELOAD", "PRELOAD_BY_ASSIGNMENT", "SlotFolders", "Zygote", "ZygoteKernel", "preload_for"]

PRELOAD = (
    "numpy",
    "matplotlib",
    "matplotlib.pyplot",
    "ipykernel.kernelapp",
    "sklearn.datasets",
    "cs231n_utils.kernel.serve",
)
"""Modules every zygote imports before forking kernels (from the read-only environment only)."""

PRELOAD_BY_ASSIGNMENT = {"torch_optimizer": ("torch",), "transfer_learning": ("torch",)}
"""More modules for the assignments whose notebooks import them (torch: about 1.1 s a kernel)."""


def preload_for(assignment: str | None) -> tuple[str, ...]:
    """What the zygote of ``assignment`` imports: :data:`PRELOAD` and the assignment's own."""
    return PRELOAD + PRELOAD_BY_ASSIGNMENT.get(assignment or "", ())

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
START_TIMEOUT_S = 120.0
KILL_TIMEOUT_S = 10.0

# Runs in the sandbox as the slot's uid: ``python -c ZYGOTE_PROGRAM FD PRELOAD_JSON``. Messages
# are JSON lines both ways.
ZYGOTE_PROGRAM = r"""
import ctypes, json, os, select, signal, socket, sys, traceback

channel = socket.socket(fileno=int(sys.argv[1]))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: the kernels (same uid) cannot ptrace this process
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]  # import nothing from the working directory; ipykernel adds it back in a kernel
failed = []
for name in json.loads(sys.argv[2]):
    try:
        __import__(name)
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}"[:300])
pending = b""

def send(message):
    channel.sendall(json.dumps(message).encode() + b"\n")

def receive():
    global pending
    while b"\n" not in pending:
        try:
            data = channel.recv(65536)
        except OSError:
            data = b""
        if not data:
            os._exit(0)  # the grader closed the channel
        pending += data
    line, _, pending = pending.partition(b"\n")
    return json.loads(line)

def become_kernel(request, go):
    channel.close()
    if os.read(go, 1) != b"g":  # "g": the grader has moved this process into the job's cgroup
        os._exit(1)
    os.close(go)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    libc.prctl(4, 1, 0, 0, 0)  # dumpable again, like any kernel
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["ipykernel_launcher", *request["args"]]
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()

send({"ready": True, "failed": failed})
while True:
    request = receive()
    if request.get("op") != "fork":
        continue
    read_go, write_go = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(write_go)
            become_kernel(request, read_go)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(read_go)
    send({"forked": pid})
    if receive().get("op") == "go":
        os.write(write_go, b"g")
    os.close(write_go)
    exited = os.pidfd_open(pid)
    select.select([exited], [], [])
    _, status = os.waitpid(pid, 0)
    os.close(exited)
    send({"exited": pid, "returncode": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)})
"""


@dataclass(frozen=True)
class SlotFolders:
    """The host folders a slot's sandbox may write, bound at fixed places inside it.

    ``/tmp`` and ``/dev/shm`` are root's with the sticky bit, as on any machine: a kernel can make
    and delete its own files there, never rename or delete the folders that bubblewrap made (as
    root) to mount the Python installation when it lives under ``/tmp``. ``mounted`` lists, per
    writable folder, those mount points relative to it; :meth:`empty` keeps them.
    """

    root: Path
    mounted: tuple[tuple[Path, tuple[PurePosixPath, ...]], ...] = ()

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def shm(self) -> Path:
        return self.root / "shm"

    @property
    def kernel(self) -> Path:
        """The kernels' connection files and sockets (bound at the same path inside)."""
        return self.root / "kernel"

    @property
    def channel(self) -> Path:
        """The trusted checker's socket folder (root's, bound at the channel path inside)."""
        return self.root / "channel"

    @property
    def writable(self) -> tuple[Path, ...]:
        return (self.home, self.tmp, self.shm, self.kernel)

    @classmethod
    def for_uid(cls, uid: int) -> "SlotFolders":
        """The slot's folders under the grader's cache, made fresh (a crashed grader's are removed)."""
        root = grader_cache_dir() / "slots" / str(uid)
        shutil.rmtree(root, ignore_errors=True)
        folders = cls(root)
        for folder in (*folders.writable, folders.channel):
            folder.mkdir(parents=True)
        root.chmod(0o755)
        for folder in (folders.home, folders.kernel):
            os.chown(folder, uid, uid)
            folder.chmod(0o700)
        for folder in (folders.tmp, folders.shm):
            folder.chmod(0o1777)
        folders.home.chmod(0o755)  # bwrap changes into it as root without CAP_DAC_OVERRIDE
        folders.channel.chmod(0o711)
        return folders

    def with_mount_points(self, targets: list[str], inside: dict[Path, str]) -> "SlotFolders":
        """These folders, knowing that the sandbox mounts ``targets`` (absolute paths inside it);
        ``inside`` maps a writable folder to where it is bound inside the sandbox."""
        mounted = []
        for folder, place in inside.items():
            below = tuple(PurePosixPath(t).relative_to(place) for t in targets
                          if PurePosixPath(t).is_relative_to(place) and t != place)
            mounted.append((folder, below))
        return SlotFolders(self.root, tuple(mounted))

    def empty(self) -> None:
        """Delete everything inside the writable folders but the root-owned folders leading to a
        mount point (``rmtree`` never follows a link)."""
        keep = dict(self.mounted)
        for folder in self.writable:
            if folder.is_dir():
                _empty(folder, keep.get(folder, ()))


def _empty(folder: Path, keep: tuple[PurePosixPath, ...]) -> None:
    """Delete what is in ``folder`` except the root-owned folders on the way to the paths ``keep``."""
    for entry in list(folder.iterdir()):
        inner = tuple(path.relative_to(entry.name) for path in keep if path.parts[0] == entry.name)
        info = entry.lstat()
        if inner and stat.S_ISDIR(info.st_mode) and info.st_uid == 0:
            _empty(entry, tuple(path for path in inner if path.parts))
        elif stat.S_ISDIR(info.st_mode):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class ZygoteKernel:
    """The ``Popen``-like handle of a forked kernel that jupyter_client's provisioner holds."""

    def __init__(self, zygote: "Zygote", pid: int) -> None:
        self._zygote = zygote
        self.pid = pid  # host pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None  # its output goes where the zygote's does

    def poll(self) -> int | None:
        if self.returncode is None:
            code = self._zygote.exit_status(timeout_s=0.0)
            if code is not None:
                self.returncode = code
            elif not is_alive(self.pid):  # the zygote is gone and cannot tell: the kernel died
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("zygote kernel", timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Zygote:
    """A sandboxed process that imported :data:`PRELOAD` (:func:`preload_for`) and forks one kernel per job.

    ``command`` builds the sandbox command around the zygote's own (``python -c ...``); it is
    called with the inherited channel descriptor's number. Use :meth:`start`, then per job
    :meth:`fork_kernel` and :meth:`sweep`; :meth:`close` ends the sandbox.
    """

    def __init__(self, uid: int, folders: SlotFolders, key: Any) -> None:
        self.uid = uid
        self.folders = folders
        self.key = key
        self.pid: int | None = None  # the zygote's host pid
        self.preload_failures: list[str] = []
        self._process: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._pending = b""
        self._lock = threading.Lock()
        self._exit_code: int | None = None

    def start(self, command: Callable[[int, list[str]], list[str]], env: dict[str, str],
              preload: tuple[str, ...] = PRELOAD) -> "Zygote":
        """Start the sandbox running the zygote; wait until it has imported ``preload``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            program = [sys.executable, "-c", ZYGOTE_PROGRAM, str(theirs.fileno()), json.dumps(list(preload))]
            self._process = subprocess.Popen(command(theirs.fileno(), program), pass_fds=[theirs.fileno()],
                                             env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._channel = ours
        hello = self._receive(START_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            raise RuntimeError(f"the zygote did not start within {START_TIMEOUT_S:g} s")
        self.preload_failures = list(hello.get("failed", []))
        candidates = list(processes_of_uid(self.uid))
        if len(candidates) != 1:
            raise RuntimeError(f"expected the zygote alone under uid {self.uid}, found {len(candidates)} processes")
        self.pid = candidates[0]
        return self

    def _send(self, message: dict[str, Any]) -> None:
        assert self._channel is not None
        self._channel.sendall(json.dumps(message).encode() + b"\n")

    def _receive(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next message, or ``None`` if none came within ``timeout_s`` (``None``: wait)."""
        assert self._channel is not None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._channel], [], [], wait)
            if not readable:
                return None
            data = self._channel.recv(65536)
            if not data:
                raise ConnectionError("the zygote closed its channel")
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def alive(self) -> bool:
        return (self._process is not None and self._process.poll() is None and self.pid is not None
                and is_alive(self.pid))

    def fork_kernel(self, args: list[str], env: dict[str, str], cwd: str, cgroup_procs: tuple[str, ...]) -> ZygoteKernel:
        """Fork a kernel running ``ipykernel_launcher args`` with exactly ``env``, in ``cwd``
        (inside the sandbox); it runs once it has been written into ``cgroup_procs``."""
        assert self.pid is not None
        with self._lock:
            self._exit_code = None
            self._send({"op": "fork", "args": args, "env": env, "cwd": cwd})
            while "forked" not in (self._receive(START_TIMEOUT_S) or {"forked": None}):
                pass  # the exit report of an earlier kernel nobody asked for
            children = children_of(self.pid)
            if len(children) != 1:
                self._send({"op": "abort"})
                raise RuntimeError(f"the zygote should have one child, found {len(children)}")
            for procs in cgroup_procs:
                with open(procs, "w") as handle:
                    handle.write(str(children[0]))
            self._send({"op": "go"})
        return ZygoteKernel(self, children[0])

    def exit_status(self, timeout_s: float) -> int | None:
        """The forked kernel's return code (``Popen`` style) once the zygote reported it."""
        with self._lock:
            if self._exit_code is None and self._channel is not None:
                try:
                    message = self._receive(timeout_s)
                except (ConnectionError, OSError, ValueError):
                    return None
                if message is not None and "exited" in message:
                    self._exit_code = int(message["returncode"])
            return self._exit_code

    def sweep(self) -> int:
        """Kill every process of the slot's uid but the zygote, empty the slot's folders and the
        IPC namespace; return how many processes were killed."""
        killed = kill_uid(self.uid, spare=self.pid, timeout_s=KILL_TIMEOUT_S)
        if self.alive():
            subprocess.run(["nsenter", f"--ipc=/proc/{self.pid}/ns/ipc", "ipcrm", "--all"],
                           capture_output=True, check=False)
        self.folders.empty()
        return killed

    def close(self) -> bool:
        """End the sandbox and every process of the slot's uid; False if some survived SIGKILL."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        try:
            kill_uid(self.uid, timeout_s=KILL_TIMEOUT_S)
        except RuntimeError:
            return False
        shutil.rmtree(self.folders.root, ignore_errors=True)
        return True
