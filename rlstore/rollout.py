"""Turning a dm_env interaction stream into RLDS episodes.

dm_env hands out (o_{t+1}, r_t, d_t) after action a_t; RLDS step t holds (o_t, a_t, r_t, d_t).
`EpisodeRecorder` does that re-pairing and closes the episode with the final observation.
A LAST timestep with discount 0 is a real termination; with a non-zero discount it is a
time-limit truncation and the stored episode says `is_terminal=False`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import dm_env
import numpy as np

from rlstore.episode import Episode, make_episode

Policy = Callable[[dm_env.TimeStep], Any]


def _stack(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {key: _stack([item[key] for item in items]) for key in items[0]}
    return np.stack([np.asarray(item) for item in items])


def _zeros_like(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _zeros_like(item) for key, item in value.items()}
    return np.zeros_like(np.asarray(value))


class EpisodeRecorder:
    """Accumulates one episode at a time; `observe` returns the finished episode, else None."""

    def __init__(self) -> None:
        self._observations: list[Any] = []
        self._actions: list[Any] = []
        self._rewards: list[float] = []
        self._discounts: list[float] = []

    def observe_first(self, timestep: dm_env.TimeStep) -> None:
        self.__init__()
        self._observations.append(timestep.observation)

    def observe(self, action: Any, timestep: dm_env.TimeStep) -> Episode | None:
        if not self._observations:
            raise RuntimeError("observe_first must be called at the start of an episode")
        self._actions.append(action)
        self._rewards.append(float(timestep.reward))
        self._discounts.append(float(timestep.discount))
        self._observations.append(timestep.observation)
        if not timestep.last():
            return None
        actions = self._actions + [_zeros_like(action)]
        episode = make_episode(
            observation=_stack(self._observations),
            action=_stack(actions),
            reward=np.asarray(self._rewards + [0.0], dtype=np.float32),
            discount=np.asarray(self._discounts + [0.0], dtype=np.float32),
            is_terminal=timestep.discount == 0,
        )
        self.__init__()
        return episode


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
