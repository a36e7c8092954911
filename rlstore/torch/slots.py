"""Shared-memory slots that DataLoader workers fill with blocks of batches, so that only a slot
number crosses a worker's pipe.

A tensor sent from a worker the ordinary way gets a fresh shared-memory segment, whose file
descriptor the main process then fetches over a socket of its own: about 2 ms a block here, more
than drawing the block's 16,384 rows. `Slots` is shared memory made once, before the workers
start (forked workers inherit it; spawned ones receive it once): each worker owns `per_worker`
slots, writes a block into a free one and sends a `SlotBlock`, which the main process unpickles
straight into tensors viewing the slot. The slot is free again only when the last tensor viewing
it is gone (a finalizer on the array the tensors were made from), so a batch stays valid for as
long as anyone holds it. When all of a worker's slots are held, the block travels the ordinary
way instead: holding batches never stalls a worker.
"""
from __future__ import annotations

import itertools
import os
import weakref
from typing import Any

import torch

from rlstore.torch.handoff import Layout, layout_of, pack_into, to_packed_tensors, unpack

_IDS = itertools.count()
_MADE_HERE: "weakref.WeakValueDictionary[tuple[int, int], Slots]" = weakref.WeakValueDictionary()


class Slots:
    """`workers` x `per_worker` slots of `slot_bytes` each, in shared memory, and which are taken."""

    def __init__(self, workers: int, per_worker: int, slot_bytes: int):
        self.key = (os.getpid(), next(_IDS))
        self.workers, self.per_worker, self.slot_bytes = workers, per_worker, -(-slot_bytes // 8) * 8
        self.memory = torch.empty(workers * per_worker * self.slot_bytes, dtype=torch.uint8).share_memory_()
        self.taken = torch.zeros(workers * per_worker, dtype=torch.int32).share_memory_()
        _MADE_HERE[self.key] = self

    def hand_off(self, worker: int, tree: Any) -> Any:
        """In DataLoader worker `worker`: `tree` in a free slot of its own, as a `SlotBlock`; in
        fresh shared memory (`to_packed_tensors`) when it does not fit or no slot is free."""
        flat, layout, size = layout_of(tree)
        if size <= self.slot_bytes:
            taken = self.taken.numpy()
            for slot in range(worker * self.per_worker, (worker + 1) * self.per_worker):
                if not taken[slot]:
                    taken[slot] = 1  # freed by the main process once nothing views it
                    start = slot * self.slot_bytes
                    text = pack_into(self.memory.numpy()[start:start + size], flat, layout)
                    return SlotBlock(self.key, slot, size, layout, text)
        return to_packed_tensors(tree, shared=True)

    def view(self, slot: int, size: int) -> torch.Tensor:
        """In the main process: the slot's bytes as a tensor; the slot is freed when the last
        tensor sharing its memory is gone."""
        start = slot * self.slot_bytes
        array = self.memory.numpy()[start:start + size]  # one array per block: its lifetime is the tensors'
        weakref.finalize(array, self._free, slot)
        return torch.from_numpy(array)

    def _free(self, slot: int) -> None:
        self.taken.numpy()[slot] = 0


class SlotBlock:
    """A block written into a slot: what crosses the pipe is its slot number and layout."""

    def __init__(self, key: tuple[int, int], slot: int, size: int, layout: Layout, text: dict[str, Any]):
        self.key, self.slot, self.size, self.layout, self.text = key, slot, size, layout, text

    def __reduce__(self):
        return _from_slot, (self.key, self.slot, self.size, self.layout, self.text)


def _from_slot(key: tuple[int, int], slot: int, size: int, layout: Layout, text: dict[str, Any]) -> Any:
    """In the main process (where the slots were made): the block as tensors viewing its slot."""
    return unpack(_MADE_HERE[key].view(slot, size), layout, text)

