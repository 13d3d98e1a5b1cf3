"""Open an nbgrader course directory: its ``nbgrader_config.py`` and its :class:`CourseDirectory`."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


def ensure_tools_on_path() -> None:
    """Put this interpreter's ``bin`` on ``PATH``: nbgrader runs ``alembic`` from there."""
    tools = str(Path(sys.executable).parent)
    if tools not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([tools, os.environ.get("PATH", "")])


def load_course_config(course_dir: str | Path) -> Config:
    """The course's ``nbgrader_config.py`` (if any), with ``CourseDirectory.root`` set to it."""
    ensure_tools_on_path()
    root = Path(course_dir).resolve()
    if not root.is_dir():
        raise ValueError(f"course_dir must be an existing directory, got {str(course_dir)!r}")
    config = Config()
    if (root / "nbgrader_config.py").exists():
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    if "root" not in config.Exchange:
        # nbgrader's default, /usr/local/share/nbgrader/exchange, is usually unwritable: every API
        # call would log "Unwritable directory" (also for a missing one). cs231n-grade never uses it.
        config.Exchange.root = str(root / "exchange")
        (root / "exchange").mkdir(exist_ok=True)
    return config


def open_course(course_dir: str | Path) -> tuple[CourseDirectory, Config]:
    """The course's :class:`CourseDirectory` (paths, gradebook URL, course id) and its config."""
    config = load_course_config(course_dir)
    return CourseDirectory(config=config), config


def assignment_path(coursedir: CourseDirectory, directory: str, assignment: str, student: str = ".") -> Path:
    """``<root>/<directory>/<student>/<assignment>`` following the course's directory structure."""
    return Path(coursedir.format_path(directory, student, assignment))
