"""A step cost for any environment: `step_ms=N` in a spec makes every step take at least N ms.

Built-in tasks step in microseconds; a physics simulator, a game emulator at its real frame
rate or a robot answers in milliseconds. `catch:step_ms=5` (or `gym:CartPole-v1?step_ms=5`)
stands in for such a slow simulator, so the effect of more actors on wall-clock time can be
measured with tasks that are cheap to learn.

The cost is a sleep after the wrapped env's step, not busy work: like a simulator in another
process or a robot, a slow step leaves the actor's core free, so several actors overlap even on
a machine with fewer cores than actors. `reset` is free (an episode's cost is its steps).
"""
from __future__ import annotations

import time

import dm_env

from rlstore.envs.wrapper import EnvWrapper


class StepCost(EnvWrapper):
    """`env` whose `step` takes at least `step_ms` milliseconds; everything else is `env`'s."""

    def __init__(self, env: dm_env.Environment, step_ms: int):
        if step_ms < 0:
            raise ValueError(f"step_ms must be >= 0, got {step_ms}")
        super().__init__(env)
        self._seconds = step_ms / 1000.0
        self.step_ms = step_ms

    def step(self, action) -> dm_env.TimeStep:
        deadline = time.perf_counter() + self._seconds
        timestep = self._env.step(action)
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        return timestep
