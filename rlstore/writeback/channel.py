"""The actor-to-worker channel: small messages on a pipe, array bytes through shared memory.

Why: moving a flush's arrays through a pipe costs the kernel over 1 ns per byte on this kind of
(virtualised) machine: ~300 ns per Catch step, as much as all the rest of a flush. Copying them
into shared memory costs a few hundredths of that. So a message is encoded by `rlstore.wire`
(JSON, never pickle), its arrays' bytes are copied into one of `SLOTS` slots of a shared memory
region, and the pipe carries only the JSON and the buffers' sizes. The worker copies the
buffers out and hands the slot back by writing one byte on a second pipe, which the actor reads
only when it has no free slot left: that is also the channel's backpressure. Slots are used and
handed back in order, because the worker reads messages in order. A message whose buffers do not
fit in a slot goes through the pipe whole.
"""
from __future__ import annotations

import json
import mmap
import os
import tempfile
from multiprocessing.connection import Connection
from typing import Any

from rlstore import wire

SLOTS = 8
SLOT_BYTES = 1 << 20  # 1,024 steps of observations up to ~1 KiB each


def shared_region() -> tuple[int, mmap.mmap]:
    """A file descriptor of `SLOTS * SLOT_BYTES` bytes of shared memory, and its mapping. The
    descriptor is what the worker inherits; pages are only allocated once written."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("rlstore-writeback", os.MFD_CLOEXEC)
    else:  # not Linux: an unlinked temporary file
        with tempfile.NamedTemporaryFile(delete=False) as handle:
            fd = os.dup(handle.fileno())
        os.unlink(handle.name)
    os.ftruncate(fd, SLOTS * SLOT_BYTES)
    return fd, mmap.mmap(fd, SLOTS * SLOT_BYTES)


class ChannelClosed(Exception):
    """The other end is gone."""


class Sender:
    """The actor's end: `send(message)`, `close()`. It owns the pipe ends and the mapping."""

    def __init__(self, connection: Connection, region: mmap.mmap, returned_slots: int):
        self._connection = connection
        self._mapping = region
        self._region = memoryview(region)
        self._returned = returned_slots  # read end of the worker's slot hand-backs
        self._free = SLOTS
        self._next = 0

    @property
    def closed(self) -> bool:
        return self._connection.closed

    def send(self, message: Any) -> None:
        """Sends `message`; blocks while every slot is in use. Raises ChannelClosed or OSError
        if the worker is gone."""
        header, views = wire.encode(message)
        sizes = [view.nbytes for view in views]
        slot = None
        if views and sum(sizes) <= SLOT_BYTES:
            slot = self._take_slot()
            offset = slot * SLOT_BYTES
            for view in views:
                self._region[offset:offset + view.nbytes] = view
                offset += view.nbytes
            views = []
        meta = json.dumps({"slot": slot, "sizes": sizes}).encode()
        self._connection.send_bytes(wire.pack([meta, header, *views]))

    def close(self) -> None:
        if not self.closed:
            self._connection.close()
            self._region.release()
            self._mapping.close()
            os.close(self._returned)

    def _take_slot(self) -> int:
        if not self._free:
            returned = os.read(self._returned, SLOTS)
            if not returned:
                raise ChannelClosed("the worker is gone")
            self._free += len(returned)
        self._free -= 1
        slot, self._next = self._next, (self._next + 1) % SLOTS
        return slot


class Receiver:
    """The worker's end: `recv()`."""

    def __init__(self, connection: Connection, region: mmap.mmap, returned_slots: int):
        self._connection = connection
        self._region = memoryview(region)
        self._returned = returned_slots  # write end of the slot hand-backs

    def recv(self) -> Any:
        """The next message; raises EOFError once the actor has closed the channel."""
        meta, header, *inline = wire.unpack(self._connection.recv_bytes())
        meta = json.loads(bytes(meta))
        if meta["slot"] is None:
            return wire.decode(bytes(header), [bytearray(buffer) for buffer in inline])
        offset, buffers = meta["slot"] * SLOT_BYTES, []
        for size in meta["sizes"]:
            buffers.append(bytearray(self._region[offset:offset + size]))
            offset += size
        os.write(self._returned, b"\0")
        return wire.decode(bytes(header), buffers)
