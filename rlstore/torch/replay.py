"""Replay-style `torch.utils.data` datasets: a version decoded once into RAM, sampled at random.

    from torch.utils.data import DataLoader
    from rlstore.torch import TransitionReplay

    replay = TransitionReplay("./store", "catch_logs@1", n_step=3, batch_size=256, seed=0)
    batch = replay.sample()                            # in this process, like TorchRL's buffer.sample()
    for batch in DataLoader(replay, batch_size=None, num_workers=2):   # endless unless `batches`
        ...

What TorchRL's `ReplayBuffer(LazyMemmapStorage, RandomSampler)` and d3rlpy's replay buffer do,
filled from a pinned store version: the rows (`rlstore.numpy.replay.Replay`, the epoch readers'
rows bit for bit: n-step returns, sequence masks, frame stacks) are decoded once, when the
dataset is made, into contiguous NumPy columns, and every batch is drawn uniformly with
replacement and gathered by index. The columns are built in the main process before the
DataLoader starts its workers, so forked workers share them (copy-on-write pages nobody
writes) instead of each holding a copy. Each worker draws from its own generator, seeded by
(seed, epoch, worker). Use the epoch datasets (`TransitionDataset`, ...) when the version does
not fit in memory, or when every row must come exactly once per epoch.
"""
from __future__ import annotations

import itertools
import os
from typing import Any, Iterator

import numpy as np

from rlstore.names import DatasetRef
from rlstore.numpy.replay import Replay
from rlstore.store import Store
from rlstore.torch.datasets import VersionDataset, to_tensors


class _ReplayDataset(VersionDataset):
    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, make: Any, *, batch_size: int,
                 seed: int, batches: int | None):
        super().__init__(store, ref, seed=seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if batches is not None and batches < 0:
            raise ValueError(f"batches must be at least 0, got {batches}")
        self.batch_size, self.batches = batch_size, batches
        self.replay: Replay = make(self.store, self.ref)
        self._generator = np.random.default_rng([seed, 1 << 32])

    @property
    def rows(self) -> int:
        """Rows held, each drawn with probability 1/rows. (No `__len__`: a DataLoader would take
        it for the number of batches.)"""
        return len(self.replay)

    def sample(self, batch_size: int | None = None) -> dict[str, Any]:
        """One batch drawn in this process (`batch_size` rows, the dataset's by default)."""
        return to_tensors(self.replay.sample(batch_size or self.batch_size, self._generator))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        share, epoch = self._share(), self._next_epoch()
        rng = np.random.default_rng([self.seed, epoch, share.index])
        if self.batches is None:
            count = None
        else:  # `batches` per pass over the DataLoader, split between its workers
            count = self.batches // share.count + (share.index < self.batches % share.count)
        draws = itertools.count() if count is None else range(count)
        return self._tensors(self.replay.sample(self.batch_size, rng) for _ in draws)


class TransitionReplay(_ReplayDataset):
    """Uniformly sampled batches of n-step transitions {observation, action, reward, discount,
    next_observation}, as `TransitionDataset` makes them; `batches` per pass (None: endless)."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, n_step: int = 1,
                 gamma: float = 0.99, batch_size: int = 256, seed: int = 0, batches: int | None = None):
        super().__init__(store, ref, lambda store, ref: Replay.transitions(store, ref, n_step=n_step, gamma=gamma),
                         batch_size=batch_size, seed=seed, batches=batches)


class SequenceReplay(_ReplayDataset):
    """Uniformly sampled batches of [batch, burn_in + length, ...] sequences with `mask` and
    `is_demo`, as `SequenceDataset` makes them; `batches` per pass (None: endless)."""

    def __init__(self, store: Store | str | os.PathLike, ref: str | DatasetRef, *, length: int, period: int,
                 burn_in: int = 0, is_demo: bool = False, batch_size: int = 32, seed: int = 0,
                 batches: int | None = None):
        super().__init__(store, ref, lambda store, ref: Replay.sequences(store, ref, length=length, period=period,
                                                                         burn_in=burn_in, is_demo=is_demo),
                         batch_size=batch_size, seed=seed, batches=batches)
