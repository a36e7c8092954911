"""`torch.utils.data` datasets over one store version, read without TensorFlow.

    from torch.utils.data import DataLoader
    from rlstore.torch import TransitionDataset

    data = TransitionDataset("./store", "catch_logs@1", n_step=3, batch_size=256)
    for epoch in range(10):
        data.set_epoch(epoch)                     # a fresh shuffle each epoch, as with DistributedSampler
        for batch in DataLoader(data, batch_size=None, num_workers=2):
            batch["observation"], batch["reward"], ...   # torch tensors

Each dataset is an `IterableDataset` wrapping a `rlstore.numpy` reader, so rows, n-step returns,
sequence padding and masks are those of `rlstore.reading`. The rows are batched here, not by
the DataLoader (pass `batch_size=None` to it): collating row by row would cost far more than
reading. Under `DataLoader(num_workers=N)` every worker reads its own share of the episodes
(`rlstore.numpy.Share`), so one epoch yields every row exactly once across the workers; a
worker's last batch of an epoch may be short. The version is pinned when the dataset is made:
`NAME` means the latest version at that moment, for every epoch and every worker. With
`persistent_workers=True` (no new worker processes each epoch) every new pass over the
DataLoader reads the next epoch's shuffle by itself.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

from torch.utils.data import IterableDataset, get_worker_info

from rlstore import numpy as store_numpy
from rlstore.names import DatasetRef
from rlstore.numpy.readers import DEFAULT_SHUFFLE_BUFFER
from rlstore.numpy.records import Share
from rlstore.numpy.transforms import check_sequence_options, check_transition_options
from rlstore.store import Store
from rlstore.torch.handoff import handed_off, to_tensors


class VersionDataset(IterableDataset):
    """What every dataset here shares: the version pinned when it was made, the seed, the epoch,
    the DataLoader worker's share and the hand-off of its batches."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, seed: int):
        super().__init__()
        self.store = store if isinstance(store, Store) else Store(store)
        self.ref = self.store.resolve(ref)
        self.seed = seed
        self.epoch = 0
        self._iterations = 0  # of this copy since set_epoch: each one reads the next epoch

    def set_epoch(self, epoch: int) -> None:
        """Chooses the epoch whose shuffle the next iteration reads (same epoch, same order)."""
        self.epoch = epoch
        self._iterations = 0

    def _next_epoch(self) -> int:
        """The epoch this iteration reads. An object iterated again (num_workers=0, or
        `persistent_workers=True`, whose workers keep their copies) moves on by itself; fresh
        workers get a fresh copy each time, so with them `set_epoch` chooses the epoch."""
        epoch = self.epoch + self._iterations
        self._iterations += 1
        return epoch

    def _tensors(self, batches: Iterator[Any]) -> Iterator[Any]:
        """Tensors of each batch; in a DataLoader worker, in the form the hand-off is fastest for."""
        return map(handed_off if get_worker_info() is not None else to_tensors, batches)

    def _share(self) -> Share:
        worker = get_worker_info()
        return Share(worker.id, worker.num_workers) if worker is not None else Share()


class _StoreDataset(VersionDataset):
    """The datasets that read the version's shards anew each epoch, through `rlstore.numpy`."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, shuffle: bool, seed: int,
                 shuffle_buffer: int):
        super().__init__(store, ref, seed=seed)
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer

    def _options(self) -> dict[str, Any]:
        return {"shuffle": self.shuffle, "seed": self.seed, "shuffle_buffer": self.shuffle_buffer,
                "share": self._share(), "epoch": self._next_epoch(), "repeat": False}


class _BatchDataset(_StoreDataset):
    def __init__(self, store, ref, *, batch_size: int, shuffle: bool, seed: int, shuffle_buffer: int,
                 chunk_episodes: int | None):
        super().__init__(store, ref, shuffle=shuffle, seed=seed, shuffle_buffer=shuffle_buffer)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.chunk_episodes = chunk_episodes

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), "batch_size": self.batch_size, "chunk_episodes": self.chunk_episodes}


class TransitionDataset(_BatchDataset):
    """Batches of n-step transitions {observation, action, reward, discount, next_observation};
    `discount` includes gamma^m (see `rlstore.reading.transforms.episode_transitions`)."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, n_step: int = 1,
                 gamma: float = 0.99, batch_size: int = 256, shuffle: bool = True, seed: int = 0,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, chunk_episodes: int | None = None):
        super().__init__(store, ref, batch_size=batch_size, shuffle=shuffle, seed=seed,
                         shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes)
        check_transition_options(n_step, gamma)
        self.n_step = n_step
        self.gamma = gamma

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batches = store_numpy.transitions(self.store, self.ref, n_step=self.n_step, gamma=self.gamma,
                                          **self._options())
        return self._tensors(batches)


class SequenceDataset(_BatchDataset):
    """Batches of [batch, burn_in + length, ...] step sequences with `mask` and `is_demo`
    (see `rlstore.reading.transforms.episode_sequences`)."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, length: int, period: int,
                 burn_in: int = 0, is_demo: bool = False, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                 shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER, chunk_episodes: int | None = None):
        super().__init__(store, ref, batch_size=batch_size, shuffle=shuffle, seed=seed,
                         shuffle_buffer=shuffle_buffer, chunk_episodes=chunk_episodes)
        check_sequence_options(length, period, burn_in)
        self.length, self.period, self.burn_in, self.is_demo = length, period, burn_in, is_demo

    def __iter__(self) -> Iterator[dict[str, Any]]:
        batches = store_numpy.sequences(self.store, self.ref, length=self.length, period=self.period,
                                        burn_in=self.burn_in, is_demo=self.is_demo, **self._options())
        return self._tensors(batches)


class EpisodeDataset(_StoreDataset):
    """Whole RLDS episodes `{'steps': {field: [T, ...]}, **episode_metadata}`, one per item."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, shuffle: bool = True,
                 seed: int = 0, shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER):
        super().__init__(store, ref, shuffle=shuffle, seed=seed, shuffle_buffer=shuffle_buffer)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._tensors(store_numpy.episodes(self.store, self.ref, **self._options()))
