"""Whole-episode decoding of stored tf.train.Example records into NumPy, straight from the schema.

The NumPy twin of `rlstore.reading.decoding`: every step field is one feature list holding all
of an episode's steps (see `rlstore.schema`), so a field decodes with one `np.frombuffer` or
cast; only PNG/JPEG images (Pillow) and raw 'bytes'/'zlib' fields take one call per step. Values come
back exactly as TensorFlow would give them: the schema's dtype and per-step shape, floats that
TFDS keeps as float32 cast back, text as an object array of `bytes`.
"""
from __future__ import annotations

import io
import zlib
from typing import Any, Sequence

import numpy as np

from rlstore.nest import unflatten
from rlstore.schema import FieldSpec, Schema
from rlstore.tfrecord import parse_example


class RecordError(ValueError):
    """A stored record that does not decode under its version's schema."""


def decode_episode(record: bytes, schema: Schema) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`(steps, metadata)` of one serialised episode, both flat (`observation/pos` keys):
    `steps` leaves are [T, *shape], `metadata` leaves have the schema's shape."""
    try:
        features = parse_example(record)
    except ValueError as error:
        raise RecordError(f"not a tf.train.Example ({error})") from None
    steps = {key: _field(features, f"steps/{key}", spec, per_step=True) for key, spec in schema.steps.items()}
    metadata = {key: _field(features, key, spec, per_step=False) for key, spec in schema.episode.items()}
    return steps, metadata


def decode_episodes(records: Sequence[bytes], schema: Schema) -> tuple[dict[str, Any], dict[str, Any]]:
    """Several episodes at once, as `rlstore.reading.decoding.decode_episodes` returns them:
    nested `steps` whose leaves hold the steps of all episodes end to end, nested `metadata`
    with a leading [K] axis."""
    decoded = [decode_episode(record, schema) for record in records]
    steps = {key: _concatenate([d[0][key] for d in decoded], spec) for key, spec in schema.steps.items()}
    metadata = {key: np.stack([d[1][key] for d in decoded]) if decoded else _empty(spec, 0)[0]
                for key, spec in schema.episode.items()}
    return unflatten(steps), unflatten(metadata)


def _concatenate(parts: list[np.ndarray], spec: FieldSpec) -> np.ndarray:
    return np.concatenate(parts) if parts else _empty(spec, 0)


def _empty(spec: FieldSpec, count: int) -> np.ndarray:
    return np.zeros((count, *spec.shape), dtype=object if spec.dtype == "str" else spec.dtype)


def _field(features: dict[str, Any], name: str, spec: FieldSpec, per_step: bool) -> np.ndarray:
    if name not in features:
        raise RecordError(f"field '{name}' is missing")
    try:
        values = _values(features[name], spec)
    except (ValueError, OSError, zlib.error) as error:
        raise RecordError(f"field '{name}' does not decode as {spec.describe()}: {error}") from None
    return values if per_step else values[0, ...]


def _values(stored: Any, spec: FieldSpec) -> np.ndarray:
    """[N, *shape] values of one field from its stored feature list."""
    shape = tuple(spec.shape)
    if spec.encoding in ("png", "jpeg"):
        return np.stack([_image(item, shape) for item in _bytes(stored)]) if stored else _empty(spec, 0)
    if spec.encoding in ("bytes", "zlib"):
        items = _bytes(stored)
        if spec.encoding == "zlib":
            items = [zlib.decompress(item) for item in items]
        return np.frombuffer(b"".join(items), dtype=spec.dtype).reshape(-1, *shape)
    if spec.dtype == "str":
        return np.array(_bytes(stored), dtype=object).reshape(-1, *shape)
    if isinstance(stored, list):
        raise ValueError("stored as bytes, expected numbers")
    return stored.astype(spec.dtype, copy=False).reshape(-1, *shape)


def _bytes(stored: Any) -> list[bytes]:
    if not isinstance(stored, list):
        raise ValueError("stored as numbers, expected bytes")
    return stored


_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _image(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """One PNG/JPEG image with the field's channels (converted as TensorFlow's decoders do)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        mode = _MODES.get(shape[-1])
        pixels = np.asarray(image if image.mode == mode or mode is None else image.convert(mode))
    return pixels.reshape(shape)
