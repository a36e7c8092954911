"""Rows into a Reverb table: the one module that writes to Reverb (bulk loading, actors, write-back).

Every writer in rlstore inserts rows that are already whole items (an n-step transition, or a
whole sequence window), one step and one item per row. `RowWriter` does that through Reverb's
C++ TrajectoryWriter, called directly (`reverb.pybind`, Reverb's private binding): the public
Python `TrajectoryWriter` walks the item's structure and keeps history columns per step, which
costs more than Reverb spends inserting, and an item here never spans steps, so none of that is
needed (`benchmarks/serve_reverb.py` measures a bulk load against the public writer).
Rows are checked against the table's signature once per batch by the caller
(`rlstore.replay.loading.check_fits`) instead of per item by the writer.

Chunks are of constant length (transitions) or one whole window (sequences: an item is a single
squeezed cell of [span, ...], identical when sampled to a window of per-step cells). A writer
never waits for all its items to be confirmed until `flush` (that would drain its stream), only
until few are, which also keeps Reverb's "pending items" warning quiet.
"""
from __future__ import annotations

from typing import Sequence

from reverb import pybind

from rlstore.replay.tables import SEQUENCES, TRANSITIONS

CHUNK_LENGTH = {TRANSITIONS: 32, SEQUENCES: 1}  # cells per chunk (a sequence cell is a whole window)
FLUSH_EVERY, UNCONFIRMED = 32, 16  # so pending items stay < 50, where Reverb logs a warning every 10 items


class RowWriter:
    """One stream of items of one kind (`transitions` or `sequences` rows) to a server."""

    def __init__(self, address: str, kind: str):
        chunk = CHUNK_LENGTH[kind]
        self._writer = pybind.Client(address).NewTrajectoryWriter(pybind.ConstantChunkerOptions(chunk, chunk), False)
        self.written = 0

    def insert(self, table: str, priority: float, columns: Sequence[Sequence]) -> None:
        """One item per row of `columns` (the rows' flattened fields, each a sequence of cells)."""
        squeeze = [True] * len(columns)
        append, create, flush = self._writer.Append, self._writer.CreateItem, self._writer.Flush
        for index, row in enumerate(zip(*columns), self.written + 1):
            create(table, priority, [[cell] for cell in append(row)], squeeze)
            if index % FLUSH_EVERY == 0:
                flush(UNCONFIRMED, -1)
        self.written += len(columns[0]) if columns else 0

    def flush(self) -> None:
        """Waits until the server has confirmed every item written."""
        self._writer.Flush(0, -1)

    def close(self) -> None:
        self._writer.Close()
