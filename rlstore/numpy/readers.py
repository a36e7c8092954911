"""NumPy readers over a store version: episodes, steps, n-step transitions, sequences.

The same rows as `rlstore.reading` (the tf.data readers) with no TensorFlow in the process, for
PyTorch (`rlstore.torch`), JAX and everything else. Like them, episodes are decoded in chunks of
whole episodes, turned into rows by one vectorised transform (`rlstore.numpy.transforms`),
shuffled within the chunk and cut into batches; rows are bit-identical to the tf.data readers'.
Without `shuffle` the batches are the tf.data readers' batches, in the same order. With it,
order comes from NumPy generators (TensorFlow's random streams cannot be reproduced without
TensorFlow): the same seed gives the same batches, epoch after epoch.

Frame-stacked datasets (`stack` > 1 in the schema, one frame stored per step) are read as the
tf.data readers read them: rows hold step indices until batched, each batch's stacks are rebuilt
from its chunk's single frames (`StepObservations`, `rlstore.frames`: Dopamine's zero padding at
episode starts), and batches never span chunks.

Each reader is an iterator of batches (nested dicts of arrays). `share` lets parallel readers
split every epoch between them (see `rlstore.numpy.records.Share`); `epoch` picks the shuffle of
the first epoch read, so a caller that restarts a reader each epoch gets a fresh order.
"""
from __future__ import annotations

import itertools
from functools import partial
from typing import Any, Callable, Iterator

import numpy as np

from rlstore.chunks import chunk_episodes_for
from rlstore.errors import StoreError
from rlstore.frames import observation_stack
from rlstore.manifest import Manifest
from rlstore.names import DatasetRef
from rlstore.nest import flatten, unflatten
from rlstore.numpy.decoding import RecordError, decode_episode, decode_episodes
from rlstore.numpy.records import Record, Share, episode_records, round_robin
from rlstore.numpy.transforms import (StepObservations, check_sequence_options, check_transition_options,
                                      episode_sequences, episode_transitions, map_tree, rows_of, take_rows)
from rlstore.store import Store

DEFAULT_SHUFFLE_BUFFER = 256
Batch = dict[str, Any]


def _epochs(store: Store, ref: str | DatasetRef, *, shuffle: bool, seed: int, repeat: bool, shuffle_buffer: int,
            share: Share, epoch: int) -> tuple[Manifest, Iterator[Iterator[Record]], Callable[[int], np.random.Generator]]:
    """(manifest, the record stream of each epoch, rng for the rows of an epoch) of one pinned version."""
    ref = store.resolve(ref)
    manifest = store.manifest(ref)
    files = store.shard_paths(ref)

    def one(number: int) -> Iterator[Record]:
        rng = np.random.default_rng([seed, number, 0]) if shuffle else None
        return episode_records(files, shuffle=shuffle, rng=rng, shuffle_buffer=shuffle_buffer, share=share)

    numbers = itertools.count(epoch) if repeat else iter([epoch])
    return manifest, (one(number) for number in numbers), lambda number: np.random.default_rng(
        [seed, number, 1, share.index])


def decode_records(records: list[Record], manifest: Manifest) -> tuple[dict[str, Any], dict[str, Any]]:
    """(steps end to end, metadata) of episode records; a record that does not decode is a
    StoreError naming the version, the file and the record."""
    try:
        return decode_episodes([record.data for record in records], manifest.schema)
    except RecordError:
        for record in records:  # find the episode to name it
            try:
                decode_episode(record.data, manifest.schema)
            except RecordError as error:
                raise StoreError(f"{manifest.name}@{manifest.version}: file {record.file}, episode record "
                                 f"{record.index}: {error}") from None
        raise


def episodes(
    store: Store,
    ref: str | DatasetRef,
    *,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    share: Share = Share(),
    epoch: int = 0,
) -> Iterator[dict[str, Any]]:
    """Whole RLDS episodes `{'steps': {field: [T, ...]}, **episode_metadata}`, one at a time."""
    manifest, epochs, _ = _epochs(store, ref, shuffle=shuffle, seed=seed, repeat=repeat,
                                  shuffle_buffer=shuffle_buffer, share=share, epoch=epoch)
    for records in epochs:
        for record in records:
            steps, metadata = decode_records([record], manifest)
            yield {"steps": steps, **map_tree(lambda leaf: leaf[0, ...], metadata)}


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
    share: Share,
    epoch: int,
) -> Iterator[Batch]:
    """Batches of the rows `to_rows` makes from chunks of whole episodes laid end to end.

    With `repeat`, every batch has exactly `batch_size` rows (batches run on across epochs);
    without it, the last batch holds what is left, so an epoch yields every row once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    manifest, epochs, row_rng = _epochs(store, ref, shuffle=shuffle, seed=seed, repeat=repeat,
                                        shuffle_buffer=shuffle_buffer, share=share, epoch=epoch)
    per_chunk = chunk_episodes or chunk_episodes_for(manifest)
    frame_stack = observation_stack(manifest.schema)

    def chunks() -> Iterator[tuple[dict[str, Any], StepObservations | None]]:
        """(rows, and for a stacked dataset the chunk's frames the rows' step indices point at)."""
        for number, records in zip(itertools.count(epoch), epochs):
            rng = row_rng(number)
            while chunk := list(itertools.islice(records, per_chunk)):
                steps, frames = decode_records(chunk, manifest)[0], None
                if frame_stack > 1:
                    frames, steps = StepObservations.split(steps, frame_stack)
                rows = to_rows(steps)
                yield (take_rows(rows, rng.permutation(rows_of(rows))) if shuffle else rows), frames

    if frame_stack == 1:
        yield from rebatch((rows for rows, _ in chunks()), batch_size, drop_remainder=repeat)
        return
    # As the tf.data readers: stacked batches never span chunks, two chunks' batches alternate.
    per_chunk_batches = (map(frames.fill, rebatch(iter([rows]), batch_size, drop_remainder=repeat))
                         for rows, frames in chunks())
    yield from round_robin(per_chunk_batches, cycle_length=2)


def rebatch(chunks: Iterator[dict[str, Any]], batch_size: int, drop_remainder: bool) -> Iterator[Batch]:
    """Batches of exactly `batch_size` rows cut from a stream of row chunks of any size."""
    pending: list[dict[str, Any]] = []
    held = 0
    for chunk in chunks:
        size = rows_of(chunk)
        start = 0
        while held + size - start >= batch_size:
            stop = start + batch_size - held
            pending.append(take_rows(chunk, slice(start, stop)))
            yield _concatenate(pending)
            pending, held, start = [], 0, stop
        if start < size:
            pending.append(take_rows(chunk, slice(start, size)))
            held += size - start
    if held and not drop_remainder:
        yield _concatenate(pending)


def _concatenate(parts: list[dict[str, Any]]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    flat = [flatten(part) for part in parts]
    return unflatten({key: np.concatenate([f[key] for f in flat]) for key in flat[0]})


def steps(store: Store, ref: str | DatasetRef, *, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
          repeat: bool = True, shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, chunk_episodes: int | None = None,
          share: Share = Share(), epoch: int = 0) -> Iterator[Batch]:
    """Batches of single RLDS steps (every step, last steps included), e.g. for BC."""
    return _rows(store, ref, lambda rows: rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes, share=share, epoch=epoch)


def transitions(store: Store, ref: str | DatasetRef, *, n_step: int = 1, gamma: float = 0.99, batch_size: int = 256,
                shuffle: bool = True, seed: int = 0, repeat: bool = True,
                shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, chunk_episodes: int | None = None,
                share: Share = Share(), epoch: int = 0) -> Iterator[Batch]:
    """Batches of n-step transitions {observation, action, reward, discount, next_observation}
    (`num_steps - num_episodes` per epoch; conventions of `rlstore.reading.transforms`)."""
    to_rows = partial(episode_transitions, n_step=n_step, gamma=gamma)
    check_transition_options(n_step, gamma)  # now, not at the first batch
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes, share=share, epoch=epoch)


def sequences(store: Store, ref: str | DatasetRef, *, length: int, period: int, burn_in: int = 0,
              batch_size: int = 32, shuffle: bool = True, seed: int = 0, repeat: bool = True, is_demo: bool = False,
              shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, chunk_episodes: int | None = None,
              share: Share = Share(), epoch: int = 0) -> Iterator[Batch]:
    """Batches of [batch, burn_in + length, ...] step sequences with `mask` and `is_demo`."""
    check_sequence_options(length, period, burn_in)
    to_rows = partial(episode_sequences, length=length, period=period, burn_in=burn_in, is_demo=is_demo)
    return _rows(store, ref, to_rows, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat,
                 shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes, share=share, epoch=epoch)
