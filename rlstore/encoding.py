"""Episodes into the tf.train.Examples TFDS writes for `{'steps': Dataset(...), ...}`: the one encoder.

`encode_episodes` encodes many checked episodes at once; `Schema.encode` is it for one episode.
Neither imports TensorFlow (Beam workers and the write-back worker encode).

Why a batch encoder: walking every field of every episode in Python costs about 150 µs for a
10-step Catch episode, which made the write-back worker, not the environment, set the pace of a
fast acting loop. Episodes of equal length share one layout: a fixed-size field (floats, bools
and small non-negative integers, raw `bytes` encodings) takes the same bytes at the same offset
of each of their Examples. So one numpy operation per field builds that field for all of them,
and only fields whose size varies from episode to episode (text, PNG/JPEG images, zlib, integers
that need multi-byte varints) go through `encode_feature` one episode at a time. A new on-disk
encoding needs a branch in `encode_feature` only.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from rlstore import tfrecord
from rlstore.images import IMAGE_FORMATS, encode_image
from rlstore.tfrecord import field, field_header

if TYPE_CHECKING:
    from rlstore.schema import FieldSpec, Schema

_FLOAT_LIST, _INT64_LIST, _BYTES_LIST = 2, 3, 1  # tf.train.Feature's oneof field numbers


def encode_episodes(schema: Schema, steps: Mapping[str, np.ndarray], starts: np.ndarray, lengths: np.ndarray,
                    metadata: Mapping[str, Sequence[Any]]) -> list[bytes]:
    """The serialised Examples of the episodes whose steps are rows `starts[k]:starts[k]+lengths[k]`
    of the flat step columns `steps`; `metadata` holds one value per episode for each
    episode-metadata field. The episodes must already have been checked against `schema`."""
    records: list[bytes] = [b""] * len(starts)
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        rows = starts[members, None] + np.arange(length)
        group = {f"steps/{key}": _step_feature(spec, steps[key][rows]) for key, spec in schema.steps.items()}
        group.update({key: [encode_feature(spec, np.asarray(metadata[key][k]), per_step=False) for k in members]
                      for key, spec in schema.episode.items()})
        for k, record in zip(members, _examples(group, len(members))):
            records[k] = record
    return records


def encode_feature(spec: FieldSpec, value: np.ndarray, per_step: bool) -> bytes:
    """One field's tf.train.Feature: all of an episode's steps (`per_step`) or one metadata value."""
    if spec.encoding in IMAGE_FORMATS:
        images = value if per_step else value[None]
        if images.dtype == object:  # the source's encoded bytes (`rlstore.images.EncodedImages`): kept as they are
            return tfrecord.bytes_feature(images.tolist())
        return tfrecord.bytes_feature(encode_image(image, spec.encoding, spec.quality) for image in images)
    if spec.encoding in ("zlib", "bytes"):
        items = np.ascontiguousarray(value if per_step else value[None], dtype=spec.dtype)
        pack = zlib.compress if spec.encoding == "zlib" else bytes
        return tfrecord.bytes_feature(pack(item.tobytes()) for item in items)
    if spec.dtype == "str":
        return tfrecord.bytes_feature(str(v).encode() if not isinstance(v, bytes) else v for v in value.reshape(-1).tolist())
    if spec.dtype.startswith("float"):
        return tfrecord.float_feature(value.reshape(-1))
    return tfrecord.int64_feature(value.reshape(-1))


def _step_feature(spec: FieldSpec, values: np.ndarray) -> tuple[bytes, np.ndarray] | list[bytes]:
    """One step field of a group of equal-length episodes (`values`: [episodes, steps, ...]).
    When its Features all have one size: (their common header, a [episodes, width] byte matrix
    of the rest); else the list of them."""
    count = len(values)
    flat = values.reshape(count, -1)
    if flat.shape[1] and spec.encoding == "none" and spec.dtype != "str":
        if spec.dtype.startswith("float"):
            return _packed(_FLOAT_LIST, np.ascontiguousarray(flat, "<f4").view(np.uint8))
        if spec.dtype == "bool" or (flat.min() >= 0 and flat.max() < 0x80):  # one-byte varints
            return _packed(_INT64_LIST, flat.astype(np.uint8))
    if flat.shape[1] and spec.encoding == "bytes":
        items = np.ascontiguousarray(values, spec.dtype).reshape(count, values.shape[1], -1).view(np.uint8)
        header = field_header(1, items.shape[2])
        framed = np.empty((*items.shape[:2], len(header) + items.shape[2]), np.uint8)
        framed[:, :, :len(header)] = np.frombuffer(header, np.uint8)
        framed[:, :, len(header):] = items
        return field_header(_BYTES_LIST, framed[0].size), framed.reshape(count, -1)
    return [encode_feature(spec, value, per_step=True) for value in values]


def _packed(number: int, payload: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Features holding a packed list whose encoded bytes are the rows of `payload`."""
    inner = field_header(1, payload.shape[1])
    return field_header(number, len(inner) + payload.shape[1]) + inner, payload


def _examples(features: Mapping[str, tuple[bytes, np.ndarray] | list[bytes]], count: int) -> list[bytes]:
    """`count` Examples from per-field Features, laid out as `tfrecord.example` lays them out:
    map entries sorted by name inside one Features message. Each run of fixed-size entries is
    written into one byte matrix, so an Example is a join of a few slices."""
    runs: list[list[tuple[bytes, np.ndarray]] | list[bytes]] = []
    for name in sorted(features):
        feature = features[name]
        key = field(1, name.encode())
        if isinstance(feature, tuple):
            header, payload = feature
            size = len(header) + payload.shape[1]
            entry = (field_header(1, len(key) + len(field_header(2, size)) + size) + key + field_header(2, size)
                     + header, payload)
            if runs and isinstance(runs[-1][0], tuple):
                runs[-1].append(entry)
            else:
                runs.append([entry])
        else:
            runs.append(_fields(1, _fields(2, feature), key))
    columns = [_rows(run, count) if isinstance(run[0], tuple) else run for run in runs]
    return _fields(1, [b"".join(pieces) for pieces in zip(*columns)])


def _fields(number: int, payloads: list[bytes], lead: bytes = b"") -> list[bytes]:
    """`tfrecord.field(number, lead + payload)` for each payload; headers are made once per size."""
    headers: dict[int, bytes] = {}
    framed = []
    for payload in payloads:
        size = len(payload)
        header = headers.get(size)
        if header is None:
            header = headers[size] = field_header(number, len(lead) + size) + lead
        framed.append(header + payload)
    return framed


def _rows(run: list[tuple[bytes, np.ndarray]], count: int) -> list[bytes]:
    """Each episode's bytes of a run of fixed-size entries (a constant prefix, then a payload row)."""
    width = sum(len(prefix) + payload.shape[1] for prefix, payload in run)
    matrix = np.empty((count, width), np.uint8)
    offset = 0
    for prefix, payload in run:
        matrix[:, offset:offset + len(prefix)] = np.frombuffer(prefix, np.uint8)
        offset += len(prefix)
        matrix[:, offset:offset + payload.shape[1]] = payload
        offset += payload.shape[1]
    data = matrix.tobytes()
    return [data[k * width:(k + 1) * width] for k in range(count)]
