"""Decoding RLDS episodes from TFDS records, a whole episode at a time.

TFDS decodes the `steps` of an episode into a nested tf.data.Dataset; batching that dataset
into one element gives every step field as a single tensor, which is how both the `rlds`
source reader and `validate` look at episodes.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterator

import numpy as np

import rlstore.quiet  # noqa: F401  (before TF)
from rlstore.episode import Episode, zero_fill_last_step


@lru_cache(maxsize=16)
def features_of(dataset_dir: str):
    """The FeaturesDict of a TFDS dataset directory."""
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(dataset_dir).info.features


def episodes_in_shard(dataset_dir: str, shard: str) -> Iterator[Episode]:
    """Numpy episodes of one TFRecord shard; TF's DataLossError surfaces for corrupt data."""
    import tensorflow as tf

    features = features_of(dataset_dir)

    def decode(record):
        episode = dict(features.deserialize_example(record))
        episode["steps"] = tf.data.experimental.get_single_element(episode["steps"].batch(1 << 30))
        return episode

    for episode in tf.data.TFRecordDataset(shard).map(decode).as_numpy_iterator():
        episode = _bytes_arrays(episode)
        yield {**episode, "steps": zero_fill_last_step(episode["steps"])}


def _bytes_arrays(tree: Any) -> Any:
    """TF strings arrive as object arrays of bytes; the schema wants fixed bytes arrays."""
    if isinstance(tree, dict):
        return {k: _bytes_arrays(v) for k, v in tree.items()}
    if isinstance(tree, bytes) or (isinstance(tree, np.ndarray) and tree.dtype == object):
        return np.asarray(np.asarray(tree).tolist(), dtype=np.bytes_)
    return tree
