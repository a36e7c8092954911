"""Frame-stacked versions in Reverb: every frame stored once on the server, stacks shared.

A version stored as single frames (`stack` = k in its schema, `rlstore.frames`) would, served as
ordinary items, put each frame into 2k or 3k stacked copies (an n-step transition holds the
stacks of o_t and o_{t+m}, DQfD's items also o_{t+1}). Reverb items are references into chunks,
so here each episode is appended to a TrajectoryWriter ONCE, one step per frame, behind k-1
all-zero frames (Dopamine's start-of-episode padding), and every item's `observation`,
`next_observation` (and `one_step_next_observation`) column references the k frame cells of its
stack. Frames are compressed in chunks of CHUNK_LENGTH consecutive frames, so the server keeps
about a chunk's compressed bytes per frame, and an item adds only its few references.

A stacked field of an item is sampled as [k, *frame_shape], frames oldest first (Reverb stacks a
column's cells on a new leading axis); its signature's TensorSpec is named FRAMES_NAME, and
`rlstore.replay.sample_dataset` moves the frame axis last, so learners get the readers'
[*frame_shape, k] stacks (a raw `reverb.TrajectoryDataset` sees [k, *frame_shape]).
The other fields are one squeezed cell of the step the transition starts from, made by the
readers' own `episode_transitions` over step indices, so rows equal `rlstore.reading.transitions`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import tree

import tensorflow as tf
from reverb import pybind

from rlstore.reading.transforms import episode_transitions
from rlstore.replay.tables import FRAMES_NAME, Layout, over_budget, with_one_step

STACKED_FIELDS = ("observation", "next_observation", "one_step_next_observation")
CHUNK_LENGTH = 32  # consecutive frames compressed together
FLUSH_EVERY = 8  # steps between waits for the server's confirmations (keeps few items pending)

_transitions = tf.function(episode_transitions, reduce_retracing=True)


def frames_last(signature: Any, data: Any) -> Any:
    """Sampled items (or batches of them) with every stacked field moved to [..., *frame_shape, k]."""
    def move(spec: tf.TensorSpec, value: tf.Tensor) -> tf.Tensor:
        if spec.name != FRAMES_NAME:
            return value
        rank = value.shape.rank
        axis = rank - spec.shape.rank  # the frame axis, after any batch axes
        return tf.transpose(value, [*range(axis), *range(axis + 1, rank), axis])

    return tree.map_structure(move, signature, data)


def is_stacked(signature: Any) -> bool:
    return any(getattr(spec, "name", None) == FRAMES_NAME for spec in tree.flatten(signature))


def episode_rows(steps: Mapping[str, Any], layout: Layout) -> dict[str, np.ndarray]:
    """One episode's transitions table rows with step indices in place of observations: for row t,
    `observation` = t and `next_observation` = t + m (and `one_step_next_observation` = t + 1)."""
    indexed = {**steps, "observation": np.arange(len(steps["is_first"]), dtype=np.int64)}
    rows = _transitions(indexed, layout.n_step, layout.gamma)
    if layout.one_step:
        rows = with_one_step(rows, _transitions(indexed, 1, layout.gamma))
    return tree.map_structure(lambda tensor: tensor.numpy(), rows)


class FrameSharingWriter:
    """Transitions of whole episodes into one table, each frame appended once (see module doc)."""

    def __init__(self, address: str, table: str, layout: Layout, frame_stack: int, priority: float):
        keep_alive = max(CHUNK_LENGTH, frame_stack + layout.n_step + 1)
        self._writer = pybind.Client(address).NewTrajectoryWriter(
            pybind.ConstantChunkerOptions(CHUNK_LENGTH, keep_alive), False)
        self._table, self._layout, self._k, self._priority = table, layout, frame_stack, priority
        # The newest items may reference chunks still filling up; a flush leaves that many
        # unsent, so it never cuts a chunk short (which would compress frames worse).
        self._open_items = CHUNK_LENGTH + frame_stack + layout.n_step
        self.written = 0

    def add_episode(self, frames: np.ndarray, rows: Mapping[str, np.ndarray]) -> None:
        """Appends the episode's frames [T, *S] and creates one item per row of `rows`
        (`episode_rows`: T - 1 rows, observations as step indices)."""
        k, append, create = self._k, self._writer.Append, self._writer.CreateItem
        scalar_keys = sorted(key for key in rows if key not in STACKED_FIELDS)
        index_keys = [key for key in STACKED_FIELDS if key in rows]
        keys = sorted(scalar_keys + index_keys)  # the signature's flattening order
        squeeze = [key in scalar_keys for key in keys]
        frame_refs = [append([np.zeros_like(frames[0])] + [None] * len(scalar_keys))[0] for _ in range(k - 1)]
        scalar_refs: list[list[Any]] = []
        sources = {key: np.asarray(rows[key], np.int64) for key in index_keys}
        ready = _ready_order(sources, len(frames))
        made = 0
        for step, frame in enumerate(frames):
            has_row = step < len(rows["action"])
            cells = append([frame] + ([np.asarray(rows[key][step]) for key in scalar_keys] if has_row
                                      else [None] * len(scalar_keys)))
            frame_refs.append(cells[0])
            scalar_refs.append(cells[1:])
            while made < len(ready) and ready[made][0] <= step:
                row = ready[made][1]
                columns = {key: [frame_refs[int(sources[key][row]) + j] for j in range(k)] for key in index_keys}
                columns.update({key: [scalar_refs[row][i]] for i, key in enumerate(scalar_keys)})
                create(self._table, self._priority, [columns[key] for key in keys], squeeze)
                made += 1
            if step % FLUSH_EVERY == FLUSH_EVERY - 1:
                self._writer.Flush(self._open_items, -1)
        self._writer.EndEpisode(True, None)  # finalizes the episode's last chunks
        self.written += made

    def flush(self) -> None:
        self._writer.Flush(0, -1)

    def close(self) -> None:
        self._writer.Close()


def _ready_order(sources: Mapping[str, np.ndarray], num_steps: int) -> list[tuple[int, int]]:
    """(last step the row needs, row) for every row, in the order rows become complete.
    `sources` indexes frames in padded coordinates: frame cells of step s are at s .. s + k - 1
    of the padded list, so a stack of step s ends at its own frame."""
    last = np.max(np.stack(list(sources.values())), axis=0)
    order = np.argsort(last, kind="stable")
    return [(int(last[row]), int(row)) for row in order]


def load_stacked(address: str, table: str, layout: Layout, frame_stack: int, priority: float,
                 episodes: Iterable[Mapping[str, Any]], budget: int,
                 on_episode: Callable[[int], None] | None = None) -> int:
    """Inserts the transitions of `episodes` (RLDS step dicts of numpy arrays, single frames)
    into `table`; returns the number of items. Refuses (before writing) to pass `budget` items."""
    writer = FrameSharingWriter(address, table, layout, frame_stack, priority)
    try:
        for steps in episodes:
            rows = episode_rows(steps, layout)
            if writer.written + len(rows["action"]) > budget:
                raise over_budget(table, budget)
            writer.add_episode(np.asarray(steps["observation"]), rows)
            if on_episode:
                on_episode(writer.written)
        writer.flush()
    finally:
        writer.close()
    return writer.written
