"""The online actor's one write path: each step recorded once, each finished episode to Reverb and the store.

    adder = Adder(ReplayInserter(address, layout), writer)   # writer: a WriteBack, or None
    adder.observe_first(timestep)
    adder.observe(action, next_timestep, extras={"core_state": {"0": h, "1": c}})
    ...
    adder.close()

Like Acme's adders, an actor calls it with every step and the extras it chose the action with.
The steps are recorded once (`rlstore.writeback.columns.StepRecorder`); when an episode ends,
its column batch is built into the episode (`rlstore.writeback.stream.StreamSplitter`, the one
episode builder), whose rows go into the replay tables here, in the actor's process (when a
table's rate limiter says the learner is behind, the insert waits and so does acting: that is
how the ratio of acting to learning is held), and the same column batch goes to the write-back
worker, which builds the same episode and appends it to the store. Extras become step
metadata in both: sequence items take the recurrent state of their first step
(`rlstore.replay.tables.with_core_state`), and so do items refilled from the stored episodes.
"""
from __future__ import annotations

from typing import Any

import dm_env

from rlstore.episode import Episode
from rlstore.writeback.columns import StepRecorder
from rlstore.writeback.replay import ReplayInserter
from rlstore.writeback.stream import StreamSplitter
from rlstore.writeback.writer import WriteBack, WriteBackSummary


class Adder:
    """Feeds `replay` (rows of each finished episode) and `writer` (the store), either optional."""

    def __init__(self, replay: ReplayInserter | None = None, writer: WriteBack | None = None, run_id: str = "actor",
                 frame_stack: int = 1):
        """`frame_stack` k > 1: observations are frame stacks; each step's newest frame is recorded
        (`StepRecorder`), and `replay` and `writer` must have been made with the same k."""
        for part in (replay, writer):
            if part is not None and part.frame_stack != frame_stack:
                raise ValueError(f"the adder records stacks of {frame_stack} frames, its {type(part).__name__} "
                                 f"was made for {part.frame_stack}")
        self._replay = replay
        self._writer = writer
        run_id = writer.run_id if writer is not None else run_id
        self._recorder = StepRecorder(run_id, frame_stack)
        self._splitter = StreamSplitter(run_id)

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._recorder.observe_first(timestep)

    def observe(self, action: Any, next_timestep: dm_env.TimeStep, extras: Any = None) -> Episode | None:
        """Records a step; at the end of an episode, writes it and returns it."""
        if not self._recorder.observe(action, next_timestep, extras):
            return None
        batch = self._recorder.take()
        if self._writer is not None:
            self._writer.ship(batch)
        episode = self._splitter.split(batch).episode(0)
        if self._replay is not None:
            self._replay.add([episode["steps"]])
        return episode

    def close(self) -> WriteBackSummary | None:
        """Waits for Reverb to confirm every row, then commits what the writer has not committed;
        returns the writer's summary (None without a writer)."""
        try:
            if self._replay is not None:
                self._replay.close()
        finally:
            summary = self._writer.close() if self._writer is not None else None
        return summary
