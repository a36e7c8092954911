"""TFRecord files and tf.train.Example protos, written and read without TensorFlow.

Beam workers encode and write shards. Importing TensorFlow costs seconds per worker process,
so the wire formats are produced here directly: TFRecord framing (length, masked crc32c,
payload, masked crc32c) and the protobuf encoding of tf.train.Example. Both are small, stable
and documented formats; tests check the output against TensorFlow's own parser. The readers of
`rlstore.numpy` and `rlstore.torch` parse them back here, so PyTorch and JAX users never load
TensorFlow.
"""
from __future__ import annotations

import functools
import hashlib
import struct
from typing import Any, BinaryIO, Callable, Iterable, Iterator

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

    def finish(self) -> None:
        """Nothing to add: a TFRecord file is complete after its last record."""


def _record_length(stream: BinaryIO, path: str, offset: int) -> int | None:
    """The body length from the record header at the stream's position (None at the end)."""
    header = stream.read(12)
    if not header:
        return None
    if len(header) < 12:
        raise ValueError(f"{path}: truncated record header at byte {offset}")
    length_bytes, crc = header[:8], header[8:]
    if _masked_crc(length_bytes) != crc:
        raise ValueError(f"{path}: corrupt record length at byte {offset}")
    return struct.unpack("<Q", length_bytes)[0]


def _record_body(stream: BinaryIO, path: str, offset: int, length: int) -> bytes:
    body = stream.read(length + 4)
    if len(body) < length + 4:
        raise ValueError(f"{path}: truncated record at byte {offset}")
    if _masked_crc(body[:length]) != body[length:]:
        raise ValueError(f"{path}: corrupt record data at byte {offset}")
    return body[:length]


def read_records(stream: BinaryIO, path: str = "<stream>",
                 keep: Callable[[int], bool] | None = None) -> Iterator[bytes]:
    """Reads TFRecord records, checking both checksums; raises ValueError naming the offset.

    With `keep`, only records whose index passes it are read and checked; the others are
    skipped with a seek after their (checked) length, which is how parallel readers each take
    their share of one file without reading the rest.
    """
    offset = 0
    index = 0
    while (length := _record_length(stream, path, offset)) is not None:
        if keep is not None and not keep(index):
            stream.seek(length + 4, 1)
        else:
            yield _record_body(stream, path, offset, length)
        offset += 12 + length + 4
        index += 1


def record_offsets(stream: BinaryIO, path: str = "<stream>") -> Iterator[int]:
    """The byte offset of every record, from the (checked) headers alone: bodies are skipped."""
    offset = 0
    while (length := _record_length(stream, path, offset)) is not None:
        yield offset
        stream.seek(length + 4, 1)
        offset += 12 + length + 4


def read_record_at(stream: BinaryIO, offset: int, path: str = "<stream>") -> bytes:
    """The one record at `offset` (from `record_offsets`), both checksums checked."""
    stream.seek(offset)
    length = _record_length(stream, path, offset)
    if length is None:
        raise ValueError(f"{path}: no record at byte {offset}")
    return _record_body(stream, path, offset, length)


# ---- reading tf.train.Example ---------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: a memoryview for length-delimited
    fields, an int for varints, the raw 4 or 8 bytes for fixed-width ones."""
    position = 0
    while position < len(data):
        tag, position = _read_varint(data, position)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, position = _read_varint(data, position)
        elif wire == _LENGTH:
            size, position = _read_varint(data, position)
            if position + size > len(data):
                raise ValueError(f"field {number} runs past the end of its message")
            value = data[position:position + size]
            position += size
        elif wire in (_FIXED32, _FIXED64):
            width = 4 if wire == _FIXED32 else 8
            value = data[position:position + width]
            position += width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def decode_varints(data: bytes | memoryview) -> np.ndarray:
    """Every varint of a packed field at once, as int64 (10-byte negatives come back negative)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, np.int64)
    ends = raw < 0x80
    if ends.all():
        return raw.astype(np.int64)
    if not ends[-1]:
        raise ValueError("truncated packed varints")
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1])
    owner = np.concatenate([[0], np.cumsum(ends[:-1])])
    position = (np.arange(raw.size) - starts[owner]).astype(np.uint64)
    groups = (raw & 0x7F).astype(np.uint64) << (position * np.uint64(7))
    return np.add.reduceat(groups, starts).view(np.int64)  # disjoint bits: the sum is the OR


def _float_list(message: memoryview) -> np.ndarray:
    parts = []
    for _, wire, value in _fields(message):
        parts.append(np.frombuffer(value, dtype="<f4"))  # packed (length-delimited) or one fixed32
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _int64_list(message: memoryview) -> np.ndarray:
    parts = []
    for _, wire, value in _fields(message):
        parts.append(decode_varints(value) if wire == _LENGTH else np.array([value], np.uint64).view(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def parse_example(record: bytes) -> dict[str, bytes | list[bytes] | np.ndarray]:
    """The features of a serialised tf.train.Example by name: a list of bytes (BytesList),
    a float32 array (FloatList) or an int64 array (Int64List). Raises ValueError on bad bytes."""
    features: dict[str, Any] = {}
    for number, _, message in _fields(memoryview(record)):
        if number != 1:
            continue
        for entry_number, _, entry in _fields(message):
            if entry_number != 1:
                continue
            key, feature = "", memoryview(b"")
            for part, _, value in _fields(entry):
                if part == 1:
                    key = bytes(value).decode()
                elif part == 2:
                    feature = value
            features[key] = _feature_values(feature)
    return features


def _feature_values(feature: memoryview) -> list[bytes] | np.ndarray:
    for kind, _, values in _fields(feature):
        if kind == 1:
            return [bytes(value) for _, _, value in _fields(values)]
        if kind == 2:
            return _float_list(values)
        if kind == 3:
            return _int64_list(values)
    return []
