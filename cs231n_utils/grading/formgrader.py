"""Keep the formgrader's "Autograde" button from running student code outside the sandbox.

The formgrader (and JupyterLab's nbgrader panels) autograde through
:class:`nbgrader.apps.NbGraderAPI`, which runs plain nbgrader in the Jupyter server's own process:
no sandbox, no resource limits, the gradebook and every other submission in reach.
``nbgrader_config.py`` sets ``c.NbGraderAPI.Autograde.exporter_class`` to
:class:`RefuseUnsandboxedAutograde`, an exporter that cannot be built: nbgrader builds it in
``Autograde.start()`` before it touches any file, so the button fails with the message below and
the sandboxed results in ``autograded/`` and the gradebook stay as they are. (A
``pre_convert_hook`` would not do: nbgrader logs its exceptions and carries on, after it has
already deleted the student's ``autograded/`` folder.)

traitlets applies a ``Parent.Child`` config section only to a ``Child`` created by a ``Parent``,
so ``nbgrader autograde`` on the command line (an ``AutogradeApp``) and ``cs231n-grade autograde``
(no parent) are not affected.
"""
from __future__ import annotations

from typing import Any

from nbconvert.exporters import Exporter


class UnsandboxedAutogradeRefused(RuntimeError):
    """Raised instead of autograding from the formgrader."""


def refusal(assignment: str, student: str) -> str:
    """The message the formgrader shows: the sandboxed command to run instead."""
    return (f"this course autogrades only in the sandbox: run `cs231n-grade autograde {assignment} "
            f"--student {student}` in the course folder, then reload this page")


class RefuseUnsandboxedAutograde(Exporter):
    """An nbconvert exporter whose construction raises :class:`UnsandboxedAutogradeRefused`."""

    def __init__(self, *args: Any, parent: Any = None, **kwargs: Any) -> None:
        coursedir = getattr(parent, "coursedir", None)
        raise UnsandboxedAutogradeRefused(refusal(getattr(coursedir, "assignment_id", "ASSIGNMENT"),
                                                  getattr(coursedir, "student_id", "STUDENT")))
