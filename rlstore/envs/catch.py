"""bsuite-style Catch: a small, fully observed task that any working agent should solve.

Layout:
  observation  float32 (rows, columns) board; the ball pixel and the paddle pixel
               (always in the bottom row) are 1, everything else 0.
  actions      3 discrete: 0 = move paddle left, 1 = stay, 2 = move paddle right.
  dynamics     the ball starts in a random column of the top row and falls one row per
               step; the paddle starts in the middle of the bottom row.
  reward       +1 if the paddle is under the ball when it reaches the bottom row, -1
               otherwise, 0 on every other step. That step is terminal (discount 0), so an
               episode lasts rows - 1 steps.

Seeding goes through a numpy Generator so the ball's start columns are reproducible.
"""
from __future__ import annotations

import dm_env
import numpy as np
from dm_env import specs

_PADDLE_MOVES = (-1, 0, 1)


class Catch(dm_env.Environment):
    """Catch the falling ball with the paddle."""

    def __init__(self, rows: int = 10, columns: int = 5, seed: int | None = None):
        if rows < 2 or columns < 1:
            raise ValueError(f"catch needs rows >= 2 and columns >= 1, got {rows}x{columns}")
        self._rows = rows
        self._columns = columns
        self._rng = np.random.default_rng(seed)
        self._ball_row = 0
        self._ball_column = 0
        self._paddle_column = columns // 2
        self._reset_next_step = True

    def reset(self) -> dm_env.TimeStep:
        self._reset_next_step = False
        self._ball_row = 0
        self._ball_column = int(self._rng.integers(self._columns))
        self._paddle_column = self._columns // 2
        return dm_env.restart(self._observation())

    def step(self, action) -> dm_env.TimeStep:
        if self._reset_next_step:
            return self.reset()
        move = _PADDLE_MOVES[int(action)]
        self._paddle_column = int(np.clip(self._paddle_column + move, 0, self._columns - 1))
        self._ball_row += 1
        if self._ball_row == self._rows - 1:
            self._reset_next_step = True
            reward = 1.0 if self._paddle_column == self._ball_column else -1.0
            return dm_env.termination(reward=reward, observation=self._observation())
        return dm_env.transition(reward=0.0, observation=self._observation())

    def observation_spec(self) -> specs.BoundedArray:
        return specs.BoundedArray(
            shape=(self._rows, self._columns), dtype=np.float32, minimum=0.0, maximum=1.0, name="board"
        )

    def action_spec(self) -> specs.DiscreteArray:
        return specs.DiscreteArray(num_values=len(_PADDLE_MOVES), dtype=np.int64, name="action")

    def _observation(self) -> np.ndarray:
        board = np.zeros((self._rows, self._columns), dtype=np.float32)
        board[self._ball_row, self._ball_column] = 1.0
        board[self._rows - 1, self._paddle_column] = 1.0
        return board
