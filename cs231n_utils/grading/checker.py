"""The trusted checker: grades answers that a sandboxed kernel serves, outside the kernel.

It runs in the grading job's process (never in the sandbox). Before the kernel starts, it
listens on a Unix socket in the job's channel folder; each hidden test cell of the notebook
calls :func:`cs231n_utils.kernel.grade`, which connects and serves the student's answer. For
each served ``grade_id`` of :data:`cs231n_utils.autograde.registry.REGISTRY` the checker runs
the registered check here, with a :class:`~cs231n_utils.autograde.remote.RemoteAnswer` that
calls the answer over the data-only channel, and records the credit and the feedback
(:class:`CheckRecord`). The reference implementations, the random inputs and the expected
values stay in this process. Nothing the kernel prints or displays is read as a score: the job
writes :attr:`TrustedChecker.records` into the gradebook.

A test served twice is graded again and the later record kept (the hidden cell runs last). An
answer that stops answering, answers late or sends malformed data gets zero with the reason.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..autograde.registry import REGISTRY
from ..autograde.remote import ChannelFailure, RemoteAnswer
from ..autograde.report import GradeReport
from ..kernel.codec import ProtocolError, receive_message
from ..validation import check_positive

__all__ = ["CheckRecord", "TrustedChecker", "SOCKET_NAME", "credit"]

SOCKET_NAME = "checker.sock"


@dataclass(frozen=True)
class CheckRecord:
    """The checker's verdict on one served test cell."""

    grade_id: str
    score: float
    max_score: float
    feedback: str


def credit(report: GradeReport, points: float) -> float:
    """``points * report.fraction`` rounded to 2 decimals, never above ``points`` (as ``award``)."""
    return float(min(points, round(points * report.fraction, 2)))


def _one_torch_thread() -> None:
    """Checks build and train small models: on a loaded machine torch's default thread pool made
    the pretraining of the finetuning task 50 times slower than one thread (measured: 91 s
    instead of about 2 s with a load average of 10 on 2 cores)."""
    import torch

    torch.set_num_threads(1)


class TrustedChecker:
    """Listen on ``channel_dir / SOCKET_NAME`` and grade every answer served there.

    ``grade_ids`` limits which registered tests are accepted (the notebook's test cells);
    ``call_timeout_s`` bounds every single request to the kernel, ``hello_timeout_s`` the wait
    for a new connection to say what it serves. Use as a context manager, or ``start``/``stop``.
    """

    def __init__(self, channel_dir: str | Path, *, grade_ids: Iterable[str] | None = None,
                 call_timeout_s: float = 60.0, hello_timeout_s: float = 10.0) -> None:
        self.channel_dir = Path(channel_dir)
        self.socket_path = self.channel_dir / SOCKET_NAME
        self.grade_ids = None if grade_ids is None else frozenset(grade_ids)
        self.call_timeout_s = check_positive(call_timeout_s, "call_timeout_s")
        self.hello_timeout_s = check_positive(hello_timeout_s, "hello_timeout_s")
        self.records: dict[str, CheckRecord] = {}
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> "TrustedChecker":
        """Bind the socket (connectable by any uid: the sandbox runs the kernel as nobody) and
        start accepting connections in a background thread."""
        self.channel_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.channel_dir, 0o711)  # others may reach the socket, not list or change the folder
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o666)
        listener.listen(8)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name="cs231n-checker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wait for the check in progress, close and remove the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._listener is not None:
            self._listener.close()
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> "TrustedChecker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with connection:
                self._serve_connection(connection)

    def _serve_connection(self, connection: socket.socket) -> None:
        connection.settimeout(self.hello_timeout_s)
        try:
            hello = receive_message(connection)
        except (OSError, ProtocolError, ValueError):
            self._reject("a connection that did not say which test it serves")
            return
        grade_id = hello.get("serve") if isinstance(hello, dict) else None
        if not isinstance(grade_id, str) or grade_id not in REGISTRY or (
                self.grade_ids is not None and grade_id not in self.grade_ids):
            self._reject(f"a connection serving an unknown test {str(grade_id)[:80]!r}")
            return
        record = self.grade(RemoteAnswer(connection, grade_id, call_timeout_s=self.call_timeout_s))
        with self._lock:
            self.records[grade_id] = record

    def _reject(self, what: str) -> None:
        with self._lock:
            self.rejected.append(what)

    def grade(self, answer: RemoteAnswer) -> CheckRecord:
        """Run the registered check of ``answer.grade_id`` on the served answer; never raises."""
        test = REGISTRY[answer.grade_id]
        if test.uses_torch:
            _one_torch_thread()
        try:
            report = test.check(answer)
        except ChannelFailure as failure:
            report = GradeReport(test.answer_name, zero_reason=f"The grader could not finish: {failure}.")
        except Exception as error:  # noqa: BLE001 - data a kernel sent that no honest answer produces
            report = GradeReport(test.answer_name, zero_reason="The grader could not use what your code returned "
                                 f"({type(error).__name__}: {str(error)[:200]}).")
        finally:
            answer.finish()
        score = credit(report, test.points)
        return CheckRecord(test.grade_id, score, float(test.points),
                           f"{report.feedback()}\nScore: {score:g} / {test.points:g}")

    def snapshot(self) -> dict[str, CheckRecord]:
        """The records so far (a copy)."""
        with self._lock:
            return dict(self.records)
