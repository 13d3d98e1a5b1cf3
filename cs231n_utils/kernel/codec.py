"""The data-only wire format between a student's kernel and the trusted checker.

A message is ``MAGIC | total length (8 bytes, big-endian) | header length (4 bytes) | header |
array blobs``. The header is UTF-8 JSON; arrays travel as their raw C-ordered bytes, each prefixed
by its length (8 bytes), with their dtype and shape in the header, and are rebuilt with
``np.frombuffer`` (no ``np.load``: 20 times faster for the small arrays of a check, and nothing
to parse but a dtype string checked against a pattern). Values are encoded as a tree of JSON
scalars and tagged objects:

==========================  =====================================================
value                        encoding
==========================  =====================================================
None, bool, int, float, str  itself (floats may be NaN or infinite)
list / tuple                 ``{"t": "list" | "tuple", "v": [...]}``
dict with str keys           ``{"t": "dict", "v": [[key, value], ...]}``
numeric or bool ndarray      ``{"t": "array", "i": blob index, "d": dtype str, "s": shape}``
``np.random.Generator``      ``{"t": "generator", "state": bit generator state}`` (PCG64)
anything else (sender side)  ``{"t": "opaque", "type": type name}``
==========================  =====================================================

:func:`decode` validates everything: unknown tags, non-str dict keys, object or structured
dtypes, more than :data:`MAX_MESSAGE_BYTES` in one message, deeper than :data:`MAX_DEPTH`
nesting or arrays referenced twice raise :class:`ProtocolError`. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import math
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ProtocolError", "Opaque", "encode", "decode", "send_message", "receive_message",
           "MAX_MESSAGE_BYTES", "MAX_DEPTH"]

MAGIC = b"CS231N\x01"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message either side accepts (header and arrays together)."""
MAX_DEPTH = 32
"""Deepest nesting of lists, tuples and dicts accepted."""
MAX_ARRAYS = 10_000
_ALLOWED_KINDS = frozenset("biuf")  # bool, signed and unsigned integers, floats
_DTYPE_PATTERN = re.compile(r"[<>|][biuf](1|2|4|8|16)")  # e.g. "<f8", "|b1": byte order, kind, size
_PREFIX = struct.Struct(">QI")
_BLOB = struct.Struct(">Q")


class ProtocolError(Exception):
    """A message that breaks the wire format: the sender is not an honest peer."""


@dataclass(frozen=True)
class Opaque:
    """A value the kernel could not send as data (e.g. an object of the student's own class).

    It equals nothing, so a check comparing it with an expected value reports a mismatch that
    names the type."""

    type_name: str

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


def _encode(value: Any, arrays: list[np.ndarray], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return {"t": "opaque", "type": "too deeply nested"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray) or _is_tensor(value):
        array = _as_array(value)
        if array is None:
            return {"t": "opaque", "type": type(value).__name__}
        arrays.append(array)
        return {"t": "array", "i": len(arrays) - 1, "d": array.dtype.str, "s": list(array.shape)}
    if isinstance(value, (list, tuple)):
        return {"t": "tuple" if isinstance(value, tuple) else "list",
                "v": [_encode(item, arrays, depth + 1) for item in value]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return {"t": "opaque", "type": "dict with non-str keys"}
        return {"t": "dict", "v": [[key, _encode(item, arrays, depth + 1)] for key, item in value.items()]}
    if isinstance(value, np.random.Generator) and isinstance(value.bit_generator, np.random.PCG64):
        return {"t": "generator", "state": value.bit_generator.state}
    return {"t": "opaque", "type": type(value).__name__}


def _is_tensor(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy")


def _as_array(value: Any) -> np.ndarray | None:
    if not isinstance(value, np.ndarray):
        try:
            value = value.detach().cpu().numpy()
        except Exception:  # noqa: BLE001 - a tensor-like object that is not one
            return None
    if type(value) is not np.ndarray or value.dtype.kind not in _ALLOWED_KINDS or value.dtype.fields:
        return None
    return value if value.flags.c_contiguous else np.ascontiguousarray(value)  # keeps 0-d arrays 0-d


def encode(value: Any) -> bytes:
    """The message bytes for ``value`` (see the module docstring); values that are not data
    become ``Opaque`` placeholders. Raises ``ValueError`` if the message exceeds the size cap."""
    arrays: list[np.ndarray] = []
    header = json.dumps(_encode(value, arrays, 0), allow_nan=True).encode()
    blobs = []
    for array in arrays:
        blobs += [_BLOB.pack(array.nbytes), array.tobytes()]
    body = header + b"".join(blobs)
    total = _PREFIX.size + len(body)
    if total > MAX_MESSAGE_BYTES:
        raise ValueError(f"value is too large to send: {total} bytes > {MAX_MESSAGE_BYTES}")
    return MAGIC + _PREFIX.pack(total, len(header)) + body


def _decode_array(blob: bytes, dtype: Any, shape: Any) -> np.ndarray:
    """A writable array of ``dtype`` (a checked dtype string) and ``shape`` holding ``blob``."""
    if not isinstance(dtype, str) or not _DTYPE_PATTERN.fullmatch(dtype):
        raise ProtocolError(f"array dtype {str(dtype)[:20]!r} is not allowed")
    if (not isinstance(shape, list) or len(shape) > MAX_DEPTH
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ProtocolError("array shape must be a list of non-negative integers")
    kind = np.dtype(dtype)
    if kind.kind not in _ALLOWED_KINDS or math.prod(shape) * kind.itemsize != len(blob):
        raise ProtocolError(f"array of dtype {dtype} and shape {shape} does not match its {len(blob)} bytes")
    return np.frombuffer(bytearray(blob), dtype=kind).reshape(shape)


def _decode(node: Any, arrays: list[bytes], used: set[int], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if node is None or isinstance(node, (bool, str)):
        return node
    if isinstance(node, int):
        return node
    if isinstance(node, float):
        return node
    if not isinstance(node, dict) or not isinstance(node.get("t"), str):
        raise ProtocolError(f"unexpected {type(node).__name__} in the header")
    tag = node["t"]
    if tag in ("list", "tuple"):
        items = node.get("v")
        if not isinstance(items, list):
            raise ProtocolError(f"{tag} without items")
        decoded = [_decode(item, arrays, used, depth + 1) for item in items]
        return tuple(decoded) if tag == "tuple" else decoded
    if tag == "dict":
        items = node.get("v")
        if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                 for p in items):
            raise ProtocolError("dict entries must be [str key, value] pairs")
        return {key: _decode(item, arrays, used, depth + 1) for key, item in items}
    if tag == "array":
        index = node.get("i")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(arrays) or index in used:
            raise ProtocolError(f"bad array reference {index!r}")
        used.add(index)
        return _decode_array(arrays[index], node.get("d"), node.get("s"))
    if tag == "generator":
        return _decode_generator(node.get("state"))
    if tag == "opaque":
        name = node.get("type")
        if not isinstance(name, str):
            raise ProtocolError("opaque value without a type name")
        return Opaque(name[:100])
    raise ProtocolError(f"unknown tag {tag!r}")


def _decode_generator(state: Any) -> np.random.Generator:
    if not (isinstance(state, dict) and state.get("bit_generator") == "PCG64"):
        raise ProtocolError("only PCG64 generator states are accepted")
    generator = np.random.Generator(np.random.PCG64())
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ProtocolError(f"bad generator state: {error}") from None
    return generator


def _reject_constant(name: str) -> float:
    if name in ("NaN", "Infinity", "-Infinity"):
        return float(name.replace("Infinity", "inf"))
    raise ProtocolError(f"bad JSON constant {name}")


def decode(message: bytes) -> Any:
    """The value a message (as made by :func:`encode`) holds; :class:`ProtocolError` if it is malformed."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
    if not message.startswith(MAGIC) or len(message) < len(MAGIC) + _PREFIX.size:
        raise ProtocolError("not a cs231n message")
    total, header_length = _PREFIX.unpack_from(message, len(MAGIC))
    body = message[len(MAGIC) + _PREFIX.size:]
    if total != _PREFIX.size + len(body) or header_length > len(body):
        raise ProtocolError("message length fields disagree with its size")
    try:
        header = json.loads(body[:header_length].decode(), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ProtocolError(f"unreadable header: {type(error).__name__}") from None
    arrays: list[bytes] = []
    offset = header_length
    while offset < len(body):
        if len(arrays) >= MAX_ARRAYS or offset + _BLOB.size > len(body):
            raise ProtocolError("too many arrays or a truncated array")
        (size,) = _BLOB.unpack_from(body, offset)
        offset += _BLOB.size
        if offset + size > len(body):
            raise ProtocolError("truncated array")
        arrays.append(body[offset:offset + size])
        offset += size
    used: set[int] = set()
    value = _decode(header, arrays, used, 0)
    if len(used) != len(arrays):
        raise ProtocolError("the message holds arrays no value refers to")
    return value


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("the peer closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_message(sock: socket.socket, value: Any) -> None:
    """Encode ``value`` and send it whole."""
    sock.sendall(encode(value))


def receive_message(sock: socket.socket) -> Any:
    """Receive one message and decode it. Raises :class:`ProtocolError` for a malformed or
    oversized message (checked from its length field before reading the body),
    ``ConnectionError`` if the peer hung up and ``socket.timeout`` per the socket's timeout."""
    prefix = _receive_exactly(sock, len(MAGIC) + _PREFIX.size)
    if not prefix.startswith(MAGIC):
        raise ProtocolError("not a cs231n message")
    total, _ = _PREFIX.unpack_from(prefix, len(MAGIC))
    if total > MAX_MESSAGE_BYTES or total < _PREFIX.size:
        raise ProtocolError(f"announced message of {total} bytes exceeds {MAX_MESSAGE_BYTES}")
    return decode(prefix + _receive_exactly(sock, total - _PREFIX.size))
