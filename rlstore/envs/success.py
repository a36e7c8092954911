"""Which tasks have a notion of success, and what it is in terms of an episode's return.

A success rate says more than a mean return where the task is won or lost: Catch (the ball is
caught, +1), Deep Sea (the treasure is reached, 1 − move costs), the T-maze (the arm the cue
pointed to, 1) and MiniGrid (the goal is reached, a positive time-discounted reward). Tasks
scored by points (MinAtar, CartPole, MountainCar) have none.
"""
from __future__ import annotations

from typing import Callable

from rlstore.envs.spec import parse_spec

_BUILTIN = {
    "catch": lambda episode_return: episode_return > 0,
    "deep_sea": lambda episode_return: episode_return > 0.5,
    "tmaze": lambda episode_return: episode_return > 0,
}
_GYM_PREFIXES = {"MiniGrid-": lambda episode_return: episode_return > 0}


def success_test(spec: str) -> Callable[[float], bool] | None:
    """A function telling from an episode's return whether it succeeded, or None if the task has no success."""
    parsed = parse_spec(spec)
    if parsed.kind != "gym":
        return _BUILTIN.get(parsed.kind)
    return next((test for prefix, test in _GYM_PREFIXES.items() if parsed.gym_id.startswith(prefix)), None)


def success_rate(spec: str, returns: list[float]) -> float | None:
    """The share of episodes that succeeded, or None if the task has no notion of success."""
    test = success_test(spec)
    return None if test is None or not returns else sum(map(test, returns)) / len(returns)
