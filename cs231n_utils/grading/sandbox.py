"""Run a student's kernel with resource limits, in an empty working directory.

The sandbox is nbgrader's own :class:`~nbgrader.preprocessors.Execute` preprocessor with three
changes, so every other part of nbgrader's autograde pipeline is untouched:

* the kernel is started through a tiny launcher that sets ``RLIMIT_AS`` (memory),
  ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_FSIZE`` (largest file written) and ``RLIMIT_CORE=0``
  and then ``exec``\\ s the real kernel command (or an instructor-supplied isolation prefix such
  as ``bwrap ...``, see :attr:`SandboxLimits.kernel_prefix`);
* a watchdog kills the kernel's whole process group when the submission's wall-clock budget
  is spent (per-cell timeouts alone cannot stop a loop that swallows ``KeyboardInterrupt``);
* the kernel's working directory is a fresh temporary directory holding only the non-notebook
  files of the assignment (data files), with a scrubbed environment (``HOME`` points there, no
  ``NBGRADER_*``/``JUPYTER_*`` variables, single-threaded BLAS). The notebook file that
  nbgrader wrote with the hidden tests inserted, the private gradebook, ``solutions/`` and the
  course gradebook are not in it: hidden tests reach the kernel only as the code of the cells
  it executes.

What this does *not* give: the kernel runs as the grading user, so code that knows (or
searches for) absolute paths can still read files that user can read. Real filesystem
isolation needs an OS mechanism (a container, a dedicated user, ``bwrap``): pass its command
as ``kernel_prefix``. :mod:`cs231n_utils.grading.tamper` flags the constructs such code needs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute
from traitlets import Float, Unicode

from ..validation import check_positive

# Runs in a bare interpreter (-I -S): set the limits, then become the kernel.
_LAUNCHER = """
import json, os, resource, sys
limits = json.loads(sys.argv[1])
for name, value in limits.items():
    which = getattr(resource, name)
    resource.setrlimit(which, (value, value))
os.execvp(sys.argv[2], sys.argv[2:])
"""

_SCRUBBED_PREFIXES = ("NBGRADER_", "JUPYTER_", "DASK_", "PYTEST_")
_SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_DEATH_FILE = "kernel-death.json"


@dataclass(frozen=True)
class SandboxLimits:
    """Per-submission resource limits.

    ``timeout_s`` is the wall-clock budget of the whole submission (kernel start to last
    cell), ``cell_timeout_s`` the budget of one cell (nbclient interrupts the cell and goes on,
    so later cells can still earn honest points), ``memory_mb`` the kernel's address-space
    limit, ``cpu_seconds`` its CPU-time limit (exceeding it kills the kernel with SIGXCPU).
    """

    timeout_s: float = 300.0
    cell_timeout_s: float = 60.0
    memory_mb: int = 2048
    cpu_seconds: int = 240
    file_size_mb: int = 256
    kernel_prefix: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_positive(self.timeout_s, "timeout_s")
        check_positive(self.cell_timeout_s, "cell_timeout_s")
        for name in ("memory_mb", "cpu_seconds", "file_size_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def rlimits(self) -> dict[str, int]:
        """The ``resource`` limits the launcher sets (soft = hard)."""
        return {
            "RLIMIT_AS": self.memory_mb * 1024 * 1024,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_FSIZE": self.file_size_mb * 1024 * 1024,
            "RLIMIT_CORE": 0,
        }


def kernel_environment(run_dir: Path) -> dict[str, str]:
    """The environment of a student's kernel: ours minus course/grader variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update({name: "1" for name in _SINGLE_THREAD})
    env.update(
        HOME=str(run_dir),
        TMPDIR=str(run_dir),
        IPYTHONDIR=str(run_dir / ".ipython"),
        MPLCONFIGDIR=str(run_dir / ".matplotlib"),
        MPLBACKEND="Agg",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class SandboxedKernelManager(AsyncKernelManager):
    """Start the kernel under the launcher, with a wall-clock watchdog on its process group."""

    limits_json = Unicode("{}", help="JSON of SandboxLimits.rlimits()").tag(config=True)
    kernel_prefix_json = Unicode("[]", help="JSON list: isolation command put before the kernel").tag(config=True)
    deadline = Float(0.0, help="time.time() at which the kernel is killed (0: never)").tag(config=True)
    report_dir = Unicode("", help="where the kernel's exit status is written when it dies").tag(config=True)
    extra_binds_json = Unicode("[]", help="JSON list of [host_path, sandbox_path], bound read-write").tag(config=True)
    extra_env_json = Unicode("{}", help="JSON object added to the kernel's environment").tag(config=True)

    _watchdog: threading.Timer | None = None
    _stopping = False

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        prefix = json.loads(self.kernel_prefix_json)
        return [sys.executable, "-I", "-S", "-c", _LAUNCHER, self.limits_json, *prefix, *command]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        run_dir = Path(kw.get("cwd") or tempfile.mkdtemp(prefix="cs231n-run-"))
        inherited = kw.get("env") or {}
        kw["env"] = {**kernel_environment(run_dir), **self._extra_environment(),
                     "JPY_PARENT_PID": inherited.get("JPY_PARENT_PID", str(os.getpid()))}
        kw["cwd"] = str(run_dir)
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.deadline:
            remaining = max(0.0, self.deadline - time.time())
            self._watchdog = threading.Timer(remaining, self._kill_for_deadline)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _extra_environment(self) -> dict[str, str]:
        """``extra_env_json`` with sandbox paths of ``extra_binds_json`` mapped back to host paths:
        without a mount namespace the kernel sees the host's files."""
        env = json.loads(self.extra_env_json)
        for host, inside in json.loads(self.extra_binds_json):
            env = {k: host + v[len(inside):] if v == inside or v.startswith(inside + "/") else v for k, v in env.items()}
        return env

    def _kill_for_deadline(self) -> None:
        self._record_death("wall-clock timeout")
        pgid = getattr(self.provisioner, "pgid", None)
        try:
            if pgid:
                os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _record_death(self, cause: str) -> None:
        if not self.report_dir:
            return
        path = Path(self.report_dir) / _DEATH_FILE
        if not path.exists():
            path.write_text(json.dumps({"cause": cause}))

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._stopping = True
        await super()._async_shutdown_kernel(now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel

    async def _async_is_alive(self) -> bool:
        alive = await super()._async_is_alive()
        if not alive and not self._stopping:
            process = getattr(self.provisioner, "process", None)
            code = process.poll() if process is not None else None
            self._record_death(describe_exit(code))
        return alive

    is_alive = _async_is_alive

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await super()._async_cleanup_resources(restart=restart)

    cleanup_resources = _async_cleanup_resources


def describe_exit(code: int | None) -> str:
    """Name why a kernel process ended, from its ``Popen.returncode``."""
    if code is None:
        return "kernel died"
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


def read_kernel_death(report_dir: Path) -> str | None:
    """The recorded cause of the kernel's death in ``report_dir``, if it died."""
    path = Path(report_dir) / _DEATH_FILE
    return json.loads(path.read_text())["cause"] if path.exists() else None


class SandboxedExecute(Execute):
    """nbgrader's Execute, run in a temporary directory with :class:`SandboxedKernelManager`.

    ``resources['metadata']['path']`` (the kernel's working directory) is replaced by a new
    temporary directory that receives copies of the non-notebook files of the autograded
    directory; it is deleted after execution.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources, km=None):  # noqa: ANN001 - nbconvert's signature
        source_dir = Path(resources.get("metadata", {}).get("path") or ".")
        run_dir = Path(tempfile.mkdtemp(prefix="cs231n-run-"))
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
