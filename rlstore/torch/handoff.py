"""How batches become tensors, and how a DataLoader worker hands them to the main process.

A worker pickles what it yields into its result queue, and every tensor storage in it travels
through a shared-memory segment of its own, whose set-up costs far more than copying a small
batch. A DataLoader manages about 1,000 such hand-offs a second on this machine, fewer than
the batches of small rows one worker can sample. So:
  * a batch under `PipeBatch.PIPE_BYTES` is a `PipeBatch`: an ordinary dict of tensors (what a
    user's `collate_fn` sees) that pickles as ONE byte string down the worker's pipe and is
    unpickled straight into tensors (about 3x the batches/s of a segment each);
  * a larger batch is packed (`to_packed_tensors`): every numeric leaf a view into one buffer,
    one segment per batch instead of one per tensor;
  * replay samples travel in blocks (`rlstore.torch.ReplayLoader`): the rows of many batches
    written into a shared-memory slot made beforehand (`rlstore.torch.slots`), one small
    message for all of them, split back into batch views by `unblock`.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from rlstore.nest import flatten, unflatten
from rlstore.numpy.transforms import map_tree

_TORCH_DTYPES = {np.dtype(name): getattr(torch, name) for name in
                 ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")}

Layout = dict[str, tuple[torch.dtype, tuple[int, ...], int, int]]  # leaf -> (dtype, shape, start, stop)


def to_tensors(tree: Any) -> Any:
    """Numeric arrays as tensors (sharing memory where NumPy allows); text stays NumPy `bytes`."""
    def convert(leaf: np.ndarray) -> Any:
        leaf = np.asarray(leaf)
        if leaf.dtype == object:
            return leaf
        return torch.from_numpy(leaf if leaf.flags.writeable else leaf.copy())

    return map_tree(convert, tree)


def layout_of(tree: Any) -> tuple[dict[str, np.ndarray], Layout, int]:
    """(the leaves by flat key; where each numeric leaf lies in one buffer, 8-byte aligned so
    every dtype's view is aligned; the buffer's size)."""
    flat = {key: np.asarray(leaf) for key, leaf in flatten(tree).items()}
    layout: Layout = {}
    size = 0
    for key, leaf in flat.items():
        if leaf.dtype != object:
            start = -(-size // 8) * 8
            size = start + leaf.nbytes
            layout[key] = (_TORCH_DTYPES.get(leaf.dtype) or torch.from_numpy(leaf[:0]).dtype, leaf.shape, start, size)
    return flat, layout, size


def pack_into(buffer: np.ndarray, flat: dict[str, np.ndarray], layout: Layout) -> dict[str, Any]:
    """Copies the numeric leaves into `buffer`; returns the text leaves, kept as they are."""
    for key, (_, _, start, stop) in layout.items():
        buffer[start:stop] = np.ascontiguousarray(flat[key]).reshape(-1).view(np.uint8)
    return {key: leaf for key, leaf in flat.items() if key not in layout}


def unpack(buffer: torch.Tensor, layout: Layout, text: dict[str, Any]) -> Any:
    """The packed tree, every numeric leaf a tensor viewing `buffer`."""
    out = dict(text)
    for key, (dtype, shape, start, stop) in layout.items():
        out[key] = buffer[start:stop].view(dtype).view(shape)
    return unflatten(out)


def to_packed_tensors(tree: Any, *, shared: bool = False) -> Any:
    """Like `to_tensors`, but every numeric leaf is a view into ONE byte buffer, so a DataLoader
    worker hands the batch over through one shared-memory segment. `shared`: the buffer is
    made in shared memory, saving the copy into a segment when it is pickled."""
    flat, layout, size = layout_of(tree)
    buffer = torch.empty(size, dtype=torch.uint8)
    if shared and size:
        buffer.share_memory_()
    text = pack_into(buffer.numpy(), flat, layout)
    return unpack(buffer, layout, text)


def _from_bytes(data: bytes, layout: Layout, text: dict[str, Any]) -> Any:
    buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    return unpack(buffer, layout, text)


class PipeBatch(dict):
    """A batch of tensors, a plain dict to whoever looks at it (a user's `collate_fn` included),
    that a DataLoader worker sends down its pipe as one byte string; the main process unpickles
    it straight into a plain dict of tensors. A `collate_fn` that returns a new dict gets the
    ordinary hand-off instead."""

    PIPE_BYTES = 1 << 20

    def __reduce__(self):
        flat, layout, size = layout_of(self)
        buffer = np.empty(size, np.uint8)
        text = pack_into(buffer, flat, layout)
        return _from_bytes, (buffer.tobytes(), layout, text)

    def __copy__(self) -> "PipeBatch":  # DataLoader's default_convert copies each dict it gets
        return PipeBatch(self)


def handed_off(tree: dict[str, Any]) -> dict[str, Any]:
    """A worker's batch as tensors, in the form that reaches the main process fastest."""
    size = sum(np.asarray(leaf).nbytes for leaf in flatten(tree).values())
    return PipeBatch(to_tensors(tree)) if size < PipeBatch.PIPE_BYTES else to_packed_tensors(tree)


def rows_in(tree: Any) -> int:
    """Rows of a batch: the length of its leaves."""
    return len(next(iter(flatten(tree).values())))


def unblock(block: Any, batch_size: int) -> Iterator[Any]:
    """The batches of `batch_size` rows a block holds, each leaf a view into the block's leaf
    (the block's memory lives as long as one of its batches does). Every leaf is split once, so
    a batch costs one small dict, not a slicing of every leaf."""
    pieces = _split(block, batch_size)
    for number in range(-(-rows_in(block) // batch_size)):
        yield _piece(pieces, number)


def _split(tree: Any, batch_size: int) -> Any:
    if isinstance(tree, dict):
        return {key: _split(value, batch_size) for key, value in tree.items()}
    if isinstance(tree, torch.Tensor):
        return tree.split(batch_size)
    return [tree[start:start + batch_size] for start in range(0, len(tree), batch_size)]


def _piece(pieces: Any, number: int) -> Any:
    if isinstance(pieces, dict):
        return {key: _piece(value, number) for key, value in pieces.items()}
    return pieces[number]
