"""T-maze: a memory task. The cue is shown once, the choice it decides comes much later.

Layout:
  observation  float32 vector of 4: [cue_up, cue_down, at_junction, position / length].
               The cue one-hot is set only on the first step of an episode and is zero
               afterwards, so a memoryless policy can do no better than chance.
  actions      2 discrete, 0 and 1. In the corridor cell at position p, exactly one of
               them advances to p + 1 (drawn per cell from `mapping_seed` when the env is
               built, then fixed: the task's layout); the other leaves the agent in place. At the junction (position
               == length) the action is the choice: 0 = up arm, 1 = down arm.
  dynamics     start at position 0 with the cue up or down (uniform, from the env seed);
               `length` corridor cells lead to the junction.
  reward       +1 when the choice matches the cue, 0 otherwise; the choice step is
               terminal (discount 0), so the episode return equals the success rate.
  time limit   3 * length steps without a choice end the episode as a truncation: a LAST
               step with discount 1, not a termination, because the task itself goes on.

The per-cell advancing action means the corridor has to be learned too (rather than
solved by repeating one action), while the position feature keeps it fully observed.
"""
from __future__ import annotations

import dm_env
import numpy as np
from dm_env import specs

UP, DOWN = 0, 1


class TMaze(dm_env.Environment):
    """Walk the corridor, then turn towards the arm the first observation pointed to."""

    def __init__(self, length: int, mapping_seed: int = 0, seed: int | None = None):
        if length < 1:
            raise ValueError(f"tmaze length must be >= 1, got {length}")
        self._length = length
        self._time_limit = 3 * length
        self._rng = np.random.default_rng(seed)
        # advance_actions[p] is the action that moves the agent from cell p to p + 1.
        self._advance_actions = np.random.default_rng(mapping_seed).integers(2, size=length)
        self._advance_actions.setflags(write=False)
        self._cue = UP
        self._position = 0
        self._steps = 0
        self._reset_next_step = True

    @property
    def length(self) -> int:
        return self._length

    @property
    def cue(self) -> int:
        """The current episode's cue, UP or DOWN (hidden from the agent after the first step)."""
        return self._cue

    @property
    def advance_actions(self) -> np.ndarray:
        """(length,) array: the action that advances out of each corridor cell (read-only)."""
        return self._advance_actions

    def reset(self) -> dm_env.TimeStep:
        self._reset_next_step = False
        self._cue = int(self._rng.integers(2))
        self._position = 0
        self._steps = 0
        return dm_env.restart(self._observation(show_cue=True))

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        action = int(action)
        self._steps += 1
        if self._position == self._length:
            self._reset_next_step = True
            reward = 1.0 if action == self._cue else 0.0
            return dm_env.termination(reward=reward, observation=self._observation())
        if action == self._advance_actions[self._position]:
            self._position += 1
        if self._steps == self._time_limit:
            self._reset_next_step = True
            return dm_env.truncation(reward=0.0, observation=self._observation())
        return dm_env.transition(reward=0.0, observation=self._observation())

    def observation_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray(shape=(4,), dtype=np.float32, minimum=0.0, maximum=1.0, name="observation")

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(num_values=2, dtype=np.int64, name="action")

    def _observation(self, show_cue: bool = False) -> np.ndarray:
        observation = np.zeros(4, dtype=np.float32)
        if show_cue:
            observation[self._cue] = 1.0
        observation[2] = float(self._position == self._length)
        observation[3] = self._position / self._length
        return observation
