"""Detect, at run time, a student answer that executes a reference implementation.

A function that merely forwards to ``cs231n_utils.optim.adam`` (under any alias, through
``functools.partial``, a lambda or a subclass of ``torch.optim.Adam``) gets no credit. Aliases do
not hide the code that runs, so while the student's code runs, :class:`ReferenceWatch` installs a
profiler (:func:`sys.setprofile`) that records every Python function whose code object lives in
a reference file:

- the course's reference modules of the exercise, by default ``cs231n_utils/optim.py`` and
  ``cs231n_utils/torch_optim.py`` (other exercises watch ``second_order``, ``layers``,
  ``regularization`` or ``transfer``: ``ReferenceWatch(course_modules=...)``);
- unless ``torch_optimizers=False``, every module of ``torch/optim/`` except ``optimizer.py``
  (the base class students subclass) and ``__init__.py``, i.e. torch's own update rules.

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

__all__ = ["ReferenceWatch", "is_reference_code_file", "REFERENCE_MODULES"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
REFERENCE_MODULES = frozenset({"optim", "torch_optim", "second_order", "layers", "regularization", "transfer"})
"""Modules of ``cs231n_utils`` that a watch may treat as reference implementations."""
_DEFAULT_MODULES = ("optim", "torch_optim")
_SHOWN_CALLS = 4  # reference functions named in the refusal; the first is the one the student called
_TORCH_OPTIM_ALLOWED = frozenset({"optimizer.py", "__init__.py"})


def _torch_optim_dir() -> str | None:
    """Directory of ``torch.optim`` without importing torch (a NumPy-only check must stay fast)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(os.path.join(list(spec.submodule_search_locations)[0], "optim"))


_TORCH_OPTIM_DIR = _torch_optim_dir()


@lru_cache(maxsize=8192)
def is_reference_code_file(
    filename: str, course_modules: frozenset[str] = frozenset(_DEFAULT_MODULES), torch_optimizers: bool = True
) -> bool:
    """True when code compiled from ``filename`` belongs to a watched reference implementation:
    ``cs231n_utils/<m>.py`` for ``m`` in ``course_modules``, or (with ``torch_optimizers``) torch's
    optimizers."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.realpath(filename)
    directory, name = os.path.split(path)
    if directory == str(_PACKAGE_DIR) and name.removesuffix(".py") in course_modules:
        return True
    return torch_optimizers and directory == _TORCH_OPTIM_DIR and name not in _TORCH_OPTIM_ALLOWED


class ReferenceWatch:
    """Context manager recording reference functions executed inside it; re-enterable.

    ``calls`` holds ``module-file:qualified-name`` strings, in order of first execution; names in
    ``allowed`` (e.g. ``"transfer.py:DigitsCNN.forward"``, a model the exercise provides) are not recorded.
    The previous profiler, if any, is restored on exit.
    """

    def __init__(self, course_modules: tuple[str, ...] = _DEFAULT_MODULES, *, torch_optimizers: bool = True,
                 allowed: frozenset[str] = frozenset()) -> None:
        unknown = set(course_modules) - REFERENCE_MODULES
        if not course_modules or unknown:
            raise ValueError(f"course_modules must be a non-empty subset of {sorted(REFERENCE_MODULES)}, got {course_modules!r}")
        self.course_modules = frozenset(course_modules)
        self.torch_optimizers = bool(torch_optimizers)
        self.allowed = frozenset(allowed)  # "file.py:qualname" of watched functions students may run
        self.calls: list[str] = []
        self._previous: Any = None
        self._previous_threading: Any = None

    @property
    def triggered(self) -> bool:
        return bool(self.calls)

    def _profile(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and is_reference_code_file(frame.f_code.co_filename, self.course_modules, self.torch_optimizers):
            code = frame.f_code
            name = f"{Path(code.co_filename).name}:{code.co_qualname}"
            if name not in self.calls and name not in self.allowed:
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
            self.calls.insert(0, "sys.setprofile (the watch was switched off)")  # always shown first
        sys.setprofile(self._previous)
        threading.setprofile(self._previous_threading)
        self._previous = self._previous_threading = None

    def refusal(self) -> str:
        """The zero-credit message for a triggered watch."""
        watched = [f"cs231n_utils.{m}" for m in sorted(self.course_modules)]
        if self.torch_optimizers:
            watched.append("torch.optim's optimizers")
        listed = ", ".join(watched[:-1]) + " or " + watched[-1] if len(watched) > 1 else watched[0]
        shown = ", ".join(self.calls[:_SHOWN_CALLS])
        if len(self.calls) > _SHOWN_CALLS:
            shown += f" and {len(self.calls) - _SHOWN_CALLS} more"
        return f"Your code runs a reference implementation ({shown}). Write it yourself; calling {listed} earns no credit."
