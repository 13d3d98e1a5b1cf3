"""The package boundary: what of ``cs231n_utils`` (and of torch) a student's sandboxed kernel sees.

The boundary is a list of files, not a denylist: :data:`STUDENT_VISIBLE` names the modules that
implement nothing students write (data, test functions, plotting, the provided network, the
line search, the kernel side of the grading channel). :func:`student_view_mounts` copies only
those into a *student view* of the package (built once per content, on the host) and returns the
bubblewrap arguments that mount it read-only at the kernel's import path, so that the reference
(``optim``, ``torch_optim``, ``layers``, ``second_order``, ``regularization``, ``transfer``), the
checks (``autograde/``), the grader (``grading/``) and ``solutions/`` are neither importable nor
readable there. The view's ``assignment_data`` reads the finetuning task from a file that holds
the training and validation splits only (no test split).

For assignments where students write an optimizer, torch's own optimizers are replaced by stubs
(:data:`TORCH_OPTIMIZER_FILES`) whose classes and functions raise "not available while
grading"; ``torch.optim.Optimizer``, the learning-rate schedulers and the rest of torch stay.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["student_view_mounts", "build_student_view", "STUDENT_VISIBLE", "TORCH_OPTIMIZER_FILES",
           "ASSIGNMENTS_USING_TORCH_OPTIMIZERS", "HIDDEN_DATA_FILES", "grader_cache_dir"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
STUDENT_VISIBLE = ("__init__.py", "kernel/__init__.py", "kernel/codec.py", "kernel/serve.py", "kernel/runners.py",
                   "data.py", "landscapes.py", "gradcheck.py", "plotting.py", "validation.py", "models.py",
                   "line_search.py", "assignment_data.py")
"""Files of ``cs231n_utils`` (relative paths) that the sandbox sees; nothing else is there."""
TORCH_OPTIMIZER_FILES = ("adadelta.py", "adagrad.py", "adam.py", "adamax.py", "adamw.py", "asgd.py", "lbfgs.py",
                         "nadam.py", "radam.py", "rmsprop.py", "rprop.py", "sgd.py", "sparse_adam.py",
                         "_adafactor.py", "_muon.py")
"""Modules of ``torch/optim/`` that implement optimizers (replaced by stubs where hidden)."""
ASSIGNMENTS_USING_TORCH_OPTIMIZERS = frozenset({"transfer_learning"})
"""Assignments whose answers may train with torch's optimizers (``finetune``): no stubs there."""
HIDDEN_DATA_FILES = {"transfer_learning": (("sklearn", "datasets/data/digits.csv.gz"),)}
"""Per assignment, ``(package, relative path)`` of data files replaced by an empty file in the
sandbox: the finetuning check measures accuracy on scikit-learn's digits, so no copy of those
images may reach a ``finetune`` that could train on them (the notebook reads its training and
validation splits from the student task file instead)."""

_STUB = '''"""torch's optimizers are not available while grading: write the optimizer yourself."""
import torch.optim.optimizer as _optimizer

_MESSAGE = "{module}.{{}} is not available while grading: write the optimizer yourself."


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name[:1].isupper():
        def __init__(self, *args, **kwargs):
            raise RuntimeError(_MESSAGE.format(name))
        return type(name, (_optimizer.Optimizer,), {{"__init__": __init__, "__module__": __name__}})

    def unavailable(*args, **kwargs):
        raise RuntimeError(_MESSAGE.format(name))
    unavailable.__name__ = name
    return unavailable
'''


def _torch_optim_dir() -> Path | None:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve() / "optim"


def _digest() -> str:
    digest = hashlib.sha256()
    for relative in STUDENT_VISIBLE:
        digest.update(relative.encode() + b"\0" + (PACKAGE_DIR / relative).read_bytes())
    digest.update(str(_torch_optim_dir()).encode())
    return digest.hexdigest()[:16]


def grader_cache_dir() -> Path:
    """Where the grader keeps what it builds once and reuses across batches (the student view,
    torch's compile cache): ``$XDG_CACHE_HOME/cs231n-grade``, by default ``~/.cache/cs231n-grade``;
    never a job's temporary folder, which is removed with the job."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cs231n-grade"


def build_student_view(cache_dir: str | Path | None = None) -> Path:
    """The host folder holding the student view: ``cs231n_utils/`` (the visible files and the
    finetuning task without its test split) and ``torch_stubs/``. Built once per content in
    ``cache_dir`` (default: :func:`grader_cache_dir`) and reused; readable by everyone."""
    cache = Path(cache_dir or grader_cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    view = cache / f"cs231n-student-view-{os.getuid()}-{_digest()}"
    if view.is_dir():
        return view
    scratch = Path(tempfile.mkdtemp(prefix=view.name + "-", dir=cache))
    package = scratch / "cs231n_utils"
    for relative in STUDENT_VISIBLE:
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / relative, package / relative)
    import torch

    from ..assignment_data import STUDENT_TASK_FILE, save_student_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the notebook pretrains: one thread (and 50x faster on a loaded machine)
    try:
        save_student_task(package / STUDENT_TASK_FILE.name)
    finally:
        torch.set_num_threads(threads)
    stubs = scratch / "torch_stubs"
    stubs.mkdir()
    for name in TORCH_OPTIMIZER_FILES:
        (stubs / name).write_text(_STUB.format(module=f"torch.optim.{name.removesuffix('.py').lstrip('_')}"))
    for folder, dirs, files in os.walk(scratch):
        os.chmod(folder, 0o755)
        for file in files:
            os.chmod(os.path.join(folder, file), 0o644)
    try:
        scratch.rename(view)
    except OSError:  # another worker built it first
        shutil.rmtree(scratch, ignore_errors=True)
    return view


def student_view_mounts(dest: Path, *, assignment: str | None = None) -> list[str]:
    """bubblewrap arguments that mount the student view of the package at ``dest/cs231n_utils``
    (``dest``: an absolute folder on the kernel's import path inside the sandbox), read-only,
    and, unless ``assignment`` is one of :data:`ASSIGNMENTS_USING_TORCH_OPTIMIZERS`, torch's
    optimizer modules replaced by stubs; the assignment's :data:`HIDDEN_DATA_FILES` are empty."""
    dest = Path(dest)
    if not dest.is_absolute():
        raise ValueError(f"dest must be an absolute path inside the sandbox, got {str(dest)!r}")
    view = build_student_view()
    arguments = ["--ro-bind", str(view / "cs231n_utils"), str(dest / "cs231n_utils")]
    torch_optim = _torch_optim_dir()
    if torch_optim is not None and assignment not in ASSIGNMENTS_USING_TORCH_OPTIMIZERS:
        for name in TORCH_OPTIMIZER_FILES:
            if (torch_optim / name).exists():
                arguments += ["--ro-bind", str(view / "torch_stubs" / name), str(torch_optim / name)]
    for package, relative in HIDDEN_DATA_FILES.get(assignment or "", ()):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]).resolve() / relative
            if path.exists():
                arguments += ["--ro-bind", "/dev/null", str(path)]
    return arguments
