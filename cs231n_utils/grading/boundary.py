"""Which files of ``cs231n_utils`` a student's sandboxed kernel may see.

Minimal version owned by the sandbox engineer until the checker's ``boundary.py`` replaces it
(same signature): only the student-facing helpers are mounted, read-only, so the reference
(``optim``, ``torch_optim``, ...), the checks (``autograde/``) and the grader (``grading/``)
are neither importable nor readable inside the sandbox.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Modules of cs231n_utils a student's notebook may import inside the sandbox.
STUDENT_MODULES = ("__init__.py", "data.py", "validation.py", "landscapes.py", "gradcheck.py",
                   "plotting.py", "assignment_data.py")


def student_view_mounts(dest: Path) -> list[str]:
    """bwrap arguments mounting the student view of the package at ``dest/cs231n_utils``."""
    if not Path(dest).is_absolute():
        raise ValueError(f"dest must be an absolute path inside the sandbox, got {str(dest)!r}")
    target = Path(dest) / "cs231n_utils"
    arguments = ["--dir", str(target)]
    for name in STUDENT_MODULES:
        source = PACKAGE_DIR / name
        if source.exists():
            arguments += ["--ro-bind", str(source), str(target / name)]
    return arguments
