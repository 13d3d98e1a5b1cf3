"""Run a student's kernel in an OS sandbox, with aggregate resource limits.

The sandbox is nbgrader's own :class:`~nbgrader.preprocessors.Execute` preprocessor with a
different kernel manager, so every other part of nbgrader's autograde pipeline is untouched.
On Linux, by default (:attr:`SandboxLimits.isolate`), the kernel runs under bubblewrap
(``bwrap``, Debian package ``bubblewrap``):

* **unprivileged**: as a per-slot uid with no capabilities and ``no_new_privs`` (when the
  grader is root: ``bwrap`` makes the namespaces and mounts, then ``setpriv`` drops to the
  uid), or in a user namespace as the grading user (when it is not root);
* **nothing of the course visible**: a new mount namespace holding read-only ``/usr``, the
  Python installation and the virtual environment, a private ``/tmp`` and ``/dev/shm``, the
  student view of ``cs231n_utils`` (:func:`~cs231n_utils.grading.boundary.student_view_mounts`,
  on ``PYTHONPATH``), a writable home ``/home/student`` holding only the assignment's data
  files, and the folder of the kernel's Unix sockets. The course directory, ``solutions/``,
  the gradebook, other submissions and the grader's code are not mounted at all;
* **no network** (``--unshare-net``: the kernel talks to nbclient over ``ipc`` Unix sockets),
  a new PID namespace (it cannot see or signal the grader, its worker or other jobs), a new
  session, IPC and UTS namespace, and ``--die-with-parent``;
* **an environment built from an allowlist** (:func:`kernel_environment`);
* **aggregate limits**: a control group per job bounds the memory and the number of tasks of
  all the submission's processes together (:mod:`~cs231n_utils.grading.cgroups`); the
  launcher also sets per-process ``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_CORE=0`` and, with a per-slot uid, ``RLIMIT_NPROC``. Where no cgroup hierarchy is
  writable, ``RLIMIT_NPROC`` on the slot's own uid and ``RLIMIT_AS`` per process are the
  weaker fallback (memory is then bounded per process, not in total);
* **nothing survives the job**: :class:`JobSandbox` kills every process of the job's cgroup
  and uid when the job ends, and a watchdog kills the kernel when the submission's wall-clock
  budget is spent.

With :attr:`SandboxLimits.prewarm` (the default; root only) the sandbox is made once per worker
and its kernels are forks of a pre-warmed zygote (:mod:`~cs231n_utils.grading.prewarm`): the
same namespaces, mounts, uid and limits, with ``/tmp``, ``/dev/shm`` and the home on host
folders of the slot that are emptied, with the IPC namespace, after every job.

``isolate=False`` (``cs231n-grade autograde --unsafe-no-isolation``) keeps only the
per-process limits and the scrubbed working directory: the kernel then runs as the grading
user and can read whatever that user can read.
"""
from __future__ import annotations

import atexit
import functools
import json
import multiprocessing.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute
from traitlets import Float, Unicode

from ..validation import check_positive
from .boundary import student_view_mounts
from .cgroups import JobCgroup, find_cgroup_root
from .prewarm import INLINE_BACKEND, SlotFolders, Zygote, preload_for
from .processes import kill_uid, processes_of_uid, signal_uid

# Runs in a bare interpreter (-I -S) as the grader: join the job's cgroups, set the limits,
# then become the sandbox (or the kernel).
_LAUNCHER = """
import json, os, resource, sys
limits = json.loads(sys.argv[1])
for path in limits.pop("cgroup.procs", []):
    with open(path, "w") as procs:
        procs.write(str(os.getpid()))
for name, value in limits.items():
    which = getattr(resource, name)
    resource.setrlimit(which, (value, value))
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _launched(limits_json: str, command: list[str]) -> list[str]:
    """``command`` started by :data:`_LAUNCHER` with the cgroups and rlimits of ``limits_json``."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, limits_json, *command]

_SCRUBBED_PREFIXES = ("NBGRADER_", "JUPYTER_", "DASK_", "PYTEST_")
_SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_DEATH_FILE = "kernel-death.json"
#: Timestamps of the kernel's launch and shutdown, one JSON object per line, in the report folder.
TIMES_FILE = "kernel-times.jsonl"
#: The student's writable home inside the sandbox (the kernel's working directory).
SANDBOX_HOME = "/home/student"
#: Where the student view of cs231n_utils is mounted inside the sandbox (on PYTHONPATH).
SANDBOX_PACKAGE_DIR = "/opt/cs231n"
#: Where the kernel finds the trusted checker's socket folder.
SANDBOX_CHANNEL_DIR = "/run/cs231n"
#: Uids of the grading slots: the base + slot, one slot per job running on this machine. The
#: environment variable lets two graders (or a test) on one machine use disjoint ranges.
UID_BASE_VARIABLE = "CS231N_GRADE_UID_BASE"
DEFAULT_UID_BASE = 1_900_000_000
MAX_SLOTS = 256


def uid_base() -> int:
    """First uid of this grader's slots (``$CS231N_GRADE_UID_BASE``, default 1 900 000 000)."""
    text = os.environ.get(UID_BASE_VARIABLE, str(DEFAULT_UID_BASE))
    if not text.isdigit() or not 1000 <= int(text) <= 2**31 - 1 - MAX_SLOTS:
        raise ValueError(f"{UID_BASE_VARIABLE} must be a uid between 1000 and {2**31 - 1 - MAX_SLOTS}, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class SandboxLimits:
    """Per-submission resource limits.

    ``timeout_s`` is the wall-clock budget of the whole submission (kernel start to last
    cell), ``cell_timeout_s`` the budget of one cell (nbclient interrupts the cell and goes on,
    so later cells can still earn honest points), ``memory_mb`` the memory of all the
    submission's processes together (and the address-space limit of each), ``cpu_seconds``
    each process's CPU-time limit (exceeding it kills it with SIGXCPU), ``max_processes`` the
    number of tasks (processes and threads) of the submission, ``isolate`` whether the kernel
    runs in the OS sandbox (see the module docstring), ``prewarm`` whether an isolated kernel is
    forked from the slot's pre-warmed zygote (:mod:`~cs231n_utils.grading.prewarm`; only when the
    grader runs as root) instead of started cold.
    """

    timeout_s: float = 300.0
    cell_timeout_s: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int = 240
    file_size_mb: int = 256
    max_processes: int = 256
    kernel_prefix: tuple[str, ...] = field(default_factory=tuple)
    isolate: bool = True
    prewarm: bool = True

    def __post_init__(self) -> None:
        check_positive(self.timeout_s, "timeout_s")
        check_positive(self.cell_timeout_s, "cell_timeout_s")
        for name in ("memory_mb", "cpu_seconds", "file_size_mb", "max_processes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("isolate", "prewarm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def rlimits(self) -> dict[str, int]:
        """The per-process ``resource`` limits the launcher sets (soft = hard)."""
        return {
            "RLIMIT_AS": self.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_FSIZE": self.file_size_mb * 1024 * 1024,
            "RLIMIT_CORE": 0,
            "RLIMIT_MSGQUEUE": 0,  # no POSIX message queues: nothing of a job outlives it there
        }


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """Why the OS sandbox cannot run on this machine, or ``None`` when it can."""
    if not sys.platform.startswith("linux"):
        return f"OS isolation needs Linux (bubblewrap); this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    root = os.geteuid() == 0
    if root and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent",
             *([] if root else ["--unshare-user"]), "true"]
    try:
        completed = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap does not run here: {error}"
    if completed.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {completed.stderr.strip()[:300]}"
    return None


@dataclass(frozen=True)
class IsolationPlan:
    """How one job's kernel is sandboxed; travels to the kernel manager as JSON config."""

    bwrap: str
    setpriv: str | None
    uid: int | None
    cgroup_procs: tuple[str, ...]
    max_processes: int
    zygote_pid: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "IsolationPlan | None":
        if not text:
            return None
        data = json.loads(text)
        data["cgroup_procs"] = tuple(data["cgroup_procs"])
        return cls(**data)


def kill_plan(plan: IsolationPlan | None) -> None:
    """SIGKILL every process of a job: its cgroup's and its uid's (but the slot's zygote)."""
    if plan is None:
        return
    for procs in plan.cgroup_procs:
        try:
            pids = [int(line) for line in Path(procs).read_text().split()]
        except FileNotFoundError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if plan.uid is not None:
        signal_uid(plan.uid, signal.SIGKILL, spare=plan.zygote_pid)


_worker_slot: tuple[int, socket.socket] | None = None
_worker_zygote: Zygote | None = None


def _worker_uid() -> int:
    """The slot this worker process keeps for all its jobs (pre-warmed kernels), claimed once."""
    global _worker_slot
    if _worker_slot is None:
        slot, holder = _claim_slot()
        signal_uid(uid_base() + slot, signal.SIGKILL)  # anything a crashed earlier grader left behind
        _worker_slot = (slot, holder)
    return uid_base() + _worker_slot[0]


def _claim_slot() -> tuple[int, socket.socket]:
    """A grading slot no other job on this machine holds, and the socket that holds it.

    The slot is an abstract Unix socket name: bound while the job runs, released by the
    kernel when the socket closes or the process dies (no lock files to leave behind).
    """
    for slot in range(MAX_SLOTS):
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            holder.bind(f"\0cs231n-grade-slot-{uid_base()}-{slot}")
            return slot, holder
        except OSError:
            holder.close()
    raise RuntimeError(f"all {MAX_SLOTS} grading slots are in use")


class JobSandbox:
    """The OS resources of one job: a uid slot, a cgroup and the kernel's socket folder.

    Use as a context manager around the whole nbgrader run; on exit every process of the
    job is killed, the cgroup removed and the slot released (or, with a pre-warmed zygote, the
    slot swept for the worker's next job). :attr:`faults` then lists what the limits stopped
    (the memory limit's OOM kills, processes left running after the kernel).
    ``channel_dir`` is the host folder that the kernel sees at the checker's channel path.
    """

    def __init__(self, limits: SandboxLimits, workdir: Path, *, assignment: str | None = None) -> None:
        self.limits = limits
        self.workdir = Path(workdir)
        self.assignment = assignment
        self.plan: IsolationPlan | None = None
        self.cgroup: JobCgroup | None = None
        self.zygote: Zygote | None = None
        self.faults: list[str] = []
        self._slot: socket.socket | None = None

    @property
    def channel_dir(self) -> Path:
        return self.zygote.folders.channel if self.zygote is not None else self.workdir / "channel"

    def __enter__(self) -> "JobSandbox":
        if not self.limits.isolate:
            return self
        problem = isolation_problem()
        if problem:
            raise RuntimeError(f"cannot isolate the kernel: {problem}")
        uid = None
        if os.geteuid() == 0:
            if self._prewarmed():
                uid = _worker_uid()
                try:
                    self.zygote = _zygote_for(uid, self.limits, self.assignment)
                except (OSError, RuntimeError) as error:  # graded all the same, with a cold kernel
                    self.faults.append(f"note: no pre-warmed kernel ({error}); the kernel started cold")
            else:
                slot, self._slot = _claim_slot()
                uid = uid_base() + slot
                signal_uid(uid, signal.SIGKILL)  # anything a crashed earlier grader left behind
            cgroup_root = find_cgroup_root()
            if cgroup_root is not None:
                self.cgroup = JobCgroup.create(cgroup_root, memory_mb=self.limits.memory_mb,
                                               max_processes=self.limits.max_processes)
        self.plan = IsolationPlan(shutil.which("bwrap"), shutil.which("setpriv"), uid,
                                  tuple(self.cgroup.procs_files) if self.cgroup else (),
                                  self.limits.max_processes, self.zygote.pid if self.zygote else None)
        return self

    def _prewarmed(self) -> bool:
        """Whether this job's kernel is forked from the worker's zygote: asked for, no kernel prefix,
        the worker's main thread (the zygote must outlive the thread that starts it) and the tools
        the sweep needs (util-linux's ``nsenter`` and ``ipcrm``)."""
        return (self.limits.prewarm and not self.limits.kernel_prefix
                and threading.current_thread() is threading.main_thread()
                and all(shutil.which(tool) for tool in ("nsenter", "ipcrm")))

    def kernel_config(self) -> dict[str, dict[str, str]]:
        """traitlets config for :class:`SandboxedKernelManager` and :class:`SandboxedExecute`."""
        plan = self.plan.to_json() if self.plan else ""
        return {"SandboxedKernelManager": {"isolation_json": plan, "work_dir": str(self.workdir)},
                "SandboxedExecute": {"work_dir": str(self.workdir)}}

    def end_processes(self) -> None:
        """Kill every process of the job (idempotent), recording those left after the kernel."""
        if self.plan is None or self.plan.uid is None:
            return
        spare = self.plan.zygote_pid
        left = processes_of_uid(self.plan.uid) - {spare}
        deadline = time.monotonic() + 2.0
        while left and time.monotonic() < deadline:  # the kernel's processes are still exiting
            time.sleep(0.05)
            left = processes_of_uid(self.plan.uid) - {spare}
        if left:
            self.faults.append(f"{len(left)} process(es) still running after the kernel stopped were killed")
        if self.cgroup is not None:
            self.cgroup.kill_all()  # atomic (cgroup.kill): a fork bomb cannot outrun it
        try:
            kill_uid(self.plan.uid, spare=spare, timeout_s=2.0)
        except RuntimeError:
            pass  # the zygote's sweep, or the next job's claim of the slot, kills them again

    def __exit__(self, *exc: object) -> None:
        try:
            self.end_processes()
            if self.cgroup is not None:
                kills = self.cgroup.oom_kills()
                if kills:
                    self.faults.append(f"memory limit reached ({self.limits.memory_mb} MB for all processes "
                                       f"together): the OOM killer stopped {kills} process(es)")
        finally:
            try:
                if self.cgroup is not None:
                    self.cgroup.remove()
                if self.zygote is not None:
                    self._sweep_zygote(self.zygote)
            finally:
                if self._slot is not None:
                    self._slot.close()

    def _sweep_zygote(self, zygote: Zygote) -> None:
        """Leave nothing of this job to the slot's next one; end the zygote if that fails or it died."""
        global _worker_zygote
        try:
            zygote.sweep()
        except (OSError, RuntimeError) as error:
            self.faults.append(f"the slot could not be cleaned ({error}); its pre-warmed zygote was ended")
            zygote.close()
        if not zygote.alive():
            _worker_zygote = None
            if not zygote.close():
                self.faults.append(f"processes of the slot's uid {zygote.uid} survived SIGKILL")


def _zygote_for(uid: int, limits: SandboxLimits, assignment: str | None) -> Zygote:
    """This worker's zygote for ``assignment`` and ``limits``, (re)started when there is none
    alive or it was made for another assignment or other limits."""
    global _worker_zygote
    key = (assignment, limits)
    zygote = _worker_zygote
    if zygote is not None and (zygote.key != key or not zygote.alive()):
        zygote.close()
        zygote = _worker_zygote = None
    if zygote is None:
        folders = SlotFolders.for_uid(uid)
        plan = IsolationPlan(shutil.which("bwrap"), shutil.which("setpriv"), uid, (), limits.max_processes + 1)
        _chown_tree(_seeded_matplotlib_dir(folders.tmp), uid)
        env = sandbox_environment({"MPLBACKEND": INLINE_BACKEND, "MPLCONFIGDIR": "/tmp/matplotlib"})
        limits_json = json.dumps({**limits.rlimits(), **({} if find_cgroup_root() else
                                                         {"RLIMIT_NPROC": limits.max_processes + 1})})

        def sandboxed(program: list[str]) -> list[str]:
            return bwrap_command(plan, folders.home, folders.kernel, [(str(folders.channel), SANDBOX_CHANNEL_DIR)],
                                 env, program, assignment=assignment, tmp=folders.tmp, shm=folders.shm)

        inside = {folders.tmp: "/tmp", folders.shm: "/dev/shm", folders.home: SANDBOX_HOME,
                  folders.kernel: str(folders.kernel)}
        folders = folders.with_mount_points(mount_targets(sandboxed([])), inside)
        zygote = Zygote(uid, folders, key)

        def command(fd: int, program: list[str]) -> list[str]:
            return _launched(limits_json, sandboxed(program))

        zygote.start(command, {"PATH": env["PATH"]}, preload_for(assignment))
        _worker_zygote = zygote
        atexit.register(zygote.close)  # the grader's own process
        multiprocessing.util.Finalize(None, zygote.close, exitpriority=10)  # a pool worker (no atexit)
    return zygote


def _system_mounts() -> list[str]:
    """Read-only ``/usr`` (and the merged-/usr links), the loader's files, the Python installation."""
    arguments = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            arguments += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            arguments += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts"):
        path = Path("/etc") / name
        if path.exists():
            arguments += ["--ro-bind", str(path), str(path)]
    pythons = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    for prefix in sorted(pythons):
        if not any(prefix.is_relative_to(p) for p in pythons - {prefix}) and not prefix.is_relative_to("/usr"):
            arguments += ["--ro-bind", str(prefix), str(prefix)]
    return arguments


_MOUNT_OPTIONS = {"--bind": 2, "--ro-bind": 2, "--bind-try": 2, "--ro-bind-try": 2, "--dir": 1,
                  "--tmpfs": 1, "--symlink": 2}


def mount_targets(arguments: list[str]) -> list[str]:
    """The places inside the sandbox that a bwrap command line mounts or makes (up to ``--``)."""
    targets, index = [], 0
    while index < len(arguments) and arguments[index] != "--":
        width = _MOUNT_OPTIONS.get(arguments[index], 0)
        if width:
            targets.append(arguments[index + width])
        index += width + 1
    return targets


def _with_parent_dirs(mounts: list[str]) -> list[str]:
    """``mounts`` preceded by ``--perms 0755 --dir`` for every folder above a mount point, so the
    unprivileged kernel can walk to it (bwrap makes missing folders private to root)."""
    made = {"/", "/usr", "/tmp", "/proc", "/dev"}
    arguments: list[str] = []
    index = 0
    while index < len(mounts):
        option = mounts[index]
        width = _MOUNT_OPTIONS.get(option, 0)
        if width:
            target = Path(mounts[index + width])
            for parent in reversed(target.parents):
                if str(parent) not in made:
                    arguments += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            if option == "--dir" and str(target) not in made:
                arguments += ["--perms", "0755"]
                made.add(str(target))
        arguments += mounts[index:index + width + 1]
        index += width + 1
    return arguments


def bwrap_command(plan: IsolationPlan, run_dir: Path, kernel_dir: Path, extra_binds: list[tuple[str, str]],
                  env: dict[str, str], command: list[str], *, assignment: str | None = None,
                  tmp: Path | None = None, shm: Path | None = None) -> list[str]:
    """The ``bwrap [setpriv]`` command that runs ``command`` in the sandbox (see the module docstring),
    with exactly the environment ``env`` (bwrap clears what the launcher inherited). ``/tmp`` and
    ``/dev/shm`` are private tmpfs, or the host folders ``tmp`` and ``shm`` (a zygote's slot)."""
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                  "--die-with-parent", "--new-session"]
    if plan.uid is None:
        namespaces += ["--unshare-user"]
    else:
        namespaces += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    # the private /tmp first: a Python installation or venv under /tmp is then mounted on top of it
    tmp_mount = ["--bind", str(tmp), "/tmp"] if tmp else ["--tmpfs", "/tmp"]
    shm_mount = ["--bind", str(shm), "/dev/shm"] if shm else ["--tmpfs", "/dev/shm"]
    mounts = [*tmp_mount, *_system_mounts(), "--proc", "/proc", "--dev", "/dev", *shm_mount,
              "--bind", str(run_dir), SANDBOX_HOME, "--bind", str(kernel_dir), str(kernel_dir),
              *student_view_mounts(Path(SANDBOX_PACKAGE_DIR), assignment=assignment)]
    for host, inside in extra_binds:
        mounts += ["--bind", str(host), str(inside)]
    drop = []
    if plan.uid is not None:
        drop = [plan.setpriv, f"--reuid={plan.uid}", f"--regid={plan.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    environment = ["--clearenv"]
    for name, value in env.items():
        environment += ["--setenv", name, value]
    return [plan.bwrap, *namespaces, *_with_parent_dirs(mounts), *environment, "--chdir", SANDBOX_HOME, "--",
            *drop, *command]


def kernel_environment(run_dir: Path) -> dict[str, str]:
    """The environment of an unisolated kernel (``--unsafe-no-isolation``): ours minus
    course/grader variables, home and temporary files in its working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update({name: "1" for name in _SINGLE_THREAD})
    env.pop("MPLBACKEND", None)  # ipykernel picks the inline backend: figures stay in the notebook
    env.update(
        HOME=str(run_dir),
        TMPDIR=str(run_dir),
        IPYTHONDIR=str(run_dir / ".ipython"),
        MPLCONFIGDIR=str(run_dir / ".matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def sandbox_environment(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a sandboxed kernel: an allowlist, nothing inherited.

    No ``MPLBACKEND``: ipykernel then selects the inline backend, so figures are kept as
    ``image/png`` outputs in the autograded notebook.
    """
    tools = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([tools, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": SANDBOX_HOME, "PWD": SANDBOX_HOME, "USER": "student", "LOGNAME": "student",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": "/tmp",
        "IPYTHONDIR": f"{SANDBOX_HOME}/.ipython", "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONPATH": SANDBOX_PACKAGE_DIR, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        **{name: "1" for name in _SINGLE_THREAD},
        # ipykernel watches no parent (pid 1 is the sandbox's init; --die-with-parent covers it)
        "JPY_PARENT_PID": "1",
    }
    env.update(extra)
    return env


@functools.lru_cache(maxsize=1)
def _grader_font_cache() -> Path | None:
    """matplotlib's font list as the grader built it (the same fonts are mounted in the sandbox)."""
    try:
        import matplotlib
    except ImportError:
        return None
    found = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-v*.json"))
    return found[-1] if found else None


def _seeded_matplotlib_dir(kernel_dir: Path) -> Path:
    """The kernel's private ``MPLCONFIGDIR``, holding a copy of the grader's font list, so that
    importing matplotlib in every kernel does not rebuild it (about a second each)."""
    folder = kernel_dir / "matplotlib"
    folder.mkdir(exist_ok=True)
    font_cache = _grader_font_cache()
    if font_cache is not None:
        shutil.copy(font_cache, folder / font_cache.name)
    return folder


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


class SandboxedKernelManager(AsyncKernelManager):
    """Start the kernel in the sandbox, under the limit launcher, with a wall-clock watchdog."""

    limits_json = Unicode("{}", help="JSON of SandboxLimits.rlimits()").tag(config=True)
    kernel_prefix_json = Unicode("[]", help="JSON list: command put before the kernel").tag(config=True)
    deadline = Float(0.0, help="time.time() at which the kernel is killed (0: never)").tag(config=True)
    report_dir = Unicode("", help="where the kernel's exit status is written when it dies").tag(config=True)
    isolation_json = Unicode("", help="JSON of the job's IsolationPlan ('': no isolation)").tag(config=True)
    work_dir = Unicode("", help="the job's private folder (holds the kernel's sockets)").tag(config=True)
    extra_binds_json = Unicode("[]", help="JSON list of [host_path, sandbox_path], bound read-write "
                               "and handed to the sandbox's uid").tag(config=True)
    extra_env_json = Unicode("{}", help="JSON object added to the sandbox's allowlisted environment").tag(config=True)
    assignment = Unicode("", help="the assignment graded (which torch modules the student view hides)").tag(config=True)

    _watchdog: threading.Timer | None = None
    _stopping = False
    _kernel_dir: Path | None = None

    @property
    def plan(self) -> IsolationPlan | None:
        return IsolationPlan.from_json(self.isolation_json)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        prefix = json.loads(self.kernel_prefix_json)
        if self.plan is not None:  # wrapped in the sandbox at launch, once the run folder is known
            return [*prefix, *command]
        return _launched(self.limits_json, [*prefix, *command])

    def _zygote(self) -> Zygote | None:
        """This worker's zygote, if the job's plan forks its kernel from it and the kernel needs no
        other folder than the ones the zygote's sandbox was made with (else it starts cold)."""
        plan = self.plan
        zygote = _worker_zygote
        if plan is None or plan.zygote_pid is None or zygote is None or zygote.pid != plan.zygote_pid:
            return None
        binds = [tuple(pair) for pair in json.loads(self.extra_binds_json)]
        return zygote if set(binds) <= {(str(zygote.folders.channel), SANDBOX_CHANNEL_DIR)} else None

    async def _async_pre_start_kernel(self, **kw: Any):
        plan = self.plan
        if plan is not None:
            # Unix sockets in a folder bound into the sandbox: the kernel has no network.
            zygote = self._zygote()
            parent = zygote.folders.kernel if zygote is not None else (self.work_dir or None)
            self._kernel_dir = Path(tempfile.mkdtemp(prefix="kernel-", dir=parent))
            self.transport = "ipc"
            self.connection_file = str(self._kernel_dir / "connection.json")
            self.ip = str(self._kernel_dir / "k")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        run_dir = Path(kw.get("cwd") or tempfile.mkdtemp(prefix="cs231n-run-", dir=self.work_dir or None))
        plan = self.plan
        if plan is None:
            inherited = kw.get("env") or {}
            kw["env"] = {**kernel_environment(run_dir),
                         **self._extra_environment(),
                         "JPY_PARENT_PID": inherited.get("JPY_PARENT_PID", str(os.getpid()))}
        else:
            kw["env"] = {"PATH": sandbox_environment({})["PATH"]}
        kw["cwd"] = str(run_dir)
        self._record_time("kernel_launch")
        if not self._forked_from_zygote(plan, kernel_cmd, run_dir):
            if plan is not None:
                kernel_cmd = self._cold_sandbox_command(plan, kernel_cmd, run_dir)
            await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.deadline:
            remaining = max(0.0, self.deadline - time.time())
            self._watchdog = threading.Timer(remaining, self._kill_for_deadline)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _cold_sandbox_command(self, plan: IsolationPlan, kernel_cmd: list[str], run_dir: Path) -> list[str]:
        """The launcher and bwrap command around ``kernel_cmd``: a new sandbox for this kernel."""
        assert self._kernel_dir is not None
        env = sandbox_environment(json.loads(self.extra_env_json))
        env["MPLCONFIGDIR"] = str(_seeded_matplotlib_dir(self._kernel_dir))
        if plan.uid is not None:
            _chown_tree(self._kernel_dir, plan.uid)
            _chown_tree(run_dir, plan.uid)
            run_dir.chmod(0o755)  # bwrap's --chdir runs as root without CAP_DAC_OVERRIDE
        binds = [tuple(pair) for pair in json.loads(self.extra_binds_json)]
        if plan.uid is not None:
            for host, _ in binds:  # the sandbox's uid must be able to use what it is given
                _chown_tree(Path(host), plan.uid)
        limits = {**json.loads(self.limits_json), "cgroup.procs": list(plan.cgroup_procs)}
        if plan.uid is not None and not plan.cgroup_procs:
            limits["RLIMIT_NPROC"] = plan.max_processes  # the fallback: per-slot uid, no cgroup
        return _launched(json.dumps(limits), bwrap_command(plan, run_dir, self._kernel_dir, binds, env, kernel_cmd,
                                                           assignment=self.assignment or None))

    def _forked_from_zygote(self, plan: IsolationPlan | None, kernel_cmd: list[str], run_dir: Path) -> bool:
        """Start the kernel as a fork of the slot's zygote if there is one that can serve it;
        False (start it cold) otherwise, or if the zygote fails (it may have been killed)."""
        zygote = self._zygote()
        if zygote is None or plan is None or "ipykernel_launcher" not in kernel_cmd:
            return False
        try:
            self._fork_from(zygote, plan, kernel_cmd, run_dir)
        except (OSError, RuntimeError, ValueError):
            return False
        return True

    def _fork_from(self, zygote: Zygote, plan: IsolationPlan, kernel_cmd: list[str], run_dir: Path) -> None:
        """Start the kernel as a fork of the slot's zygote: the run folder's files go to the slot's
        home, and the provisioner holds a :class:`~.prewarm.ZygoteKernel` instead of a ``Popen``."""
        assert self._kernel_dir is not None and plan.uid is not None and self.provisioner is not None
        shutil.copytree(run_dir, zygote.folders.home, dirs_exist_ok=True)
        _chown_tree(zygote.folders.home, plan.uid)
        _chown_tree(self._kernel_dir, plan.uid)
        env = sandbox_environment({**json.loads(self.extra_env_json), "MPLBACKEND": INLINE_BACKEND,
                                   "MPLCONFIGDIR": "/tmp/matplotlib"})
        arguments = kernel_cmd[kernel_cmd.index("ipykernel_launcher") + 1:]
        process = zygote.fork_kernel(arguments, env, SANDBOX_HOME, plan.cgroup_procs)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, None
        self._reconcile_connection_info(provisioner.connection_info)

    def _extra_environment(self) -> dict[str, str]:
        """``extra_env_json`` with sandbox paths of ``extra_binds_json`` mapped back to host paths:
        without a mount namespace the kernel sees the host's files."""
        env = json.loads(self.extra_env_json)
        for host, inside in json.loads(self.extra_binds_json):
            env = {k: host + v[len(inside):] if v == inside or v.startswith(inside + "/") else v for k, v in env.items()}
        return env

    async def _async_interrupt_kernel(self) -> None:
        plan = self.plan
        if plan is None:
            return await super()._async_interrupt_kernel()
        if plan.uid is not None:  # the kernel is in its own session: signal all its processes
            signal_uid(plan.uid, signal.SIGINT, spare=plan.zygote_pid)
            return None
        message = self.session.msg("interrupt_request", content={})
        self._connect_control_socket()
        self.session.send(self._control_socket, message)
        return None

    interrupt_kernel = _async_interrupt_kernel

    def _kill_for_deadline(self) -> None:
        self._record_death("wall-clock timeout")
        pgid = getattr(self.provisioner, "pgid", None)
        try:
            if pgid:
                os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        kill_plan(self.plan)

    def _record_death(self, cause: str) -> None:
        if not self.report_dir:
            return
        path = Path(self.report_dir) / _DEATH_FILE
        if not path.exists():
            path.write_text(json.dumps({"cause": cause}))

    def _record_time(self, event: str) -> None:
        """Append ``event``'s ``time.time()`` to the job's timing file (for the benchmark's breakdown)."""
        if self.report_dir:
            with open(Path(self.report_dir) / TIMES_FILE, "a") as times:
                times.write(json.dumps({event: time.time()}) + "\n")

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._stopping = True
        self._record_time("kernel_shutdown")
        await super()._async_shutdown_kernel(now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel

    async def _async_is_alive(self) -> bool:
        alive = await super()._async_is_alive()
        if not alive and not self._stopping:
            process = getattr(self.provisioner, "process", None)
            code = process.poll() if process is not None else None
            self._record_death(describe_exit(code, sandboxed=self.plan is not None))
        return alive

    is_alive = _async_is_alive

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await super()._async_cleanup_resources(restart=restart)
        if self._kernel_dir is not None:
            shutil.rmtree(self._kernel_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources


def describe_exit(code: int | None, *, sandboxed: bool = False) -> str:
    """Name why a kernel process ended, from its ``Popen.returncode``.

    ``sandboxed``: the process was bwrap, which exits with ``128 + N`` when the kernel was
    killed by signal ``N``.
    """
    if code is None:
        return "kernel died"
    if sandboxed and 128 < code < 128 + 32:
        code = -(code - 128)
    if code < 0:
        number = -code
        known = {
            signal.SIGXCPU: "CPU-time limit exceeded (SIGXCPU)",
            signal.SIGKILL: "killed (SIGKILL: CPU-time or memory limit)",
            signal.SIGSEGV: "segmentation fault (SIGSEGV)",
            signal.SIGABRT: "aborted (SIGABRT)",
            signal.SIGXFSZ: "file-size limit exceeded (SIGXFSZ)",
        }
        return f"kernel died: {known.get(number, f'signal {number}')}"
    return f"kernel exited with status {code} (os._exit or a crash)"


def read_kernel_times(report_dir: Path) -> dict[str, float]:
    """``{event: time.time()}`` the kernel manager recorded in ``report_dir`` (first of each)."""
    path = Path(report_dir) / TIMES_FILE
    times: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            for event, when in json.loads(line).items():
                times.setdefault(event, when)
    return times


def read_kernel_death(report_dir: Path) -> str | None:
    """The recorded cause of the kernel's death in ``report_dir``, if it died."""
    path = Path(report_dir) / _DEATH_FILE
    return json.loads(path.read_text())["cause"] if path.exists() else None


class SandboxedExecute(Execute):
    """nbgrader's Execute, run in a temporary directory with :class:`SandboxedKernelManager`.

    ``resources['metadata']['path']`` (the kernel's working directory) is replaced by a new
    temporary directory under ``work_dir`` (the job's private folder) that receives copies of
    the non-notebook files of the autograded directory; it is deleted after execution.
    """

    work_dir = Unicode("", help="the job's private folder ('': the system's temporary folder)").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)
        # every cell has run: kill the kernel at once (the job kills all its processes anyway)
        self.shutdown_kernel = "immediate"

    def preprocess(self, nb, resources, km=None):  # noqa: ANN001 - nbconvert's signature
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        run_dir = Path(tempfile.mkdtemp(prefix="cs231n-run-", dir=self.work_dir or None))
        try:
            for item in source_dir.iterdir():
                if item.suffix == ".ipynb" or item.name.startswith("."):
                    continue
                target = run_dir / item.name
                if item.is_dir():
                    shutil.copytree(item, target, ignore=shutil.ignore_patterns("*.ipynb"))
                else:
                    shutil.copy(item, target)
            resources.setdefault("metadata", {})["path"] = str(run_dir)
            return super().preprocess(nb, resources, km=km)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
