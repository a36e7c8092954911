"""dm_env adapter over a gymnasium env that keeps termination and truncation apart.

The distinction matters for offline RL: a time-limit truncation is not the end of the
task, so its last step must keep discount 1 or value targets learned from the data are
biased towards zero. Hence:
  terminated          -> dm_env.termination (LAST, discount 0)
  truncated (only)    -> dm_env.truncation  (LAST, discount 1)

Specs come from the gymnasium spaces: Box -> BoundedArray (float Boxes become float32; boolean
ones, MinAtar's frames, stay bool), Discrete -> DiscreteArray (int64), Dict -> dict of specs,
Text and any other space whose values are strings (MiniGrid's mission) -> StringArray.
Observations are cast to their spec's dtype so stored data always matches the declared spec;
text becomes a numpy unicode scalar, which the store keeps as a text feature.

Seeding: the first reset passes the seed to gymnasium; later resets pass none so the
env's RNG stream continues, and a seeded run is reproducible across many episodes.
"""
from __future__ import annotations

from typing import Any

import dm_env
import gymnasium as gym
import numpy as np
from dm_env import specs

Spec = specs.Array | dict[str, Any]


class GymAdapter(dm_env.Environment):
    """Presents a gymnasium env through the dm_env interface."""

    def __init__(self, env: gym.Env, seed: int | None = None):
        self._env = env
        self._seed = seed
        self._seeded = False
        self._observation_spec = space_to_spec(env.observation_space, "observation")
        self._action_spec = space_to_spec(env.action_space, "action")
        self._reset_next_step = True

    @property
    def gym_env(self) -> gym.Env:
        return self._env

    def reset(self) -> dm_env.TimeStep:
        self._reset_next_step = False
        if self._seeded:
            observation, _ = self._env.reset()
        else:
            observation, _ = self._env.reset(seed=self._seed)
            self._seeded = True
        return dm_env.restart(self.observe(observation))

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        observation, reward, terminated, truncated, _ = self._env.step(
            _to_gym_action(self._env.action_space, action)
        )
        observation, reward = self.observe(observation), float(reward)
        if terminated:
            self._reset_next_step = True
            return dm_env.termination(reward=reward, observation=observation)
        if truncated:
            self._reset_next_step = True
            return dm_env.truncation(reward=reward, observation=observation)
        return dm_env.transition(reward=reward, observation=observation)

    def observation_spec(self) -> Spec:
        return self._observation_spec

    def action_spec(self) -> Spec:
        return self._action_spec

    def close(self) -> None:
        self._env.close()

    def observe(self, observation: Any) -> Any:
        """A gymnasium observation as this adapter's timesteps carry it (cast to the spec): for a
        wrapper that changed the game's state after a reset and needs the view regenerated."""
        return _cast_to_spec(self._observation_spec, observation)


def space_to_spec(space: gym.Space, name: str) -> Spec:
    """The dm_env spec describing values of a gymnasium space."""
    if isinstance(space, gym.spaces.Dict):
        return {key: space_to_spec(subspace, key) for key, subspace in space.spaces.items()}
    if isinstance(space, gym.spaces.Discrete):
        if space.start == 0:
            return specs.DiscreteArray(num_values=int(space.n), dtype=np.int64, name=name)
        low = int(space.start)
        return specs.BoundedArray((), np.int64, minimum=low, maximum=low + int(space.n) - 1, name=name)
    if isinstance(space, gym.spaces.Box):
        dtype = np.float32 if np.issubdtype(space.dtype, np.floating) else space.dtype
        with np.errstate(over="ignore"):  # float64 bounds past float32's range become +-inf
            low, high = space.low.astype(dtype), space.high.astype(dtype)
        return specs.BoundedArray(shape=space.shape, dtype=dtype, minimum=low, maximum=high, name=name)
    if _is_text(space):
        return specs.StringArray((), name=name)
    raise TypeError(f"unsupported gymnasium space for {name}: {space!r} (supported: Box, Discrete, Dict, Text)")


def _is_text(space: gym.Space) -> bool:
    """Text spaces, and spaces of strings that are not Text (MiniGrid's MissionSpace)."""
    return isinstance(space, gym.spaces.Text) or isinstance(space.sample(), str)


def _cast_to_spec(spec: Spec, value):
    if isinstance(spec, dict):
        return {key: _cast_to_spec(subspec, value[key]) for key, subspec in spec.items()}
    if isinstance(spec, specs.StringArray):
        return np.asarray(value, dtype=str)
    return np.asarray(value, dtype=spec.dtype)


def _to_gym_action(space: gym.Space, action):
    """Converts a dm_env action to what the gymnasium space expects (int, array or dict)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _to_gym_action(subspace, action[key]) for key, subspace in space.spaces.items()}
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    return np.asarray(action, dtype=space.dtype)
