"""Messages between rlstore's own processes as JSON plus raw array bytes, never pickle.

Why not pickle: unpickling runs whatever code the bytes name, and a pipe's bytes are only as
trustworthy as every process that can write to it. JSON cannot name code, and arrays travel as
their dtype, shape and bytes, which also keeps them out-of-band for shared memory
(`rlstore.writeback.channel`). What a message may hold: None, bools, numbers, strings, lists,
tuples, dicts with string keys and numpy arrays (not of dtype object).
"""
from __future__ import annotations

import json
from multiprocessing.connection import Connection
from typing import Any, Sequence

import numpy as np

_ARRAY, _TUPLE = "__ndarray__", "__tuple__"


class WireError(TypeError):
    """A value that cannot travel between processes (an object array, a custom class)."""


def encode(message: Any) -> tuple[bytes, list[memoryview]]:
    """The message's JSON header and the bytes of its arrays, in the order the header names them."""
    buffers: list[memoryview] = []

    def tag(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise WireError("object arrays cannot be sent between processes")
            contiguous = np.ascontiguousarray(value)
            buffers.append(memoryview(contiguous.reshape(-1).view(np.uint8)))
            return {_ARRAY: len(buffers) - 1, "dtype": contiguous.dtype.str, "shape": list(contiguous.shape)}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, tuple):
            return {_TUPLE: [tag(item) for item in value]}
        if isinstance(value, list):
            return [tag(item) for item in value]
        if isinstance(value, dict):
            if any(not isinstance(key, str) or key in (_ARRAY, _TUPLE) for key in value):
                raise WireError(f"dict keys must be strings other than {_ARRAY!r} and {_TUPLE!r}")
            return {key: tag(item) for key, item in value.items()}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise WireError(f"a {type(value).__name__} cannot be sent between processes")

    header = json.dumps(tag(message), separators=(",", ":")).encode()
    return header, buffers


def decode(header: bytes, buffers: Sequence[bytearray]) -> Any:
    """The message `encode` made; arrays are writable views of `buffers`."""
    def untag(value: Any) -> Any:
        if isinstance(value, list):
            return [untag(item) for item in value]
        if isinstance(value, dict):
            if _ARRAY in value:
                return np.frombuffer(buffers[value[_ARRAY]], np.dtype(value["dtype"])).reshape(value["shape"])
            if _TUPLE in value:
                return tuple(untag(item) for item in value[_TUPLE])
            return {key: untag(item) for key, item in value.items()}
        return value

    return untag(json.loads(header))


def pack(parts: Sequence[bytes | memoryview]) -> bytes:
    """One frame of byte strings: their sizes (JSON, length-prefixed), then the parts."""
    sizes = json.dumps([memoryview(part).nbytes for part in parts]).encode()
    return b"".join([len(sizes).to_bytes(4, "little"), sizes, *parts])


def unpack(frame: bytes) -> list[memoryview]:
    """The parts `pack` framed, as views of `frame`."""
    view = memoryview(frame)
    length = int.from_bytes(view[:4], "little")
    offset, parts = 4 + length, []
    for size in json.loads(bytes(view[4:offset])):
        parts.append(view[offset:offset + size])
        offset += size
    return parts


def send(connection: Connection, message: Any) -> None:
    """Sends a whole message, arrays included, on `connection` (for small messages)."""
    header, buffers = encode(message)
    connection.send_bytes(pack([header, *buffers]))


def recv(connection: Connection) -> Any:
    """The next message `send` sent on `connection`; EOFError once the other end is closed."""
    header, *buffers = unpack(connection.recv_bytes())
    return decode(bytes(header), [bytearray(buffer) for buffer in buffers])
