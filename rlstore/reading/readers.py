"""tf.data readers over a store version: episodes, steps, n-step transitions, sequences.

Why they are fast: tf.data costs a few microseconds per element, and a learner wants hundreds
of thousands of rows per second. So no element here is ever a single step or transition.
Serialized episodes are grouped into chunks of `chunk_episodes`; each chunk is decoded with
one parse (`decoding.decode_episodes`), turned into rows by one vectorised transform
(`transforms`), permuted with a seeded stateless shuffle, and cut into batches by
`Dataset.rebatch`. The per-element overhead is paid per chunk and per batch.

Shuffling is therefore three-level: shard order and an episode buffer (`records`), then rows
within a chunk. A batch mixes rows from about `chunk_episodes` episodes (by default as many as
decode to ~16 MB, at most 128; see `rlstore.chunks`); raise it for more mixing at the cost
of memory. Same seed, same batches: every random op is seeded and every parallel stage keeps
its order.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import tensorflow as tf

from rlstore.chunks import chunk_episodes_for
from rlstore.names import DatasetRef
from rlstore.reading.decoding import decode_episodes
from rlstore.reading.records import AUTOTUNE, episode_records, shard_files
from rlstore.reading.transforms import episode_sequences, episode_transitions, shuffle_rows
from rlstore.store import Store

DEFAULT_SHUFFLE_BUFFER = 256


def _records(store: Store, ref: str | DatasetRef, shuffle: bool, seed: int, repeat: bool, shuffle_buffer: int):
    """(manifest, serialized episodes) of one resolved version: `NAME` is pinned once, here."""
    ref = store.resolve(ref)
    records = episode_records(shard_files(store, ref), shuffle=shuffle, seed=seed, repeat=repeat,
                              shuffle_buffer=shuffle_buffer)
    return store.manifest(ref), records


def episodes(
    store: Store,
    ref: str | DatasetRef,
    *,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Whole RLDS episodes `{'steps': {field: [T, ...]}, **episode_metadata}`, one per element.

    Unlike TFDS's `as_dataset`, `steps` is a dict of tensors, not a nested dataset, so
    `transforms.episode_transitions` / `episode_sequences` apply to it directly. Episodes
    have different lengths, so this reader does not batch.
    """
    manifest, records = _records(store, ref, shuffle, seed, repeat, shuffle_buffer)
    schema = manifest.schema

    def decode(record: tf.Tensor) -> dict[str, Any]:
        steps, metadata = decode_episodes(record[None], schema)
        return {"steps": steps, **tf.nest.map_structure(lambda leaf: leaf[0], metadata)}

    return records.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).prefetch(AUTOTUNE)


def _rows(
    store: Store,
    ref: str | DatasetRef,
    to_rows: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool,
    shuffle_buffer: int,
    chunk_episodes: int | None,
) -> tf.data.Dataset:
    """Batches of the rows `to_rows` makes from chunks of whole episodes laid end to end.

    With `repeat`, batches all have exactly `batch_size` rows (a static batch dimension);
    without it, the last batch of the epoch holds what is left, so an epoch yields every row once.
    """
    manifest, records = _records(store, ref, shuffle, seed, repeat, shuffle_buffer)
    schema = manifest.schema

    def chunk(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, Any]:
        rows = to_rows(decode_episodes(serialized, schema)[0])
        return shuffle_rows(rows, tf.stack([tf.constant(seed, tf.int64), index])) if shuffle else rows

    chunks = records.batch(chunk_episodes or chunk_episodes_for(manifest)).enumerate()
    chunks = chunks.map(chunk, num_parallel_calls=AUTOTUNE, deterministic=True)
    return chunks.rebatch(batch_size, drop_remainder=repeat).prefetch(AUTOTUNE)


def steps(
    store: Store,
    ref: str | DatasetRef,
    *,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
) -> tf.data.Dataset:
    """Batches of single RLDS steps (every step, last steps included), e.g. for BC."""
    return _rows(store, ref, lambda rows: rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes)


def transitions(
    store: Store,
    ref: str | DatasetRef,
    *,
    n_step: int = 1,
    gamma: float = 0.99,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
) -> tf.data.Dataset:
    """Batches of n-step transitions {observation, action, reward, discount, next_observation}.

    One per step with an action: `num_steps - num_episodes` per epoch. `reward` and
    `discount` follow `transforms.episode_transitions` (gamma^m is inside `discount`).
    """
    to_rows = partial(episode_transitions, n_step=n_step, gamma=gamma)
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes)


def sequences(
    store: Store,
    ref: str | DatasetRef,
    *,
    length: int,
    period: int,
    burn_in: int = 0,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    is_demo: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    chunk_episodes: int | None = None,
) -> tf.data.Dataset:
    """Batches of [batch, burn_in + length, ...] step sequences with `mask` and `is_demo`
    (layout and padding as in `transforms.episode_sequences`)."""
    to_rows = partial(episode_sequences, length=length, period=period, burn_in=burn_in, is_demo=is_demo)
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes)
