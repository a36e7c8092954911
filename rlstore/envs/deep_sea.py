"""bsuite-style Deep Sea: a hard-exploration task where dithering (random) policies fail.

Layout:
  observation  float32 (size, size) one-hot of the agent's (row, column); all zeros on the
               final step, once the agent has left the grid.
  actions      2 discrete. Which of 0/1 means "right" is drawn per cell from `mapping_seed`
               when the env is built and then fixed (bsuite's action mapping), so no action
               is "right" everywhere and a random policy reaches the goal with prob 2^-size.
  dynamics     start at the top-left cell; every step moves down one row and one column
               right or left (clipped at the walls). The episode ends after `size` steps
               (terminal, discount 0).
  reward       -0.01 / size for each move right; +1 for moving right from the bottom-right
               cell. The optimal return is therefore 1 - 0.01 = 0.99.

Moves are deterministic (bsuite's `deterministic=True` variant) and the mapping is the task's,
not the episode's: every env seed plays the same task, and the expert's return is exact.
"""
from __future__ import annotations

import dm_env
import numpy as np
from dm_env import specs

_MOVE_COST = 0.01


class DeepSea(dm_env.Environment):
    """Reach the bottom-right corner by going right at every step."""

    def __init__(self, size: int, mapping_seed: int = 0, seed: int | None = None):
        if size < 1:
            raise ValueError(f"deep_sea size must be >= 1, got {size}")
        self._size = size
        # action_mapping[row, column] is the action that moves right from that cell.
        self._action_mapping = np.random.default_rng(mapping_seed).integers(2, size=(size, size))
        self._action_mapping.setflags(write=False)
        self._row = 0
        self._column = 0
        self._reset_next_step = True

    @property
    def action_mapping(self) -> np.ndarray:
        """(size, size) array: the action meaning "right" in each cell (read-only)."""
        return self._action_mapping

    def reset(self) -> dm_env.TimeStep:
        self._reset_next_step = False
        self._row = 0
        self._column = 0
        return dm_env.restart(self._observation())

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        reward = 0.0
        if int(action) == self._action_mapping[self._row, self._column]:
            if self._column == self._size - 1:
                reward += 1.0
            reward -= _MOVE_COST / self._size
            self._column = min(self._column + 1, self._size - 1)
        else:
            self._column = max(self._column - 1, 0)
        self._row += 1
        if self._row == self._size:
            self._reset_next_step = True
            return dm_env.termination(reward=reward, observation=self._observation())
        return dm_env.transition(reward=reward, observation=self._observation())

    def observation_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray(
            shape=(self._size, self._size), dtype=np.float32, minimum=0.0, maximum=1.0, name="position"
        )

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(num_values=2, dtype=np.int64, name="action")

    def _observation(self) -> np.ndarray:
        grid = np.zeros((self._size, self._size), dtype=np.float32)
        if self._row < self._size:
            grid[self._row, self._column] = 1.0
        return grid
