"""Turning a dm_env interaction stream into RLDS episodes, one episode at a time.

dm_env hands out (o_{t+1}, r_t, d_t) after action a_t; RLDS step t holds (o_t, a_t, r_t, d_t).
`EpisodeRecorder` records the stream (`rlstore.writeback.columns.StepRecorder`) and builds each
finished episode with the one episode builder, `rlstore.writeback.stream.StreamSplitter`: the
same code that builds the episodes an actor writes back, so an episode played here and one
written back are the same. A LAST timestep with discount 0 is a real termination; with a
non-zero discount it is a time-limit truncation and the stored episode says `is_terminal=False`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import dm_env

from rlstore.episode import Episode
from rlstore.writeback.columns import StepRecorder
from rlstore.writeback.stream import StreamSplitter

Policy = Callable[[dm_env.TimeStep], Any]
_RUN = "episode"  # names the episode in an error (episode_id metadata is not kept here)


class EpisodeRecorder:
    """Accumulates one episode at a time; `observe` returns the finished episode, else None.
    An episode left unfinished by a new `observe_first` is dropped."""

    def __init__(self) -> None:
        self._steps = StepRecorder(_RUN)
        self._splitter = StreamSplitter(_RUN)

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self._steps = StepRecorder(_RUN)
        self._splitter = StreamSplitter(_RUN)
        self._steps.observe_first(timestep)

    def observe(self, action: Any, timestep: dm_env.TimeStep, extras: Any = None) -> Episode | None:
        """Records a step (`extras`: what the actor chose the action with, kept as step metadata)."""
        if not self._steps.observations:
            raise RuntimeError("observe_first must be called at the start of an episode")
        if not self._steps.observe(action, timestep, extras):
            return None
        batch = self._splitter.split(self._steps.take())
        return {"steps": batch.episode(0)["steps"]}


def run_episodes(env: dm_env.Environment, policy: Policy, num_episodes: int) -> Iterator[Episode]:
    """Plays `num_episodes` episodes and yields each as an RLDS episode."""
    recorder = EpisodeRecorder()
    for _ in range(num_episodes):
        timestep = env.reset()
        recorder.observe_first(timestep)
        episode = None
        while episode is None:
            action = policy(timestep)
            timestep = env.step(action)
            episode = recorder.observe(action, timestep)
        yield episode
