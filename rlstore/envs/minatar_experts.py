"""Scripted experts for MinAtar's Breakout, Freeway and SpaceInvaders, played from the game state.

MinAtar (Young & Tian 2019) keeps each game's state in plain attributes of its `Env` object
(`gym_env.unwrapped.game.env`). The experts read them, as the other experts read their env's
hidden mapping, and choose a game action by name ('n' no-op, 'l', 'r', 'u', 'd', 'f' fire); it is
translated to the env's action set (`-v1`: the minimal set, `-v0`: all six). MinAtar repeats the
previous action with probability 0.1 (sticky actions), which no expert can prevent.

- Breakout: keeps the paddle under the ball's landing column, predicted by playing the ball's
  flight on a copy of the game state (the paddle does not change it before the bottom row).
- Freeway and SpaceInvaders: a short lookahead on copies of the game state (the copy's random
  state is a copy too, so the real game is untouched): each candidate action is played, then a
  default action for a few steps, and the candidate with the best reward, no death, and the
  best leaf heuristic is taken (Freeway: the chicken's progress up the road; SpaceInvaders: the
  cannon's distance to the nearest alien column).
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import dm_env
import numpy as np

from rlstore.envs.gym_adapter import GymAdapter

DEATH_PENALTY = 100.0


class MinAtarExpert:
    """Translates a game-specific choice of action letter into the env's action index."""

    def __init__(self, env: GymAdapter, choose: Callable[[object], str]):
        unwrapped = env.gym_env.unwrapped
        self._game = unwrapped.game.env
        self._choose = choose
        action_map = self._game.action_map
        self._index = {action_map[game_action]: index for index, game_action in enumerate(unwrapped.action_set)}

    def __call__(self, timestep: dm_env.TimeStep) -> np.int64:
        return np.int64(self._index.get(self._choose(self._game), 0))


def breakout(game) -> str:
    target = _landing_column(game)
    return "l" if target < game.pos else "r" if target > game.pos else "n"


def _landing_column(game) -> int:
    """The column the ball will reach the paddle's row in: the game's own ball flight, bricks and
    all, played on a copy until the ball falls through row 8."""
    future = copy.deepcopy(game)
    noop = future.action_map.index("n")
    for _ in range(100):
        if future.ball_y == 8 and future.ball_dir in (2, 3):
            # Under the ball's column it bounces straight back; under its next column it flies
            # back the way it came. Switching between the two by the bricks left breaks the
            # loops a fixed choice falls into once a path through the bricks is cleared.
            if int(np.count_nonzero(future.brick_map)) % 2:
                return future.ball_x
            return min(max(future.ball_x + (1 if future.ball_dir == 2 else -1), 0), 9)
        future.act(noop)
        if future.terminal:
            break
    return game.ball_x


def freeway(game) -> str:
    return _lookahead(game, ("u", "n", "d"), default="u", horizon=7, leaf=lambda g: -0.1 * float(g.pos))


def space_invaders(game) -> str:
    def leaf(g) -> float:
        columns = np.flatnonzero(np.asarray(g.alien_map).sum(axis=0))
        return -0.01 * float(np.abs(columns - g.pos).min()) if columns.size else 0.0

    return _lookahead(game, ("f", "l", "r", "n"), default="f", horizon=5, leaf=leaf)


def _lookahead(game, candidates: Sequence[str], default: str, horizon: int, leaf: Callable[[object], float]) -> str:
    """The candidate whose copy-played future (it, then `default`) scores best; ties go to the earlier one."""
    action_map = game.action_map
    best, best_score = candidates[0], -np.inf
    for candidate in candidates:
        future = copy.deepcopy(game)
        score = 0.0
        for step in range(horizon):
            reward, terminal = future.act(action_map.index(candidate if step == 0 else default))
            score += reward
            if terminal:
                score -= DEATH_PENALTY
                break
        score += leaf(future)
        if score > best_score:
            best, best_score = candidate, score
    return best


GAMES: dict[str, Callable[[object], str]] = {"Breakout": breakout, "Freeway": freeway, "SpaceInvaders": space_invaders}


def game_of(gym_id: str) -> str | None:
    """'Breakout' for 'MinAtar/Breakout-v1'; None if not a MinAtar id."""
    if not gym_id.startswith("MinAtar/"):
        return None
    return gym_id.removeprefix("MinAtar/").rsplit("-", 1)[0]
