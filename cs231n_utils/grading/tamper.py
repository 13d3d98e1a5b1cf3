"""Static scan of a student's code for tampering with the grader.

Why a static scan: the hidden tests run in the same interpreter as the student's code, so a
student cell can change what they see (``numpy.allclose = lambda *a, **k: True``, an IPython
input transformer that turns every later cell into ``pass``, a replaced
``cs231n_utils.autograde``, a redefined assert helper, reading the hidden tests from disk).
Two layers stop that from raising a score:

1. this module parses every cell the student controls (every code cell that nbgrader does not
   overwrite from the gradebook) and reports constructs that an optimiser assignment never
   needs but tampering does (see :data:`POLICY`); any finding zeroes the notebook's
   autograded scores, with the findings as the reason, so tampering scores no more than the
   honest blank submission (which scores at least 0);
2. :mod:`cs231n_utils.grading.guard` restores the pristine modules, hooks and instructor
   names before every instructor cell at run time and zeroes the notebook if it finds them
   changed, or if its guard cells did not run (a hook swallowed them).

Obfuscation the scan does not understand (it is a denylist) is the job of layer 2, and
filesystem isolation is the job of the OS (see :mod:`cs231n_utils.grading.sandbox`).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterable

from IPython.core.inputtransformer2 import TransformerManager

#: Modules whose attributes a student cell may read but never assign, delete or ``setattr``.
PROTECTED_MODULES = ("numpy", "cs231n_utils", "builtins", "sys", "IPython", "ipykernel", "torch",
                     "math", "unittest", "pytest", "nbgrader", "importlib", "os")
#: Modules a student cell may not import (introspection, processes, raw memory, the database).
FORBIDDEN_IMPORTS = ("ctypes", "gc", "inspect", "importlib", "sqlite3", "subprocess", "socket",
                     "pickle", "marshal", "types", "builtins", "IPython", "ipykernel", "glob",
                     "shutil", "multiprocessing", "threading", "signal", "pty", "nbgrader",
                     "nbformat", "nbclient", "sqlalchemy", "code", "codeop", "dis")
#: Builtins that set or delete an attribute: allowed on the student's own objects (a model's head),
#: flagged on a protected module, an instructor name, or a target the scan cannot name.
ATTRIBUTE_SETTERS = ("setattr", "delattr")
#: Names a student cell may not call or mention (``setattr``/``delattr``: see ATTRIBUTE_SETTERS).
FORBIDDEN_NAMES = ("get_ipython", "exec", "eval", "compile", "__import__", "globals", "locals",
                   "vars", "setattr", "delattr", "breakpoint", "__builtins__", "__file__")
#: Attributes a student cell may not use on any object (object internals, frames, file walking).
FORBIDDEN_ATTRIBUTES = ("__dict__", "__globals__", "__code__", "__closure__", "__subclasses__",
                        "__bases__", "__base__", "__mro__", "__class__", "__getattribute__",
                        "__setattr__", "__delattr__", "__builtins__", "__file__", "__loader__", "__module__",
                        "__spec__", "f_globals", "f_locals", "f_back", "gi_frame", "tb_frame",
                        "glob", "rglob", "iterdir")
#: Module members a student cell may not use (interpreter hooks, processes, directory walking).
FORBIDDEN_MEMBERS = ("sys.modules", "sys.settrace", "sys.setprofile", "sys._getframe", "sys.executable",
                     "sys.prefix", "sys.base_prefix", "sys.addaudithook", "sys.meta_path", "sys.path_hooks",
                     "sys.stdout", "sys.stderr", "sys.displayhook", "sys.excepthook",
                     "os.system", "os.popen", "os.walk", "os.listdir", "os.scandir", "os.fork", "os.kill",
                     "os.execv", "os.execvp", "os.execve", "os.spawnv", "os.posix_spawn", "os.getppid",
                     "os.environ", "os.chdir", "os.getcwd")
#: Substrings of string literals that point at grader files.
FORBIDDEN_STRINGS = ("/proc", "gradebook", ".ipynb", "solutions", "hidden tests", ".db", "../")
#: Line magics that are harmless in a student cell.
ALLOWED_MAGICS = ("matplotlib", "time", "timeit")


@dataclass(frozen=True)
class Finding:
    """One suspicious construct: the cell (its nbgrader ``grade_id`` or index), line and why."""

    cell: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.message}"


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def import_aliases(sources: Iterable[str]) -> dict[str, str]:
    """Map each name bound by an import in ``sources`` to the module path it stands for."""
    aliases = {"np": "numpy", "npt": "numpy.testing"}
    for source in sources:
        tree = _parse(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def bound_names(source: str, *, callables_only: bool = False) -> set[str]:
    """Names that a cell binds at module level (assignments, defs, classes, imports).

    ``callables_only`` keeps only defs, classes and imports: what tampering replaces (helpers,
    reference functions, modules), not data a student may reuse as a variable name.
    """
    tree = _parse(source)
    names: set[str] = set()
    if tree is None:
        return names
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and not callables_only:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None  # the kernel reports it as an error of the cell; nothing to scan


def _resolve(dotted: str | None, aliases: dict[str, str]) -> str | None:
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    base = aliases.get(head, head)
    return f"{base}.{rest}" if rest else base


def _is_protected(path: str | None) -> bool:
    return path is not None and path.split(".")[0] in PROTECTED_MODULES and "." in path


def _allowed_magic(node: ast.Call) -> bool:
    """``get_ipython().run_line_magic('matplotlib', ...)`` and the other allowed magics."""
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "run_line_magic"
            and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython" and node.args
            and isinstance(node.args[0], ast.Constant) and node.args[0].value in ALLOWED_MAGICS)


class _Scanner(ast.NodeVisitor):
    def __init__(self, cell: str, aliases: dict[str, str], protected: dict[str, str | None]):
        self.cell, self.aliases, self.protected = cell, aliases, protected
        self.findings: list[Finding] = []
        self._skip: set[int] = set()

    def _flag(self, node: ast.AST, message: str) -> None:
        self.findings.append(Finding(self.cell, getattr(node, "lineno", 0), message))

    def _check_target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_target(element, verb)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            path = _resolve(_dotted(target), self.aliases)
            if _is_protected(path) or (path and path.split(".")[0] in self.protected):
                self._flag(target, f"{verb} {path}")
        elif isinstance(target, ast.Name) and target.id in self.protected:
            self._flag(target, f"rebinds instructor name {target.id!r}")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, "patches")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, "patches")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_target(node.target, "patches")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, "deletes")
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._check_target(node.target, "rebinds")
        self.generic_visit(node)

    def _check_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name in self.protected:
            self._flag(node, f"redefines instructor name {node.name!r}")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _check_def

    def _check_import(self, node: ast.Import | ast.ImportFrom) -> None:
        modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        for module in modules:
            if module.split(".")[0] in FORBIDDEN_IMPORTS:
                self._flag(node, f"imports {module}")
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in FORBIDDEN_MEMBERS:
                    self._flag(node, f"imports {node.module}.{alias.name}")
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            if name in self.protected:
                full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                if self.protected[name] != full:
                    self._flag(node, f"rebinds instructor name {name!r} by an import")

    visit_Import = visit_ImportFrom = _check_import

    def visit_Call(self, node: ast.Call) -> None:
        if _allowed_magic(node):
            self._skip.add(id(node.func.value.func))
        if isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_SETTERS:
            self._check_setter(node, node.func.id)
        self.generic_visit(node)

    def _check_setter(self, node: ast.Call, name: str) -> None:
        """``setattr(obj, ...)`` is fine on the student's own ``obj``; flag it on what it may not patch."""
        self._skip.add(id(node.func))
        target = node.args[0] if node.args else None
        path = _resolve(_dotted(target), self.aliases) if target is not None else None
        head = path.split(".")[0] if path else None
        if path is None or head in PROTECTED_MODULES or head in self.protected:
            self._flag(node, f"uses {name} on {path or 'an expression'}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES and id(node) not in self._skip:
            self._flag(node, f"uses {node.id}")
        elif self.aliases.get(node.id) in FORBIDDEN_MEMBERS:
            self._flag(node, f"uses {self.aliases[node.id]}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = _resolve(_dotted(node), self.aliases)
        if node.attr in FORBIDDEN_ATTRIBUTES:
            self._flag(node, f"uses attribute {node.attr}")
        elif path in FORBIDDEN_MEMBERS:
            self._flag(node, f"uses {path}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            lowered = node.value.lower()
            for needle in FORBIDDEN_STRINGS:
                if needle in lowered:
                    self._flag(node, f"string mentions {needle!r}")


def instructor_bindings(sources: Iterable[str]) -> dict[str, str | None]:
    """Functions, classes and imports bound by instructor cells, mapped to the import they
    stand for (None: a def or class)."""
    sources = list(sources)
    aliases = import_aliases(sources)
    protected: dict[str, str | None] = {}
    for source in sources:
        for name in bound_names(source, callables_only=True):
            protected[name] = aliases.get(name)
    return protected


def scan_cells(student_cells: dict[str, str], instructor_cells: Iterable[str]) -> list[Finding]:
    """Scan the student's cells (``{cell label: source}``) against the instructor's cells.

    A student cell may call instructor names; it may not rebind them, patch protected
    modules, install interpreter hooks or walk the filesystem.
    """
    if not isinstance(student_cells, dict):
        raise ValueError(f"student_cells must be a dict of label -> source, got {type(student_cells).__name__}")
    instructor = list(instructor_cells)
    protected = instructor_bindings(instructor)
    aliases = import_aliases([*instructor, *student_cells.values()])
    findings: list[Finding] = []
    for label, source in student_cells.items():
        tree = _parse(source)
        if tree is None:
            continue
        scanner = _Scanner(label, aliases, protected)
        scanner.visit(tree)
        findings.extend(scanner.findings)
    return findings
