"""Frame-stacked versions in Reverb: every frame stored once on the server, stacks shared.

A version stored as single frames (`stack` = k in its schema, `rlstore.frames`) would, served as
ordinary items, put each frame into 2k or 3k stacked copies (an n-step transition holds the
stacks of o_t and o_{t+m}, DQfD's items also o_{t+1}; a sequence of L steps holds L·k frames).
Reverb items are references into chunks, so here each episode is appended to a TrajectoryWriter
ONCE, one step per frame, behind k-1 all-zero frames (Dopamine's start-of-episode padding), and
every item's stacked columns reference frame cells. Frames are compressed in chunks of
CHUNK_LENGTH consecutive frames, so the server keeps about a chunk's compressed bytes per frame,
and an item adds only its references.

- A transition's `observation`, `next_observation` (and `one_step_next_observation`) reference
  the k cells of their stack, sampled as [k, *frame_shape], frames oldest first (Reverb stacks a
  column's cells on a new leading axis); the signature's TensorSpec is named FRAMES_NAME.
- A sequence's `observation` is k columns, one per stack slot: slot j holds the j-th frame of
  each of the window's `span` steps, k x [span, *frame_shape], named FRAME_WINDOWS_NAME. Why not
  one column of span·k cells: Reverb's writer merges consecutive references into one chunk slice
  as if they were adjacent cells, so a column must run through cells in order; a slot does (step
  s's j-th frame is cell s + j). For the same reason a window running past the episode's end
  (mask 0) runs on into span-1 all-zero cells appended after the episode's frames; its stacks
  there are zeroed by mask when sampled, as the readers give all-zero stacks on padding.

`rlstore.replay.sample_dataset` turns both into the readers' stacks ([..., *frame_shape, k],
[..., span, *frame_shape, k]); a raw `reverb.TrajectoryDataset` sees the frames as stored. The
other fields of an item are cells appended with the step it starts from (one squeezed cell per
field: a transition's scalars, a sequence's [span, ...] windows), made by the readers' own
`episode_transitions` and `episode_sequences` over step indices, so items equal
`rlstore.reading.transitions` and `rlstore.reading.sequences` rows.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import tree

import tensorflow as tf
from reverb import pybind

from rlstore.reading.transforms import episode_sequences, episode_transitions
from rlstore.replay.tables import (FRAME_WINDOWS_NAME, FRAMES_NAME, TRANSITIONS, Layout, over_budget,
                                   with_core_state, with_one_step)

STACKED_FIELDS = ("observation", "next_observation", "one_step_next_observation")
CHUNK_LENGTH = 32  # consecutive frames compressed together
FLUSH_EVERY = 8  # steps between waits for the server's confirmations (keeps few items pending)

_transitions = tf.function(episode_transitions, reduce_retracing=True)
_sequences = tf.function(episode_sequences, reduce_retracing=True)


def frames_last(signature: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Sampled items (or batches of them) with every stacked field as the readers' stacks:
    [..., *frame_shape, k] for a transition's, [..., span, *frame_shape, k] for a sequence's."""
    moved = dict(data)
    for key, spec in signature.items():
        if getattr(spec, "name", None) == FRAMES_NAME:  # [..., k, *S]: the frame axis after any batch axes
            value = data[key]
            axis = value.shape.rank - spec.shape.rank
            moved[key] = tf.transpose(value, [*range(axis), *range(axis + 1, value.shape.rank), axis])
        elif isinstance(spec, tuple) and spec and getattr(spec[0], "name", None) == FRAME_WINDOWS_NAME:
            stacks = tf.stack(list(data[key]), axis=-1)  # k x [..., span, *S] -> [..., span, *S, k]
            real = tf.reshape(data["mask"] > 0, tf.concat([tf.shape(data["mask"]), [1] * (spec[0].shape.rank)], 0))
            moved[key] = tf.where(real, stacks, tf.zeros_like(stacks))
    return moved


def is_stacked(signature: Any) -> bool:
    return any(getattr(spec, "name", None) in (FRAMES_NAME, FRAME_WINDOWS_NAME) for spec in tree.flatten(signature))


def episode_rows(steps: Mapping[str, Any], layout: Layout, table: str = TRANSITIONS) -> dict[str, Any]:
    """One episode's rows of `table` with step indices in place of observations, as numpy arrays.
    Transitions: for row t, `observation` = t and `next_observation` = t + m (and
    `one_step_next_observation` = t + 1). Sequences: `observation` [rows, span] holds the steps
    of each window (0 where `mask` is 0), the other fields as `rlstore.reading.sequences` gives
    them (with the layout's `core_state`)."""
    indexed = {**steps, "observation": np.arange(len(steps["is_first"]), dtype=np.int64)}
    if table != TRANSITIONS:
        rows = _sequences(indexed, layout.sequence_length, layout.sequence_period, layout.burn_in, layout.is_demo)
        return with_core_state(tree.map_structure(lambda tensor: tensor.numpy(), rows), layout)
    rows = _transitions(indexed, layout.n_step, layout.gamma)
    if layout.one_step:
        rows = with_one_step(rows, _transitions(indexed, 1, layout.gamma))
    return tree.map_structure(lambda tensor: tensor.numpy(), rows)


class FrameSharingWriter:
    """Items of whole episodes into one table, each frame appended once (see module doc)."""

    def __init__(self, address: str, table: str, layout: Layout, frame_stack: int, priority: float):
        # Items are made once their last frame is in; the oldest cell one needs is a window back.
        reach = frame_stack + max(layout.n_step, layout.span) + 1
        self._writer = pybind.Client(address).NewTrajectoryWriter(
            pybind.ConstantChunkerOptions(CHUNK_LENGTH, max(CHUNK_LENGTH, reach)), False)
        self._table, self._k, self._priority = table, frame_stack, priority
        # The newest items may reference chunks still filling up; a flush leaves that many
        # unsent, so it never cuts a chunk short (which would compress frames worse).
        self._open_items = CHUNK_LENGTH + reach
        self.written = 0

    def add_episode(self, frames: np.ndarray, rows: Mapping[str, Any]) -> None:
        """Appends the episode's frames [T, *S] and creates one item per row of `rows`
        (`episode_rows`: observations as step indices, [rows] or, for sequences, [rows, span])."""
        k, append, create = self._k, self._writer.Append, self._writer.CreateItem
        stacked = sorted(key for key in STACKED_FIELDS if key in rows)
        other = sorted(key for key in rows if key not in STACKED_FIELDS)
        leaves = [np.asarray(leaf) for key in other for leaf in tree.flatten(rows[key])]
        sources = {key: np.asarray(rows[key], np.int64) for key in stacked}
        windows = sources["observation"].ndim == 2  # sequences: [rows, span] step indices
        starts = sources["observation"][:, 0] if windows else sources["observation"]  # where a row's cells go
        span = sources["observation"].shape[1] if windows else 0
        row_at = dict(zip(starts.tolist(), range(len(starts))))
        # A row is complete once the last frame it references is in: a stack of step s ends at
        # cell s + k - 1 of the padded frames (appended step s); a window at step start + span - 1.
        needed = starts + span - 1 if windows else np.max(np.stack(list(sources.values())), axis=0)
        ready = [(int(needed[row]), int(row)) for row in np.argsort(needed, kind="stable")]
        zeros = np.zeros_like(frames[0])
        frame_refs = [append([zeros] + [None] * len(leaves))[0] for _ in range(k - 1)]
        other_refs: dict[int, list[Any]] = {}
        # Columns in the signature's flattening order (keys sorted): a leaf index into a row's
        # other cells, or the stacked field whose frame references make the column(s).
        plan: list[int | str] = []
        for key in sorted(rows):
            if key in other:
                first = sum(len(tree.flatten(rows[before])) for before in other if before < key)
                plan.extend(range(first, first + len(tree.flatten(rows[key]))))
            else:
                plan.append(key)
        squeeze = [isinstance(part, int) for part in plan for _ in range(k if windows and isinstance(part, str) else 1)]
        made = 0
        trailing = [zeros] * (span - 1)  # the cells windows past the episode's end run on into
        for step, frame in enumerate([*frames, *trailing]):
            row = row_at.get(step)
            cells = append([frame] + ([leaf[row] for leaf in leaves] if row is not None else [None] * len(leaves)))
            frame_refs.append(cells[0])
            if row is not None:
                other_refs[row] = cells[1:]
            while made < len(ready) and ready[made][0] <= step:
                row = ready[made][1]
                columns = []
                for part in plan:
                    if isinstance(part, int):
                        columns.append([other_refs[row][part]])
                    elif windows:  # slot j: the j-th frame of each step's stack, cells start + j, + j + 1, ...
                        start = int(starts[row])
                        columns.extend(frame_refs[start + j:start + j + span] for j in range(k))
                    else:
                        end = int(sources[part][row])
                        columns.append(frame_refs[end:end + k])
                create(self._table, self._priority, columns, squeeze)
                made += 1
            if step % FLUSH_EVERY == FLUSH_EVERY - 1:
                self._writer.Flush(self._open_items, -1)
        self._writer.EndEpisode(True, None)  # finalizes the episode's last chunks
        self.written += made

    def flush(self) -> None:
        self._writer.Flush(0, -1)

    def close(self) -> None:
        self._writer.Close()


def load_stacked(address: str, table: str, layout: Layout, frame_stack: int, priority: float,
                 episodes: Iterable[Mapping[str, Any]], budget: int,
                 on_episode: Callable[[int], None] | None = None, kind: str = TRANSITIONS) -> int:
    """Inserts the `kind` rows (transitions or sequences) of `episodes` (RLDS step dicts of numpy
    arrays, single frames) into `table`; returns the number of items. Refuses (before writing)
    to pass `budget` items."""
    writer = FrameSharingWriter(address, table, layout, frame_stack, priority)
    try:
        for steps in episodes:
            rows = episode_rows(steps, layout, kind)
            if writer.written + len(rows["action"]) > budget:
                raise over_budget(table, budget)
            writer.add_episode(np.asarray(steps["observation"]), rows)
            if on_episode:
                on_episode(writer.written)
        writer.flush()
    finally:
        writer.close()
    return writer.written
