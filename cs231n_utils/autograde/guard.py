"""Detect, at run time, a student answer that executes a reference implementation.

A function that merely forwards to ``cs231n_utils.optim.adam`` (under any alias, through
``functools.partial``, a lambda or a subclass of ``torch.optim.Adam``) gets no credit. Aliases do
not hide the code that runs, so while the student's code runs, :class:`ReferenceWatch` installs a
profiler (:func:`sys.setprofile`) that records every Python function whose code object lives in
a reference file:

- ``cs231n_utils/optim.py`` and ``cs231n_utils/torch_optim.py`` (the course's references);
- every module of ``torch/optim/`` except ``optimizer.py`` (the base class students subclass)
  and ``__init__.py``, i.e. torch's own implementations of the update rules.

Threads started by the student's code are watched too, and code that replaces or removes the
profiler (``sys.setprofile``) is itself reported. Limitation: only Python-level code is seen; a
student who calls a private compiled kernel directly (e.g. ``torch._fused_adam_``) is not
detected.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

__all__ = ["ReferenceWatch", "is_reference_code_file"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_COURSE_REFERENCE_FILES = frozenset(str(_PACKAGE_DIR / name) for name in ("optim.py", "torch_optim.py"))
_TORCH_OPTIM_ALLOWED = frozenset({"optimizer.py", "__init__.py"})


def _torch_optim_dir() -> str | None:
    """Directory of ``torch.optim`` without importing torch (a NumPy-only check must stay fast)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(os.path.join(list(spec.submodule_search_locations)[0], "optim"))


_TORCH_OPTIM_DIR = _torch_optim_dir()


@lru_cache(maxsize=4096)
def is_reference_code_file(filename: str) -> bool:
    """True when code compiled from ``filename`` belongs to a reference implementation."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    if path in _COURSE_REFERENCE_FILES:
        return True
    directory, name = os.path.split(path)
    return directory == _TORCH_OPTIM_DIR and name not in _TORCH_OPTIM_ALLOWED


class ReferenceWatch:
    """Context manager recording reference functions executed inside it; re-enterable.

    ``calls`` holds ``module-file:qualified-name`` strings, in order of first execution.
    The previous profiler, if any, is restored on exit.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._previous: Any = None
        self._previous_threading: Any = None

    @property
    def triggered(self) -> bool:
        return bool(self.calls)

    def _profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and is_reference_code_file(frame.f_code.co_filename):
            code = frame.f_code
            name = f"{Path(code.co_filename).name}:{code.co_qualname}"
            if name not in self.calls:
                self.calls.append(name)

    def __enter__(self) -> "ReferenceWatch":
        self._previous, self._previous_threading = sys.getprofile(), threading.getprofile()
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if sys.getprofile() != self._profile and "sys.setprofile (the watch was switched off)" not in self.calls:
            self.calls.append("sys.setprofile (the watch was switched off)")
        sys.setprofile(self._previous)
        threading.setprofile(self._previous_threading)
        self._previous = self._previous_threading = None

    def refusal(self) -> str:
        """The zero-credit message for a triggered watch."""
        return (
            "Your code runs a reference implementation ("
            + ", ".join(self.calls)
            + "). Write the update yourself; calling cs231n_utils.optim, cs231n_utils.torch_optim "
            "or torch.optim's optimizers earns no credit."
        )
