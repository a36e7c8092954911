"""The Reverb side of write-back: rows of finished episodes into the tables of a layout.

Rows come from the functions the readers and the bulk loader use
(`rlstore.reading.transforms.episode_transitions` / `episode_sequences`), and items are built
the way the loader builds them, by the same writer (`rlstore.replay.writing.RowWriter`): each
row one step and one item of squeezed cells.
So an item written back by an actor is indistinguishable from one loaded from the store, and
one table can hold both. Each call handles all the episodes a batch finished at once, with one
traced TF call per table and one flush, so per-episode overhead stays small.

With `frame_stack` k > 1 (an `atari:` env's actors) the episodes' observations are single frames:
each episode's frames are appended once and its transitions reference the k frames of each
stack (`rlstore.replay.stacked.FrameSharingWriter`, which serves stored frame-stacked versions),
so items written back equal items loaded from the write-back version (transitions and
sequences alike).

Sequence items of a layout with `core_state_shapes` carry the recurrent state the actor recorded
with each window's first step (its adder's extras), or zeros when the steps carry none, exactly
as loaded items do (`rlstore.replay.tables.with_core_state`).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Mapping, Sequence

import numpy as np
import tree

import tensorflow as tf

from rlstore.reading.transforms import episode_sequences, episode_transitions
from rlstore.replay.loading import check_fits
from rlstore.replay.stacked import STACKED_FIELDS, FrameSharingWriter, episode_rows, is_stacked
from rlstore.replay.tables import TRANSITIONS, Layout, ReplayError, with_core_state, with_one_step
from rlstore.replay.writing import RowWriter

_CONNECT_SECONDS = 30

# Traced once per table and input structure; batches of any length reuse the trace.
_transitions = tf.function(episode_transitions, reduce_retracing=True)
_sequences = tf.function(episode_sequences, reduce_retracing=True)


def layout_rows(steps: Mapping[str, Any], layout: Layout, table: str) -> dict[str, Any]:
    """The items `table` of `layout` gets from whole episodes' steps, as numpy arrays."""
    if table == TRANSITIONS:
        rows = _transitions(dict(steps), layout.n_step, layout.gamma)
        if layout.one_step:  # the n=1 rows of the same steps, in the same order (as the bulk loader adds them)
            rows = with_one_step(rows, _transitions(dict(steps), 1, layout.gamma))
    else:
        rows = _sequences(dict(steps), layout.sequence_length, layout.sequence_period, layout.burn_in,
                          layout.is_demo)
    rows = tree.map_structure(lambda tensor: tensor.numpy(), rows)
    return rows if table == TRANSITIONS else with_core_state(rows, layout)


class ReplayInserter:
    """Inserts the rows of finished episodes into every table of `layout` on one server; `into`
    names the server's table a kind of rows goes to (e.g. {"sequences": "agent_sequences"});
    `frame_stack` k > 1: the episodes hold single frames, served as stacks of k (module doc)."""

    def __init__(self, address: str, layout: Layout, into: Mapping[str, str] | None = None, frame_stack: int = 1):
        import reverb

        try:
            tables = reverb.Client(address).server_info(timeout=_CONNECT_SECONDS)
        except (reverb.errors.DeadlineExceededError, RuntimeError) as error:
            raise ReplayError(f"cannot reach a Reverb server at {address}: {error}") from None
        self._names = {kind: (into or {}).get(kind, kind) for kind in layout.tables}
        missing = [name for name in self._names.values() if name not in tables]
        if missing:
            raise ReplayError(f"the Reverb server at {address} has no table {missing[0]!r} "
                              f"(it has: {', '.join(sorted(tables)) or 'none'})")
        self._layout = layout
        self._signatures = {kind: tables[name].signature for kind, name in self._names.items()}
        self.frame_stack = frame_stack
        self.inserted = {name: 0 for name in self._names.values()}
        if frame_stack > 1:
            self._stacked = {kind: self._frame_sharing_writer(address, kind, frame_stack) for kind in layout.tables}
            return
        # Items are checked against the signature once per batch, not per item by the writer.
        self._writers = {kind: RowWriter(address, kind) for kind in layout.tables}

    def _frame_sharing_writer(self, address: str, kind: str, frame_stack: int) -> FrameSharingWriter:
        name, table_signature = self._names[kind], self._signatures[kind]
        if table_signature is not None and not is_stacked(table_signature):
            raise ReplayError(f"table {name!r} holds whole observations; these episodes' observations are "
                              f"stacks of {frame_stack} frames stored once (make it with a frame-stacked signature)")
        return FrameSharingWriter(address, name, self._layout, frame_stack,
                                  self._layout.table_options(kind).initial_priority)

    def add(self, episodes: Sequence[Mapping[str, Any]]) -> None:
        """Inserts the rows of these finished episodes (their step dicts) and waits for the server."""
        if not episodes:
            return
        steps = tree.map_structure(lambda *columns: np.concatenate(columns), *episodes)
        if self.frame_stack > 1:
            self._add_stacked(steps)
            return
        for kind, writer in self._writers.items():
            name = self._names[kind]
            rows = layout_rows(steps, self._layout, kind)
            if self._signatures[kind] is not None:
                rows = without_unheld_text(rows, self._signatures[kind])
                check_fits(rows, self._signatures[kind], f"the episodes' rows do not fit table {name!r}")
            columns = tree.flatten(rows)
            writer.insert(name, self._layout.table_options(kind).initial_priority, columns)
            writer.flush()
            self.inserted[name] += len(columns[0])

    def _add_stacked(self, steps: Mapping[str, Any]) -> None:
        """Each episode's frames once, and items referencing them (`FrameSharingWriter`)."""
        starts = np.flatnonzero(steps["is_first"]).tolist() + [len(steps["is_first"])]
        for kind, writer in self._stacked.items():
            name = self._names[kind]
            for start, end in zip(starts, starts[1:]):
                episode = tree.map_structure(lambda column: column[start:end], dict(steps))
                frames = np.asarray(episode["observation"])
                rows = episode_rows(episode, self._layout, kind)
                table_signature = self._signatures[kind]
                if table_signature is not None:
                    check_fits({key: value for key, value in rows.items() if key not in STACKED_FIELDS},
                               {key: spec for key, spec in table_signature.items() if key not in STACKED_FIELDS},
                               f"the episodes' rows do not fit table {name!r}")
                    held = tree.flatten(table_signature["observation"])[0]  # [k or span, *frame_shape]
                    if (tf.as_dtype(frames.dtype), list(frames.shape[1:])) != (held.dtype, held.shape[1:].as_list()):
                        raise ReplayError(f"the episodes' frames are {frames.dtype}{list(frames.shape[1:])}, table "
                                          f"{name!r} holds {held.dtype.name}{held.shape[1:].as_list()} frames")
                writer.add_episode(frames, rows)
                self.inserted[name] += len(rows["action"])
            writer.flush()

    def close(self) -> None:
        for writer in (self._stacked if self.frame_stack > 1 else self._writers).values():
            writer.close()


def without_unheld_text(rows: dict[str, Any], signature: Mapping[str, Any]) -> dict[str, Any]:
    """`rows` without the text keys of dict observations that the table's signature does not
    hold. Actors record the env's observations as they are (MiniGrid's mission too, so the
    store keeps it), while an agent's table is made for what its network reads."""
    fitted = dict(rows)
    for field, value in rows.items():
        held = signature.get(field)
        if isinstance(value, Mapping) and isinstance(held, Mapping):
            fitted[field] = {key: leaf for key, leaf in value.items()
                             if key in held or np.asarray(leaf).dtype.kind not in "OSU"}
    return fitted


class BackgroundInserter:
    """A `ReplayInserter` on a thread of its own, fed through a bounded queue.

    Why: most of an insert is waiting for Reverb (its C++ calls release the GIL), and the
    store's encoding and commits need not wait with it. Batches that queue up while one is being
    inserted go in together, in one pass. The queue keeps backpressure: when Reverb falls
    `max_queued` batches behind, `add` blocks. An insert that fails is raised by the next `add`
    or by `close`.
    """

    def __init__(self, inserter: ReplayInserter, max_queued: int = 8):
        self._inserter = inserter
        self._queue: queue.Queue = queue.Queue(max_queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="replay-insert", daemon=True)
        self._thread.start()

    @property
    def inserted(self) -> dict[str, int]:
        return self._inserter.inserted

    def add(self, steps: Mapping[str, Any]) -> None:
        """Queues the rows of these episodes' concatenated steps for insertion."""
        self._raise_failure()
        self._queue.put(steps)

    def close(self) -> None:
        """Waits until every queued row is inserted and confirmed, then closes the writers."""
        self._queue.put(None)
        self._thread.join()
        self._raise_failure()
        self._inserter.close()

    def _run(self) -> None:
        closing = False
        while not closing:
            batches = [self._queue.get()]
            while not self._queue.empty():  # whatever piled up goes in one pass: rows are made by
                batches.append(self._queue.get())  # one TF call (~1 ms however many) per table
            closing = batches[-1] is None
            batches = [steps for steps in batches if steps is not None]
            if batches and self._error is None:  # after a failure, only drain: add() never blocks for good
                try:
                    self._inserter.add(batches)
                except BaseException as error:  # noqa: BLE001  (handed to the caller's thread)
                    self._error = error

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error
