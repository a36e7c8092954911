"""The serialized episodes of a store version, as a shuffled, repeatable tf.data stream.

Every reader starts here. Shuffling happens at two levels, as TFDS and tf.data recommend for
sharded data: the order of shard files (re-drawn each epoch), and a buffer of whole episode
records fed by reading several shards at once (interleave). Records are small compared with
their decoded steps, so shuffling them is cheap. All randomness is seeded.

TFRecord shards are read by tf.data itself; parquet shards (`rlstore.shard_formats`) by pyarrow
in a generator, as TFDS's own parquet adapter does. Both give the same serialized Examples, so
everything after this module is the same for either.
"""
from __future__ import annotations

import tensorflow as tf

from rlstore.names import DatasetRef
from rlstore.shard_formats import PARQUET, bounded_shuffle_buffer, file_format, parquet_tf_records
from rlstore.store import Store

AUTOTUNE = tf.data.AUTOTUNE


def shard_files(store: Store, ref: str | DatasetRef) -> list[str]:
    """Every shard file of a version (TFRecord or Parquet), in manifest order (segments, then shards)."""
    return [str(path) for path in store.shard_paths(ref)]


def episode_records(
    files: list[str],
    *,
    shuffle: bool,
    seed: int,
    repeat: bool,
    shuffle_buffer: int,
    cycle_length: int = 8,
) -> tf.data.Dataset:
    """Serialized episodes of `files`. Without `shuffle`, in file order, one file after another.

    With `shuffle`, files are visited in a seeded random order that changes every epoch,
    `cycle_length` of them read round-robin, and records pass through a seeded shuffle buffer
    of `shuffle_buffer` episodes (fewer for parquet shards of large raw records:
    `rlstore.shard_formats.bounded_shuffle_buffer`). `repeat` comes after the buffer, so every
    epoch holds each episode exactly once before the next epoch starts.
    """
    names = tf.data.Dataset.from_tensor_slices(files)
    read = parquet_tf_records if files and file_format(files[0]) == PARQUET else tf.data.TFRecordDataset
    if shuffle:
        names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        records = names.interleave(read, cycle_length=min(cycle_length, len(files)),
                                   block_length=1, num_parallel_calls=AUTOTUNE, deterministic=True)
        records = records.shuffle(bounded_shuffle_buffer(files, shuffle_buffer), seed=seed + 1,
                                  reshuffle_each_iteration=True)
    else:
        records = names.flat_map(read) if read is not tf.data.TFRecordDataset else tf.data.TFRecordDataset(names)
    return records.repeat() if repeat else records
