"""How checks reach a student's answer: in this interpreter, or served by a sandboxed kernel.

:class:`RemoteAnswer` stands for an answer that a kernel serves over the data-only channel
(:mod:`cs231n_utils.kernel.serve`). Calling it sends the arguments as data and returns the
decoded result; arguments the student changed in place are changed here too, so the checks'
"leaves its inputs unchanged" properties work as in-process. An exception raised by student
code is raised here under the same class name (``NotImplementedError`` as itself). A kernel that
stops answering, answers late or sends a malformed message raises :class:`ChannelFailure`,
which is a ``BaseException`` so that no check mistakes it for the student's own error: the
checker gives the test zero credit with that reason.

:func:`scenario_runner` runs the :mod:`cs231n_utils.kernel.runners` scenarios either way.
"""
from __future__ import annotations

import socket
from typing import Any, Callable, ContextManager

import numpy as np

from ..kernel.codec import ProtocolError, receive_message, send_message
from ..kernel.runners import RUNNERS

__all__ = ["RemoteAnswer", "ChannelFailure", "RemoteError", "scenario_runner"]


class ChannelFailure(BaseException):
    """The served answer cannot be graded: no answer in time, a hung-up or lying kernel."""


class RemoteError(Exception):
    """Base of the exceptions re-raised for errors of student code in the kernel."""


_ERROR_CLASSES: dict[str, type[RemoteError]] = {}


def _remote_exception(name: Any, message: Any) -> Exception:
    name = name if isinstance(name, str) and name.isidentifier() else "Exception"
    message = message if isinstance(message, str) else ""
    if name == "NotImplementedError":
        return NotImplementedError(message)
    if name not in _ERROR_CLASSES:
        _ERROR_CLASSES[name] = type(name, (RemoteError,), {"__module__": "student"})
    return _ERROR_CLASSES[name](message)


def _write_back(original: Any, after: Any) -> Any:
    """Make ``original`` equal ``after`` in place where it is mutable; returns the value to keep."""
    if isinstance(original, np.ndarray) and isinstance(after, np.ndarray) and original.shape == after.shape:
        try:
            original[...] = after
        except (TypeError, ValueError):
            pass
        return original
    if isinstance(original, dict) and isinstance(after, dict):
        for key in list(original):
            if key not in after:
                del original[key]
        for key, value in after.items():
            original[key] = _write_back(original[key], value) if key in original else value
        return original
    if isinstance(original, list) and isinstance(after, (list, tuple)):
        kept = [_write_back(o, a) for o, a in zip(original, after)] + list(after[len(original):])
        original[:] = kept
        return original
    if isinstance(original, np.random.Generator) and isinstance(after, np.random.Generator):
        original.bit_generator.state = after.bit_generator.state
        return original
    return after


class RemoteAnswer:
    """A student's answer served by a kernel on ``connection`` as test ``grade_id``."""

    def __init__(self, connection: socket.socket, grade_id: str, *, call_timeout_s: float) -> None:
        self.connection = connection
        self.grade_id = grade_id
        self.call_timeout_s = call_timeout_s
        self.__name__ = grade_id.removeprefix("test_")

    def _request(self, request: dict) -> dict:
        self.connection.settimeout(self.call_timeout_s)
        try:
            send_message(self.connection, request)
            reply = receive_message(self.connection)
        except socket.timeout:
            raise ChannelFailure(f"your code did not answer within {self.call_timeout_s:g} s") from None
        except ProtocolError as error:
            raise ChannelFailure(f"the kernel sent a malformed message ({error})") from None
        except (OSError, ValueError) as error:
            raise ChannelFailure(f"the kernel stopped answering ({type(error).__name__})") from None
        if not isinstance(reply, dict) or not ({"result", "raised"} & set(reply)):
            raise ChannelFailure("the kernel sent a reply that is not an answer")
        if "raised" in reply:
            raise _remote_exception(reply.get("raised"), reply.get("message"))
        return reply

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = self._request({"op": "call", "args": list(args), "kwargs": kwargs})
        after_args, after_kwargs = reply.get("args"), reply.get("kwargs")
        if not (isinstance(after_args, list) and len(after_args) == len(args) and isinstance(after_kwargs, dict)
                and set(after_kwargs) == set(kwargs)):
            raise ChannelFailure("the kernel sent back arguments that are not the ones it was given")
        for original, after in zip(args, after_args):
            _write_back(original, after)
        for key, original in kwargs.items():
            _write_back(original, after_kwargs[key])
        return reply["result"]

    def run(self, op: str, payload: dict) -> Any:
        """The result of runner ``op`` of :mod:`cs231n_utils.kernel.runners` on the served answer."""
        return self._request({"op": op, "payload": payload})["result"]

    def finish(self) -> None:
        """Tell the kernel that grading is over (it returns from ``grade``); never raises."""
        try:
            self.connection.settimeout(2.0)
            send_message(self.connection, {"op": "done"})
        except OSError:
            pass


def scenario_runner(answer: Any, guard: ContextManager | None) -> Callable[[str, dict], Any]:
    """``run(op, payload)``: the kernel runner ``op`` on ``answer``, over the channel for a
    :class:`RemoteAnswer`, else in this interpreter with ``guard`` around student code."""
    if isinstance(answer, RemoteAnswer):
        return answer.run
    return lambda op, payload: RUNNERS[op](answer, payload, guard)
