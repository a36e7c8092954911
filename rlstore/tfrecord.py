"""TFRecord files and tf.train.Example protos, written without TensorFlow.

Beam workers encode and write shards. Importing TensorFlow costs seconds per worker process,
so the wire formats are produced here directly: TFRecord framing (length, masked crc32c,
payload, masked crc32c) and the protobuf encoding of tf.train.Example. Both are small, stable
and documented formats; tests check the output against TensorFlow's own parser.
"""
from __future__ import annotations

import functools
import hashlib
import struct
from typing import BinaryIO, Iterable, Mapping

import google_crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    masked = (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
    return struct.pack("<I", masked)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varints(values: np.ndarray) -> bytes:
    """Protobuf varint encoding of many int64s at once (negatives as 10-byte two's complement)."""
    u = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64).ravel()
    if u.size == 0:
        return b""
    if u.max() < 0x80:
        return u.astype(np.uint8).tobytes()
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    groups = (u[:, None] >> shifts[None, :]) & np.uint64(0x7F)
    nbytes = np.ones(u.shape, dtype=np.int64)
    for k in range(1, 10):
        nbytes += u >= (np.uint64(1) << np.uint64(7 * k))
    position = np.arange(10)[None, :]
    keep = position < nbytes[:, None]
    continuation = position < (nbytes[:, None] - 1)
    encoded = (groups | (continuation.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return encoded[keep].tobytes()


@functools.lru_cache(maxsize=4096)
def field_header(number: int, length: int) -> bytes:
    """The tag and length that precede a length-delimited protobuf field of `length` bytes
    (cached: an encoder asks for the same few headers for every Example of a dataset)."""
    return _varint((number << 3) | 2) + _varint(length)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return field_header(number, len(payload)) + payload


def float_feature(values: np.ndarray) -> bytes:
    """A Feature holding a packed FloatList (float32, as TFDS stores every float type)."""
    packed = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return field(2, field(1, packed) if packed else b"")


def int64_feature(values: np.ndarray) -> bytes:
    """A Feature holding a packed Int64List (ints and bools)."""
    packed = _varints(np.asarray(values).astype(np.int64))
    return field(3, field(1, packed) if packed else b"")


def bytes_feature(values: Iterable[bytes]) -> bytes:
    """A Feature holding a BytesList."""
    return field(1, b"".join(field(1, v) for v in values))


class RecordWriter:
    """Appends TFRecord records to a binary file, hashing the bytes as they are written."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.num_records = 0
        self.num_bytes = 0

    def write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        chunk = header + _masked_crc(header) + record + _masked_crc(record)
        self._stream.write(chunk)
        self.sha256.update(chunk)
        self.num_records += 1
        self.num_bytes += len(chunk)


def read_records(stream: BinaryIO, path: str = "<stream>") -> Iterable[bytes]:
    """Reads TFRecord records, checking both checksums; raises ValueError naming the offset."""
    offset = 0
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ValueError(f"{path}: truncated record header at byte {offset}")
        length_bytes, crc = header[:8], header[8:]
        if _masked_crc(length_bytes) != crc:
            raise ValueError(f"{path}: corrupt record length at byte {offset}")
        (length,) = struct.unpack("<Q", length_bytes)
        body = stream.read(length + 4)
        if len(body) < length + 4:
            raise ValueError(f"{path}: truncated record at byte {offset}")
        if _masked_crc(body[:length]) != body[length:]:
            raise ValueError(f"{path}: corrupt record data at byte {offset}")
        offset += 12 + length + 4
        yield body[:length]
