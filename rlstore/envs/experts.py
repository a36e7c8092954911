"""Scripted policies: near-optimal experts per task, and a uniform random baseline.

Experts make "expert" datasets without training an agent first, and give every task a
known-good return to check an offline learner against. They read only what an agent
would see (observations) plus, for deep_sea and tmaze, the env's fixed hidden action
mapping: the one thing an expert of those tasks is assumed to know. The third-party suites'
experts play from the game state (rlstore.envs.minatar_experts, rlstore.envs.minigrid_experts).

A policy maps a dm_env.TimeStep (never a LAST one) to an action matching the env's
action spec; stateful policies reset themselves on `timestep.first()`.
"""
from __future__ import annotations

from typing import Any, Callable

import dm_env
import numpy as np
from dm_env import specs

from rlstore.envs import minatar_experts, minigrid_experts
from rlstore.envs.deep_sea import DeepSea
from rlstore.envs.spec import EnvSpecError, parse_spec
from rlstore.envs.tmaze import TMaze

Policy = Callable[[dm_env.TimeStep], Any]

POLICY_KINDS = ("random", "expert")


def make_policy(kind: str, spec: str, env: dm_env.Environment, seed: int | None = None) -> Policy:
    """A policy for `env` (built from `spec`): kind "random" (seeded) or "expert"."""
    if kind == "random":
        return random_policy(env.action_spec(), seed)
    if kind == "expert":
        return make_expert(spec, env)
    raise ValueError(f"unknown policy kind {kind!r}; expected one of {POLICY_KINDS}")


def make_expert(spec: str, env: dm_env.Environment) -> Policy:
    """The scripted expert for `env`, which must have been built from `spec`."""
    parsed = parse_spec(spec)
    if parsed.kind == "catch":
        return catch_expert
    if parsed.kind == "deep_sea":
        return deep_sea_expert(env)
    if parsed.kind == "tmaze":
        return TMazeExpert(env)
    if parsed.gym_id in _GYM_EXPERTS:
        return _GYM_EXPERTS[parsed.gym_id]
    game = minatar_experts.game_of(parsed.gym_id)
    if game in minatar_experts.GAMES:
        return minatar_experts.MinAtarExpert(env, minatar_experts.GAMES[game])
    if minigrid_experts.is_memory_task(parsed.gym_id):
        return minigrid_experts.MemoryExpert(env)
    raise EnvSpecError(spec, f"no scripted expert; experts exist for catch, deep_sea, tmaze, "
                             f"gym:{', gym:'.join(_GYM_EXPERTS)}, "
                             f"gym:MinAtar/{{{','.join(minatar_experts.GAMES)}}}-v0|v1 and every gym:MiniGrid-Memory* task")


def random_policy(action_spec, seed: int | None = None) -> Policy:
    """Uniform over the action spec (a DiscreteArray, finite BoundedArray, or dict of them)."""
    rng = np.random.default_rng(seed)
    return lambda timestep: _sample(action_spec, rng)


def _sample(spec, rng: np.random.Generator):
    if isinstance(spec, dict):
        return {key: _sample(subspec, rng) for key, subspec in spec.items()}
    if isinstance(spec, specs.DiscreteArray):
        return spec.dtype.type(rng.integers(spec.num_values))
    if np.issubdtype(spec.dtype, np.integer):
        return rng.integers(spec.minimum, spec.maximum, size=spec.shape, endpoint=True).astype(spec.dtype)
    return rng.uniform(spec.minimum, spec.maximum, size=spec.shape).astype(spec.dtype)


def catch_expert(timestep: dm_env.TimeStep) -> np.int64:
    """Moves the paddle (bottom row) towards the ball's column."""
    board = timestep.observation
    ball_column = np.argmax(board[:-1].max(axis=0))
    paddle_column = np.argmax(board[-1])
    return np.int64(1 + np.sign(ball_column - paddle_column))  # 0 left, 1 stay, 2 right


def deep_sea_expert(env: DeepSea) -> Policy:
    """Always moves right, looking up which action means right in the current cell."""
    mapping = env.action_mapping

    def policy(timestep: dm_env.TimeStep) -> np.int64:
        row, column = np.unravel_index(np.argmax(timestep.observation), mapping.shape)
        return np.int64(mapping[row, column])

    return policy


class TMazeExpert:
    """Remembers the first observation's cue, advances down the corridor, picks that arm."""

    def __init__(self, env: TMaze):
        self._advance_actions = env.advance_actions
        self._length = env.length
        self._cue = 0

    def __call__(self, timestep: dm_env.TimeStep) -> np.int64:
        cue_up, cue_down, at_junction, progress = timestep.observation
        if timestep.first():
            self._cue = 0 if cue_up > cue_down else 1
        if at_junction:
            return np.int64(self._cue)
        return np.int64(self._advance_actions[round(progress * self._length)])


def cartpole_expert(timestep: dm_env.TimeStep) -> np.int64:
    """PD control on the pole: push towards the side the pole is falling to."""
    _, _, angle, angular_velocity = timestep.observation
    return np.int64(angle + 0.5 * angular_velocity > 0)  # 0 push left, 1 push right


def mountain_car_expert(timestep: dm_env.TimeStep) -> np.int64:
    """Pumps energy: accelerates in the direction of motion, swinging ever higher."""
    _, velocity = timestep.observation
    return np.int64(2 if velocity >= 0 else 0)  # 0 accelerate left, 2 accelerate right


_GYM_EXPERTS: dict[str, Policy] = {
    "CartPole-v1": cartpole_expert,
    "MountainCar-v0": mountain_car_expert,
}
