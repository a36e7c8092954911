"""Hidden cues of memory tasks, and recording that is balanced over them.

A memory task shows a cue once and rewards the choice it decides much later: the T-maze's
up/down cue, MiniGrid memory's start-room object (a key or a ball) together with the end of the
split where its twin lies. Demonstrations that happen to show one cue more often teach a
memoryless policy to pick that side, and it then scores well above chance for no good reason.
So recordings are balanced: `BalancedCues` resets the environment again (playing no step)
whenever the new episode's cue has been shown more often than the rarest one, which keeps the
counts of every cue within one of each other from the first episode on.

MiniGrid memory also gives every episode its own layout (where the agent starts, the order of
the end objects, on the Random sizes the hallway's length). Balanced counts alone then leave
each layout with one answer, which a network can fit from the layout without the cue: on
MiniGrid-MemoryS13Random the R2D3 margin loss fits 20 such demonstrations' junction turns
(1.0) with no cue in its state (a linear read-out of it at the junction: 0.47). So there
episodes come in twins: the second replays the first one's layout with the other start-room
object, so everything up to the junction looks the same and only the remembered cue says
which way to turn (`benchmarks/r2d3_memory_probe.py`, README R2D3 section). Only on the
Random sizes, whose hallway lengths make many layouts: a fixed size has few (the agent's start
column and the ends' order), twins halve the distinct ones among 20 demonstrations, and on
MiniGrid-MemoryS9 seed 0 they took R2D3 from 0.90 to 0.61.
"""
from __future__ import annotations

import copy
from collections import Counter
from typing import Any, Hashable

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
    game = _memory_game(env)
    if game is not None:
        cue_object = game.grid.get(*_cue_cell(game))
        arm = "up" if game.success_pos[1] < game.height // 2 else "down"
        return (cue_object.type, arm)
    return None


def cue_values(env: dm_env.Environment) -> int | None:
    """How many different cues the task has (None if it has none)."""
    env = _task(env)
    if isinstance(env, TMaze):
        return 2
    if _memory_game(env) is not None:
        return 4  # key or ball in the start room, times the up or down end of the split
    return None


def _task(env: dm_env.Environment) -> dm_env.Environment:
    """The task under a step cost (which changes its speed, not its cues)."""
    return env.environment if isinstance(env, StepCost) else env


def _memory_game(env: dm_env.Environment) -> Any | None:
    """The MiniGrid MemoryEnv game under `env`'s gym adapter, or None."""
    env = _task(env)
    if isinstance(env, GymAdapter) and type(env.gym_env.unwrapped).__name__ == "MemoryEnv":
        return env.gym_env.unwrapped
    return None


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
        self._adapter = _memory_adapter(env)
        self._twin_of: dict[str, Any] | None = None  # the layout the next episode replays

    def reset(self) -> dm_env.TimeStep:
        if self._twin_of is not None:
            return self._twin()
        least = min(self.counts.values()) if len(self.counts) == self._values else 0
        for _ in range(MAX_RESETS):
            timestep = self._env.reset()
            cue = hidden_cue(self._env)
            if self.counts[cue] == least:
                self.counts[cue] += 1
                if self._adapter is not None:
                    self._twin_of = _layout(self._adapter.gym_env.unwrapped)
                return timestep
        raise RuntimeError(f"no episode with a rare cue after {MAX_RESETS} resets; counts {dict(self.counts)}")

    def _twin(self) -> dm_env.TimeStep:
        """A fresh episode (step count, time limit) played on the previous one's layout with the
        other start-room object, so the right end of the split is the other one too. Its cue is
        the previous one's complement: (key, up) <-> (ball, down), so the counts stay balanced."""
        layout, self._twin_of = self._twin_of, None
        timestep = self._env.reset()
        game = self._adapter.gym_env.unwrapped
        game.grid, game.agent_pos, game.agent_dir = layout["grid"], layout["agent_pos"], layout["agent_dir"]
        cell = _cue_cell(game)
        shown = game.grid.get(*cell)
        game.grid.set(*cell, _other_object(shown.type)(shown.color))
        game.success_pos, game.failure_pos = layout["failure_pos"], layout["success_pos"]
        self.counts[hidden_cue(self._env)] += 1
        return timestep._replace(observation=self._adapter.observe(game.gen_obs()))

    def step(self, action) -> dm_env.TimeStep:
        timestep = self._env.step(action)
        return timestep if not timestep.first() else self.reset()


def _memory_adapter(env: dm_env.Environment) -> GymAdapter | None:
    """The adapter over a MiniGrid memory game of random hallway lengths (recorded in twins), else None."""
    game = _memory_game(env)
    return _task(env) if game is not None and game.random_length else None


def _cue_cell(game: Any) -> tuple[int, int]:
    return 1, game.height // 2 - 1  # where MemoryEnv puts the start room's object


def _layout(game: Any) -> dict[str, Any]:
    """What a MemoryEnv episode's layout is made of, copied, to replay it."""
    return {"grid": copy.deepcopy(game.grid), "agent_pos": game.agent_pos.copy(), "agent_dir": game.agent_dir,
            "success_pos": tuple(game.success_pos), "failure_pos": tuple(game.failure_pos)}


def _other_object(kind: str) -> Any:
    from minigrid.core.world_object import Ball, Key

    return {"key": Ball, "ball": Key}[kind]


def balance_cues(env: dm_env.Environment) -> dm_env.Environment:
    """`env` wrapped in BalancedCues if its task has hidden cues, else `env` itself."""
    return BalancedCues(env) if cue_values(env) is not None else env
