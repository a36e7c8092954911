"""Whole-episode decoding of stored `tf.train.Example` records, straight from the schema.

TFDS would decode an episode's `steps` into a nested `tf.data.Dataset` and hand them out one
step at a time, which costs a tf.data element per step. The bytes on disk are already
columnar: each step field is one feature list holding every step of the episode (see
`rlstore.schema`). So a batch of serialized episodes is parsed with one `tf.io.parse_example`
call into ragged columns whose flat values are the steps of all those episodes laid end to
end, reshaped to the per-step shape; only PNG/JPEG images need a per-image decode, and raw
('bytes') or 'zlib' tensors a `decode_raw`.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlstore.nest import unflatten
from rlstore.schema import FieldSpec, Schema

_ENCODED = ("png", "jpeg", "bytes", "zlib")


def _stored_dtype(spec: FieldSpec) -> tf.DType:
    """The feature-list type a field is stored as (TFDS keeps every float as float32)."""
    if spec.encoding in _ENCODED or spec.dtype == "str":
        return tf.string
    return tf.float32 if spec.dtype.startswith("float") else tf.int64


def _value_dtype(spec: FieldSpec) -> tf.DType:
    return tf.string if spec.dtype == "str" else tf.as_dtype(spec.dtype)


def _decode_values(values: tf.Tensor, spec: FieldSpec) -> tf.Tensor:
    """Flat stored values of N items of one field -> a [N, *shape] tensor of its dtype."""
    shape = list(spec.shape)
    if spec.encoding in ("png", "jpeg"):
        decode = tf.io.decode_png if spec.encoding == "png" else tf.io.decode_jpeg
        return tf.map_fn(lambda image: decode(image, channels=shape[-1]), values,
                         fn_output_signature=tf.TensorSpec(shape, tf.uint8))
    if spec.encoding in ("bytes", "zlib"):
        if spec.encoding == "zlib":
            values = tf.io.decode_compressed(values, compression_type="ZLIB")
        return tf.reshape(tf.io.decode_raw(values, _value_dtype(spec)), [-1, *shape])
    return tf.reshape(tf.cast(values, _value_dtype(spec)), [-1, *shape])


def decode_episodes(serialized: tf.Tensor, schema: Schema) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decodes a [K] batch of serialized episodes at once.

    Returns `(steps, metadata)`: `steps` is the nested RLDS step dict whose leaves hold the
    steps of all K episodes laid end to end ([sum of lengths, ...]; boundaries are marked by
    `is_first`/`is_last`), `metadata` the nested episode metadata with a leading [K] axis.
    """
    features = {f"steps/{key}": tf.io.RaggedFeature(_stored_dtype(spec), row_splits_dtype=tf.int64)
                for key, spec in schema.steps.items()}
    features.update({key: tf.io.FixedLenFeature([] if spec.encoding in _ENCODED else list(spec.shape),
                                                 _stored_dtype(spec))
                     for key, spec in schema.episode.items()})
    parsed = tf.io.parse_example(serialized, features)
    steps = {key: _decode_values(parsed[f"steps/{key}"].flat_values, spec) for key, spec in schema.steps.items()}
    metadata = {key: _decode_metadata(parsed[key], spec) for key, spec in schema.episode.items()}
    return unflatten(steps), unflatten(metadata)


def _decode_metadata(values: tf.Tensor, spec: FieldSpec) -> tf.Tensor:
    if spec.encoding in _ENCODED:
        return _decode_values(values, spec)
    return tf.cast(values, _value_dtype(spec))
