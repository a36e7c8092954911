"""Hidden cues of memory tasks, and recording that is balanced over them.

A memory task shows a cue once and rewards the choice it decides much later: the T-maze's
up/down cue, MiniGrid memory's start-room object (a key or a ball) together with the end of the
split where its twin lies. Demonstrations that happen to show one cue more often teach a
memoryless policy to pick that side, and it then scores well above chance for no good reason.
So recordings are balanced: `BalancedCues` resets the environment again (playing no step)
whenever the new episode's cue has been shown more often than the rarest one, which keeps the
counts of every cue within one of each other from the first episode on.
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable

import dm_env

from rlstore.envs.gym_adapter import GymAdapter
from rlstore.envs.step_cost import StepCost
from rlstore.envs.tmaze import TMaze
from rlstore.envs.wrapper import EnvWrapper

MAX_RESETS = 1000  # per episode; a cue that never comes up means the env is not what we think


def hidden_cue(env: dm_env.Environment) -> Hashable | None:
    """The cue of the episode `env` has just been reset to, or None if the task has no hidden cue."""
    env = _task(env)
    if isinstance(env, TMaze):
        return ("up", "down")[env.cue]
    if isinstance(env, GymAdapter):
        game = env.gym_env.unwrapped
        if type(game).__name__ == "MemoryEnv":
            cue_object = game.grid.get(1, game.height // 2 - 1)
            arm = "up" if game.success_pos[1] < game.height // 2 else "down"
            return (cue_object.type, arm)
    return None


def cue_values(env: dm_env.Environment) -> int | None:
    """How many different cues the task has (None if it has none)."""
    env = _task(env)
    if isinstance(env, TMaze):
        return 2
    if isinstance(env, GymAdapter) and type(env.gym_env.unwrapped).__name__ == "MemoryEnv":
        return 4  # key or ball in the start room, times the up or down end of the split
    return None


def _task(env: dm_env.Environment) -> dm_env.Environment:
    """The task under a step cost (which changes its speed, not its cues)."""
    return env.environment if isinstance(env, StepCost) else env


class BalancedCues(EnvWrapper):
    """Wraps a memory task so that successive episodes show every cue equally often.

    Everything else (specs, steps, the wrapped env's attributes that experts read) passes through.
    """

    def __init__(self, env: dm_env.Environment):
        if cue_values(env) is None:
            raise ValueError(f"{type(env).__name__} has no hidden cue to balance")
        super().__init__(env)
        self._values = cue_values(env)
        self.counts: Counter = Counter()

    def reset(self) -> dm_env.TimeStep:
        least = min(self.counts.values()) if len(self.counts) == self._values else 0
        for _ in range(MAX_RESETS):
            timestep = self._env.reset()
            cue = hidden_cue(self._env)
            if self.counts[cue] == least:
                self.counts[cue] += 1
                return timestep
        raise RuntimeError(f"no episode with a rare cue after {MAX_RESETS} resets; counts {dict(self.counts)}")

    def step(self, action) -> dm_env.TimeStep:
        timestep = self._env.step(action)
        return timestep if not timestep.first() else self.reset()


def balance_cues(env: dm_env.Environment) -> dm_env.Environment:
    """`env` wrapped in BalancedCues if its task has hidden cues, else `env` itself."""
    return BalancedCues(env) if cue_values(env) is not None else env
