"""Replay-style `torch.utils.data` datasets: a version decoded once into RAM, sampled at random.

    from torch.utils.data import DataLoader
    from rlstore.torch import TransitionReplay

    replay = TransitionReplay("./store", "catch_logs@1", n_step=3, batch_size=256, seed=0)
    batch = replay.sample()                            # in this process, like TorchRL's buffer.sample()
    for batch in replay.loader(num_workers=2):         # 2 DataLoader workers; endless unless `batches`
        ...
    for batch in DataLoader(replay, batch_size=None, num_workers=2):   # the same batches, slower
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

Sampling a batch of small rows costs a worker less than handing it to the main process (a
DataLoader manages about 1,000 hand-offs a second here), so `replay.loader()` (a
`ReplayLoader`, a real DataLoader inside) has each worker draw `block` batches at once into a
shared-memory slot made before the workers start (`rlstore.torch.slots`), sends only the slot's
number, and splits the block back into batches in the main process: per worker, the very
batches `DataLoader(replay, ...)` would give, several times faster.
"""
from __future__ import annotations

import itertools
import os
from typing import Any, Iterable, Iterator

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from rlstore.names import DatasetRef
from rlstore.numpy.replay import Replay
from rlstore.store import Store
from rlstore.torch.datasets import VersionDataset
from rlstore.torch.handoff import layout_of, to_tensors, unblock
from rlstore.torch.slots import Slots


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

    def loader(self, *, num_workers: int = 2, block: int | None = None, **options: Any) -> "ReplayLoader":
        """Batches from a `DataLoader(num_workers=...)` whose workers hand off `block` batches at
        once (see `ReplayLoader`); `options` go to the DataLoader."""
        return ReplayLoader(self, num_workers=num_workers, block=block, **options)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng, count = self._pass()
        draws = itertools.count() if count is None else range(count)
        return self._tensors(self.replay.sample(self.batch_size, rng) for _ in draws)

    def _pass(self) -> tuple[np.random.Generator, int | None]:
        """(this worker's generator for this pass, its number of batches: None for endless)."""
        share, epoch = self._share(), self._next_epoch()
        rng = np.random.default_rng([self.seed, epoch, share.index])
        if self.batches is None:
            return rng, None
        # `batches` per pass over the DataLoader, split between its workers
        return rng, self.batches // share.count + (share.index < self.batches % share.count)

    def _blocks(self, block: int, slots: Slots | None) -> Iterator[Any]:
        """This worker's batches `block` at a time, each block's rows drawn at once (the same
        draws, so the same rows, as one batch at a time); in a DataLoader worker, handed off
        through `slots`."""
        rng, count = self._pass()
        if count is None:
            sizes: Iterable[int] = itertools.repeat(block)
        else:
            sizes = [block] * (count // block) + ([count % block] if count % block else [])
        worker = get_worker_info()
        for size in sizes:
            rows = self.replay.sample(size * self.batch_size, rng)
            yield to_tensors(rows) if worker is None or slots is None else slots.hand_off(worker.id, rows)

    def block_bytes(self, batches: int) -> int:
        """Bytes of a block of `batches` batches, packed (`rlstore.torch.handoff`)."""
        return layout_of(self.replay.rows(np.zeros(batches * self.batch_size, np.int64)))[2]


class _Blocks(IterableDataset):
    """What `ReplayLoader`'s DataLoader iterates: blocks of a replay dataset's batches, and the
    shared-memory slots its workers hand them off through."""

    def __init__(self, replay: _ReplayDataset, block: int):
        super().__init__()
        self.replay, self.block = replay, block
        self.slots: Slots | None = None

    def __iter__(self) -> Iterator[Any]:
        return self.replay._blocks(self.block, self.slots)


class ReplayLoader:
    """Batches of a replay dataset served by a real `torch.utils.data.DataLoader` (`.dataloader`)
    whose workers each draw `block` batches at once and hand each block off as one shared-memory
    slot (`rlstore.torch.slots`): only the slot's number crosses the worker's pipe. Iterating
    splits every block back into batches of the dataset's `batch_size`.

    Per worker these are the batches `DataLoader(replay, batch_size=None, ...)` yields, in the
    same order (workers take turns block by block instead of batch by batch), with the same
    seeds, `batches` and epochs. Each batch is a view into its block's slot, which is written
    again only once no batch of it is held: a batch stays valid as long as it is held, and
    holding one keeps its whole block (`clone()` a batch to keep it alone). `block` defaults to
    as many batches as fit in `BLOCK_BYTES`, at most `MAX_BLOCK`; each worker owns
    `prefetch_factor + SPARE_SLOTS` slots of one block each. `options` go to the DataLoader
    (`pin_memory`, `persistent_workers`, `prefetch_factor` (in blocks), ...); it batches
    nothing itself.
    """

    BLOCK_BYTES = 1 << 20
    MAX_BLOCK = 64
    SPARE_SLOTS = 2  # beyond the blocks in flight: the one being read, and one being written

    def __init__(self, replay: _ReplayDataset, *, num_workers: int = 2, block: int | None = None, **options: Any):
        taken = sorted({"batch_size", "collate_fn", "sampler", "batch_sampler", "shuffle", "drop_last"} & set(options))
        if taken:
            raise TypeError(f"ReplayLoader batches rows itself, so it takes no {', '.join(taken)}: "
                            "transform each batch as you iterate")
        if block is not None and block < 1:
            raise ValueError(f"block must be at least 1 batch, got {block}")
        self.replay = replay
        self.block = block or max(1, min(self.MAX_BLOCK, self.BLOCK_BYTES // max(1, replay.block_bytes(1))))
        self._blocks = _Blocks(replay, self.block)
        self.dataloader = DataLoader(self._blocks, batch_size=None, num_workers=num_workers, **options)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        loader = self.dataloader
        if loader.num_workers and (self._blocks.slots is None or not loader.persistent_workers):
            # new workers start with this pass and get new slots; kept workers keep theirs
            self._blocks.slots = Slots(loader.num_workers, (loader.prefetch_factor or 2) + self.SPARE_SLOTS,
                                       self.replay.block_bytes(self.block))
        _slots = self._blocks.slots  # alive while this pass's blocks may still arrive
        for block in loader:
            yield from unblock(block, self.replay.batch_size)


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
