"""Decoding RLDS episodes from TFDS records, a whole episode at a time.

TFDS decodes the `steps` of an episode into a nested tf.data.Dataset; batching that dataset
into one element of exactly the episode's length gives every step field as a single tensor.
Both the `rlds` source reader and `validate` look at episodes this way.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from rlstore.episode import Episode, zero_fill_last_step


@lru_cache(maxsize=16)
def features_of(dataset_dir: str):
    """The FeaturesDict of a TFDS dataset directory."""
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(dataset_dir).info.features


def episodes_in_shard(dataset_dir: str, shard: str) -> Iterator[Episode]:
    """Numpy episodes of one TFRecord shard, last step zero-filled as RLDS prescribes.

    TF's DataLossError / InvalidArgumentError surface unchanged for corrupt data; callers turn
    them into located errors (see `tf_error_reason`).
    """
    import tensorflow as tf

    features = features_of(dataset_dir)

    def decode(record):
        episode = dict(features.deserialize_example(record))
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
    records = tf.data.TFRecordDataset(shard).map(decode).with_options(options)
    for episode in records.as_numpy_iterator():
        episode = _bytes_arrays(episode)
        yield {**episode, "steps": zero_fill_last_step(episode["steps"])}


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
