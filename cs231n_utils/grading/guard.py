"""Restore a pristine interpreter before every instructor cell, and notice when it was not.

nbgrader runs the hidden tests in the student's kernel, after the student's cells. Two
preprocessors added to nbgrader's autograde pipeline (around our ``SandboxedExecute``) make
the state the tests see the instructor's, not the student's:

* :class:`InjectGuards` puts guard cells into the notebook before execution: one first cell
  that snapshots the protected modules (``numpy``, ``numpy.testing``, ``builtins``,
  ``cs231n_utils.*``...: every attribute), IPython's input/AST transformers and event hooks,
  the shell's and kernel's classes and ``sys`` trace hooks; then a *restore* cell before every
  instructor (locked) cell, which puts back every changed or added attribute and hook and every
  name an earlier instructor cell bound (an assert helper, ``autograde``) and reports what it
  had to restore; and a *record* cell after every instructor cell, which also checks that the
  instructor cell (which calls the student's functions) left numpy, builtins and the hooks
  alone, then snapshots again and records the names the instructor cell bound.
* :class:`CollectGuards` removes the guard cells after execution (so nbgrader's
  ``SaveAutoGrades`` and the feedback see the notebook as released) and writes what they
  found to ``guard-<notebook>.json``. Any restoration, and any guard cell without its report line (a
  hook that swallowed or rewrote it, a redirected ``sys.stdout``), makes the notebook
  "tampered": the job flags it, and zeroes the scores of the tests that ran inside the kernel
  (the trusted checker's scores stand under isolation; see :mod:`.job`).

So a patched ``numpy.allclose`` or a redefined helper is undone before the hidden tests run
*and* reported. Limits (in-process checks cannot be airtight): a student who finds the guard's
own snapshot (e.g. via ``gc``) and poisons it, or installs a hook that passes guard cells
through untouched while faking test cells, defeats this layer; the static scan
(:mod:`cs231n_utils.grading.tamper`) rejects every construct those attacks need, and nested
state (a dict inside a module changed in place) is not compared.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_code_cell
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

from .tamper import bound_names

MARKER = "CS231N-GUARD "
GUARD_FILE = "guard-{notebook}.json"
#: Functions the guard defines in the kernel; the static scan protects them like instructor names.
GUARD_NAMES = ("_cs231n_guard_check",)

# Runs in the student's kernel. Defines _cs231n_guard_check(names, strict_only, record).
_KERNEL_SETUP = r'''
def _cs231n_guard_factory(module_names, strict_prefixes):
    import builtins, importlib, json, sys
    ip = get_ipython()
    owners = [ip, getattr(ip, "kernel", None), getattr(ip, "input_transformer_manager", None)]
    hook_lists = [(ip, "input_transformers_cleanup"), (ip, "input_transformers_post"), (ip, "ast_transformers"),
                  (owners[2], "cleanup_transforms"), (owners[2], "line_transforms"), (owners[2], "token_transformers")]
    # IPython/ipykernel rebind these around every execution request
    ignored_builtins = {"_", "__", "___", "input", "raw_input"}
    trusted_hook_modules = ("matplotlib_inline", "IPython", "ipykernel", "matplotlib")
    state = {}

    def snapshot():
        modules = {}
        for name in module_names:
            try:
                modules[name] = importlib.import_module(name)
            except Exception:
                continue
        state["modules"] = {name: (mod, dict(vars(mod))) for name, mod in modules.items()}
        state["sys_modules"] = {name: sys.modules.get(name) for name in modules}
        state["classes"] = {cls: dict(vars(cls)) for obj in owners if obj is not None
                            for cls in type(obj).__mro__ if cls is not object}
        state["instances"] = {id(obj): (obj, dict(vars(obj))) for obj in owners if obj is not None}
        state["hooks"] = [(owner, attr, getattr(owner, attr), list(getattr(owner, attr)))
                          for owner, attr in hook_lists if owner is not None and hasattr(owner, attr)]
        state["events"] = {event: (lst, list(lst)) for event, lst in ip.events.callbacks.items()}
        state["sys"] = {name: getattr(sys, name) for name in ("displayhook", "stdout", "stderr")}
        state.setdefault("names", {})

    def restore(strict_only):
        changed = []
        strict = lambda name: not strict_only or name.startswith(strict_prefixes)
        for name, (mod, snap) in state["modules"].items():
            if not strict(name):
                continue
            if sys.modules.get(name) is not state["sys_modules"][name]:
                changed.append("sys.modules[%r]" % name)
                sys.modules[name] = state["sys_modules"][name]
            current = vars(mod)
            for key, value in snap.items():
                if name == "builtins" and key in ignored_builtins:
                    continue
                if current.get(key, snap) is not value:
                    changed.append("%s.%s" % (name, key))
                    setattr(mod, key, value)
            for key in [k for k in current if k not in snap]:
                value = current[key]
                if type(value).__name__ == "module" or (name == "builtins" and key in ignored_builtins):
                    continue
                changed.append("%s.%s (added)" % (name, key))
                delattr(mod, key)
        for cls, snap in state["classes"].items():
            for key, value in snap.items():
                if cls.__dict__.get(key, snap) is not value:
                    changed.append("%s.%s" % (cls.__qualname__, key))
                    setattr(cls, key, value)
        for obj, snap in state["instances"].values():
            current = vars(obj)
            for key in list(current):
                value = current[key]
                shadows = key not in snap and hasattr(type(obj), key)
                replaced = key in snap and snap[key] is not value and callable(snap[key])
                if shadows or replaced:
                    changed.append("%s.%s (instance)" % (type(obj).__name__, key))
                    if shadows:
                        delattr(obj, key)
                    else:
                        setattr(obj, key, snap[key])
        for owner, attr, lst, items in state["hooks"]:
            if getattr(owner, attr) is not lst or lst != items:
                changed.append("IPython hook %s" % attr)
                setattr(owner, attr, lst)
                lst[:] = items
        for event, (lst, items) in state["events"].items():
            current = ip.events.callbacks.get(event, [])
            added = [cb for cb in current if cb not in items]
            trusted = [cb for cb in added if getattr(cb, "__module__", "").startswith(trusted_hook_modules)]
            if current is not lst or len(added) != len(trusted) or any(cb not in current for cb in items):
                changed.append("IPython event %s" % event)
            ip.events.callbacks[event] = lst
            lst[:] = items + trusted
        for name, value in state["sys"].items():
            if getattr(sys, name) is not value:
                changed.append("sys.%s" % name)
                setattr(sys, name, value)
        if sys.gettrace() is not None or sys.getprofile() is not None:
            changed.append("sys.settrace/setprofile")
            sys.settrace(None)
            sys.setprofile(None)
        return changed

    def check(names=(), strict_only=False, record=()):
        user = ip.user_ns
        changed = restore(strict_only)
        if not strict_only:
            for name, value in state["names"].items():
                if user.get(name, state) is not value:
                    if callable(value) or type(value).__name__ == "module":
                        changed.append("instructor name %r" % name)
                    user[name] = value  # data the student reused as a variable name: put back silently
        snapshot()
        for name in record:
            if name in user:
                state["names"][name] = user[name]
        print("CS231N-GUARD " + json.dumps({"changed": changed}), flush=True)

    snapshot()
    return check

_cs231n_guard_check = _cs231n_guard_factory(@MODULES@, @STRICT@)
del _cs231n_guard_factory
_cs231n_guard_check()
'''


class InjectGuards(NbGraderPreprocessor):
    """Insert the snapshot cell, and restore/record cells around every instructor cell."""

    protected_modules = List(
        ["builtins", "math", "numpy", "numpy.linalg", "numpy.random", "numpy.testing", "cs231n_utils",
         "cs231n_utils.autograde", "cs231n_utils.optim", "cs231n_utils.gradcheck", "cs231n_utils.validation",
         "cs231n_utils.landscapes", "cs231n_utils.layers"],
        help="modules whose attributes are restored before every instructor cell",
    ).tag(config=True)
    strict_prefixes = List(
        ["builtins", "math", "numpy"],
        help="modules that instructor cells must not change either (checked after them too)",
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        setup = _KERNEL_SETUP.replace("@MODULES@", repr(list(self.protected_modules)))
        setup = setup.replace("@STRICT@", repr(tuple(self.strict_prefixes)))
        cells = [_guard_cell(setup, "setup")]
        for cell in nb.cells:
            instructor = cell.cell_type == "code" and nbutils.is_locked(cell)
            if instructor:
                cells.append(_guard_cell("_cs231n_guard_check()", "restore"))
            cells.append(cell)
            if instructor:
                names = sorted(bound_names(cell.source))
                cells.append(_guard_cell(f"_cs231n_guard_check(strict_only=True, record={names!r})", "record"))
        nb.cells = cells
        return nb, resources


def _guard_cell(source: str, kind: str) -> NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["cs231n_guard"] = kind
    return cell


def _guard_report(cell: NotebookNode) -> dict[str, Any] | None:
    """The JSON report a guard cell printed, or None if it did not run normally."""
    if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
        return None
    text = "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    lines = [line for line in text.splitlines() if line.startswith(MARKER)]
    if len(lines) != 1:
        return None
    try:
        return json.loads(lines[0][len(MARKER):])
    except json.JSONDecodeError:
        return None


class CollectGuards(NbGraderPreprocessor):
    """Remove the guard cells after execution and write their findings to ``report_dir``."""

    report_dir = Unicode("", help="directory that receives guard.json").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        findings: list[str] = []
        kept = []
        for cell in nb.cells:
            kind = cell.metadata.get("cs231n_guard")
            if kind is None:
                kept.append(cell)
                continue
            report = _guard_report(cell)
            if report is None:
                findings.append(f"{kind} guard cell did not run normally (execution intercepted or output redirected)")
            else:
                findings.extend(f"restored {item}" for item in report["changed"])
        nb.cells = kept
        if self.report_dir:
            name = GUARD_FILE.format(notebook=resources["nbgrader"]["notebook"])
            Path(self.report_dir, name).write_text(json.dumps({"findings": findings}))
        return nb, resources


def read_guard_findings(report_dir: Path, notebook: str) -> list[str] | None:
    """Findings :class:`CollectGuards` wrote for ``notebook``, or None if execution never got that far."""
    path = Path(report_dir) / GUARD_FILE.format(notebook=notebook)
    return json.loads(path.read_text())["findings"] if path.exists() else None
