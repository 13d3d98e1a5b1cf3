"""Serve one student answer to the trusted checker over its Unix socket (kernel side).

The kernel opens the connection and says which test it serves (``{"serve": grade_id}``); then
the checker sends requests and the kernel answers each, until ``{"op": "done"}``:

- ``{"op": "call", "args": [...], "kwargs": {...}}``: call the answer; the reply is
  ``{"result": value, "args": [...], "kwargs": {...}}`` (the arguments as they are after the
  call, so the checker sees in-place changes) or ``{"raised": type name, "message": text}``;
- ``{"op": <runner name>, "payload": {...}}``: run a scenario of :mod:`.runners` (torch
  optimizers, transfer-learning functions) with the answer and reply ``{"result": data}``.

Everything crosses as data (:mod:`.codec`). The student's prints and warnings during a call are
swallowed.
"""
from __future__ import annotations

import contextlib
import io
import socket
import warnings
from typing import Any, Iterator

import numpy as np

from .codec import receive_message, send_message

__all__ = ["serve", "answer_request", "quiet", "error_reply"]

IDLE_TIMEOUT_S = 900.0
"""The kernel gives up on a checker that sends nothing for this long."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence student code: its prints and warnings would clutter feedback, and nbgrader gives
    zero points to a test cell that writes anything to stderr."""
    with (
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def error_reply(error: BaseException) -> dict[str, str]:
    """What the checker learns about an exception raised by student code."""
    return {"raised": type(error).__name__, "message": str(error)[:500]}


def answer_request(answer: Any, request: Any) -> Any:
    """The reply to one checker request (see the module docstring)."""
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        return {"raised": "ProtocolError", "message": "bad request"}
    op = request["op"]
    if op == "call":
        args, kwargs = list(request.get("args") or []), dict(request.get("kwargs") or {})
        try:
            with quiet():
                result = answer(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - reported to the checker as data
            return error_reply(error)
        return {"result": result, "args": args, "kwargs": kwargs}
    from .runners import RUNNERS

    runner = RUNNERS.get(op)
    if runner is None:
        return {"raised": "ProtocolError", "message": f"unknown op {op!r}"}
    try:
        return {"result": runner(answer, request.get("payload") or {})}
    except Exception as error:  # noqa: BLE001
        return error_reply(error)


def serve(path: str, grade_id: str, answer: Any) -> None:
    """Connect to the checker at ``path``, serve ``answer`` as ``grade_id`` until it is done."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(IDLE_TIMEOUT_S)
        sock.connect(path)
        send_message(sock, {"serve": grade_id})
        while True:
            request = receive_message(sock)
            if isinstance(request, dict) and request.get("op") == "done":
                return
            send_message(sock, answer_request(answer, request))
