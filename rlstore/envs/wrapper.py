"""The pass-through every rlstore env wrapper shares (step cost, balanced cues): a wrapper
changes one thing, and everything else, specs and the task attributes that experts read
(deep_sea's mapping, the tmaze cue), stays the wrapped env's."""
from __future__ import annotations

from typing import Any

import dm_env


class EnvWrapper(dm_env.Environment):
    """`env` unchanged; subclasses override what they change."""

    def __init__(self, env: dm_env.Environment):
        self._env = env

    @property
    def environment(self) -> dm_env.Environment:
        """The wrapped environment."""
        return self._env

    def reset(self) -> dm_env.TimeStep:
        return self._env.reset()

    def step(self, action) -> dm_env.TimeStep:
        return self._env.step(action)

    def observation_spec(self):
        return self._env.observation_spec()

    def action_spec(self):
        return self._env.action_spec()

    def reward_spec(self):
        return self._env.reward_spec()

    def discount_spec(self):
        return self._env.discount_spec()

    def close(self) -> None:
        self._env.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

