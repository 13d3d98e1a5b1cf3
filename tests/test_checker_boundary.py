"""The package boundary: the student view holds no reference, and the notebooks need nothing else.

The bubblewrap tests mount the view exactly as :func:`student_view_mounts` says, in a minimal
sandbox (system folders, the interpreter and the virtual environment read-only, nothing of the
repository), and run Python there; they are skipped where ``bwrap`` is missing or cannot start.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from cs231n_utils.grading.boundary import (ASSIGNMENTS_USING_TORCH_OPTIMIZERS, STUDENT_VISIBLE, build_student_view,
                                           student_view_mounts)

ROOT = Path(__file__).resolve().parent.parent
INSIDE = Path("/opt/student")


def _imported_package_modules(source: str) -> set[str]:
    """``cs231n_utils`` submodules a piece of code imports (first level: ``cs231n_utils.x`` -> ``x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "cs231n_utils"
                                     else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "cs231n_utils" and len(parts) > 1:
                found.add(parts[1])
    return found


def _visible_modules() -> set[str]:
    return {Path(relative).parts[0].removesuffix(".py") for relative in STUDENT_VISIBLE} - {"__init__"}


@pytest.mark.parametrize("notebook", sorted((ROOT / "solutions").glob("*/*.ipynb")), ids=lambda p: p.parent.name)
def test_every_cell_the_student_kernel_runs_imports_only_visible_modules(notebook):
    """Setup, answer and test cells (hidden tests included) as the sandboxed kernel runs them."""
    imported = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code":
            imported |= _imported_package_modules(cell.source)
    assert imported <= _visible_modules(), imported - _visible_modules()


def test_the_view_holds_exactly_the_visible_files_and_no_test_split():
    view = build_student_view()
    files = {p.relative_to(view / "cs231n_utils").as_posix() for p in (view / "cs231n_utils").rglob("*") if p.is_file()}
    assert files == set(STUDENT_VISIBLE) | {"digits_finetuning_task.npz"}
    import numpy as np

    with np.load(view / "cs231n_utils" / "digits_finetuning_task.npz") as saved:
        assert not any("test" in name for name in saved.files)
    for relative in STUDENT_VISIBLE:  # the grader's held-out data loader stays outside the view
        assert "def held_out" not in (view / "cs231n_utils" / relative).read_text(), relative
    assert build_student_view() == view  # built once, then reused


def _bwrap_python(code: str, mounts: list[str]) -> subprocess.CompletedProcess:
    venv = Path(sys.prefix).resolve()
    base = Path(sys.base_prefix).resolve()
    system = [arg for folder in ("/usr", "/lib", "/lib64", "/bin", "/etc") if Path(folder).exists()
              for arg in ("--ro-bind", folder, folder)]
    command = ["bwrap", "--tmpfs", "/tmp", *system, "--ro-bind", str(base), str(base),
               "--ro-bind", str(venv), str(venv),  # after /tmp's tmpfs: the venv may live under /tmp
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/opt", "--dir", str(INSIDE),
               *mounts, "--unshare-all", "--die-with-parent", "--setenv", "PYTHONPATH", str(INSIDE),
               "--", str(venv / "bin" / "python"), "-c", textwrap.dedent(code)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bwrap_works():
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    probe = _bwrap_python("print('ok')", [])
    if probe.returncode != 0:
        pytest.skip(f"bubblewrap cannot start here: {probe.stderr.strip()[:200]}")


PROBE = '''
    import importlib, json, os, pathlib
    import cs231n_utils
    result = {"file": cs231n_utils.__file__, "hidden": [], "leaked": []}
    for name in ["optim", "torch_optim", "layers", "second_order", "regularization", "transfer", "autograde",
                 "grading", "autograde.registry", "grading.checker"]:
        try:
            importlib.import_module("cs231n_utils." + name)
            result["leaked"].append(name)
        except ImportError:
            result["hidden"].append(name)
    package = pathlib.Path(cs231n_utils.__file__).parent
    result["readable"] = [p.name for p in package.glob("*.py") if p.name in ("optim.py", "torch_optim.py")]
    result["solutions"] = [str(p) for p in pathlib.Path("/").glob("*/solutions")]
    from cs231n_utils import assignment_data
    task = assignment_data.digits_finetuning_task()
    result["task"] = [list(task.X_train.shape), hasattr(task, "X_test"),
                      hasattr(assignment_data, "held_out_target_digits")]
    from cs231n_utils.kernel import grade
    import torch
    try:
        torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
        result["adam"] = "works"
    except RuntimeError as error:
        result["adam"] = str(error)
    result["optimizer_base"] = torch.optim.Optimizer.__module__
    print(json.dumps(result))
'''


def test_inside_the_sandbox_the_reference_is_neither_importable_nor_readable(bwrap_works):
    done = _bwrap_python(PROBE, student_view_mounts(INSIDE))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["file"] == str(INSIDE / "cs231n_utils" / "__init__.py")
    assert result["leaked"] == [] and len(result["hidden"]) == 10
    assert result["readable"] == [] and result["solutions"] == []
    assert result["task"] == [[50, 1, 8, 8], False, False]
    assert "not available while grading" in result["adam"]
    assert result["optimizer_base"] == "torch.optim.optimizer"


def test_torch_optimizers_stay_for_assignments_that_train_with_them(bwrap_works):
    (assignment,) = ASSIGNMENTS_USING_TORCH_OPTIMIZERS
    done = _bwrap_python(PROBE, student_view_mounts(INSIDE, assignment=assignment))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["adam"] == "works"


DIGITS_PROBE = '''
    import json
    try:
        from sklearn.datasets import load_digits
        result = {"digits": int(load_digits().images.shape[0])}
    except Exception as error:  # the data file is empty in the sandbox
        result = {"digits": type(error).__name__}
    print(json.dumps(result))
'''


def test_the_finetuning_assignment_cannot_read_the_digits_it_is_evaluated_on(bwrap_works):
    hidden = _bwrap_python(DIGITS_PROBE, student_view_mounts(INSIDE, assignment="transfer_learning"))
    assert hidden.returncode == 0, hidden.stderr
    assert json.loads(hidden.stdout.strip().splitlines()[-1])["digits"] != 1797
    other = _bwrap_python(DIGITS_PROBE, student_view_mounts(INSIDE, assignment="update_rules"))
    assert other.returncode == 0, other.stderr  # the optimizer notebooks train on the digits
    assert json.loads(other.stdout.strip().splitlines()[-1])["digits"] == 1797


def test_the_destination_must_be_an_absolute_path():
    with pytest.raises(ValueError, match="dest must be an absolute path"):
        student_view_mounts(Path("relative"))
