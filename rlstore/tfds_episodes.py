"""Decoding RLDS episodes from TFDS records, a whole episode at a time.

TFDS decodes the `steps` of an episode into a nested tf.data.Dataset; batching that dataset
into one element of exactly the episode's length gives every step field as a single tensor.
Both the `rlds` source reader and `validate` look at episodes this way.

uint8 images of a known shape that TFDS stores encoded (its `Image` feature: PNG or JPEG) are
not decoded: they come out as `rlstore.images.EncodedImages` holding the stored bytes, so
ingest keeps them byte for byte and `validate` can decode each one itself and say which step
and field did not decode.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from rlstore.episode import Episode, zero_fill_last_step
from rlstore.images import IMAGE_FORMATS, EncodedImages, sniff
from rlstore.nest import flatten, unflatten
from rlstore.shard_formats import PARQUET, parquet_tf_records


@lru_cache(maxsize=16)
def _info(dataset_dir: str):
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(dataset_dir).info


def features_of(dataset_dir: str):
    """The FeaturesDict of a TFDS dataset directory."""
    return _info(dataset_dir).features


def episodes_in_shard(dataset_dir: str, shard: str) -> Iterator[Episode]:
    """Numpy episodes of one shard (TFRecord or parquet), last step zero-filled as RLDS prescribes.

    TF's DataLossError / InvalidArgumentError surface unchanged for corrupt data; callers turn
    them into located errors (see `tf_error_reason`).
    """
    import tensorflow as tf

    features = features_of(dataset_dir)
    kept = kept_images(features)
    decoders = _skip_decoding(kept)

    def decode(record):
        episode = dict(features.deserialize_example(record, decoders=decoders))
        steps = episode["steps"]
        # One batch of exactly the episode's length: TFDS decodes steps with
        # from_tensor_slices(...).map(...), so the cardinality is known. A huge constant batch
        # size is allocated up front once TF fuses the batch into that map.
        length = steps.cardinality()
        episode["steps"] = tf.data.experimental.get_single_element(steps.batch(tf.where(length > 0, length, 1)))
        return episode

    options = tf.data.Options()
    # The fusion rewrite would also refuse a batch sized by the steps' cardinality.
    options.experimental_optimization.map_and_batch_fusion = False
    stored_as = _info(dataset_dir).file_format
    parquet = stored_as is not None and stored_as.value == PARQUET
    records = parquet_tf_records(shard) if parquet else tf.data.TFRecordDataset(shard)
    records = records.map(decode).with_options(options)
    for episode in records.as_numpy_iterator():
        steps = flatten(episode.pop("steps"))
        images = {key: _encoded(steps.pop(key), kept[key]) for key in kept}
        steps = {**flatten(_bytes_arrays(unflatten(steps))), **images}
        episode = _bytes_arrays(episode)
        yield {**episode, "steps": zero_fill_last_step(unflatten(steps))}


def kept_images(features) -> dict[str, Any]:
    """Flat step-field paths of the uint8 `Image` features whose bytes are kept, with each feature."""
    import tensorflow_datasets as tfds

    def walk(feature, prefix: str) -> dict[str, Any]:
        if isinstance(feature, tfds.features.FeaturesDict):
            found = {}
            for key, child in feature.items():
                found.update(walk(child, f"{prefix}/{key}" if prefix else key))
            return found
        shape = tuple(feature.shape) if isinstance(feature, tfds.features.Image) else ()
        if (shape and None not in shape and np.dtype(feature.np_dtype) == np.uint8
                and feature.encoding_format in (None, *IMAGE_FORMATS)):
            return {prefix: feature}
        return {}

    steps = features["steps"] if "steps" in features else None
    return walk(steps.feature, "") if isinstance(steps, tfds.features.Dataset) else {}


def _skip_decoding(kept: dict[str, Any]) -> dict[str, Any] | None:
    import tensorflow_datasets as tfds

    if not kept:
        return None
    return {"steps": unflatten({key: tfds.decode.SkipDecoding() for key in kept})}


def _encoded(column: np.ndarray, feature) -> EncodedImages:
    """The stored bytes of one image field: its declared format, or (when TFDS left it open) the
    first image's, which `rlstore.images.check_headers` then holds every image to."""
    data = [bytes(item) for item in column.tolist()]
    image_format = feature.encoding_format or (sniff(data[0]) if data else None) or "png"
    return EncodedImages(data, image_format, feature.shape)


def tf_error_reason(error) -> str:
    """TF's own sentence, e.g. 'corrupted record at 1326', without the op wrapper around it."""
    line = error.message.splitlines()[0] if error.message else type(error).__name__
    line = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:\w+\].*$", "", line).strip() or type(error).__name__


def _bytes_arrays(tree: Any) -> Any:
    """TF strings arrive as object arrays of bytes; the schema wants fixed bytes arrays."""
    if isinstance(tree, dict):
        return {k: _bytes_arrays(v) for k, v in tree.items()}
    if isinstance(tree, bytes) or (isinstance(tree, np.ndarray) and tree.dtype == object):
        return np.asarray(np.asarray(tree).tolist(), dtype=np.bytes_)
    return tree
