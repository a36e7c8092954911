"""The serialized episodes of a store version as a plain Python stream, for readers without TF.

The NumPy twin of `rlstore.reading.records`, with the same two levels of shuffling: the order of
shard files (re-drawn every epoch), several files read round-robin, then a buffer of whole
episode records. Every random choice comes from a NumPy generator seeded by (seed, epoch).

A `Share` splits one epoch between parallel readers (DataLoader workers, hosts): record i of the
file listed f-th in the manifest belongs to reader (f + i) mod count. Each reader reads and
checks only its own records and seeks past the rest, and together they cover every episode of
the version exactly once per epoch, whatever order the files are visited in.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

import numpy as np

from rlstore.errors import StoreError
from rlstore.shard_formats import bounded_shuffle_buffer, read_records

T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class Share:
    """Reader `index` of `count` parallel readers."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ValueError(f"share {self.index} of {self.count} does not exist")


@dataclass(frozen=True)
class Record:
    """One serialized episode and where it was stored, for error messages."""

    data: bytes
    file: Path
    index: int


def file_records(path: Path, position: int, share: Share) -> Iterator[Record]:
    """The records of one shard (TFRecord or parquet) that belong to `share` (`position`: the
    file's manifest index)."""
    keep = None if share.count == 1 else (lambda i: (position + i) % share.count == share.index)
    kept = (i for i in itertools.count() if keep is None or keep(i))
    try:
        with open(path, "rb") as stream:
            for data in read_records(stream, str(path), keep):
                yield Record(data, path, next(kept))
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read shard {path}: {error}") from None


def episode_records(
    files: Sequence[Path],
    *,
    shuffle: bool,
    rng: np.random.Generator | None,
    shuffle_buffer: int,
    share: Share = Share(),
    cycle_length: int = 8,
) -> Iterator[Record]:
    """One epoch of serialized episodes. Without `shuffle`, in manifest order; with it, files in
    an order drawn from `rng`, `cycle_length` of them round-robin, through a `shuffle_buffer`
    (bounded for parquet shards as the tf.data reader bounds it)."""
    if not shuffle:
        for position, path in enumerate(files):
            yield from file_records(path, position, share)
        return
    assert rng is not None
    order = rng.permutation(len(files))
    streams = (file_records(files[p], int(p), share) for p in order)
    yield from _buffered(round_robin(streams, cycle_length), bounded_shuffle_buffer(files, shuffle_buffer), rng)


def round_robin(streams: Iterator[Iterator[T]], cycle_length: int) -> Iterator[T]:
    """tf.data's deterministic `interleave` with block length 1: one item from each of
    `cycle_length` slots in turn. A slot whose stream ends is passed over, and refilled with the
    next stream the next time the cycle comes round to it (the order tf.data produces)."""
    slots: list[Iterator[T] | None] = [None] * cycle_length
    slot, open_streams, more = 0, 0, True
    while more or open_streams:
        stream = slots[slot]
        if stream is None and more:
            stream = slots[slot] = next(streams, None)
            more = stream is not None
            open_streams += more
            continue
        if stream is not None:
            item = next(stream, _END)
            if item is not _END:
                yield item
            else:
                slots[slot] = None
                open_streams -= 1
        slot = (slot + 1) % cycle_length


def _buffered(records: Iterator[Record], size: int, rng: np.random.Generator) -> Iterator[Record]:
    """tf.data's shuffle buffer: hand out a random buffered element, refill its slot."""
    buffer: list[Record] = []
    for record in records:
        if len(buffer) < size:
            buffer.append(record)
            continue
        slot = int(rng.integers(size))
        buffer[slot], record = record, buffer[slot]
        yield record
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]
